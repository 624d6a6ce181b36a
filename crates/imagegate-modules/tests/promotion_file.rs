//! The declared-by-digest promotion file (`promote_set_manifest` of
//! playbooks/promote-set.yaml, container_retag's `declared`), through
//! ansible-playbook under each ansible-core, with the job's variables as
//! inventory variables as Zuul passes them: a key the file does not have is
//! refused at any level, naming the key, the entry and the file, and nothing
//! moves; errors speak of the file's own keys; a relative path is the
//! project checkout's under Zuul and the current directory's by hand.

use std::path::Path;

use imagegate_testkit::ansible::{ansible_playbook, collection, local_host, run_playbook, zuul_layout, Core};
use imagegate_testkit::{module_binaries, repo_root, under_each_core, Kind, TestRegistry};
use serde_json::{json, Value};

const PLAYBOOK: &str = "playbooks/promote-set.yaml";
const FILE: &str = "stages/current-tripleo.yaml";

/// A registry with rdo/a and rdo/b at tripleo-ci-testing, and their digests.
fn stage_registry() -> (TestRegistry, String, String) {
    let reg = TestRegistry::seeded(
        Kind::Distribution,
        &[(1, "rdo/a:tripleo-ci-testing"), (2, "rdo/b:tripleo-ci-testing")],
    );
    let a = reg.digest("rdo/a:tripleo-ci-testing").unwrap();
    let b = reg.digest("rdo/b:tripleo-ci-testing").unwrap();
    (reg, a, b)
}

/// Writes the declared file `FILE` under `dir`.
fn declare(dir: &Path, text: &str) {
    let path = dir.join(FILE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Two entries promoting a and b to current-tripleo; `extra` is added to
/// b's entry, `top` to the top level.
fn two_entries(reg: &TestRegistry, a: &str, b: &str, extra: &str, top: &str) -> String {
    format!(
        "{top}images:\n  - name: {h}/rdo/a\n    digest: {a}\n    tags: [current-tripleo]\n  - name: {h}/rdo/b\n    digest: {b}\n    tags: [current-tripleo]\n{extra}",
        h = reg.host
    )
}

/// Runs the promotion playbook from `cwd` (as a shell would: `PWD` too)
/// with `vars` laid out as Zuul lays out a job's ([`zuul_layout`]: the
/// job's variables in the inventory, `zuul` as an extra var).
fn promote(core: Core, collections: &Path, cwd: &Path, vars: &Value) -> (bool, String) {
    let layout = tempfile::tempdir().unwrap();
    run_playbook(
        ansible_playbook(core, collections)
            .args(zuul_layout(layout.path(), &local_host(), vars))
            .arg(repo_root().join(PLAYBOOK))
            .current_dir(cwd)
            .env("PWD", cwd),
    )
}

fn job_vars(reg: &TestRegistry, manifest: &str) -> Value {
    json!({"promote_set_manifest": manifest, "promote_set_registries": {reg.host.clone(): {"plain_http": true}}})
}

/// An entry with `platform:` and a top level with `keep_previous:` are
/// refused, naming the key, the entry and the file; nothing moves.
fn unknown_keys_in_the_file_are_refused(core: Core) {
    let (reg, a, b) = stage_registry();
    let coll = collection(&module_binaries!());
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join(FILE);
    let vars = job_vars(&reg, manifest.to_str().unwrap());

    declare(work.path(), &two_entries(&reg, &a, &b, "    platform: linux/arm64\n", ""));
    let (ok, out) = promote(core, coll.path(), work.path(), &vars);
    assert!(!ok, "{out}");
    let want = format!(
        "{}: images[1] ({}/rdo/b): unknown key 'platform' (the keys here are name, digest, tags); nothing moved",
        manifest.display(),
        reg.host
    );
    assert!(out.contains(&want), "wanted {want:?} in:\n{out}");

    declare(work.path(), &two_entries(&reg, &a, &b, "", "keep_previous: true\n"));
    let (ok, out) = promote(core, coll.path(), work.path(), &vars);
    assert!(!ok, "{out}");
    let want = format!(
        "{}: top level: unknown key 'keep_previous' (the keys here are images); nothing moved",
        manifest.display()
    );
    assert!(out.contains(&want), "wanted {want:?} in:\n{out}");
    assert_eq!(reg.digest("rdo/a:current-tripleo"), None, "nothing moved");
    assert_eq!(reg.digest("rdo/b:current-tripleo"), None, "nothing moved");
}

/// An invalid digest is the `digest` of entry 1 of the file, not the
/// module's `images[1].src_digest`.
fn an_invalid_digest_is_named_by_the_files_key(core: Core) {
    let (reg, a, _) = stage_registry();
    let coll = collection(&module_binaries!());
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join(FILE);
    declare(work.path(), &two_entries(&reg, &a, "sha256:abc", "", ""));
    let (ok, out) = promote(core, coll.path(), work.path(), &job_vars(&reg, manifest.to_str().unwrap()));
    assert!(!ok, "{out}");
    let want = format!("{}: images[1] ({}/rdo/b): digest: ", manifest.display(), reg.host);
    assert!(out.contains(&want), "wanted {want:?} in:\n{out}");
    assert!(!out.contains("src_digest"), "{out}");
    assert_eq!(reg.digest("rdo/a:current-tripleo"), None, "nothing moved");
}

/// By hand, `stages/current-tripleo.yaml` is the current directory's (not
/// the playbook's), and messages name it as given.
fn a_relative_path_is_the_current_directorys(core: Core) {
    let (reg, a, b) = stage_registry();
    let coll = collection(&module_binaries!());
    let work = tempfile::tempdir().unwrap();
    declare(work.path(), &two_entries(&reg, &a, &b, "", ""));
    let (ok, out) = promote(core, coll.path(), work.path(), &job_vars(&reg, FILE));
    assert!(ok, "{out}");
    assert_eq!(reg.digest("rdo/a:current-tripleo"), Some(a.clone()));
    assert_eq!(reg.digest("rdo/b:current-tripleo"), Some(b));

    declare(work.path(), &two_entries(&reg, &a, "sha256:abc", "", ""));
    let (ok, out) = promote(core, coll.path(), work.path(), &job_vars(&reg, FILE));
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("{FILE}: images[1] ({}/rdo/b): digest: ", reg.host)), "{out}");
}

/// Under Zuul the path is the project checkout's: the work root (the
/// executor's current directory) joined with `zuul.project.src_dir`; Zuul
/// passes `zuul` as an extra var, the job's variables in the inventory.
fn a_relative_path_is_the_project_checkouts_under_zuul(core: Core) {
    let (reg, a, b) = stage_registry();
    let coll = collection(&module_binaries!());
    let work_root = tempfile::tempdir().unwrap();
    let src_dir = "src/review.example.org/rdo/promotion";
    declare(&work_root.path().join(src_dir), &two_entries(&reg, &a, &b, "", ""));
    let mut vars = job_vars(&reg, FILE);
    vars["zuul"] = json!({"executor": {"work_root": work_root.path()}, "project": {"src_dir": src_dir}});
    // Run from another directory, so that only the checkout has the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, out) = promote(core, coll.path(), elsewhere.path(), &vars);
    assert!(ok, "{out}");
    assert_eq!(reg.digest("rdo/a:current-tripleo"), Some(a));
    assert_eq!(reg.digest("rdo/b:current-tripleo"), Some(b));
}

under_each_core!(
    unknown_keys_in_the_file_are_refused,
    an_invalid_digest_is_named_by_the_files_key,
    a_relative_path_is_the_current_directorys,
    a_relative_path_is_the_project_checkouts_under_zuul,
);
