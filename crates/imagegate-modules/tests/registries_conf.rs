//! registries_conf: the module on its own (site files in a test directory).

use std::path::{Path, PathBuf};

use imagegate_testkit::{run_module, ModuleRun};
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
