//! Credentials as users have them: docker's `credsStore` with a real
//! credential helper from Debian (`docker-credential-pass` of
//! golang-docker-credential-helpers, over a `pass` store with a throw-away
//! gpg key) gives registry_mirror the login of a registry with basic auth;
//! a helper that misbehaves fails the module clearly, naming it, and
//! nothing it printed leaks. (The helper's hang, flood and bad names are
//! tested in the engine's credentials tests with a short deadline.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use imagegate_testkit::module::{parse_run, ModuleRun};
use imagegate_testkit::{Kind, TestRegistry};
use serde_json::{json, Value};

/// Runs a command, panicking with its output if it fails.
fn run(cmd: &mut Command, input: Option<&str>) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if let Some(text) = input {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// A home of its own: a gpg key without passphrase, a `pass` store on it
/// (with the entry docker-credential-pass checks for), and docker's
/// config naming the `pass` store. Stops its gpg-agent when dropped.
struct PassHome {
    dir: tempfile::TempDir,
}

impl PassHome {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = Self { dir };
        let gnupg = home.path("gnupg");
        std::fs::create_dir_all(&gnupg).unwrap();
        run(Command::new("chmod").arg("700").arg(&gnupg), None);
        run(
            home.command("gpg").args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "imagegate test <test@example.invalid>",
                "default",
                "default",
                "never",
            ]),
            None,
        );
        let keys = run(home.command("gpg").args(["--batch", "--list-keys", "--with-colons"]), None);
        let fingerprint = keys
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').split(':').next_back())
            .expect("the key's fingerprint")
            .to_string();
        run(home.command("pass").args(["init", &fingerprint]), None);
        run(
            home.command("pass")
                .args(["insert", "--multiline", "docker-credential-helpers/docker-pass-initialized-check"]),
            Some("pass is initialized\n"),
        );
        std::fs::create_dir_all(home.path("docker")).unwrap();
        std::fs::write(home.path("docker/config.json"), r#"{"auths": {}, "credsStore": "pass"}"#).unwrap();
        home
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command with this home's environment (and nothing of the user's).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", self.dir.path())
            .env("GNUPGHOME", self.path("gnupg"))
            .env("PASSWORD_STORE_DIR", self.path("store"))
            .env("DOCKER_CONFIG", self.path("docker"));
        cmd
    }

    /// registry_mirror with this home's environment.
    fn mirror(&self, args: &Value, path: Option<&Path>) -> ModuleRun {
        let file = self.path("args.json");
        std::fs::write(&file, args.to_string()).unwrap();
        let mut cmd = self.command(env!("CARGO_BIN_EXE_registry_mirror"));
        if let Some(dir) = path {
            cmd.env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()));
        }
        parse_run(cmd.arg(&file).output().unwrap())
    }
}

impl Drop for PassHome {
    fn drop(&mut self) {
        let _ = self.command("gpgconf").args(["--kill", "gpg-agent"]).output();
    }
}

#[test]
fn docker_credential_pass_logs_the_mirror_in() {
    let reg = TestRegistry::start(Kind::DistributionTls);
    let plain = TestRegistry::seeded(Kind::Distribution, &[(8, "helper/app:v1")]);
    let user = reg.rw.as_ref().unwrap();
    let home = PassHome::new();
    // The login, stored as `docker login` stores it through the helper.
    run(
        home.command("docker-credential-pass").arg("store"),
        Some(&json!({"ServerURL": reg.host, "Username": user.name, "Secret": user.password}).to_string()),
    );
    let args = json!({
        "images": [{"src": format!("{}/helper/app:v1", plain.host), "dest": format!("{}/helper/app", reg.host)}],
        "registries": {reg.host.clone(): {"ca_cert": reg.ca_cert}, plain.host.clone(): {"plain_http": true}},
    });
    let mirrored = home.mirror(&args, None);
    mirrored.assert_ok();
    assert!(mirrored.changed());
    assert_eq!(reg.digest("helper/app:v1"), plain.digest("helper/app:v1"));
    assert!(!mirrored.all_output().contains(&user.password), "the helper's secret printed");

    // Without the helper's entry the registry refuses the anonymous push.
    run(home.command("docker-credential-pass").arg("erase"), Some(&reg.host));
    let again = home.mirror(&json!({"images": [{"src": format!("{}/helper/app:v1", plain.host), "dest": format!("{}/helper/other", reg.host)}], "registries": args["registries"]}), None);
    assert!(again.failed(), "{}", again.stdout);
    let said = again.msg().to_lowercase();
    assert!(
        said.contains("401") || said.contains("unauthorized") || said.contains("denied"),
        "{said}"
    );
}

#[test]
fn a_misbehaving_helper_fails_the_module_clearly() {
    let reg = TestRegistry::start(Kind::DistributionTls);
    let home = PassHome::new();
    std::fs::write(
        home.path("docker/config.json"),
        r#"{"credHelpers": {"HOST": "broken"}}"#.replace("HOST", &reg.host),
    )
    .unwrap();
    let bin = home.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-broken");
    std::fs::write(&helper, "#!/bin/sh\necho 'Username: leaked-secret-5'\n").unwrap();
    run(Command::new("chmod").arg("755").arg(&helper), None);
    let failed = home.mirror(
        &json!({
            "images": [{"src": format!("{}/a/b:v1", reg.host), "dest": format!("{}/a/c", reg.host)}],
            "registries": {reg.host.clone(): {"ca_cert": reg.ca_cert}},
        }),
        Some(&bin),
    );
    assert!(failed.failed(), "{}", failed.stdout);
    assert!(
        failed.msg().contains("credential helper broken") && failed.msg().contains("protocol's JSON"),
        "{}",
        failed.msg()
    );
    assert!(!failed.all_output().contains("leaked-secret-5"), "{}", failed.all_output());
}
