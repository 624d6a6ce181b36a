//! The module and the mirror_container_images role through ansible-playbook,
//! with FQCNs, against real registries.

use std::path::{Path, PathBuf};
use std::process::Command;

use imagegate_testkit::tools::venv_tool;
use imagegate_testkit::{repo_root, Fixtures, Kind, TestRegistry};
use serde_json::{json, Value};

/// A collections path holding imagegate.containers as Ansible would see it
/// once installed: this checkout's files plus the module binary built for
/// this test run.
fn collection() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    let coll = dir.path().join("ansible_collections/imagegate/containers");
    std::fs::create_dir_all(coll.join("plugins/modules")).unwrap();
    for entry in ["galaxy.yml", "meta", "roles", "playbooks"] {
        std::os::unix::fs::symlink(root.join(entry), coll.join(entry)).unwrap();
    }
    let module = "registry_mirror";
    std::os::unix::fs::symlink(
        root.join(format!("plugins/modules/{module}.yml")),
        coll.join(format!("plugins/modules/{module}.yml")),
    )
    .unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_registry_mirror"), coll.join("plugins/modules/registry_mirror")).unwrap();
    dir
}

fn playbook(collections: &Path, playbook: &str, vars: &Value) -> (bool, String) {
    let vars_file = collections.join("vars.json");
    std::fs::write(&vars_file, vars.to_string()).unwrap();
    let home: PathBuf = collections.join("ansible-home");
    let out = Command::new(venv_tool("ansible-playbook"))
        .args(["-i", "localhost,", "-c", "local", "-vvv"])
        .arg("-e")
        .arg(format!("@{}", vars_file.display()))
        .arg(repo_root().join(playbook))
        .env("ANSIBLE_COLLECTIONS_PATH", collections)
        .env("ANSIBLE_HOME", home)
        .env("ANSIBLE_LOCALHOST_WARNING", "false")
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("run ansible-playbook");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn module_with_fqcn_four_runs() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    let dst = TestRegistry::start(Kind::DistributionTls);
    src.seed(&fx.single(9), "it/app:v1");
    let coll = collection();
    let password = dst.rw.as_ref().unwrap().password.clone();
    let (ok, out) = playbook(
        coll.path(),
        "tests/integration/targets/registry_mirror/main.yml",
        &json!({
            "it_src": src.host,
            "it_dst": dst.host,
            "it_registries": {src.host.clone(): src.module_entry(), dst.host.clone(): dst.module_entry()},
            "it_digest": src.digest("it/app:v1").unwrap(),
        }),
    );
    assert!(ok, "{out}");
    assert_eq!(dst.digest("it/app:v1"), src.digest("it/app:v1"));
    assert!(!out.contains(&password), "the password appears in ansible-playbook -vvv output");
}

#[test]
fn mirror_role_with_zuul_jobs_inputs() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    let dst = TestRegistry::start(Kind::Zuul);
    src.seed(&fx.single(9), "it/app:v1");
    let coll = collection();
    let rw = dst.rw.as_ref().unwrap();
    let (ok, out) = playbook(
        coll.path(),
        "tests/integration/targets/mirror_container_images/main.yml",
        &json!({
            "it_src": src.host,
            "it_dst": dst.host,
            "it_dst_credentials": {"username": rw.name, "password": rw.password},
            "it_registry_options": {src.host.clone(): {"plain_http": true}, dst.host.clone(): {"ca_cert": dst.ca_cert}},
            "it_digest": src.digest("it/app:v1").unwrap(),
        }),
    );
    assert!(ok, "{out}");
    assert_eq!(dst.digest("role/app:stable"), src.digest("it/app:v1"));
    assert!(!out.contains(&rw.password), "the password appears in ansible-playbook -vvv output");
}
