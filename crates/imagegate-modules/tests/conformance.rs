//! The conformance suite (tests/conformance, see its README.md): zuul-jobs'
//! own container and registry test scenarios, re-expressed against this
//! collection's roles with the inputs a zuul-jobs user writes, run under each
//! ansible-core the way Zuul runs a job: ansible-playbook on the controller
//! (root, its own HOME) connects over ssh to a node (this machine, a private
//! sshd on 127.0.0.1) as a non-root user with passwordless sudo.
//!
//! The checks here are stronger than zuul-jobs' (which mostly see that the
//! roles do not fail): every tag name in the registries, digests through the
//! registry API, the artifacts returned to Zuul, and the labels in the image
//! configuration.
//!
//! The three runs (one per ansible-core) share the node user and the
//! system paths the roles write with sudo (/etc/containers, /etc/docker, the
//! CA store): a lock file makes them take turns.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imagegate_testkit::ansible::Core;
use imagegate_testkit::{free_port, random_hex, repo_root, Fixtures, Kind, TestRegistry};
use serde_json::{json, Value};

/// The node user: not the Zuul harness's (tests/zuul uses imagegate-node).
const NODE_USER: &str = "igconform";
const NODE_HOME_PREFIX: &str = "/home/igconform";
/// Held while a run uses the node user and the system paths.
const LOCK_FILE: &str = "/tmp/imagegate-conformance.lock";
/// System directories the roles (with sudo) and the workspace play write to;
/// what a run adds there is removed after it.
const SYSTEM_DIRS: &[&str] = &[
    "/etc/containers/registries.conf.d",
    "/etc/containers/certs.d",
    "/etc/buildkit",
    "/etc/docker/certs.d",
    "/usr/local/share/ca-certificates",
];

/// A collections path holding imagegate.containers with the module binaries
/// built for this test run (as tests/ansible.rs makes it).
fn collection() -> tempfile::TempDir {
    imagegate_testkit::ansible::collection(&imagegate_testkit::module_binaries!())
}

/// Runs a function of tools/node.sh (shared with the Zuul harness) as root.
fn node_sh(script: &str) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; source tools/node.sh; {script}"))
        .current_dir(repo_root())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "tools/node.sh: {script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn entries(dir: &str) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The node: the user, its sshd, and what the run adds to system paths.
/// Dropping it stops sshd by its pid, removes the user (stopping what it
/// still runs, by pid) and what the run added under the system paths.
struct Node {
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
    sshd: Child,
    before: Vec<BTreeSet<PathBuf>>,
    hosts_before: String,
    _dir: tempfile::TempDir,
    _lock: File,
}

impl Node {
    fn start() -> Node {
        let lock = File::create(LOCK_FILE).expect("lock file");
        lock.lock().expect("lock");
        let dir = tempfile::Builder::new().prefix("igconform-").tempdir().unwrap();
        let d = dir.path();
        let before = SYSTEM_DIRS.iter().map(|s| entries(s)).collect();
        let hosts_before = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let key = d.join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        // A user left by a run that was killed goes first.
        node_sh(&format!(
            "node_user_remove {NODE_USER} {NODE_HOME_PREFIX}; node_user_ensure {NODE_USER}; \
             node_container_dirs {NODE_USER}; node_authorize {NODE_USER} '{pubkey}'; \
             node_sshd_config '{dir}' 127.0.0.1 {port} {NODE_USER}",
            pubkey = key.with_extension("pub").display(),
            dir = d.join("sshd").display(),
        ));
        let log = File::create(d.join("sshd.log")).unwrap();
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd/sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let host_key = std::fs::read_to_string(d.join("sshd/host_ed25519.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {}\n", host_key.join(" "))).unwrap();
        let node = Node {
            port,
            key,
            known_hosts,
            sshd,
            before,
            hosts_before,
            _dir: dir,
            _lock: lock,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on 127.0.0.1:{port}: {}",
                std::fs::read_to_string(node._dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let uid = Command::new("id")
            .args(["-u", NODE_USER])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("source tools/node.sh; node_user_remove {NODE_USER} {NODE_HOME_PREFIX}"))
            .current_dir(repo_root())
            .status();
        // Rootless podman's run directories of the removed user.
        if let Some(uid) = uid.filter(|u| !u.is_empty()) {
            for p in [
                format!("/tmp/podman-run-{uid}"),
                format!("/tmp/containers-user-{uid}"),
                format!("/tmp/storage-run-{uid}"),
            ] {
                let _ = std::fs::remove_dir_all(p);
            }
        }
        let mut ca_changed = false;
        for (dir, before) in SYSTEM_DIRS.iter().zip(&self.before) {
            for added in entries(dir).difference(before) {
                ca_changed |= dir.starts_with("/usr/local/share/ca-certificates");
                let _ = std::fs::remove_dir_all(added).or_else(|_| std::fs::remove_file(added));
            }
        }
        if ca_changed {
            let _ = Command::new("update-ca-certificates").arg("--fresh").output();
        }
        // Lines the run added to /etc/hosts (a buildset registry alias).
        if let Ok(now) = std::fs::read_to_string("/etc/hosts") {
            if now != self.hosts_before {
                let old: BTreeSet<&str> = self.hosts_before.lines().collect();
                let kept: Vec<&str> = now.lines().filter(|l| old.contains(l)).collect();
                let _ = std::fs::write("/etc/hosts", format!("{}\n", kept.join("\n")));
            }
        }
    }
}

/// A registry as skopeo sees it (independently of the engine under test).
struct Api {
    host: String,
    flags: Vec<String>,
}

impl Api {
    fn of(reg: &TestRegistry) -> Api {
        Api {
            host: reg.host.clone(),
            flags: reg.skopeo_flags("src").iter().map(|f| f.replace("--src-", "--")).collect(),
        }
    }

    fn skopeo(&self, args: &[&str], reference: &str) -> std::process::Output {
        Command::new("skopeo")
            .args(args)
            .args(&self.flags)
            .arg(format!("docker://{}/{reference}", self.host))
            .output()
            .expect("skopeo")
    }

    fn digest(&self, repo_tag: &str) -> Option<String> {
        let out = self.skopeo(&["inspect", "--raw"], repo_tag);
        out.status
            .success()
            .then(|| imagegate_registry::Digest::of(&out.stdout).to_string())
    }

    fn manifest(&self, repo_ref: &str) -> Value {
        let out = self.skopeo(&["inspect", "--raw"], repo_ref);
        assert!(out.status.success(), "{repo_ref}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn tags(&self, repo: &str) -> BTreeSet<String> {
        let out = Command::new("skopeo")
            .args(["list-tags"])
            .args(&self.flags)
            .arg(format!("docker://{}/{repo}", self.host))
            .output()
            .expect("skopeo");
        assert!(out.status.success(), "list-tags {repo}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        // zuul-registry lists the manifests an index was pushed with by
        // digest among the tags; they are no tags.
        v["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .filter(|t| !t.starts_with("sha256:"))
            .collect()
    }

    /// The labels in an image's configuration.
    fn labels(&self, repo_tag: &str) -> Value {
        let out = self.skopeo(&["inspect", "--config"], repo_tag);
        assert!(out.status.success(), "{repo_tag}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["config"]["Labels"].clone()
    }
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("@{k}@"), v);
    }
    assert!(!out.contains('@'), "an unfilled placeholder in the inventory: {out}");
    out
}

fn conformance(core: Core) {
    let fx = Fixtures::get();
    // The publication registry (zuul-jobs' stand-in for Docker Hub), the
    // intermediate registry (zuul-registry, as OpenDev's) and a source to
    // mirror from.
    let publication = TestRegistry::start(Kind::DistributionTls);
    let intermediate = TestRegistry::start(Kind::Zuul);
    let source = TestRegistry::start(Kind::Zuul);
    source.seed(&fx.multi(), "zuul-ci/zuul-client:latest");
    let node = Node::start();
    let coll = collection();
    let work = tempfile::Builder::new().prefix("igconform-run-").tempdir().unwrap();
    let w = work.path();
    let out_dir = w.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::create_dir_all(w.join("controller-home")).unwrap();
    let result_data = w.join("results.json");
    let (build, buildset) = (random_hex(16), random_hex(16));
    let inventory = fill(
        &std::fs::read_to_string(repo_root().join("tests/conformance/inventory.yaml.in")).unwrap(),
        &[
            ("SSH_PORT", node.port.to_string()),
            ("NODE_USER", NODE_USER.to_string()),
            ("SSH_KEY", node.key.display().to_string()),
            ("KNOWN_HOSTS", node.known_hosts.display().to_string()),
            ("BUILD", build.clone()),
            ("BUILDSET", buildset),
            ("RESULT_DATA_FILE", result_data.display().to_string()),
            ("WORK_ROOT", w.display().to_string()),
        ],
    );
    std::fs::write(w.join("inventory.yaml"), inventory).unwrap();

    let port = |r: &TestRegistry| -> u16 { r.host.rsplit(':').next().unwrap().parse().unwrap() };
    let bs_port = free_port();
    let pub_user = publication.rw.as_ref().unwrap();
    let int_user = intermediate.rw.as_ref().unwrap();
    let src_user = source.rw.as_ref().unwrap();
    let previous_uuid = random_hex(16);
    // zuul-registry in a venv of /usr/bin/python3 (tools/setup.sh makes it):
    // the node user cannot run .venv's Python when it lives under /root.
    let node_venv = repo_root().join(".work/node-registry-venv");
    assert!(
        node_venv.join("bin/zuul-registry").exists(),
        "{} is missing: run tools/setup.sh",
        node_venv.display()
    );
    let vars = json!({
        "conformance_out": out_dir,
        "conformance_publication": publication.host,
        "conformance_publication_user": {"username": pub_user.name, "password": pub_user.password},
        // Where zuul-jobs' tests put registry CAs: /etc/docker/certs.d for the
        // intermediate registry; /etc/containers/certs.d for the others.
        "conformance_cas": [
            {"ca": publication.ca_cert, "dir": "/etc/containers/certs.d", "host": publication.host},
            {"ca": intermediate.ca_cert, "dir": "/etc/docker/certs.d", "host": intermediate.host},
            {"ca": source.ca_cert, "dir": "/etc/containers/certs.d", "host": source.host},
        ],
        "intermediate_registry": {"host": "127.0.0.1", "port": port(&intermediate), "username": int_user.name, "password": int_user.password},
        "conformance_previous_uuid": previous_uuid,
        "conformance_source": source.host,
        "conformance_source_user": {"username": src_user.name, "password": src_user.password},
        // zuul-jobs' own variable; the address keeps the registry on loopback
        // and the venv is one the node user can run (no download here).
        "buildset_registry_port": bs_port,
        "run_buildset_registry_address": "127.0.0.1",
        "run_buildset_registry_venv": node_venv,
    });
    // The job's variables, where Zuul 14 puts them: in the inventory (a
    // second inventory source whose `all` vars they are), not as extra vars,
    // which would outrank everything the roles set.
    std::fs::write(w.join("job-vars.yaml"), json!({"all": {"vars": vars}}).to_string()).unwrap();

    let started = Instant::now();
    // The output goes to a file as it comes (to follow a run), and into the
    // failure message.
    let log_path = w.join("playbook.log");
    let log = File::create(&log_path).unwrap();
    let status = Command::new(core.tool("ansible-playbook"))
        .args(["-i"])
        .arg(w.join("inventory.yaml"))
        .arg("-i")
        .arg(w.join("job-vars.yaml"))
        .arg(repo_root().join("tests/conformance/site.yaml"))
        .env("HOME", w.join("controller-home"))
        .env("ANSIBLE_HOME", w.join("ansible-home"))
        .env("ANSIBLE_COLLECTIONS_PATH", coll.path())
        // Roles by short name, as the job playbooks call them.
        .env("ANSIBLE_ROLES_PATH", repo_root().join("roles"))
        // zuul_return as the executor has it: an action on the controller.
        .env("ANSIBLE_ACTION_PLUGINS", repo_root().join("tests/conformance/plugins/action"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_SSH_CONTROL_PATH_DIR", w.join("cp"))
        // As Zuul's executor runs it.
        .env("ANSIBLE_PIPELINING", "True")
        // tools/env.sh points these at the controller's venv: not for a node.
        .env_remove("ANSIBLE_PYTHON_INTERPRETER")
        .env_remove("ANSIBLE_LIBRARY")
        .env_remove("ANSIBLE_INVENTORY_UNPARSED_WARNING")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .expect("run ansible-playbook");
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        status.success(),
        "the conformance playbook failed under ansible-core {} ({}):\n{text}",
        core.name(),
        core.version()
    );
    eprintln!("conformance playbook under {}: {:?}", core.name(), started.elapsed());
    for secret in [&pub_user.password, &int_user.password, &src_user.password] {
        assert!(
            !text.contains(secret.as_str()),
            "a registry password appears in the playbook output"
        );
    }
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"))).unwrap()
    };
    let node_facts = read("node.json");
    assert_eq!(node_facts["user"], NODE_USER, "the playbook ran as the node user");
    assert_eq!(node_facts["home"], format!("/home/{NODE_USER}"));

    let results: Value = serde_json::from_slice(&std::fs::read(&result_data).unwrap()).unwrap();
    check_container(&Api::of(&publication), &read("container.json"));
    check_registry(
        &Api::of(&intermediate),
        &read("registry.json"),
        &results,
        &text,
        &RegistryRun {
            build: &build,
            previous_uuid: &previous_uuid,
            bs_port,
            home: w,
        },
    );
    check_mirror(&Api::of(&source), &Api::of(&intermediate), &read("mirror.json"));
    check_multiarch(&Api::of(&publication), &read("multiarch.json"));
}

struct RegistryRun<'a> {
    build: &'a str,
    previous_uuid: &'a str,
    bs_port: u16,
    home: &'a Path,
}

/// The registry job: the previous build reached the builder only through
/// the buildset registry, the images built FROM it carry the targets' and
/// siblings' marks, and the pushed image came back as an artifact.
fn check_registry(intermediate: &Api, seen: &Value, results: &Value, text: &str, run: &RegistryRun) {
    let iport = intermediate.host.rsplit(':').next().unwrap();
    let previous = intermediate
        .digest(&format!("quay.io/opendevorg/imagedoesnotexist:{}_latest", run.previous_uuid))
        .expect("the previous build is in the intermediate registry");

    // What run_buildset_registry returned to Zuul (secret_data), as zuul-jobs' does.
    let bs = &results["secret_data"]["buildset_registry"];
    assert_eq!(bs["host"], json!("127.0.0.1"), "buildset_registry: host");
    assert_eq!(
        bs["port"].to_string().trim_matches('"'),
        run.bs_port.to_string(),
        "buildset_registry: port"
    );
    assert_eq!(bs["username"], json!("zuul"));
    let password = bs["password"].as_str().expect("buildset_registry.password");
    assert!(password.len() >= 16, "a generated password");
    assert!(
        !text.contains(password),
        "the buildset registry password appears in the playbook output"
    );
    let cert = bs["cert"].as_str().expect("buildset_registry.cert");
    assert!(cert.contains("BEGIN CERTIFICATE"));
    assert_eq!(seen["buildset_registry"]["port"], json!(run.bs_port));
    // skopeo reads every key in a cert dir as a client key: the CA alone.
    let ca_dir = run.home.join("buildset-ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("ca.crt"), cert).unwrap();
    let buildset = Api {
        host: format!("127.0.0.1:{}", run.bs_port),
        flags: vec![format!("--cert-dir={}", ca_dir.display()), format!("--creds=zuul:{password}")],
    };

    // pull_from_intermediate_registry put the previous build under its final name.
    let prev_repo = "quay.io/opendevorg/imagedoesnotexist";
    assert_eq!(buildset.tags(prev_repo), set(["latest"]));
    assert_eq!(buildset.digest(&format!("{prev_repo}:latest")), Some(previous.clone()));
    // The builder pulled it by its final name, through the buildset registry.
    let pulled = seen["pulled"][0]["RepoDigests"].as_array().expect("RepoDigests");
    assert!(
        pulled.iter().any(|d| d == &json!(format!("{prev_repo}@{previous}"))),
        "the builder pulled {prev_repo}@{previous}: {pulled:?}"
    );

    // The two images built FROM it: tags, one digest per image, labels.
    let change_url = "https://review.example.org/c/imagegate/conformance/+/1234";
    let siblings = "opendev.org/project/fake-sibling openstack.org/project/fake-sibling";
    let base_layers = buildset.manifest(&format!("{prev_repo}:latest"))["layers"].clone();
    for (repo, stage) in [("downstream/image", "first"), ("downstream/image2", "second")] {
        assert_eq!(
            buildset.tags(repo),
            set(["latest", "change_1234_latest"]),
            "{repo} in the buildset registry"
        );
        let digest = buildset.digest(&format!("{repo}:latest")).unwrap();
        assert_eq!(buildset.digest(&format!("{repo}:change_1234_latest")), Some(digest.clone()));
        let labels = buildset.labels(&format!("{repo}:latest"));
        assert_eq!(labels["org.example.stage"], json!(stage), "{repo}: target {stage}: {labels}");
        assert_eq!(labels["org.example.siblings"], json!(siblings), "{repo}: ZUUL_SIBLINGS: {labels}");
        assert_eq!(labels["org.zuul-ci.change"], json!("1234"), "{repo}: {labels}");
        assert_eq!(labels["org.zuul-ci.change_url"], json!(change_url), "{repo}: {labels}");
        // Built FROM the speculative previous build: its layers come first.
        let layers = buildset.manifest(&format!("{repo}:latest"))["layers"].clone();
        let n = base_layers.as_array().unwrap().len();
        assert_eq!(
            layers.as_array().unwrap()[..n].to_vec(),
            base_layers.as_array().unwrap().clone(),
            "{repo} is built on the previous build"
        );
    }

    // push_to_intermediate_registry: the build's image under <build>_latest,
    // digest preserved, and returned as an artifact exactly so.
    let pushed = format!("{}_latest", run.build);
    assert_eq!(intermediate.tags("downstream/image"), set([pushed.as_str()]));
    assert_eq!(
        intermediate.digest(&format!("downstream/image:{pushed}")),
        buildset.digest("downstream/image:latest")
    );
    assert_eq!(
        results["data"]["zuul"]["artifacts"],
        json!([{
            "name": "downstream/image:latest",
            "url": format!("docker://127.0.0.1:{iport}/downstream/image:{pushed}"),
            "metadata": {"type": "container_image", "repository": "downstream/image", "tag": "latest"},
        }]),
        "the artifacts returned to Zuul"
    );
}

/// The mirror job: every platform of the index, digest preserved, under the
/// destination tag only.
fn check_mirror(source: &Api, intermediate: &Api, images: &Value) {
    let src = source.digest("zuul-ci/zuul-client:latest").unwrap();
    assert_eq!(intermediate.tags("org/repo"), set(["tag"]));
    assert_eq!(intermediate.digest("org/repo:tag"), Some(src.clone()));
    let index = intermediate.manifest("org/repo:tag");
    let children = index["manifests"].as_array().expect("an index");
    assert!(children.len() >= 2, "all platforms: {index}");
    for child in children {
        let d = child["digest"].as_str().unwrap();
        assert!(
            intermediate.digest(&format!("org/repo@{d}")).is_some(),
            "platform manifest {d} copied"
        );
    }
    assert_eq!(images[0]["src_digest"], json!(src));
    assert_eq!(images[0]["dest_digest"], json!(src));
}

/// Two platforms in one index, under the final tag.
fn check_multiarch(publication: &Api, results: &Value) {
    assert_eq!(publication.tags("testrepo-multiarch"), set(["latest"]));
    let digest = publication.digest("testrepo-multiarch:latest").unwrap();
    assert_eq!(results["upload"], json!([digest]));
    let index = publication.manifest("testrepo-multiarch:latest");
    let platforms: BTreeSet<String> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, set(["linux/amd64", "linux/arm64"]));
}

/// The build/upload jobs: tags named as zuul-jobs names them, every tag of
/// an image on one digest, the digest the upload reported, the labels.
fn check_container(publication: &Api, results: &Value) {
    let versions = ["3", "3.19", "3.19.0"];
    for (job, repo, prefix) in [
        ("release", "testrepo", "release_"),
        ("promote", "testrepo-promote", "gate_"),
        ("final", "testrepo-final", ""),
    ] {
        let expected: BTreeSet<String> = versions.iter().map(|v| format!("{prefix}{v}")).collect();
        assert_eq!(publication.tags(repo), expected, "{job}: the tags of {repo}");
        let digests: BTreeSet<Option<String>> = expected.iter().map(|t| publication.digest(&format!("{repo}:{t}"))).collect();
        assert_eq!(digests.len(), 1, "{job}: every tag of {repo} names one image: {digests:?}");
        let digest = digests.into_iter().next().unwrap().unwrap();
        let uploads = results[job]["uploads"].as_array().unwrap();
        assert_eq!(uploads.len(), if job == "promote" { 2 } else { 1 }, "{job}: uploads {uploads:?}");
        assert_eq!(uploads[0][0]["digest"], json!(digest), "{job}: the digest the upload reported");
        // What the upload pushed is what the build made (no rebuild, no re-encoding).
        assert_eq!(results[job]["build"], json!([digest]), "{job}: the digest the build reported");
        if job == "promote" {
            // The second upload of the same build moves nothing.
            assert_eq!(uploads[1][0]["digest"], json!(digest));
            assert_eq!(
                uploads[1][0]["changed"],
                json!(false),
                "{job}: second upload changed: {}",
                uploads[1][0]
            );
        }
        let labels = publication.labels(&format!("{repo}:{prefix}3.19.0"));
        assert_eq!(labels["org.example.conformance"], json!(job), "{job}: labels {labels}");
        assert_eq!(
            labels["org.zuul-ci.change_url"],
            json!("https://review.example.org/c/imagegate/conformance/+/1234"),
            "{job}: labels {labels}"
        );
        // A tag event has no change: zuul-jobs sets no change label then.
        assert!(labels.get("org.zuul-ci.change").is_none(), "{job}: labels {labels}");
    }
}

imagegate_testkit::under_each_core!(conformance);
