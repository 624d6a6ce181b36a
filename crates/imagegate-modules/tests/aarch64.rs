//! The aarch64 module binaries (tools/build-modules.sh builds them into
//! binaries/aarch64) against the test kit's real registries, run under
//! Debian's qemu-user-static: mirror, promote with a record and restore,
//! push from an OCI layout. And one play over an x86_64 node and an aarch64
//! node with one collection: each node runs the executable of its
//! architecture.
//!
//! The aarch64 node is this machine seen through an aarch64 shell: Debian's
//! busybox-static for arm64 (tools/setup.sh fetches it) as the node's
//! `ansible_shell_executable`, run by qemu through binfmt_misc (setup.sh
//! registers it), so that the node's `uname -m` says aarch64 and the
//! executables the node is sent run under qemu.

use std::path::PathBuf;
use std::process::Command;

use imagegate_testkit::ansible::{add_architecture, playbook_on, release_binaries, Core};
use imagegate_testkit::arch::aarch64_shell;
use imagegate_testkit::module::{parse_run, ModuleRun};
use imagegate_testkit::{Fixtures, Kind, TestRegistry};
use serde_json::{json, Value};

fn aarch64(module: &str) -> PathBuf {
    let (_, path) = release_binaries("aarch64")
        .into_iter()
        .find(|(m, _)| m == module)
        .expect("a module of the collection");
    let head = std::fs::read(&path).unwrap();
    assert_eq!(&head[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([head[18], head[19]]),
        0xB7,
        "{} is an aarch64 executable",
        path.display()
    );
    path
}

/// `qemu-aarch64-static <binary> <args-file>`: the module as Ansible runs
/// it, on an emulated aarch64 processor.
fn under_qemu(module: &str, args: &Value) -> ModuleRun {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("args");
    std::fs::write(&path, args.to_string()).unwrap();
    let out = Command::new("qemu-aarch64-static")
        .arg(aarch64(module))
        .arg(&path)
        .output()
        .expect("run qemu-aarch64-static (Debian's qemu-user-static)");
    parse_run(out)
}

#[test]
fn aarch64_mirror_promotion_restore_and_push_against_real_registries() {
    let fx = Fixtures::get();
    let src = TestRegistry::start(Kind::Distribution);
    let dst = TestRegistry::start(Kind::Zuul);
    src.seed(&fx.multi(), "arm/app:v1");
    src.seed(&fx.single(1), "arm/app:v2");
    let regs = json!({src.host.clone(): src.module_entry(), dst.host.clone(): dst.module_entry()});

    // Mirror an index and a single image, byte for byte.
    let run = under_qemu(
        "registry_mirror",
        &json!({
            "images": [{"src": format!("{}/arm/app", src.host), "dest": format!("{}/arm/app", dst.host), "tags": ["v1", "v2"]}],
            "registries": regs,
        }),
    );
    run.assert_ok();
    assert!(run.changed());
    for tag in ["arm/app:v1", "arm/app:v2"] {
        assert_eq!(dst.digest(tag), src.digest(tag), "{tag}");
    }

    // Promote v2 to stable (stable was v1) with a record, then restore it.
    dst.seed(&fx.single(3), "arm/app:stable");
    let before = dst.digest("arm/app:stable");
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("record.json");
    let run = under_qemu(
        "container_retag",
        &json!({
            "images": [{"repository": format!("{}/arm/app", dst.host), "src_tag": "v2", "tags": ["stable"]}],
            "record_file": record,
            "registries": regs,
        }),
    );
    run.assert_ok();
    assert!(run.changed());
    assert_eq!(dst.digest("arm/app:stable"), src.digest("arm/app:v2"));
    let restore = under_qemu("container_retag", &json!({"restore_from": record, "registries": regs}));
    restore.assert_ok();
    assert!(restore.changed());
    assert_eq!(dst.digest("arm/app:stable"), before, "stable is back");

    // Push an image from an OCI layout (the fixtures' layout, by name).
    let single = fx.single(4);
    let (layout, name) = single.strip_prefix("oci:").unwrap().rsplit_once(':').unwrap();
    let run = under_qemu(
        "container_push",
        &json!({
            "layout": layout,
            "name": name,
            "repository": format!("{}/arm/pushed", src.host),
            "tags": ["latest", "1.0"],
            "registries": regs,
        }),
    );
    run.assert_ok();
    assert!(run.changed());
    let digest = run.result["digest"].as_str().unwrap().to_string();
    assert_eq!(src.digest("arm/pushed:latest").as_deref(), Some(digest.as_str()));
    assert_eq!(src.digest("arm/pushed:1.0").as_deref(), Some(digest.as_str()));
}

fn a_play_over_an_x86_64_and_an_aarch64_node(core: Core) {
    assert_eq!(std::env::consts::ARCH, "x86_64", "this test's build machine is x86_64");
    let fx = Fixtures::get();
    let src = TestRegistry::seeded(Kind::Distribution, &[(6, "fleet/app:v1")]);
    let dst = TestRegistry::start(Kind::Distribution);
    let coll = imagegate_testkit::ansible::collection(&imagegate_testkit::module_binaries!());
    add_architecture(coll.path(), "aarch64");
    let shell = aarch64_shell(coll.path());
    let records = tempfile::tempdir().unwrap();
    let nodes = ["x86-node", "arm-node"];
    for node in nodes {
        dst.seed(&fx.single(2), &format!("fleet/{node}:stable"));
    }
    let stable = dst.digest("fleet/x86-node:stable");
    assert!(stable.is_some());
    let hosts = json!({
        "x86-node": {"ansible_connection": "local"},
        "arm-node": {"ansible_connection": "local", "ansible_shell_executable": shell},
    });
    let vars = json!({
        "it_src": src.host,
        "it_dst": dst.host,
        "it_registries": {src.host.clone(): src.module_entry(), dst.host.clone(): dst.module_entry()},
        "it_records": records.path(),
    });
    let (ok, out) = playbook_on(core, coll.path(), "tests/integration/targets/mixed_fleet/main.yml", &vars, &hosts);
    assert!(ok, "{out}");
    // Each node was sent, and ran, the executable of its architecture.
    // The aarch64 node's later tasks took the architecture its first task
    // learned (the fact imagegate_architecture).
    for (node, arch, first, later) in [
        ("x86-node", "x86_64", "facts", "facts"),
        ("arm-node", "aarch64", "asked", "remembered"),
    ] {
        for (module, how) in [("registry_mirror", first), ("container_retag", later)] {
            let said = format!("{node} is {arch} ({how}): running binaries/{arch}/{module}");
            assert!(out.contains(&said), "{said}:\n{out}");
        }
        assert!(
            out.contains(&format!("binaries/{arch}/registry_mirror TO ")),
            "the PUT of {arch}:\n{out}"
        );
        assert_eq!(
            dst.digest(&format!("fleet/{node}:v1")),
            src.digest("fleet/app:v1"),
            "{node} mirrored"
        );
        assert_eq!(dst.digest(&format!("fleet/{node}:stable")), stable, "{node} restored stable");
    }
    // The aarch64 node was asked its architecture once, for its first task.
    assert_eq!(out.matches("uname -m").count(), 1, "{out}");
}

imagegate_testkit::under_each_core!(a_play_over_an_x86_64_and_an_aarch64_node);

/// A collection whose aarch64 registry_mirror was built as another version
/// (its version mark changed): the modules_version check names that file,
/// and only the aarch64 node's module task fails, naming it and both
/// versions; the x86_64 node's runs.
#[test]
fn a_stale_binary_of_one_architecture_is_named() {
    let src = TestRegistry::seeded(Kind::Distribution, &[(7, "fleet/app:v1")]);
    let coll = imagegate_testkit::ansible::collection(&imagegate_testkit::module_binaries!());
    add_architecture(coll.path(), "aarch64");
    let version = imagegate_testkit::galaxy_version();
    // The same length, another last digit.
    let last = version.chars().last().unwrap();
    let stale = format!("{}{}", &version[..version.len() - 1], if last == '9' { '8' } else { '9' });
    let target = coll
        .path()
        .join("ansible_collections/imagegate/containers/binaries/aarch64/registry_mirror");
    let mut bytes = std::fs::read(&target).unwrap();
    let mark = format!("imagegate.containers modules version {version}\0");
    let at = bytes
        .windows(mark.len())
        .position(|w| w == mark.as_bytes())
        .expect("the version mark");
    bytes[at..at + mark.len()].copy_from_slice(format!("imagegate.containers modules version {stale}\0").as_bytes());
    std::fs::remove_file(&target).unwrap();
    std::fs::write(&target, bytes).unwrap();
    let shell = aarch64_shell(coll.path());
    let hosts = json!({
        "x86-node": {"ansible_connection": "local"},
        "arm-node": {"ansible_connection": "local", "ansible_shell_executable": shell},
    });
    let vars = json!({
        "it_src": src.host,
        "it_registries": {src.host.clone(): src.module_entry()},
        "it_version": version,
        "it_stale": stale,
    });
    let (ok, out) = playbook_on(
        Core::V2_18,
        coll.path(),
        "tests/integration/targets/mixed_fleet/stale.yml",
        &vars,
        &hosts,
    );
    assert!(ok, "{out}");
    assert_eq!(
        src.digest("fleet/x86-node:v1"),
        src.digest("fleet/app:v1"),
        "the x86_64 node's task ran"
    );
    assert_eq!(src.digest("fleet/arm-node:v1"), None, "the stale binary did not run");
}
