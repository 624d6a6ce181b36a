//! The module and the mirror_container_images role through ansible-playbook,
//! with FQCNs, against real registries, under each ansible-core release
//! the collection supports (tools/ansible-cores.txt).

use std::path::{Path, PathBuf};
use std::process::Command;

use imagegate_testkit::ansible::{local_host, playbook_on, returned_buildset_registry, zuul_returned, Core};
use imagegate_testkit::node::{is_alias, toml_file, NodeUser, PidFile, RemoveDir, SystemPaths};
use imagegate_testkit::tools::zuul_registry_venv;
use imagegate_testkit::{repo_root, Fixtures, Kind, TestRegistry};
use serde_json::{json, Value};

/// A collections path holding imagegate.containers as Ansible would see it
/// once installed: this checkout's files plus the module binary built for
/// this test run.
fn collection() -> tempfile::TempDir {
    imagegate_testkit::ansible::collection(&imagegate_testkit::module_binaries!())
}

/// This checkout's playbooks under one ansible-core, with a collection of
/// their own, on the local host, their variables given as Zuul gives a job's
/// (inventory variables, not extra-vars).
struct Play {
    core: Core,
    coll: tempfile::TempDir,
}

impl Play {
    fn new(core: Core) -> Self {
        Self { core, coll: collection() }
    }

    /// The collections path, where the recording stand-ins write too.
    fn dir(&self) -> &Path {
        self.coll.path()
    }

    fn run(&self, playbook: &str, vars: &Value) -> (bool, String) {
        playbook_on(self.core, self.dir(), playbook, vars, &local_host())
    }

    /// Runs the playbook and asserts that it passed; gives back its output.
    fn passes(&self, playbook: &str, vars: &Value) -> String {
        let (ok, out) = self.run(playbook, vars);
        assert!(ok, "{playbook}: {out}");
        out
    }

    /// [`Play::passes`] for `DIR/NAME.yaml` of each name in turn, as a job
    /// runs its playbooks; gives back their outputs.
    fn job(&self, dir: &str, names: &[&str], vars: &Value) -> Vec<String> {
        names.iter().map(|name| self.passes(&format!("{dir}/{name}.yaml"), vars)).collect()
    }
}

/// A scratch directory named for its test.
fn work_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// A scratch directory holding these files (`(path, text)`, directories
/// made as needed): a build's sources.
fn work_tree(prefix: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let work = work_dir(prefix);
    for (path, text) in files {
        let path = work.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    work
}

/// The builder options that let buildah build here (as root, no overlay):
/// vfs storage and chroot isolation, under `work`.
fn vfs_builder(work: &Path) -> Value {
    json!({
        "storage_driver": "vfs", "storage_root": work.join("storage"),
        "storage_runroot": work.join("run"), "isolation": "chroot",
    })
}

/// ansible-playbook with the given inventory and extra-vars arguments.
fn run_playbook(core: Core, collections: &Path, playbook: &str, args: Vec<std::ffi::OsString>) -> (bool, String) {
    imagegate_testkit::ansible::run_playbook(
        imagegate_testkit::ansible::ansible_playbook(core, collections)
            .args(args)
            .arg(repo_root().join(playbook)),
    )
}

fn module_with_fqcn_four_runs(core: Core) {
    let src = TestRegistry::seeded(Kind::Distribution, &[(9, "it/app:v1")]);
    let dst = TestRegistry::start(Kind::DistributionTls);
    let play = Play::new(core);
    let password = dst.rw.as_ref().unwrap().password.clone();
    let out = play.passes(
        "tests/integration/targets/registry_mirror/main.yml",
        &json!({
            "it_src": src.host,
            "it_dst": dst.host,
            "it_registries": {src.host.clone(): src.module_entry(), dst.host.clone(): dst.module_entry()},
            "it_digest": src.digest("it/app:v1").unwrap(),
        }),
    );
    assert_eq!(dst.digest("it/app:v1"), src.digest("it/app:v1"));
    assert!(!out.contains(&password), "the password appears in ansible-playbook -vvv output");
}

fn mirror_role_with_zuul_jobs_inputs(core: Core) {
    let src = TestRegistry::seeded(Kind::Distribution, &[(9, "it/app:v1")]);
    let dst = TestRegistry::start(Kind::Zuul);
    let play = Play::new(core);
    let rw = dst.rw.as_ref().unwrap();
    let out = play.passes(
        "tests/integration/targets/mirror_container_images/main.yml",
        &json!({
            "it_src": src.host,
            "it_dst": dst.host,
            "it_dst_credentials": {"username": rw.name, "password": rw.password},
            "it_registry_options": {src.host.clone(): {"plain_http": true}, dst.host.clone(): {"ca_cert": dst.ca_cert}},
            "it_digest": src.digest("it/app:v1").unwrap(),
        }),
    );
    assert_eq!(dst.digest("role/app:stable"), src.digest("it/app:v1"));
    assert!(!out.contains(&rw.password), "the password appears in ansible-playbook -vvv output");

    // Not a list: refused by the argument spec, naming the variable,
    // before any module runs.
    let (ok, out) = play.run("tests/integration/targets/mirror_container_images/not_a_list.yml", &json!({}));
    assert!(!ok, "{out}");
    assert!(out.contains("mirror_container_images_images"), "{out}");
    assert!(!out.contains(": Mirror container images]"), "the module's task ran: {out}");
}

fn zuul_var(pipeline: &str) -> Value {
    json!({"change": "42", "patchset": "1", "pipeline": pipeline, "build": "b1", "tenant": "t", "project": {"short_name": "app"}})
}

fn promote_role_tag_method(core: Core) {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    for tag in ["change_42_latest", "change_42_1.0"] {
        reg.seed(&fx.single(1), &format!("prom/a:{tag}"));
    }
    reg.seed(&fx.single(2), "prom/b:change_42_latest");
    let (a, b) = (reg.digest("prom/a:change_42_latest"), reg.digest("prom/b:change_42_latest"));
    let play = Play::new(core);
    play.passes(
        "tests/integration/targets/promote_container_image/tag.yml",
        &json!({"it_registry": reg.host, "it_registries": {reg.host.clone(): {"plain_http": true}}, "zuul": zuul_var("promote")}),
    );
    assert_eq!(reg.digest("prom/a:latest"), a);
    assert_eq!(reg.digest("prom/a:1.0"), a);
    assert_eq!(reg.digest("prom/b:latest"), b);
    for gone in ["prom/a:change_42_latest", "prom/a:change_42_1.0", "prom/b:change_42_latest"] {
        assert_eq!(reg.digest(gone), None, "{gone}");
    }
}

/// A misspelt method: zuul-jobs matches neither of its two `when:` branches
/// and succeeds having promoted nothing; we fail before anything moves,
/// naming the option, its value and the accepted values.
fn promote_role_unknown_method_fails_naming_it(core: Core) {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    for tag in ["change_42_latest", "change_42_1.0"] {
        reg.seed(&fx.single(1), &format!("prom/a:{tag}"));
    }
    reg.seed(&fx.single(2), "prom/b:change_42_latest");
    let play = Play::new(core);
    let (ok, out) = play.run(
        "tests/integration/targets/promote_container_image/tag.yml",
        &json!({
            "it_registry": reg.host,
            "it_registries": {reg.host.clone(): {"plain_http": true}},
            "zuul": zuul_var("promote"),
            "promote_container_image_method": "intermediate_registry",
        }),
    );
    assert!(!ok, "a misspelt method must fail: {out}");
    assert!(out.contains("promote_container_image_method"), "{out}");
    assert!(out.contains("intermediate_registry"), "the message names the value: {out}");
    assert!(
        out.contains("intermediate-registry"),
        "the message names the accepted values: {out}"
    );
    assert!(reg.digest("prom/a:change_42_latest").is_some());
    for never in ["prom/a:latest", "prom/a:1.0", "prom/b:latest"] {
        assert_eq!(reg.digest(never), None, "{never} moved although the role failed");
    }
}

/// Runs a promote_container_image playbook (intermediate-registry method)
/// against a builds API whose one gate build `b1` of `upload-image` returned
/// these artifacts; gives back the API (its queries) and the run.
fn promote_from_intermediate(
    core: Core,
    playbook_path: &str,
    intermediate: &TestRegistry,
    final_reg: &TestRegistry,
    artifacts: Value,
) -> (imagegate_testkit::webapi::ZuulBuildsApi, bool, String) {
    let api =
        imagegate_testkit::webapi::ZuulBuildsApi::start("t", json!([{"uuid": "b1", "job_name": "upload-image", "artifacts": artifacts}]));
    let rw = intermediate.rw.as_ref().unwrap();
    let port: u16 = intermediate.host.rsplit(':').next().unwrap().parse().unwrap();
    let play = Play::new(core);
    let (ok, out) = play.run(
        playbook_path,
        &json!({
            "it_final": final_reg.host,
            "it_api": api.base,
            "it_registries": {final_reg.host.clone(): {"plain_http": true}, intermediate.host.clone(): {"ca_cert": intermediate.ca_cert}},
            "intermediate_registry": {"host": "127.0.0.1", "port": port, "username": rw.name, "password": rw.password},
            "zuul": zuul_var("promote"),
        }),
    );
    (api, ok, out)
}

fn promote_role_intermediate_registry_method(core: Core) {
    let intermediate = TestRegistry::start(Kind::Zuul);
    let final_reg = TestRegistry::start(Kind::Distribution);
    intermediate.seed_singles(&[(3, "final/app:b1_latest"), (4, "final/app:b1_stable")]);
    let artifact = |tag: &str| {
        json!({
            "name": format!("final/app:{tag}"),
            "url": format!("docker://{}/final/app:b1_{tag}", intermediate.host),
            "metadata": {"type": "container_image", "repository": format!("{}/final/app", final_reg.host), "tag": tag},
        })
    };
    let (api, ok, out) = promote_from_intermediate(
        core,
        "tests/integration/targets/promote_container_image/intermediate.yml",
        &intermediate,
        &final_reg,
        json!([artifact("latest"), artifact("stable"),
            {"name": "docs", "url": "https://logs.example/docs/", "metadata": {"type": "docs_site"}}]),
    );
    let rw = intermediate.rw.as_ref().unwrap();
    assert!(ok, "{out}");
    assert!(!out.contains(&rw.password));
    assert_eq!(final_reg.digest("final/app:latest"), intermediate.digest("final/app:b1_latest"));
    assert_eq!(final_reg.digest("final/app:stable"), intermediate.digest("final/app:b1_stable"));
    let queries = api.queries.lock().unwrap().clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("change=42&patchset=1&pipeline=gate&job_name=upload-image")),
        "{queries:?}"
    );
}

/// Issue 12 §2: the intermediate-registry promotion carries an image's
/// cosign-style signature tag and its OCI referrer (listed in the referrers
/// tag schema: neither zuul-registry nor distribution 2.8 has the referrers
/// API) from the intermediate registry to the final one, digests equal.
fn promote_role_intermediate_registry_carries_signatures(core: Core) {
    use bytes::Bytes;
    use imagegate_registry::manifest::{Manifest, OCI_INDEX, OCI_MANIFEST};
    use imagegate_registry::referrers::fallback_tag;
    use imagegate_registry::{Credential, Engine, EngineOptions, RegistryConfig, Stats};
    let intermediate = TestRegistry::start(Kind::Zuul);
    let final_reg = TestRegistry::start(Kind::Distribution);
    let rw = intermediate.rw.as_ref().unwrap();
    // Pushed with the plain registry API, as the build's job would have.
    let engine = Engine::new(EngineOptions::default());
    let config = RegistryConfig {
        ca_cert: intermediate.ca_cert.clone(),
        credential: Some(Credential::new(rw.name.clone(), rw.password.clone())),
        ..RegistryConfig::default()
    };
    let c = engine
        .client(&intermediate.host, "seed", &config, std::sync::Arc::new(Stats::default()))
        .unwrap();
    let repo = "final/app";
    let push = |reference: Option<String>, payload: &'static [u8], extra: Value| {
        let c = c.clone();
        async move {
            let config = c.put_blob_bytes(repo, Bytes::from_static(b"{}")).await.unwrap();
            let layer = c.put_blob_bytes(repo, Bytes::from_static(payload)).await.unwrap();
            let mut m = json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.as_str(), "size": payload.len()}],
            });
            if let (Value::Object(m), Value::Object(e)) = (&mut m, extra) {
                m.extend(e);
            }
            let m = Manifest::from_bytes("seed", Bytes::from(m.to_string()), Some(OCI_MANIFEST)).unwrap();
            let reference = reference.unwrap_or_else(|| m.digest.to_string());
            c.put_manifest(repo, &reference, &m).await.unwrap();
            (m.digest.clone(), m.bytes.len())
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (image, artifact) = rt.block_on(async {
        let (image, size) = push(Some("b1_latest".into()), b"the image layer", json!({})).await;
        let subject = json!({"mediaType": OCI_MANIFEST, "digest": image.as_str(), "size": size});
        let (artifact, artifact_size) = push(
            None,
            b"an attestation",
            json!({"artifactType": "application/vnd.example.sbom", "subject": subject}),
        )
        .await;
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": artifact.as_str(), "size": artifact_size, "artifactType": "application/vnd.example.sbom"}]});
        let index = Manifest::from_bytes("seed", Bytes::from(index.to_string()), Some(OCI_INDEX)).unwrap();
        c.put_manifest(repo, &fallback_tag(&image), &index).await.unwrap();
        push(Some(format!("{}.sig", fallback_tag(&image))), b"a signature", json!({})).await;
        (image, artifact)
    });
    let sig_tag = format!("{}.sig", fallback_tag(&image));
    let (_api, ok, out) = promote_from_intermediate(
        core,
        "tests/integration/targets/promote_container_image/signed.yml",
        &intermediate,
        &final_reg,
        json!([{"name": "final/app:latest", "url": format!("docker://{}/final/app:b1_latest", intermediate.host),
             "metadata": {"type": "container_image", "repository": format!("{}/final/app", final_reg.host), "tag": "latest"}}]),
    );
    assert!(ok, "{out}");
    assert!(!out.contains(&rw.password));
    assert_eq!(final_reg.digest("final/app:latest").as_deref(), Some(image.as_str()));
    final_reg.assert_holds("final/app", artifact.as_str(), "the referrer arrived with its digest");
    assert_eq!(
        final_reg.digest(&format!("final/app:{sig_tag}")),
        intermediate.digest(&format!("final/app:{sig_tag}"))
    );
    assert!(
        final_reg.digest(&format!("final/app:{sig_tag}")).is_some(),
        "the signature tag arrived"
    );
    let index: Value = serde_json::from_slice(&final_reg.raw_manifest(&format!("final/app:{}", fallback_tag(&image)))).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        artifact.as_str(),
        "the referrers tag index lists it"
    );
}

fn remove_registry_tag_role(core: Core) {
    let fx = Fixtures::get();
    // An authenticated registry: the credentials come in as a Zuul secret
    // would bring them and must not show in the -vvv output.
    let reg = TestRegistry::start(Kind::DistributionTls);
    let rw = reg.rw.as_ref().unwrap();
    reg.seed_singles(&[(5, "rm/app:one_off"), (5, "rm/app:change_1_latest")]);
    reg.seed(&fx.fresh(), "rm/app:change_2_latest");
    reg.seed_singles(&[(6, "rm/app:promote_old"), (6, "rm/app:release")]);
    let play = Play::new(core);
    let out = play.passes(
        "tests/integration/targets/remove_registry_tag/main.yml",
        &json!({
            "it_registry": reg.host,
            "it_registries": {reg.host.clone(): {"ca_cert": reg.ca_cert}},
            "container_registry_credentials": {reg.host.clone(): {"username": rw.name, "password": rw.password}},
            "zuul": zuul_var("promote"),
        }),
    );
    assert!(!out.contains(&rw.password), "the password appears in ansible-playbook -vvv output");
    for gone in ["one_off", "change_1_latest", "promote_old"] {
        assert_eq!(reg.digest(&format!("rm/app:{gone}")), None, "{gone}");
    }
    for kept in ["change_2_latest", "release"] {
        assert!(reg.digest(&format!("rm/app:{kept}")).is_some(), "{kept}");
    }
}

fn promotion_set_playbook(core: Core) {
    let reg = TestRegistry::start(Kind::Distribution);
    reg.seed_each(0..3, |n| format!("tripleo/img{n}:tripleo-ci-testing"));
    let play = Play::new(core);
    let record = play.dir().join("record.json");
    let vars = |images: Vec<String>| {
        json!({
            "promote_set_images": images,
            "promote_set_from": "tripleo-ci-testing",
            "promote_set_to": "current-tripleo",
            "promote_set_record_file": record,
            "promote_set_registries": {reg.host.clone(): {"plain_http": true}},
        })
    };
    let mut images: Vec<String> = (0..3).map(|n| format!("{}/tripleo/img{n}", reg.host)).collect();
    images.push(format!("{}/tripleo/missing", reg.host));
    let (ok, out) = play.run("playbooks/promote-set.yaml", &vars(images.clone()));
    assert!(!ok, "a set with a missing image must fail");
    assert!(out.contains("tripleo/missing:tripleo-ci-testing"), "{out}");
    assert_eq!(reg.digest("tripleo/img0:current-tripleo"), None, "nothing moved");
    images.pop();
    play.passes("playbooks/promote-set.yaml", &vars(images));
    for n in 0..3 {
        assert_eq!(
            reg.digest(&format!("tripleo/img{n}:current-tripleo")),
            reg.digest(&format!("tripleo/img{n}:tripleo-ci-testing"))
        );
    }
    let rec: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["state"], "complete");
    assert_eq!(rec["entries"].as_array().unwrap().len(), 3);
    // The record puts the set back, given as the promotion guide gives it:
    // a path relative to where the command runs (not to playbooks/).
    let here = play.dir().join("operator");
    std::fs::create_dir_all(&here).unwrap();
    std::fs::copy(&record, here.join("promotion-record.json")).unwrap();
    let restore =
        json!({"promote_set_restore_from": "promotion-record.json", "promote_set_registries": {reg.host.clone(): {"plain_http": true}}});
    let (ok, out) = imagegate_testkit::ansible::playbook_in(core, play.dir(), "playbooks/promote-set.yaml", &restore, &here);
    assert!(ok, "{out}");
    for n in 0..3 {
        assert_eq!(reg.digest(&format!("tripleo/img{n}:current-tripleo")), None, "img{n} put back");
    }
    // A relative record file is written there too.
    let again = json!({
        "promote_set_images": (0..3).map(|n| format!("{}/tripleo/img{n}", reg.host)).collect::<Vec<_>>(),
        "promote_set_from": "tripleo-ci-testing",
        "promote_set_to": "current-tripleo",
        "promote_set_record_file": "second-record.json",
        "promote_set_registries": {reg.host.clone(): {"plain_http": true}},
    });
    let (ok, out) = imagegate_testkit::ansible::playbook_in(core, play.dir(), "playbooks/promote-set.yaml", &again, &here);
    assert!(ok, "{out}");
    assert!(here.join("second-record.json").is_file(), "the record is where the command ran");
}

fn promote_role_record_and_restore(core: Core) {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(1, "prom/a:change_42_latest"), (2, "prom/a:latest")]);
    let before = reg.digest("prom/a:latest");
    let change = reg.digest("prom/a:change_42_latest");
    let play = Play::new(core);
    let record = play.dir().join("promotion.json");
    play.passes(
        "tests/integration/targets/promote_container_image/restore.yml",
        &json!({
            "it_registry": reg.host,
            "it_registries": {reg.host.clone(): {"plain_http": true}},
            "it_record": record,
            "zuul": zuul_var("promote"),
        }),
    );
    assert_eq!(reg.digest("prom/a:latest"), before, "latest is back where it was");
    assert_eq!(
        reg.digest("prom/a:change_42_latest"),
        change,
        "and so is the change tag the promotion removed"
    );
}

/// The lines of /etc/hosts that name zuul-jobs.buildset-registry.
fn alias_lines() -> Vec<String> {
    std::fs::read_to_string("/etc/hosts")
        .unwrap()
        .lines()
        .filter(|l| is_alias(l))
        .map(str::to_string)
        .collect()
}

/// The whole buildset flow through ansible-playbook: a buildset registry,
/// a base image built into it, an image built FROM that base resolved
/// through use_buildset_registry, both pushed to an intermediate registry
/// with artifacts returned, and pulled back into a fresh buildset registry.
/// A buildset registry that cannot start (its port is taken by another
/// process, which does not answer TLS) fails the role as soon as it has
/// ended, saying so and showing the end of its log, not after the whole wait
/// and not by taking the other process for the registry.
fn buildset_registry_that_cannot_start_fails_with_its_log(core: Core) {
    let play = Play::new(core);
    let work = work_dir("imagegate-buildset-start-");
    let squatter = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = squatter.local_addr().unwrap().port();
    let _kill = PidFile(work.path().join("bs/registry.pid"));
    let venv = zuul_registry_venv();
    let (ok, out) = play.run(
        "tests/integration/targets/buildset/start.yml",
        &json!({"it_work": work.path(), "it_port": port, "it_venv": venv}),
    );
    assert!(!ok, "the role passed with its port taken: {out}");
    assert!(out.contains("ended before it answered on 127.0.0.1:"), "{out}");
    assert!(out.contains("registry.log:"), "the end of the log is shown: {out}");
    let log = std::fs::read_to_string(work.path().join("bs/registry.log")).unwrap();
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("zuul-registry logged why it ended");
    assert!(out.contains(last.trim()), "the log's last line ({last}) is shown: {out}");
    let config = std::fs::read_to_string(work.path().join("bs/registry.yaml")).unwrap();
    let password = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("pass: "))
        .unwrap()
        .trim_matches('\'');
    assert!(!out.contains(password), "the registry password is printed");
    drop(squatter);
}

fn buildset_registry_flow(core: Core) {
    let intermediate = TestRegistry::start(Kind::Zuul);
    let play = Play::new(core);
    let work = work_tree(
        "imagegate-buildset-",
        &[
            (
                "src/base/Containerfile",
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
            ),
            ("src/app/Containerfile", "FROM quay.io/example/base:latest\nRUN echo app > /app\n"),
        ],
    );
    let w = work.path();
    std::fs::copy("/bin/busybox", w.join("src/base/busybox")).unwrap();
    let (port1, port2) = (imagegate_testkit::free_port(), imagegate_testkit::free_port());
    let _kill1 = PidFile(w.join("bs1/registry.pid"));
    let _kill2 = PidFile(w.join("bs2/registry.pid"));
    // use_buildset_registry names the IP-addressed registry
    // zuul-jobs.buildset-registry in /etc/hosts.
    let _system = SystemPaths::lock();
    let _certs = RemoveDir(PathBuf::from(format!(
        "/etc/containers/certs.d/zuul-jobs.buildset-registry:{port1}"
    )));
    let rw = intermediate.rw.as_ref().unwrap();
    let iport: u16 = intermediate.host.rsplit(':').next().unwrap().parse().unwrap();
    let venv = zuul_registry_venv();
    let common = |port: u16, zuul: Value| {
        json!({
            "it_work": w,
            "it_port": port,
            "it_venv": venv,
            "it_intermediate_ca": intermediate.ca_cert,
            "intermediate_registry": {"host": "127.0.0.1", "port": iport, "username": rw.name, "password": rw.password},
            "zuul": zuul,
        })
    };
    let mut zuul = zuul_var("gate");
    zuul["build"] = json!("b7");
    let out = play.passes("tests/integration/targets/buildset/build.yml", &common(port1, zuul.clone()));
    assert!(!out.contains(&rw.password));
    let bs1 = returned_buildset_registry(play.dir());
    assert!(
        !out.contains(bs1["password"].as_str().unwrap()),
        "the buildset registry password is printed"
    );
    let artifacts = zuul_returned(play.dir())
        .iter()
        .find_map(|r| r["data"]["zuul"]["artifacts"].as_array().cloned())
        .unwrap();
    assert_eq!(artifacts.len(), 2);
    assert_eq!(artifacts[1]["name"], "quay.io/example/app:latest");
    assert_eq!(
        artifacts[1]["url"],
        format!("docker://127.0.0.1:{iport}/quay.io/example/app:b7_latest")
    );
    assert_eq!(
        artifacts[1]["metadata"],
        json!({"type": "container_image", "repository": "quay.io/example/app", "tag": "latest"})
    );
    let app_digest = intermediate
        .digest("quay.io/example/app:b7_latest")
        .expect("the app image reached the intermediate registry");

    zuul["artifacts"] = json!(artifacts);
    zuul["build"] = json!("b8");
    play.passes("tests/integration/targets/buildset/pull.yml", &common(port2, zuul));
    let bs2 = returned_buildset_registry(play.dir());
    // skopeo reads every key in a cert dir as a client key: give it the CA alone.
    std::fs::create_dir_all(w.join("bs2-ca")).unwrap();
    std::fs::copy(w.join("bs2/tls/ca.crt"), w.join("bs2-ca/ca.crt")).unwrap();
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(w.join("bs2-ca"))
        .arg(format!("--creds=zuul:{}", bs2["password"].as_str().unwrap()))
        .arg(format!("docker://127.0.0.1:{port2}/quay.io/example/app:latest"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(imagegate_registry::Digest::of(&out.stdout).to_string(), app_digest);
}

fn upload_role_pushes_speculative_then_final_tags(core: Core) {
    let reg = TestRegistry::start(Kind::DistributionTls);
    let play = Play::new(core);
    let work = work_tree(
        "imagegate-upload-",
        &[
            (
                "src/app/Containerfile",
                "FROM scratch\nARG FLAVOUR\nCOPY hello /hello\nLABEL flavour=$FLAVOUR\n",
            ),
            ("src/app/hello", "hello\n"),
        ],
    );
    let w = work.path();
    let rw = reg.rw.as_ref().unwrap();
    let out = play.passes(
        "tests/integration/targets/upload_container_image/main.yml",
        &json!({
            "it_work": w,
            "it_registry": reg.host,
            "it_credentials": {"username": rw.name, "password": rw.password, "repository": "^(.*/)?team/"},
            "it_registries": {"target": {"ca_cert": reg.ca_cert}},
            "zuul": zuul_var("gate"),
        }),
    );
    assert!(!out.contains(&rw.password));
    let spec = reg.digest("team/app:change_42_latest").expect("speculative tag pushed");
    assert_eq!(reg.digest("team/app:change_42_2.0").as_ref(), Some(&spec));
    // The second run builds again (a new image), then pushes the final tags.
    let fin = reg.digest("team/app:latest").expect("final tag pushed in the second run");
    assert_eq!(reg.digest("team/app:2.0"), Some(fin.clone()));
    assert_ne!(fin, spec, "the second build is another image");
    // An image the role did not build is pushed from the builder's storage.
    assert_eq!(reg.digest("team/other:1"), Some(fin));
    // With intermediate-registry promotion, no change tag goes upstream.
    assert_eq!(reg.digest("team/app:change_42_skipped"), None);
}

/// The job playbooks run as the executor would run them, against a real
/// registry: check -> gate -> promote for a change that merges, and for a
/// change that does not, the periodic cleanup removing its tag.
fn job_playbooks_gate_cycle(core: Core) {
    let reg = TestRegistry::start(Kind::Distribution);
    let play = Play::new(core);
    let work = work_tree(
        "imagegate-jobs-",
        &[("src/app/Containerfile", "FROM scratch\nCOPY version /version\n")],
    );
    let w = work.path();
    let vars = |pipeline: &str, change: Option<&str>, version: &str| {
        std::fs::write(w.join("src/app/version"), version).unwrap();
        let mut zuul = zuul_var(pipeline);
        match change {
            Some(c) => zuul["change"] = json!(c),
            None => {
                zuul.as_object_mut().unwrap().remove("change");
            }
        }
        let settings = json!({"local": {"plain_http": true}});
        json!({
            "zuul": zuul,
            "zuul_work_dir": w.join("src"),
            "container_command": "buildah",
            "container_images": [{"context": "app", "repository": format!("{}/team/app", reg.host), "registry": "local", "tags": ["latest"]}],
            "container_registry_credentials": {"local": {}},
            "upload_container_image_registries": settings,
            "promote_container_image_registries": settings,
            "remove_registry_tag_registries": {reg.host.clone(): {"plain_http": true}},
            "remove_registry_tag_repository": format!("{}/team/app", reg.host),
            "remove_registry_tag_age": 0,
            "build_container_image_layout_dir": w.join("layouts"),
            "build_container_image_builder_options": vfs_builder(w),
        })
    };
    let job = |playbooks: &[&str], vars: &Value| play.job("playbooks/container-image", playbooks, vars);
    // check: build only.
    job(&["pre", "build"], &vars("check", Some("42"), "42\n"));
    assert_eq!(reg.digest("team/app:change_42_latest"), None);
    // gate: build and upload the change tag only.
    job(&["pre", "build", "upload"], &vars("gate", Some("42"), "42\n"));
    let gated = reg.digest("team/app:change_42_latest").expect("gate uploaded the change tag");
    assert_eq!(reg.digest("team/app:latest"), None);
    // promote: the final tag takes the gated image; the change tag goes.
    job(&["promote"], &vars("promote", Some("42"), "42\n"));
    assert_eq!(reg.digest("team/app:latest"), Some(gated.clone()));
    assert_eq!(reg.digest("team/app:change_42_latest"), None);
    // A change that is gated but never merges leaves its tag...
    job(&["pre", "build", "upload"], &vars("gate", Some("43"), "43\n"));
    assert!(reg.digest("team/app:change_43_latest").is_some());
    // ...until the periodic cleanup removes it; the promoted image stays.
    job(&["remove-tags"], &vars("periodic", None, "43\n"));
    assert_eq!(reg.digest("team/app:change_43_latest"), None);
    assert_eq!(reg.digest("team/app:latest"), Some(gated));
}

/// The buildset-registry job's playbooks: the registry starts and is
/// returned as secret_data, the run playbook pauses the job, and post-run
/// (with no intermediate registry) pushes nothing.
fn buildset_registry_job_playbooks(core: Core) {
    let play = Play::new(core);
    let work = work_dir("imagegate-bsjob-");
    let port = imagegate_testkit::free_port();
    let _kill = PidFile(work.path().join("bs/registry.pid"));
    let venv = zuul_registry_venv();
    let vars = json!({
        "zuul": zuul_var("check"),
        "run_buildset_registry_dir": work.path().join("bs"),
        "run_buildset_registry_venv": venv,
        "run_buildset_registry_host": "127.0.0.1",
        "run_buildset_registry_address": "127.0.0.1",
        "run_buildset_registry_port": port,
    });
    play.job("playbooks/buildset-registry", &["pre", "run", "post"], &vars);
    let records = zuul_returned(play.dir());
    let registry = returned_buildset_registry(play.dir());
    assert_eq!(registry["host"], "127.0.0.1");
    assert_eq!(registry["port"].to_string().trim_matches('"'), port.to_string());
    assert!(
        records.iter().any(|r| r["data"]["zuul"]["pause"] == json!(true)),
        "the job pauses: {records:?}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the registry is up");

    // A later playbook of the same job finds the registry in the job's
    // returned data (Zuul's result data file), as zuul-jobs reads it, and
    // the build pushes its image there.
    let results = work.path().join("results.json");
    std::fs::write(
        &results,
        json!({"data": {}, "secret_data": {"buildset_registry": registry}}).to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(work.path().join("src/app")).unwrap();
    std::fs::write(work.path().join("src/app/Containerfile"), "FROM scratch\nCOPY Containerfile /c\n").unwrap();
    let mut zuul = zuul_var("check");
    zuul["executor"] = json!({"result_data_file": results});
    let out = play.passes(
        "playbooks/container-image/build.yaml",
        &json!({
            "zuul": zuul,
            "zuul_work_dir": work.path().join("src"),
            "container_command": "buildah",
            "container_images": [{"context": "app", "repository": "quay.io/example/fromresults"}],
            "build_container_image_layout_dir": work.path().join("layouts"),
            "build_container_image_builder_options": vfs_builder(work.path()),
        }),
    );
    let password = registry["password"].as_str().unwrap();
    assert!(!out.contains(password), "the buildset registry password is printed");
    let ca = work.path().join("ca-only");
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::copy(work.path().join("bs/tls/ca.crt"), ca.join("ca.crt")).unwrap();
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(&ca)
        .arg(format!("--creds=zuul:{password}"))
        .arg(format!("docker://127.0.0.1:{port}/quay.io/example/fromresults:change_42_latest"))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));

    // The job's post-run (another playbook: the pre-run's facts are gone)
    // finds the buildset registry in the returned data too, and saves the
    // buildset's images in the intermediate registry.
    let intermediate = TestRegistry::start(Kind::Zuul);
    let rw = intermediate.rw.as_ref().unwrap();
    let iport: u16 = intermediate.host.rsplit(':').next().unwrap().parse().unwrap();
    let mut zuul = zuul_var("gate");
    zuul["build"] = json!("b9");
    zuul["executor"] = json!({"result_data_file": results});
    let out = play.passes(
        "playbooks/buildset-registry/post.yaml",
        &json!({
            "zuul": zuul,
            "container_images": [{"context": "app", "repository": "quay.io/example/fromresults"}],
            "intermediate_registry": {"host": "127.0.0.1", "port": iport, "username": rw.name, "password": rw.password},
            "push_to_intermediate_registry_registries": {intermediate.host.clone(): {"ca_cert": intermediate.ca_cert}},
        }),
    );
    assert!(!out.contains(password) && !out.contains(&rw.password), "a password is printed");
    assert!(
        intermediate.digest("quay.io/example/fromresults:b9_latest").is_some(),
        "the post-run saved the image: {out}"
    );
}

/// Roles from a checkout of another version than the installed modules
/// stop before anything changes, naming both versions and the fix: at their
/// module task (the binary modules' action checks it), or, for a role that
/// does something else first, at its modules_version task.
fn roles_check_the_installed_modules_version(core: Core) {
    let play = Play::new(core);
    let other = play.dir().join("roles-source");
    std::fs::create_dir_all(&other).unwrap();
    // A copy, not a link: Ansible resolves links to the real role path.
    imagegate_testkit::tools::run(Command::new("cp").arg("-r").arg(repo_root().join("roles")).arg(other.join("roles")));
    std::fs::write(other.join("galaxy.yml"), "namespace: imagegate\nname: containers\nversion: 9.9.9\n").unwrap();
    let (ok, out) = play.run(
        "playbooks/container-image/remove-tags.yaml",
        &json!({"zuul": zuul_var("periodic"), "remove_registry_tag_repository": "127.0.0.1:1/x/y"}),
    );
    assert!(!ok, "roles of another version ran: {out}");
    let installed = imagegate_testkit::galaxy_version();
    assert!(out.contains("written for imagegate.containers 9.9.9"), "{out}");
    assert!(out.contains(&format!("installed modules are version {installed}")), "{out}");
    assert!(out.contains("--force"), "{out}");
    assert!(
        out.contains("TASK [remove_registry_tag : Remove the tag]"),
        "the module task made the check: {out}"
    );
    // A role that installs a builder first checks with a task of its own.
    let (ok, out) = play.run("playbooks/container-image/pre.yaml", &json!({}));
    assert!(!ok, "roles of another version ran: {out}");
    assert!(out.contains("written for imagegate.containers 9.9.9"), "{out}");
    assert!(
        out.contains("TASK [ensure_container_builder : Check that the installed modules match these roles]"),
        "{out}"
    );
    assert!(!out.contains("Look for the builder"), "nothing ran after the check: {out}");
    // The same roles with the matching version pass the check.
    std::fs::write(other.join("galaxy.yml"), format!("version: {installed}\n")).unwrap();
    let (_, out) = play.run(
        "playbooks/container-image/remove-tags.yaml",
        &json!({"zuul": zuul_var("periodic"), "remove_registry_tag_repository": "127.0.0.1:1/x/y"}),
    );
    assert!(!out.contains("written for imagegate.containers"), "{out}");
}

/// The docker-image jobs as zuul-jobs users write them (docker_images,
/// docker_registry, docker_credentials): gate builds with a real Docker
/// engine and uploads the change tag, promote moves only the manifest.
fn docker_image_jobs_gate_cycle(core: Core) {
    use imagegate_testkit::docker::DockerDaemon;
    let daemon = DockerDaemon::start();
    daemon.import_busybox("imagegate-base:1");
    let reg = TestRegistry::start(Kind::DistributionTls);
    let rw = reg.rw.as_ref().unwrap();
    let play = Play::new(core);
    let work = work_tree(
        "imagegate-docker-jobs-",
        &[
            (
                "src/app/Dockerfile.app",
                "FROM imagegate-base:1\nARG FLAVOUR\nLABEL flavour=$FLAVOUR\nCOPY version /version\n",
            ),
            ("src/app/version", "1\n"),
        ],
    );
    let w = work.path();
    let vars = |pipeline: &str| {
        json!({
            "zuul": zuul_var(pipeline),
            "zuul_work_dir": w.join("src"),
            "docker_registry": reg.host,
            "docker_images": [{
                "context": "app", "repository": "team/app", "tags": ["latest", "1"],
                "dockerfile": "Dockerfile.app", "build_args": ["FLAVOUR=plain"],
            }],
            "docker_credentials": {"username": rw.name, "password": rw.password},
            "upload_docker_image_registry_options": {"ca_cert": reg.ca_cert},
            "promote_docker_image_registry_options": {"ca_cert": reg.ca_cert},
            "build_container_image_layout_dir": w.join("layouts"),
            // The test's own daemon, and Debian's client (the engine's version).
            "container_build_extra_env": {"DOCKER_HOST": daemon.host, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        })
    };
    // check: pre-run (docker is there: nothing installed), then build only;
    // nothing reaches the registry.
    play.job("playbooks/docker-image", &["pre", "build"], &vars("check"));
    assert_eq!(reg.digest("team/app:check_latest"), None);
    assert_eq!(reg.digest("team/app:latest"), None);
    // gate: the run playbook builds, post-run uploads the change tags.
    for out in play.job("playbooks/docker-image", &["build", "upload"], &vars("gate")) {
        assert!(!out.contains(&rw.password), "the password appears in the output");
    }
    let gated = reg.digest("team/app:change_42_latest").expect("the change tag was uploaded");
    assert_eq!(reg.digest("team/app:change_42_1").as_ref(), Some(&gated));
    assert_eq!(reg.digest("team/app:latest"), None, "final tags wait for promotion");
    // The image docker built is what was pushed: same config as docker's image ID.
    let image_id = daemon
        .image_id(&format!("{}/team/app:latest", reg.host))
        .expect("docker has the image");
    let manifest: Value = serde_json::from_slice(&reg.raw_manifest("team/app:change_42_latest")).unwrap();
    assert_eq!(manifest["config"]["digest"].as_str(), Some(image_id.as_str()));

    let out = play.passes("playbooks/docker-image/promote.yaml", &vars("promote"));
    assert!(!out.contains(&rw.password), "the password appears in the output");
    assert_eq!(reg.digest("team/app:latest").as_ref(), Some(&gated));
    assert_eq!(reg.digest("team/app:1").as_ref(), Some(&gated));
    assert_eq!(reg.digest("team/app:change_42_latest"), None, "the change tag is removed");
}

/// A docker consumer job pulls the speculative image through the buildset
/// registry: use_buildset_registry writes the daemon's registry-mirrors,
/// its certs.d entry and the user's docker credentials, and restarts the
/// (test's own) daemon with the restart command; docker then pulls
/// `team/app` (docker.io) from the buildset registry, which holds it
/// un-namespaced as zuul-jobs keeps docker.io images.
fn docker_consumer_pulls_through_the_buildset_registry(core: Core) {
    use imagegate_testkit::docker::DockerDaemon;
    let source = TestRegistry::seeded(Kind::Distribution, &[(7, "spec/app:v1")]);
    let daemon = DockerDaemon::start_with_config();
    let play = Play::new(core);
    let work = work_dir("imagegate-docker-bs-");
    let w = work.path();
    // The buildset registry listens on a loopback address of its own: a
    // port picked free on 127.0.0.1 could be taken by another test's
    // server before the role starts the registry.
    let host = imagegate_testkit::private_loopback();
    let port = imagegate_testkit::free_port_on(&host);
    // As zuul-jobs: docker reaches the IP-addressed registry by the name
    // zuul-jobs.buildset-registry, which /etc/hosts maps to its address.
    let _system = SystemPaths::lock();
    let name = format!("zuul-jobs.buildset-registry:{port}");
    let _kill = PidFile(w.join("bs/registry.pid"));
    // dockerd reads certificates from /etc/docker/certs.d only.
    let _certs = RemoveDir(PathBuf::from(format!("/etc/docker/certs.d/{name}")));
    let venv = zuul_registry_venv();
    let home = w.join("home");
    std::fs::create_dir_all(&home).unwrap();
    play.passes(
        "tests/integration/targets/buildset/docker.yml",
        &json!({
            "it_work": w,
            "it_host": host,
            "it_port": port,
            "it_venv": venv,
            "it_source": format!("{}/spec/app:v1", source.host),
            "it_source_registries": {source.host.clone(): {"plain_http": true}},
            "it_daemon_config": daemon.config_file(),
            "it_restart": daemon.restart_script(),
            "it_home": home,
        }),
    );
    let config: Value = serde_json::from_slice(&std::fs::read(daemon.config_file()).unwrap()).unwrap();
    assert_eq!(config["registry-mirrors"], json!([format!("https://{name}/")]));
    assert!(Path::new(&format!("/etc/docker/certs.d/{name}/ca.crt")).exists());
    let info = daemon
        .docker()
        .args(["info", "--format", "{{json .RegistryConfig.Mirrors}}"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&info.stdout).contains(&name),
        "the restarted daemon uses the mirror: {}",
        String::from_utf8_lossy(&info.stdout)
    );
    // No internet here: the pull can only be answered by the mirror.
    let pull = daemon.docker().args(["pull", "team/app:latest"]).output().unwrap();
    assert!(pull.status.success(), "docker pull: {}", String::from_utf8_lossy(&pull.stderr));
    let digests = daemon
        .docker()
        .args(["image", "inspect", "--format", "{{json .RepoDigests}}", "team/app:latest"])
        .output()
        .unwrap();
    let digest = source.digest("spec/app:v1").unwrap();
    assert!(
        String::from_utf8_lossy(&digests.stdout).contains(&digest),
        "docker pulled another image: {}",
        String::from_utf8_lossy(&digests.stdout)
    );
}

/// use_buildset_registry on a node as zuul-jobs configures one, with
/// zuul-jobs' inputs only, run as a non-root user with sudo and the default
/// system paths: /etc/hosts names the IP-addressed registry
/// zuul-jobs.buildset-registry; the registries.conf drop-in mirrors every
/// buildset_registry_namespaces entry and sets
/// unqualified-search-registries; the CA is in certs.d and the Debian trust
/// store (update-ca-certificates run); buildkitd.toml and microk8s'
/// hosts.toml get the mirrors. Then real pulls: skopeo (as the node user)
/// through the quay.io and a custom namespace's mirrors, and podman by a
/// short name through unqualified-search-registries and docker.io's
/// un-namespaced mirror. A second run changes nothing.
fn use_buildset_registry_configures_a_node_as_zuul_jobs_does(core: Core) {
    let source = TestRegistry::seeded(Kind::Distribution, &[(7, "spec/app:v1"), (8, "spec/tool:v1")]);
    let play = Play::new(core);
    let work = work_dir("imagegate-bs-node-");
    let w = work.path();
    let mut system = SystemPaths::lock();
    let user = NodeUser::ensure();
    let host = imagegate_testkit::private_loopback();
    let port = imagegate_testkit::free_port_on(&host);
    let name = format!("zuul-jobs.buildset-registry:{port}");
    let _kill = PidFile(w.join("bs/registry.pid"));
    let conf = PathBuf::from("/etc/containers/registries.conf.d/50-imagegate-buildset-registry.conf");
    let ca = PathBuf::from("/usr/local/share/ca-certificates/zuul-jobs.buildset-registry.crt");
    let buildkitd = PathBuf::from("/etc/buildkit/buildkitd.toml");
    let _certs = RemoveDir(PathBuf::from(format!("/etc/containers/certs.d/{name}")));
    system.file(&conf);
    system.file(&ca);
    system.file(&buildkitd);
    system.new_dir("/etc/buildkit");
    system.update_ca();
    let venv = zuul_registry_venv();
    let bs = format!("{host}:{port}");
    play.passes(
        "tests/integration/targets/buildset/serve.yml",
        &json!({
            "it_work": w,
            "it_host": host,
            "it_port": port,
            "it_venv": venv,
            "it_images": [
                {"src": format!("{}/spec/app:v1", source.host), "dest": format!("{bs}/team/app:latest")},
                {"src": format!("{}/spec/app:v1", source.host), "dest": format!("{bs}/quay.io/example/app:latest")},
                {"src": format!("{}/spec/tool:v1", source.host), "dest": format!("{bs}/registry.example.org/team/tool:1")},
            ],
            "it_source_registries": {source.host.clone(): {"plain_http": true}},
            "zuul": zuul_var("check"),
        }),
    );
    let registry = returned_buildset_registry(play.dir());
    let password = registry["password"].as_str().unwrap().to_string();
    let microk8s = w.join("microk8s");
    std::fs::create_dir_all(&microk8s).unwrap();
    let kubelet = w.join("kubelet");
    std::fs::create_dir_all(&kubelet).unwrap();
    let vars = json!({
        "buildset_registry": registry,
        "buildset_registry_namespaces": [
            ["docker.io", "https://registry-1.docker.io"],
            ["quay.io", "https://quay.io"],
            ["registry.example.org", "https://registry.example.org"],
        ],
        "buildset_registry_unqualified_registries": ["docker.io"],
        "it_microk8s": microk8s,
        "it_kubelet": kubelet,
    });
    let (ok, out) = user.playbook(core, play.dir(), "tests/integration/targets/buildset/consumer.yml", &vars);
    assert!(ok, "{out}");
    assert!(!out.contains(&password), "the buildset registry password is printed");

    assert_eq!(alias_lines(), vec![format!("{host}\tzuul-jobs.buildset-registry")]);
    let registries = toml_file(core, &conf);
    assert_eq!(registries["unqualified-search-registries"], json!(["docker.io"]));
    let entries: Vec<(String, String, Value)> = registries["registry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mirrors: Vec<Value> = r["mirror"].as_array().unwrap().iter().map(|m| m["location"].clone()).collect();
            (
                r["prefix"].as_str().unwrap().to_string(),
                r["location"].as_str().unwrap().to_string(),
                json!(mirrors),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("docker.io".into(), "docker.io".into(), json!([name.clone()])),
            ("quay.io".into(), "quay.io".into(), json!([format!("{name}/quay.io")])),
            (
                "registry.example.org".into(),
                "registry.example.org".into(),
                json!([format!("{name}/registry.example.org")])
            ),
        ]
    );
    let cert = registry["cert"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(&ca).unwrap(), cert);
    assert_eq!(
        std::fs::read_to_string(format!("/etc/containers/certs.d/{name}/ca.crt")).unwrap(),
        cert
    );
    assert!(
        Path::new("/etc/ssl/certs/zuul-jobs.buildset-registry.pem").exists(),
        "update-ca-certificates did not take the CA in"
    );
    let kit = toml_file(core, &buildkitd);
    assert_eq!(kit["registry"]["docker.io"]["mirrors"], json!([name.clone()]));
    assert_eq!(kit["registry"]["quay.io"]["mirrors"], json!([format!("{name}/quay.io")]));
    assert_eq!(
        kit["registry"]["registry.example.org"]["mirrors"],
        json!([format!("{name}/registry.example.org")])
    );
    assert!(kit["registry"].get("gcr.io").is_none(), "a namespace that was not given: {kit}");
    for (ns, server, path) in [
        ("docker.io", "https://registry-1.docker.io", "/v2"),
        ("quay.io", "https://quay.io", "/v2/quay.io"),
        ("registry.example.org", "https://registry.example.org", "/v2/registry.example.org"),
    ] {
        let dir = microk8s.join("current/args/certs.d").join(ns);
        let hosts = toml_file(core, &dir.join("hosts.toml"));
        assert_eq!(hosts["server"], server);
        let h = &hosts["host"][format!("https://{name}{path}")];
        assert_eq!(h["capabilities"], json!(["pull", "resolve"]), "{hosts}");
        assert_eq!(h["override_path"], json!(true));
        assert_eq!(h["ca"], json!(dir.join("ca.crt")));
        assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), cert);
    }
    let auth: Value = serde_json::from_slice(&std::fs::read(user.home().join(".config/containers/auth.json")).unwrap()).unwrap();
    assert!(auth["auths"][&name]["auth"].is_string(), "{name} not in the auth file");
    // The kubelet pulls with the same credentials (zuul-jobs links the
    // docker user's config.json there).
    assert_eq!(
        std::fs::read_link(kubelet.join("config.json")).unwrap(),
        user.home().join(".config/containers/auth.json")
    );

    // No internet here: these pulls can only be answered by the mirrors.
    for (reference, src) in [
        ("quay.io/example/app:latest", "spec/app:v1"),
        ("registry.example.org/team/tool:1", "spec/tool:v1"),
    ] {
        let inspect = user
            .command("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{reference}: {}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        assert_eq!(
            imagegate_registry::Digest::of(&inspect.stdout).to_string(),
            source.digest(src).unwrap(),
            "{reference}"
        );
    }
    let storage = w.join("podman");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("HOME", storage.join("home"))
            .output()
            .unwrap()
    };
    let authfile = user.home().join(".config/containers/auth.json");
    let pull = podman(&["pull", "--authfile", authfile.to_str().unwrap(), "team/app:latest"]);
    assert!(
        pull.status.success(),
        "podman pull by short name: {}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let digest = podman(&["image", "inspect", "--format", "{{.Digest}}", "docker.io/team/app:latest"]);
    assert_eq!(
        String::from_utf8_lossy(&digest.stdout).trim(),
        source.digest("spec/app:v1").unwrap()
    );

    // Idempotent: the second run adds no line and updates no trust store.
    let (ok, out) = user.playbook(core, play.dir(), "tests/integration/targets/buildset/consumer.yml", &vars);
    assert!(ok, "{out}");
    assert_eq!(alias_lines().len(), 1);
    assert!(!out.contains("RUNNING HANDLER"), "a handler ran again: {out}");
    assert_eq!(toml_file(core, &conf), registries);
    assert_eq!(toml_file(core, &buildkitd), kit);
}

/// The system CA step on a RedHat-family node (ansible_os_family RedHat,
/// set as the fact would be; this machine is Debian): the CA goes to
/// /etc/pki/ca-trust/source/anchors/<registry name>.crt and update-ca-trust
/// is run, which this Debian machine does not have, so the run stops there
/// naming it, and nothing goes to Debian's store. A registry given by name
/// keeps its name (no /etc/hosts alias).
fn use_buildset_registry_redhat_trust_store(core: Core) {
    let play = Play::new(core);
    let work = work_dir("imagegate-bs-rhel-");
    let w = work.path();
    let mut system = SystemPaths::lock();
    let host = format!("registry-{}.example.test", core.name().replace('.', "-"));
    let anchor = PathBuf::from(format!("/etc/pki/ca-trust/source/anchors/{host}.crt"));
    let debian = PathBuf::from(format!("/usr/local/share/ca-certificates/{host}.crt"));
    system.new_dir("/etc/pki");
    system.file(&anchor);
    system.file(&debian);
    let (ok, out) = play.run("tests/integration/targets/buildset/consumer.yml",
        &json!({
            "buildset_registry": {"host": host, "port": 5000, "username": "zuul", "password": "not-printed-pw", "cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
            // A RedHat node whose facts are known (as inventory variables,
            // so the role gathers none, which would say Debian here).
            "ansible_os_family": "RedHat",
            "ansible_user_dir": w.join("home"),
            "it_microk8s": w.join("no-microk8s"),
            "it_kubelet": w.join("no-kubelet"),
            "use_buildset_registry_registries_conf": w.join("registries.conf"),
            "use_buildset_registry_certs_dir": w.join("certs.d"),
            "use_buildset_registry_auth_file": w.join("auth.json"),
            "use_buildset_registry_buildkitd_toml": w.join("buildkitd.toml"),
        }));
    assert!(!ok, "update-ca-trust ran on Debian? {out}");
    // The failed handler's result (newer cores also print the task's
    // source, comments included).
    assert!(out.contains(r#""cmd": "update-ca-trust""#), "{out}");
    assert!(!out.contains(r#""cmd": "update-ca-certificates""#), "{out}");
    assert!(!out.contains("not-printed-pw"), "the password is printed");
    assert!(std::fs::read_to_string(&anchor).unwrap().contains("MIIB"));
    assert!(!debian.exists());
    assert!(alias_lines().is_empty(), "a registry given by name got the alias");
    let registries = toml_file(core, &w.join("registries.conf"));
    assert_eq!(registries["registry"][0]["mirror"][0]["location"], format!("{host}:5000"));
    assert_eq!(
        registries["registry"].as_array().unwrap().len(),
        4,
        "zuul-jobs' four default namespaces"
    );
}

/// The buildset-registry job under a parent that runs the buildset
/// registry (buildset_registry given): as with zuul-jobs, no registry is
/// started, nothing is returned, and the job does not pause.
fn buildset_registry_job_under_a_parent_registry(core: Core) {
    let play = Play::new(core);
    let work = work_dir("imagegate-bsparent-");
    let port = imagegate_testkit::free_port();
    let _kill = PidFile(work.path().join("bs/registry.pid"));
    let vars = json!({
        "zuul": zuul_var("check"),
        "buildset_registry": {"host": "127.0.0.1", "port": 5999, "username": "zuul", "password": "parent-pw"},
        "run_buildset_registry_dir": work.path().join("bs"),
        "run_buildset_registry_host": "127.0.0.1",
        "run_buildset_registry_address": "127.0.0.1",
        "run_buildset_registry_port": port,
    });
    for out in play.job("playbooks/buildset-registry", &["pre", "run", "post"], &vars) {
        assert!(!out.contains("parent-pw"), "the password is printed");
    }
    let returned = std::fs::read(play.dir().join("zuul_return.json")).unwrap_or_default();
    let returned: Value = serde_json::from_slice(&returned).unwrap_or(json!([]));
    assert_eq!(returned, json!([]), "nothing is returned, no pause");
    assert!(!work.path().join("bs").exists(), "a registry was set up");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "a registry listens");
}

/// The mirror job's playbook as zuul-jobs shapes it: on the job's first
/// node, or from the executor when a child's nodeset has no nodes.
fn mirror_job_playbook_with_and_without_nodes(core: Core) {
    let src = TestRegistry::seeded(Kind::Distribution, &[(8, "it/app:v1")]);
    let dst = TestRegistry::start(Kind::Distribution);
    let play = Play::new(core);
    let vars = |tag: &str| {
        json!({
            "zuul": zuul_var("periodic"),
            "mirror_container_images_images": [{
                "src_repository": format!("{}/it/app", src.host), "src_tag": "v1",
                "dest_repository": format!("{}/copy/app", dst.host), "dest_tag": tag,
            }],
            "mirror_container_images_registries": {src.host.clone(): {"plain_http": true}, dst.host.clone(): {"plain_http": true}},
        })
    };
    play.passes("playbooks/container-image/mirror.yaml", &vars("on-node"));
    let (ok, out) = playbook_on(
        core,
        play.dir(),
        "playbooks/container-image/mirror.yaml",
        &vars("nodeless"),
        &json!({}),
    );
    assert!(ok, "{out}");
    let digest = src.digest("it/app:v1");
    assert_eq!(dst.digest("copy/app:on-node"), digest);
    assert_eq!(dst.digest("copy/app:nodeless"), digest);
}

/// A stage promotion of 21 images gated on Zuul's builds API: with a job
/// missing, or failed for one image, nothing moves and the failure names
/// the job and the image; with every criterion met, every tag moves, pinned
/// to the digests the jobs tested.
fn stage_promotion_gated_on_zuul_builds(core: Core) {
    use imagegate_testkit::webapi::ZuulBuildsApi;
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    let images: Vec<String> = (0..21).map(|n| format!("{}/tripleo/img{n}", reg.host)).collect();
    for n in 0..21 {
        reg.seed(&fx.single(n % 4), &format!("tripleo/img{n}:tripleo-ci-testing"));
    }
    let digests: serde_json::Map<String, Value> = (0..21)
        .map(|n| {
            (
                images[n].clone(),
                json!(reg.digest(&format!("tripleo/img{n}:tripleo-ci-testing")).unwrap()),
            )
        })
        .collect();
    let stage = |job: &str, result: &str, images: &serde_json::Map<String, Value>| {
        json!({"job_name": job, "result": result, "project": "rdo/promotion", "pipeline": "periodic",
               "ref": {"project": "rdo/promotion", "ref": "refs/heads/master", "change": null},
               "artifacts": [{"name": "stage", "url": "https://logs.example/", "metadata": {"type": "imagegate_stage", "images": images}}]})
    };
    let mut one_failed = digests.clone();
    let failed_image = images[7].clone();
    one_failed.remove(&failed_image);
    let play = Play::new(core);
    let run = |builds: Value| {
        let api = ZuulBuildsApi::start("rdo", builds);
        play.run(
            "playbooks/promote-set.yaml",
            &json!({
                "promote_set_images": images,
                "promote_set_from": "tripleo-ci-testing",
                "promote_set_to": "current-tripleo",
                "promote_set_keep_previous": true,
                "promote_set_registries": {reg.host.clone(): {"plain_http": true}},
                "promote_set_criteria": {"api": api.base, "project": "rdo/promotion", "jobs": ["standalone", "ovb"]},
                "promote_set_record_file": play.dir().join("stage-record.json"),
            }),
        )
    };
    // ovb has never run: nothing moves, and ovb is named.
    let (ok, out) = run(json!([stage("standalone", "SUCCESS", &digests)]));
    assert!(!ok, "{out}");
    assert!(out.contains("ovb missing for"), "{out}");
    assert!(!out.contains("standalone missing"), "{out}");
    assert_eq!(reg.digest("tripleo/img0:current-tripleo"), None, "nothing moved");
    // ovb failed for one image (and succeeded for the others): nothing moves.
    let (ok, out) = run(json!([
        stage("standalone", "SUCCESS", &digests),
        stage("ovb", "SUCCESS", &one_failed),
        stage("ovb", "FAILURE", &digests),
    ]));
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("ovb failed (FAILURE) for {failed_image}@")), "{out}");
    assert_eq!(reg.digest("tripleo/img0:current-tripleo"), None, "nothing moved");
    // Every criterion met: every image moves.
    let (ok, out) = run(json!([stage("standalone", "SUCCESS", &digests), stage("ovb", "SUCCESS", &digests)]));
    assert!(ok, "{out}");
    for n in 0..21 {
        assert_eq!(
            reg.digest(&format!("tripleo/img{n}:current-tripleo")).as_ref(),
            digests[&images[n]].as_str().map(str::to_string).as_ref(),
            "img{n}"
        );
    }
    // The previous stage comes back in one call, from the record.
    play.passes(
        "playbooks/promote-set.yaml",
        &json!({
            "promote_set_restore_from": play.dir().join("stage-record.json"),
            "promote_set_registries": {reg.host.clone(): {"plain_http": true}},
        }),
    );
    for n in 0..21 {
        assert_eq!(
            reg.digest(&format!("tripleo/img{n}:current-tripleo")),
            None,
            "img{n} had no stage before"
        );
    }
}

/// A promotion declared by digest in a file moves exactly those digests,
/// even where the stage tag has moved on since.
fn promotion_declared_by_digest(core: Core) {
    let fx = Fixtures::get();
    let reg = TestRegistry::seeded(
        Kind::Distribution,
        &[(1, "rdo/a:tripleo-ci-testing"), (2, "rdo/b:tripleo-ci-testing")],
    );
    let (a, b) = (
        reg.digest("rdo/a:tripleo-ci-testing").unwrap(),
        reg.digest("rdo/b:tripleo-ci-testing").unwrap(),
    );
    // The stage tag of a moves on after the declaration was reviewed.
    reg.seed(&fx.single(3), "rdo/a:tripleo-ci-testing");
    let play = Play::new(core);
    let manifest = play.dir().join("current-tripleo.yaml");
    // Declares the images (the lines under `images:`) and promotes them.
    let promote_declared = |images: String| {
        std::fs::write(&manifest, format!("images:\n{images}")).unwrap();
        let vars = json!({"promote_set_manifest": manifest, "promote_set_registries": {reg.host.clone(): {"plain_http": true}}});
        play.run("playbooks/promote-set.yaml", &vars)
    };
    let h = &reg.host;
    let (ok, out) = promote_declared(format!(
        "  - name: {h}/rdo/a\n    digest: {a}\n    tags: [current-tripleo]\n  - name: {h}/rdo/b\n    digest: {b}\n    tags: [current-tripleo, stable]\n"
    ));
    assert!(ok, "{out}");
    assert_eq!(reg.digest("rdo/a:current-tripleo"), Some(a.clone()));
    assert_eq!(reg.digest("rdo/b:current-tripleo").as_ref(), Some(&b));
    assert_eq!(reg.digest("rdo/b:stable"), Some(b));
    // A declared digest the source does not have is refused; nothing moves.
    let missing = format!("sha256:{}", "0".repeat(64));
    let (ok, out) = promote_declared(format!(
        "  - name: {h}/rdo/a\n    digest: {a}\n    tags: [next]\n  - name: {h}/rdo/b\n    digest: {missing}\n    tags: [next]\n"
    ));
    assert!(!ok, "{out}");
    assert!(out.contains(&missing[..20]), "{out}");
    assert_eq!(reg.digest("rdo/a:next"), None, "nothing moved");
}

/// A stage copied to other registries: each gets the same digests under
/// the stage tag, all or nothing, and a registry that cannot be reached is
/// named while the others still get the set.
fn stage_copied_to_other_registries(core: Core) {
    let reg = TestRegistry::start(Kind::Distribution);
    let other = TestRegistry::start(Kind::Distribution);
    let gone = format!("127.0.0.1:{}", imagegate_testkit::free_port());
    reg.seed_each(0..3, |n| format!("tripleo/img{n}:tripleo-ci-testing"));
    let play = Play::new(core);
    let (ok, out) = play.run(
        "playbooks/promote-set.yaml",
        &json!({
            "promote_set_images": (0..3).map(|n| format!("{}/tripleo/img{n}", reg.host)).collect::<Vec<_>>(),
            "promote_set_from": "tripleo-ci-testing",
            "promote_set_to": "current-tripleo",
            "promote_set_copies": [other.host, gone],
            "promote_set_registries": {
                reg.host.clone(): {"plain_http": true}, other.host.clone(): {"plain_http": true},
                gone.clone(): {"plain_http": true, "retries": 0},
            },
        }),
    );
    assert!(!ok, "an unreachable registry must fail the run: {out}");
    assert!(out.contains(&format!("but not ['{gone}']")), "{out}");
    for n in 0..3 {
        let promoted = reg.digest(&format!("tripleo/img{n}:current-tripleo"));
        assert!(promoted.is_some());
        assert_eq!(other.digest(&format!("tripleo/img{n}:current-tripleo")), promoted, "img{n}");
        assert_eq!(other.digest(&format!("tripleo/img{n}:imagegate-staging-current-tripleo")), None);
    }
}

/// A stage copied to another registry (zuul-registry, which cannot delete
/// a tag) with a record: the copy goes by digest, so no staging tag is left
/// there; each registry's moves are recorded beside the record, and the
/// restore puts every registry's stage tags back (the tag names each
/// registry lists are exactly those it listed before).
fn stage_copies_are_recorded_and_restored(core: Core) {
    let fx = Fixtures::get();
    let reg = TestRegistry::start(Kind::Distribution);
    let other = TestRegistry::start(Kind::Zuul);
    for n in 0..2 {
        reg.seed(&fx.single(n), &format!("tripleo/img{n}:tripleo-ci-testing"));
        for r in [&reg, &other] {
            r.seed(&fx.single(n + 4), &format!("tripleo/img{n}:current-tripleo"));
        }
    }
    let tag_names = |r: &TestRegistry, n: usize| -> Vec<String> {
        r.tags(&format!("tripleo/img{n}"))
            .into_iter()
            .filter(|t| !t.starts_with("sha256:"))
            .collect()
    };
    // Per image: the stage tag's digest here and there, and the tag names of each.
    type State = (Option<String>, Option<String>, Vec<String>, Vec<String>);
    let state = || -> Vec<State> {
        (0..2)
            .map(|n| {
                let tag = format!("tripleo/img{n}:current-tripleo");
                (reg.digest(&tag), other.digest(&tag), tag_names(&reg, n), tag_names(&other, n))
            })
            .collect()
    };
    let before = state();
    let play = Play::new(core);
    let records = tempfile::tempdir().unwrap();
    let record = records.path().join("record.json");
    let regs = json!({reg.host.clone(): reg.module_entry(), other.host.clone(): other.module_entry()});
    play.passes(
        "playbooks/promote-set.yaml",
        &json!({
            "promote_set_images": (0..2).map(|n| format!("{}/tripleo/img{n}", reg.host)).collect::<Vec<_>>(),
            "promote_set_from": "tripleo-ci-testing",
            "promote_set_to": "current-tripleo",
            "promote_set_copies": [other.host],
            "promote_set_record_file": record,
            "promote_set_registries": regs,
        }),
    );
    for (n, was) in before.iter().enumerate() {
        let promoted = reg.digest(&format!("tripleo/img{n}:tripleo-ci-testing"));
        assert_eq!(reg.digest(&format!("tripleo/img{n}:current-tripleo")), promoted);
        assert_eq!(other.digest(&format!("tripleo/img{n}:current-tripleo")), promoted, "img{n} copied");
        assert_eq!(tag_names(&other, n), was.3, "no staging tag is left on {}", other.host);
    }
    let copy_record = records
        .path()
        .join(format!("record.json.copy-{}.json", other.host.replace(':', "_")));
    assert!(copy_record.is_file(), "{} is written", copy_record.display());

    play.passes(
        "playbooks/promote-set.yaml",
        &json!({"promote_set_restore_from": record, "promote_set_registries": regs}),
    );
    assert_eq!(state(), before, "every registry's tags as before the promotion");
}

/// Zuul gives a job's vars to Ansible in the inventory and its secrets in
/// group_vars, both below play vars in Ansible's precedence: the playbook's
/// inputs must reach it from there. (The real-Zuul harness found the job's
/// `promote_set_registries` secret and `promote_set_keep_previous: true`
/// overridden by defaults the playbook set as play vars.)
fn promotion_set_inputs_as_zuul_gives_them(core: Core) {
    let reg = TestRegistry::start(Kind::DistributionTls);
    for n in 0..2 {
        reg.seed_singles(&[(n, &format!("stage/img{n}:candidate")), (n + 2, &format!("stage/img{n}:current"))]);
    }
    let before: Vec<Option<String>> = (0..2).map(|n| reg.digest(&format!("stage/img{n}:current"))).collect();
    let play = Play::new(core);
    let inventory = play.dir().join("zuul-inventory");
    std::fs::create_dir_all(inventory.join("group_vars")).unwrap();
    let images: Vec<String> = (0..2).map(|n| format!("{}/stage/img{n}", reg.host)).collect();
    // The job's vars, where Zuul writes them: the inventory's `all` vars.
    let job_vars = json!({"all": {"hosts": {"localhost": {"ansible_connection": "local"}}, "vars": {
        "promote_set_images": images,
        "promote_set_from": "candidate",
        "promote_set_to": "current",
        "promote_set_keep_previous": true,
    }}});
    std::fs::write(inventory.join("inventory.yaml"), job_vars.to_string()).unwrap();
    // The secret (credentials and CA), where Zuul writes it: group_vars/all.yaml.
    let secret = json!({"promote_set_registries": {reg.host.clone(): reg.module_entry()}});
    std::fs::write(inventory.join("group_vars/all.yaml"), secret.to_string()).unwrap();
    let (ok, out) = run_playbook(
        core,
        play.dir(),
        "playbooks/promote-set.yaml",
        vec!["-i".into(), inventory.join("inventory.yaml").into()],
    );
    assert!(ok, "{out}");
    assert!(
        !out.contains(&reg.rw.as_ref().unwrap().password),
        "the password appears in ansible-playbook -vvv output"
    );
    for (n, old) in before.iter().enumerate() {
        assert_eq!(
            reg.digest(&format!("stage/img{n}:current")),
            reg.digest(&format!("stage/img{n}:candidate")),
            "img{n}"
        );
        assert_eq!(
            &reg.digest(&format!("stage/img{n}:previous-current")),
            old,
            "img{n} keeps previous-current"
        );
    }
}

imagegate_testkit::under_each_core!(
    use_buildset_registry_configures_a_node_as_zuul_jobs_does,
    use_buildset_registry_redhat_trust_store,
    buildset_registry_job_under_a_parent_registry,
    stage_copied_to_other_registries,
    stage_promotion_gated_on_zuul_builds,
    promotion_declared_by_digest,
    promote_role_record_and_restore,
    mirror_job_playbook_with_and_without_nodes,
    docker_consumer_pulls_through_the_buildset_registry,
    docker_image_jobs_gate_cycle,
    roles_check_the_installed_modules_version,
    module_with_fqcn_four_runs,
    mirror_role_with_zuul_jobs_inputs,
    promote_role_tag_method,
    promote_role_unknown_method_fails_naming_it,
    promote_role_intermediate_registry_method,
    promote_role_intermediate_registry_carries_signatures,
    remove_registry_tag_role,
    promotion_set_playbook,
    stage_copies_are_recorded_and_restored,
    promotion_set_inputs_as_zuul_gives_them,
    buildset_registry_flow,
    buildset_registry_that_cannot_start_fails_with_its_log,
    upload_role_pushes_speculative_then_final_tags,
    job_playbooks_gate_cycle,
    buildset_registry_job_playbooks,
);
