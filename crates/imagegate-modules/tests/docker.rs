//! container_build with a real Docker engine (Debian's docker.io, one
//! private dockerd per test), container_push of what docker built, and the
//! image pulled back and run by docker.

use std::path::Path;

use imagegate_testkit::docker::DockerDaemon;
use imagegate_testkit::{run_module, Kind, ModuleRun, TestRegistry};
use serde_json::{json, Value};

fn build(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_build")), args)
}

fn push(args: &Value) -> ModuleRun {
    run_module(Path::new(env!("CARGO_BIN_EXE_container_push")), args)
}

/// The environment a build gets: this daemon, and Debian's docker client
/// (the engine's own version) first on PATH.
fn docker_env(daemon: &DockerDaemon, extra: Value) -> Value {
    let mut env = json!({"DOCKER_HOST": daemon.host, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"});
    env.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    env
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (f, text) in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn docker_out(daemon: &DockerDaemon, args: &[&str]) -> String {
    let out = daemon.docker().args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker run` of `image` without a network, `command` in it; its output.
fn run_offline(daemon: &DockerDaemon, image: &str, command: &[&str]) -> String {
    docker_out(daemon, &[&["run", "--rm", "--network", "none", image], command].concat())
}

/// A private dockerd holding busybox as `imagegate-base:1`, and a work
/// directory.
fn daemon_with_base() -> (DockerDaemon, tempfile::TempDir) {
    let daemon = DockerDaemon::start();
    daemon.import_busybox("imagegate-base:1");
    let work = tempfile::Builder::new().prefix("imagegate-docker-test-").tempdir().unwrap();
    (daemon, work)
}

/// docker build with RUN, a target stage, build arguments (one taken from
/// the environment), labels in zuul-jobs' list form and `path`; the image
/// read with docker save, pushed by our module, pulled back by docker with
/// the same digest, and run.
#[test]
fn docker_build_push_pull_run() {
    let (daemon, work) = daemon_with_base();
    let ctx = work.path().join("ctx");
    write(
        &ctx,
        &[
            (
                "app/Dockerfile",
                "FROM imagegate-base:1 AS first\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\n\
                 FROM imagegate-base:1 AS final\nARG FROM_ENV\nCOPY --from=first /greeting /greeting\n\
                 COPY version /version\nRUN echo \"$FROM_ENV\" > /from-env\n\
                 FROM final AS extra\nRUN echo never > /extra\n",
            ),
            ("app/version", "7\n"),
            // A Dockerfile at the top of the context that must not be used.
            ("Dockerfile", "FROM scratch\nCOPY nothing /nothing\n"),
        ],
    );
    let reg = TestRegistry::start(Kind::Distribution);
    let repository = format!("{}/team/app", reg.host);
    let layout = work.path().join("layout");
    let built = build(&json!({
        "context": ctx,
        "path": "app",
        "repository": repository,
        "tags": ["latest", "change_1_latest"],
        "container_command": "docker",
        "target": "final",
        "build_args": ["GREETING=hello", "FROM_ENV"],
        "labels": ["org.example.team=images", "org.example.empty="],
        "change": "1",
        "env": docker_env(&daemon, json!({"FROM_ENV": "from the environment"})),
        "layout": layout,
        "extra_args": ["--network", "host"],
    }));
    built.assert_ok();
    assert!(built.changed());
    let digest = built.result["digest"].as_str().unwrap().to_string();
    assert!(built.result["image_id"].as_str().unwrap().starts_with("sha256:"));

    let pushed = push(&json!({
        "layout": layout,
        "name": built.result["layout_name"],
        "repository": repository,
        "tags": ["latest"],
        "registries": {reg.host.clone(): {"plain_http": true}},
    }));
    pushed.assert_ok();
    assert_eq!(reg.digest("team/app:latest").as_deref(), Some(digest.as_str()));

    // docker pulls it back (127.0.0.0/8 is an insecure registry by default)
    // with the digest we pushed, and the build's steps are all in it.
    let pulled = format!("{repository}:latest");
    docker_out(&daemon, &["rmi", "-f", &pulled]);
    docker_out(&daemon, &["pull", &pulled]);
    let repo_digests = docker_out(&daemon, &["image", "inspect", "--format", "{{json .RepoDigests}}", &pulled]);
    assert!(repo_digests.contains(&digest), "{repo_digests} lacks {digest}");
    let labels: Value = serde_json::from_str(&docker_out(
        &daemon,
        &["image", "inspect", "--format", "{{json .Config.Labels}}", &pulled],
    ))
    .unwrap();
    assert_eq!(labels["org.example.team"], "images");
    assert_eq!(labels["org.example.empty"], "");
    assert_eq!(labels["org.zuul-ci.change"], "1");
    let run = run_offline(
        &daemon,
        &pulled,
        &["sh", "-c", "cat /greeting /version /from-env; test ! -e /extra && echo no-extra"],
    );
    assert_eq!(run, "hello\n7\nfrom the environment\nno-extra");
}

/// Siblings reach a docker build with ZUUL_SIBLINGS set, as zuul-jobs sets it.
#[test]
fn docker_build_with_siblings() {
    let (daemon, work) = daemon_with_base();
    let root = work.path().join("src");
    write(&root, &[("example.org/lib/VERSION", "1.2.3\n")]);
    let ctx = root.join("example.org/app");
    write(
        &ctx,
        &[(
            "Dockerfile",
            "FROM imagegate-base:1\nARG ZUUL_SIBLINGS\nCOPY .zuul-siblings/example.org/lib/VERSION /lib-version\n\
             RUN echo \"$ZUUL_SIBLINGS\" > /siblings\n",
        )],
    );
    let layout = work.path().join("layout");
    let built = build(&json!({
        "context": ctx,
        "repository": "example.org/app",
        "container_command": "docker",
        "siblings": ["example.org/lib"],
        "siblings_root": root,
        "env": docker_env(&daemon, json!({})),
        "layout": layout,
        "extra_args": ["--network", "host"],
    }));
    built.assert_ok();
    assert!(!ctx.join(".zuul-siblings").exists(), "the sibling copy is cleaned up");
    let run = run_offline(&daemon, "example.org/app:latest", &["cat", "/lib-version", "/siblings"]);
    assert_eq!(run, "1.2.3\nexample.org/lib");
}

/// Without buildx, docker cannot build for a platform: the module fails
/// before building anything, saying so.
#[test]
fn docker_arch_without_buildx_fails_before_building() {
    let daemon = DockerDaemon::start();
    let work = tempfile::Builder::new().prefix("imagegate-docker-test-").tempdir().unwrap();
    write(work.path(), &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n")]);
    let before = docker_out(&daemon, &["images", "-q", "--all"]);
    let built = build(&json!({
        "context": work.path(),
        "repository": "example.org/multi",
        "container_command": "docker",
        "arch": ["amd64", "arm64"],
        "env": docker_env(&daemon, json!({})),
        "layout": work.path().join("layout"),
    }));
    assert!(built.failed());
    assert!(built.msg().contains("arch") && built.msg().contains("buildx"), "{}", built.msg());
    assert_eq!(docker_out(&daemon, &["images", "-q", "--all"]), before, "nothing was built");
    assert!(!work.path().join("layout").exists());
}
