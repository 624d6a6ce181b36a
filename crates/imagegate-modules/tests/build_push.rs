//! container_build with real buildah and podman (vfs storage, chroot
//! isolation, a base image made here from busybox-static), and
//! container_push of the exported layouts to distribution and zuul-registry.

use std::path::{Path, PathBuf};

use imagegate_testkit::{random_hex, run_module, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn build(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_build")), args)
}

fn push(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_push")), args)
}

/// A private builder storage and a context directory.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new().prefix("imagegate-build-test-").tempdir().unwrap(),
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// Options every build here shares: private storage, vfs, chroot.
    fn storage(&self, builder: &str) -> Value {
        json!({
            "container_command": builder,
            "storage_driver": "vfs",
            "storage_root": self.path("storage"),
            "storage_runroot": self.path("run"),
            "isolation": "chroot",
        })
    }
    fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.path(name);
        std::fs::create_dir_all(&ctx).unwrap();
        for (f, text) in files {
            let p = ctx.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        ctx
    }
    /// Builds `localhost/imagegate-base:latest` (busybox, its applets linked).
    fn base(&self, builder: &str) {
        let ctx = self.context(
            "base",
            &[(
                "Containerfile",
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
            )],
        );
        std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
        let mut args = self.storage(builder);
        args["context"] = json!(ctx);
        args["repository"] = json!("localhost/imagegate-base");
        args["layout"] = json!(self.path("base-layout"));
        build(&args).assert_ok();
    }
}

fn with(mut base: Value, extra: Value) -> Value {
    base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    base
}

/// The image config of the (single) image in a layout.
fn layout_config(layout: &Path) -> Value {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| layout.join("blobs/sha256").join(&d[7..]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap()).unwrap();
    serde_json::from_slice(&std::fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap()).unwrap()
}

const CONTAINERFILE: &str = r#"FROM localhost/imagegate-base AS builder
ARG GREETING=hello
RUN echo "$GREETING" > /greeting
FROM localhost/imagegate-base AS final
ARG GREETING=hello
COPY --from=builder /greeting /greeting
COPY .zuul-siblings/example.org/lib/VERSION /lib-version
LABEL stage=final greeting=$GREETING
FROM final AS extra
LABEL stage=extra
"#;

fn build_features_with(builder: &str) {
    let ws = Workspace::new();
    ws.base(builder);
    let ctx = ws.context("app", &[("Containerfile", CONTAINERFILE)]);
    let siblings = ws.context("src", &[("example.org/lib/VERSION", "1.2.3\n")]);
    let layout = ws.path("app-layout");
    let args = with(
        ws.storage(builder),
        json!({
            "context": ctx,
            "repository": "quay.io/example/app",
            "tags": ["latest", "1.0"],
            "target": "final",
            "build_args": ["GREETING=bonjour"],
            "labels": {"org.example.team": "infra"},
            "change": "4242",
            "change_url": "https://review.example.org/4242",
            "siblings": ["example.org/lib"],
            "siblings_root": siblings,
            "layout": layout,
        }),
    );
    let check = build(&with(args.clone(), json!({"_ansible_check_mode": true})));
    check.assert_ok();
    assert!(!layout.exists(), "check mode builds nothing");

    let run = build(&args);
    run.assert_ok();
    assert!(run.changed());
    assert!(!ctx.join(".zuul-siblings").exists(), "siblings are removed after the build");
    let labels = &layout_config(&layout)["config"]["Labels"];
    assert_eq!(labels["stage"], "final", "the target stage was built: {labels}");
    assert_eq!(labels["greeting"], "bonjour", "build args reach the build");
    assert_eq!(labels["org.example.team"], "infra");
    assert_eq!(labels["org.zuul-ci.change"], "4242");
    assert_eq!(labels["org.zuul-ci.change_url"], "https://review.example.org/4242");
    assert!(run.result["digest"].as_str().unwrap().starts_with("sha256:"));

    // A .zuul-siblings left in the context is refused.
    std::fs::create_dir(ctx.join(".zuul-siblings")).unwrap();
    let refused = build(&args);
    assert!(refused.failed());
    assert!(refused.msg().starts_with("option 'siblings'"), "{}", refused.msg());
}

#[test]
fn buildah_builds_targets_args_labels_siblings() {
    build_features_with("buildah");
}

#[test]
fn podman_builds_targets_args_labels_siblings() {
    build_features_with("podman");
}

/// Two platforms from a Containerfile without RUN: an index with both.
#[test]
fn two_platform_build_makes_an_index() {
    let ws = Workspace::new();
    let ctx = ws.context(
        "multi",
        &[("Containerfile", "FROM scratch\nCOPY hello /hello\n"), ("hello", "hi\n")],
    );
    let layout = ws.path("multi-layout");
    let run = build(&with(
        ws.storage("buildah"),
        json!({"context": ctx, "repository": "quay.io/example/multi", "arch": ["amd64", "arm64"], "layout": layout}),
    ));
    run.assert_ok();
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"].as_str().unwrap();
    let list: Value = serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&top[7..])).unwrap()).unwrap();
    let mut archs: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"]);

    // Pushed, the registry holds the same index.
    let reg = TestRegistry::start(Kind::Distribution);
    let pushed = push(&json!({
        "layout": layout,
        "repository": format!("{}/example/multi", reg.host),
        "tags": ["latest"],
        "registries": {reg.host.clone(): {"plain_http": true}},
    }));
    pushed.assert_ok();
    assert_eq!(reg.digest("example/multi:latest").as_deref(), Some(top));
}

#[test]
fn push_layouts_to_registries_idempotently() {
    let ws = Workspace::new();
    let ctx = ws.context(
        "p",
        &[
            ("Containerfile", "FROM scratch\nCOPY a /a\nCOPY b /b\n"),
            ("a", "a\n"),
            ("b", &random_hex(64)),
        ],
    );
    let layout = ws.path("p-layout");
    let built = build(&with(
        ws.storage("buildah"),
        json!({"context": ctx, "repository": "quay.io/example/p", "layout": layout}),
    ));
    built.assert_ok();
    let digest = built.result["digest"].as_str().unwrap().to_string();
    for kind in [Kind::Distribution, Kind::Zuul] {
        let reg = TestRegistry::start(kind);
        let args = json!({
            "layout": layout,
            "repository": format!("{}/example/p", reg.host),
            "tags": ["1.0", "latest", "change_7_latest"],
            "registries": {reg.host.clone(): reg.module_entry()},
            "_ansible_diff": true,
        });
        let check = push(&with(args.clone(), json!({"_ansible_check_mode": true})));
        check.assert_ok();
        assert!(check.changed());
        assert_eq!(reg.digest("example/p:1.0"), None);
        let first = push(&args);
        first.assert_ok();
        assert!(first.changed());
        assert!(first.result["stats"]["blobs_copied"].as_u64().unwrap() >= 2, "{}", first.stdout);
        for tag in ["1.0", "latest", "change_7_latest"] {
            assert_eq!(
                reg.digest(&format!("example/p:{tag}")).as_deref(),
                Some(digest.as_str()),
                "{kind:?} {tag}"
            );
        }
        let again = push(&args);
        again.assert_ok();
        assert!(!again.changed(), "{}", again.stdout);
        assert_eq!(again.result["stats"]["blobs_copied"], 0);
        assert_eq!(again.result["stats"]["bytes_moved"], 0);
    }
}

/// The builder's storage as the source: exported through the builder.
#[test]
fn push_from_builder_storage() {
    let ws = Workspace::new();
    let ctx = ws.context("s", &[("Containerfile", "FROM scratch\nCOPY a /a\n"), ("a", "storage\n")]);
    let built = build(&with(
        ws.storage("buildah"),
        json!({"context": ctx, "repository": "localhost/example/s", "layout": ws.path("s-layout")}),
    ));
    built.assert_ok();
    let reg = TestRegistry::start(Kind::Distribution);
    // The global storage flags go through the environment for this export.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_container_push"))
        .arg({
            let p = ws.path("push-args");
            std::fs::write(
                &p,
                json!({
                    "image": "localhost/example/s:latest",
                    "container_command": "buildah",
                    "repository": format!("{}/example/s", reg.host),
                    "registries": {reg.host.clone(): {"plain_http": true}},
                })
                .to_string(),
            )
            .unwrap();
            p
        })
        .env("CONTAINERS_STORAGE_CONF", {
            let p = ws.path("storage.conf");
            std::fs::write(
                &p,
                format!(
                    "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                    ws.path("storage").display(),
                    ws.path("run").display()
                ),
            )
            .unwrap();
            p
        })
        .output()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["failed"], json!(false), "{result}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(reg.digest("example/s:latest").as_deref(), built.result["digest"].as_str());
}

#[test]
fn a_failing_build_returns_the_builders_error() {
    let ws = Workspace::new();
    let ctx = ws.context("bad", &[("Containerfile", "FROM scratch\nCOPY does-not-exist /x\n")]);
    let run = build(&with(
        ws.storage("buildah"),
        json!({"context": ctx, "repository": "quay.io/example/bad"}),
    ));
    assert!(run.failed());
    assert!(!run.success);
    let msg = run.msg();
    assert!(msg.starts_with("buildah build failed; last lines of its output:"), "{msg}");
    assert!(msg.contains("does-not-exist"), "the builder's own words: {msg}");
    assert!(run.result["stderr"].as_str().unwrap().contains("does-not-exist"));
}

#[test]
fn bad_input_fails_clearly_and_prints_no_password() {
    let ws = Workspace::new();
    let ctx = ws.context("x", &[("Containerfile", "FROM scratch\n")]);
    let cases = [
        (json!({"context": ws.path("nope"), "repository": "quay.io/a/b"}), "option 'context'"),
        (json!({"context": ctx, "repository": "quay.io/A"}), "option 'repository'"),
        (
            json!({"context": ctx, "repository": "quay.io/a/b", "tags": ["no good"]}),
            "option 'tags'",
        ),
        (
            json!({"context": ctx, "repository": "quay.io/a/b", "build_args": ["=novalue"]}),
            "option 'build_args'",
        ),
        // Values that would be options on the builder's command line.
        (
            json!({"context": ctx, "repository": "quay.io/a/b", "build_args": ["--iidfile=/tmp/x"]}),
            "option 'build_args'",
        ),
        (
            json!({"context": ctx, "repository": "quay.io/a/b", "target": "--no-cache"}),
            "option 'target'",
        ),
        (
            json!({"context": ctx, "repository": "quay.io/a/b", "container_filename": "Nope"}),
            "option 'container_filename'",
        ),
        (
            json!({"context": ctx, "repository": "quay.io/a/b", "container_command": "kaniko"}),
            "option 'container_command'",
        ),
        (
            json!({"context": ctx, "repository": "quay.io/a/b", "siblings": ["x"]}),
            "option 'siblings_root'",
        ),
    ];
    for (args, expect) in cases {
        let run = build(&args);
        assert!(run.failed(), "{args}");
        assert!(run.msg().starts_with(expect), "{args}: {}", run.msg());
    }
    let reg = TestRegistry::start(Kind::DistributionTls);
    let secret = format!("pw-{}", random_hex(8));
    let run = push(&json!({
        "layout": ws.path("missing-layout"),
        "repository": format!("{}/a/b", reg.host),
        "username": "rw-user",
        "password": secret,
    }));
    assert!(run.failed());
    assert!(run.msg().starts_with("option 'layout'"), "{}", run.msg());
    assert!(!run.all_output().contains(&secret));
    // An image that is neither a reference nor an image ID never reaches
    // the builder, where it would be an option (podman push --digestfile=).
    let leak = ws.path("digest-leak");
    for builder in ["podman", "buildah", "docker"] {
        let run = push(&json!({
            "image": format!("--digestfile={}", leak.display()),
            "container_command": builder,
            "repository": format!("{}/a/b", reg.host),
        }));
        assert!(run.failed(), "{builder}");
        assert!(run.msg().starts_with("option 'image'"), "{builder}: {}", run.msg());
        assert!(!leak.exists(), "{builder} wrote the digest file");
    }
}

/// A `docker save` archive whose manifest.json is a 7.5 MiB list of empty
/// objects (2.6 million values, within the 8 MiB cap on an archive's JSON
/// entries): refused while it is parsed, within bounded memory, and nothing
/// is pushed. A real engine writes no such archive, so a `docker` on the
/// module's PATH stands in for a broken or compromised one: it prints the
/// archive and exits 0.
#[test]
fn a_docker_archive_of_tiny_json_values_is_refused_within_bounded_memory() {
    let ws = Workspace::new();
    let entries = ws.path("entries");
    std::fs::create_dir_all(&entries).unwrap();
    let count = 7 * 1024 * 1024 / 3 + 100_000;
    let mut manifest = String::with_capacity(count * 3 + 2);
    manifest.push('[');
    for n in 0..count {
        if n > 0 {
            manifest.push(',');
        }
        manifest.push_str("{}");
    }
    manifest.push(']');
    std::fs::write(entries.join("manifest.json"), manifest).unwrap();
    let archive = ws.path("archive.tar");
    let tar = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&entries)
        .arg("manifest.json")
        .status()
        .unwrap();
    assert!(tar.success());
    let bin = ws.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let docker = bin.join("docker");
    std::fs::write(&docker, format!("#!/bin/sh\nexec cat '{}'\n", archive.display())).unwrap();
    std::fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let reg = TestRegistry::start(Kind::Distribution);
    let args = json!({
        "image": "example.org/flood/app:latest",
        "container_command": "docker",
        "env": {"PATH": format!("{}:/usr/bin:/bin", bin.display())},
        "repository": format!("{}/flood/app", reg.host),
        "registries": {reg.host.clone(): reg.module_entry()},
    });
    let (run, peak_kib) = imagegate_testkit::run_module_measured(Path::new(env!("CARGO_BIN_EXE_container_push")), &args);
    eprintln!("peak RSS {peak_kib} KiB");
    assert!(run.failed(), "{}", run.stdout);
    assert!(
        run.msg().contains("manifest.json is not usable JSON") && run.msg().contains("more than 100000 JSON values"),
        "{}",
        run.msg()
    );
    assert!(peak_kib < 48 * 1024, "the module's peak RSS was {} MiB", peak_kib / 1024);
    assert_eq!(reg.digest("flood/app:latest"), None, "nothing pushed");
}
