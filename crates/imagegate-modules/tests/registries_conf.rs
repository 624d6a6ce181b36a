//! registries_conf: the module on its own (site files in a test directory),
//! and use_buildset_registry on a node whose registries.conf sends docker.io
//! pulls to a site mirror, under each ansible-core release.

use std::path::{Path, PathBuf};
use std::process::Command;

use imagegate_testkit::ansible::{local_host, playbook_on, Core};
use imagegate_testkit::node::{toml_file, NodeUser, PidFile, RemoveDir, SystemPaths};
use imagegate_testkit::tools::zuul_registry_venv;
use imagegate_testkit::{run_module, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn module(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_registries_conf")), args)
}

/// A site configuration in a directory of the test's: `registries.conf`
/// and `registries.conf.d/`, where the module writes `50-buildset.conf`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(main: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("registries.conf.d")).unwrap();
        std::fs::write(dir.path().join("registries.conf"), main).unwrap();
        Site { dir }
    }

    fn drop_in(&self) -> PathBuf {
        self.dir.path().join("registries.conf.d/50-buildset.conf")
    }

    fn args(&self, extra: Value) -> Value {
        let mut args = json!({
            "path": self.drop_in(),
            "registries_conf": self.dir.path().join("registries.conf"),
            "buildset_registry": "zuul-jobs.buildset-registry:5000",
            "namespaces": ["docker.io", "quay.io"],
            "unqualified_search_registries": ["docker.io"],
        });
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    }
}

const SITE_MIRROR: &str = "\
unqualified-search-registries = [\"registry.site.example\"]

[[registry]]
prefix = \"docker.io\"
location = \"docker.io\"

[[registry.mirror]]
location = \"mirror.site.example:5000\"
insecure = true
";

/// Check mode with diff, a real run, then both again: the first two say
/// what is written (the site's mirror after ours), the last two change
/// nothing. The site's files are never touched.
#[test]
fn four_runs_merge_the_site_mirror_and_change_nothing_twice() {
    let site = Site::new(SITE_MIRROR);
    let check = module(&site.args(json!({"_ansible_check_mode": true, "_ansible_diff": true})));
    check.assert_ok();
    assert!(check.changed());
    assert!(!site.drop_in().exists(), "check mode wrote the drop-in");
    let after = check.result["diff"]["after"].as_str().unwrap().to_string();
    assert_eq!(check.result["diff"]["before"], "");
    assert!(after.contains("location = \"zuul-jobs.buildset-registry:5000\""), "{after}");

    let real = module(&site.args(json!({"_ansible_diff": true})));
    real.assert_ok();
    assert!(real.changed());
    let written = std::fs::read_to_string(site.drop_in()).unwrap();
    assert_eq!(written, after, "check mode predicted the real run");
    let parsed: toml::Table = written.parse().unwrap();
    let docker = &parsed["registry"].as_array().unwrap()[0];
    let mirrors: Vec<&str> = docker["mirror"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["location"].as_str().unwrap())
        .collect();
    assert_eq!(mirrors, ["zuul-jobs.buildset-registry:5000", "mirror.site.example:5000"]);
    assert_eq!(docker["mirror"][1]["insecure"].as_bool(), Some(true));
    assert_eq!(
        parsed["unqualified-search-registries"].as_array().unwrap(),
        &vec![toml::Value::from("docker.io"), toml::Value::from("registry.site.example")]
    );
    assert_eq!(
        real.result["sources"],
        json!([site.dir.path().join("registries.conf")]),
        "our own drop-in is not a source"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(site.drop_in()).unwrap().permissions().mode() & 0o777, 0o644);

    for extra in [json!({"_ansible_check_mode": true}), json!({})] {
        let again = module(&site.args(extra));
        again.assert_ok();
        assert!(!again.changed(), "{}", again.stdout);
    }
    assert_eq!(
        std::fs::read_to_string(site.dir.path().join("registries.conf")).unwrap(),
        SITE_MIRROR
    );
}

/// A site file the tools could not read fails the task naming it, and
/// nothing is written; so does an option that is not a registry name.
#[test]
fn bad_site_files_and_options_fail_clearly_writing_nothing() {
    let site = Site::new(SITE_MIRROR);
    std::fs::write(
        site.dir.path().join("registries.conf.d/10-site.conf"),
        "[[registry]\nprefix = \"x\"\n",
    )
    .unwrap();
    let run = module(&site.args(json!({})));
    assert!(run.failed());
    assert!(run.msg().contains("10-site.conf: is not valid TOML"), "{}", run.msg());
    assert!(!site.drop_in().exists());

    let site = Site::new("[registries.search]\nregistries = [\"a\"]\n[[registry]]\nprefix = \"docker.io\"\n");
    let run = module(&site.args(json!({})));
    assert!(run.failed());
    assert!(run.msg().contains("registries.conf: mixes the version 1"), "{}", run.msg());
    assert!(!site.drop_in().exists());

    let site = Site::new("");
    for (extra, option) in [
        (json!({"buildset_registry": "https://bs:5000"}), "option 'buildset_registry'"),
        (json!({"namespaces": ["docker.io", ""]}), "option 'namespaces[1]'"),
        (json!({"path": site.dir.path().join("registries.conf.d/buildset")}), "option 'path'"),
        (json!({"mirrors": []}), "mirrors"),
    ] {
        let run = module(&site.args(extra));
        assert!(run.failed(), "{}", run.stdout);
        assert!(run.msg().contains(option), "{option}: {}", run.msg());
    }
    assert!(!site.drop_in().exists());
}

/// A drop-in read after ours that sets a namespace overrides ours: the
/// module says so.
#[test]
fn a_later_drop_in_overriding_ours_is_warned_about() {
    let site = Site::new("");
    std::fs::write(
        site.dir.path().join("registries.conf.d/90-site.conf"),
        "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n",
    )
    .unwrap();
    let run = module(&site.args(json!({})));
    run.assert_ok();
    let warnings = run.result["warnings"].to_string();
    assert!(warnings.contains("90-site.conf is read after this drop-in"), "{warnings}");
}

/// The node's /etc/containers/registries.conf sends docker.io pulls to a
/// site mirror (a second registry, plain HTTP) and searches a registry of
/// its own; use_buildset_registry runs as the non-root node user with sudo,
/// its inputs given as Zuul gives job variables. During the job an image
/// that only the site mirror has is pulled from the site mirror (its access
/// log shows it), and a speculative image comes from the buildset registry
/// even though the site mirror has another image under the same name. The
/// main file is left as it was.
fn use_buildset_registry_keeps_the_site_mirrors(core: Core) {
    let source = TestRegistry::seeded(Kind::Distribution, &[(7, "spec/app:v1")]);
    let site = TestRegistry::start_logging_requests(Kind::Distribution);
    site.seed_singles(&[(8, "library/siteonly:v1"), (9, "library/app:latest")]);
    let coll = imagegate_testkit::ansible::collection(&imagegate_testkit::module_binaries!());
    let work = tempfile::Builder::new().prefix("imagegate-bs-site-").tempdir().unwrap();
    let w = work.path();
    let mut system = SystemPaths::lock();
    let user = NodeUser::ensure();
    // Named by host name, so that the role names it so too: an address
    // would be named through an /etc/hosts alias, which the Zuul harness of
    // another checkout on this machine may rewrite meanwhile.
    let host = "localhost";
    let port = imagegate_testkit::free_port();
    let name = format!("{host}:{port}");
    let _kill = PidFile(w.join("bs/registry.pid"));
    let main = PathBuf::from("/etc/containers/registries.conf");
    let conf = PathBuf::from("/etc/containers/registries.conf.d/50-imagegate-buildset-registry.conf");
    let _certs = RemoveDir(PathBuf::from(format!("/etc/containers/certs.d/{name}")));
    system.file(&main);
    system.file(&conf);
    system.file(format!("/usr/local/share/ca-certificates/{host}.crt"));
    system.file("/etc/buildkit/buildkitd.toml");
    system.new_dir("/etc/buildkit");
    system.update_ca();
    let site_conf = format!(
        "# The site's mirror of Docker Hub.\nunqualified-search-registries = [\"registry.site.example\"]\n\n\
         [[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n\
         [[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
        site.host
    );
    std::fs::write(&main, &site_conf).unwrap();

    let (ok, out) = playbook_on(
        core,
        coll.path(),
        "tests/integration/targets/buildset/serve.yml",
        &json!({
            "it_work": w, "it_host": host, "it_address": "127.0.0.1", "it_port": port, "it_venv": zuul_registry_venv(),
            "it_images": [{"src": format!("{}/spec/app:v1", source.host), "dest": format!("{host}:{port}/library/app:latest")}],
            "it_source_registries": {source.host.clone(): {"plain_http": true}},
            "zuul": {"change": "42", "patchset": "1", "pipeline": "check", "build": "b1", "tenant": "t", "project": {"short_name": "app"}},
        }),
        &local_host(),
    );
    assert!(ok, "{out}");
    let registry = imagegate_testkit::ansible::returned_buildset_registry(coll.path());
    std::fs::create_dir_all(w.join("microk8s")).unwrap();
    std::fs::create_dir_all(w.join("kubelet")).unwrap();
    // The job's variables: the node's inventory variables, as Zuul gives them.
    let job_vars = json!({
        "buildset_registry": registry,
        "buildset_registry_namespaces": [["docker.io", "https://registry-1.docker.io"]],
        "buildset_registry_unqualified_registries": ["docker.io"],
        "it_microk8s": w.join("microk8s"),
        "it_kubelet": w.join("kubelet"),
    });
    let (ok, out) = user.playbook(core, coll.path(), "tests/integration/targets/buildset/consumer.yml", &job_vars);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&main).unwrap(), site_conf, "the site's file was changed");
    // No internet here: only the site mirror has this image.
    let authfile = user.home().join(".config/containers/auth.json");
    let podman = Podman::new(w.join("podman"), authfile);
    podman.pull("docker.io/library/siteonly:v1");
    assert_eq!(
        podman.digest("docker.io/library/siteonly:v1"),
        site.digest("library/siteonly:v1").unwrap()
    );
    let asked = |repo: &str| {
        site.requests()
            .iter()
            .any(|(method, path, _)| method == "GET" && path.starts_with(&format!("/v2/library/{repo}/manifests/")))
    };
    assert!(asked("siteonly"), "the site mirror did not serve it:\n{}", site.log());
    // The speculative image: the buildset registry is asked first.
    let log = podman.pull("docker.io/library/app:latest");
    assert_eq!(
        podman.digest("docker.io/library/app:latest"),
        source.digest("spec/app:v1").unwrap(),
        "not the speculative image (the site's is {:?}):\n{log}",
        site.digest("library/app:latest")
    );
    assert!(!asked("app"), "the site mirror was asked before the buildset registry");

    let written = toml_file(core, &conf);
    assert_eq!(
        written["unqualified-search-registries"],
        json!(["docker.io", "registry.site.example"])
    );
    assert_eq!(
        written["registry"],
        json!([{"prefix": "docker.io", "location": "docker.io",
                "mirror": [{"location": name}, {"location": site.host, "insecure": true}]}])
    );

    // A second run changes nothing.
    let (ok, out) = user.playbook(core, coll.path(), "tests/integration/targets/buildset/consumer.yml", &job_vars);
    assert!(ok, "{out}");
    let task = "use_buildset_registry : Mirror the namespaces to the buildset registry, keeping the site's mirrors]";
    let result = out
        .split(task)
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.starts_with("ok:") || l.starts_with("changed:")));
    assert!(result.is_some_and(|l| l.starts_with("ok:")), "the drop-in task: {result:?}\n{out}");
    assert_eq!(toml_file(core, &conf), written);
}

/// podman as root with storage of the test's own, reading the system's
/// registries.conf.
struct Podman {
    storage: PathBuf,
    authfile: PathBuf,
}

impl Podman {
    fn new(storage: PathBuf, authfile: PathBuf) -> Podman {
        Podman { storage, authfile }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .arg("--root")
            .arg(self.storage.join("root"))
            .arg("--runroot")
            .arg(self.storage.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("HOME", self.storage.join("home"))
            .output()
            .unwrap()
    }

    /// Pulls `reference`; returns podman's debug log of where it went.
    fn pull(&self, reference: &str) -> String {
        let authfile = self.authfile.to_str().unwrap();
        let out = self.run(&["--log-level", "debug", "pull", "--authfile", authfile, reference]);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "podman pull {reference}: {log}");
        log
    }

    fn digest(&self, reference: &str) -> String {
        let out = self.run(&["image", "inspect", "--format", "{{.Digest}}", reference]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

imagegate_testkit::under_each_core!(use_buildset_registry_keeps_the_site_mirrors);
