//! Registry credentials: given explicitly, or read from the files docker,
//! podman, buildah and skopeo write (`~/.docker/config.json`,
//! `${XDG_RUNTIME_DIR}/containers/auth.json`, `REGISTRY_AUTH_FILE`), and
//! from the credential helpers those files name (`credHelpers`,
//! `credsStore`: `docker-credential-<name> get`).
//!
//! Precedence: the files in the order of [`AuthFiles::default_paths`]
//! (podman's, then docker's), the first file that gives a credential for
//! the registry winning. Within a file, as docker reads it: the helper
//! `credHelpers` names for the registry's host, else the `credsStore`
//! helper, else the `auths` entry with the longest matching key (`host`,
//! `host/namespace`, `host/namespace/repository`). A helper that knows no
//! credential for the host leaves the next file to answer.
//!
//! A helper is run at most once per helper and host in a process, on
//! demand; its answer is a secret (registered for masking, never logged)
//! and untrusted (at most 64 KiB, JSON of the protocol's shape, within 30
//! seconds, else a clear error naming the helper).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, ErrorKind};
use crate::reference::normalize_registry;
use crate::secret::Secret;

/// A username and password (or token used as password).
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: Secret,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, <redacted>)", self.username)
    }
}

impl Credential {
    /// A credential; its password and the `base64(user:password)` form that
    /// travels in a Basic header are both registered for masking.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        let c = Self {
            username: username.into(),
            password: Secret::new(password),
        };
        crate::secret::learn(&c.basic_value());
        c
    }

    fn basic_value(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    /// The value of an `Authorization: Basic` header.
    pub(crate) fn basic_header(&self) -> String {
        format!("Basic {}", self.basic_value())
    }
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// What one auth file says: its helpers and its `auths` entries.
#[derive(Default, Clone)]
struct FileCredentials {
    /// (key, credential): key is `host[:port]` or `host[:port]/namespace/...`.
    entries: Vec<(String, Credential)>,
    /// Registry host to helper name (`credHelpers`).
    helpers: Vec<(String, String)>,
    /// The helper for every other registry (`credsStore`).
    store: Option<String>,
}

/// Helpers' answers, by (helper, server): `None` where a helper knew none.
type HelperAnswers = HashMap<(String, String), Option<Credential>>;

/// Credentials read from auth files and their helpers, in precedence order.
#[derive(Default, Clone)]
pub struct AuthFiles {
    files: Vec<FileCredentials>,
    /// Helper answers of this process.
    asked: Arc<Mutex<HelperAnswers>>,
    /// The `docker-credential-<name>` programs are looked for here instead
    /// of on PATH (tests).
    helper_dir: Option<PathBuf>,
    /// How long a helper may take ([`HELPER_DEADLINE`]; shorter in tests).
    helper_deadline: Option<Duration>,
}

impl std::fmt::Debug for AuthFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.files.iter().flat_map(|f| &f.entries).map(|(k, _)| k.as_str()).collect();
        let helpers: Vec<&str> = self
            .files
            .iter()
            .flat_map(|f| f.helpers.iter().map(|(_, h)| h.as_str()).chain(f.store.as_deref()))
            .collect();
        write!(f, "AuthFiles({keys:?}, helpers {helpers:?})")
    }
}

/// The longest a helper may take to answer.
const HELPER_DEADLINE: Duration = Duration::from_secs(30);
/// The most a helper may print (its answer is a few hundred bytes).
const HELPER_OUTPUT: u64 = 64 * 1024;

impl AuthFiles {
    /// The files consulted when no file is named, in order of precedence.
    pub fn default_paths() -> Vec<PathBuf> {
        let mut paths = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            paths.push(PathBuf::from(p));
        }
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            paths.push(Path::new(&dir).join("containers/auth.json"));
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(home) = &home {
            paths.push(home.join(".config/containers/auth.json"));
        }
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            paths.push(Path::new(&dir).join("config.json"));
        } else if let Some(home) = &home {
            paths.push(home.join(".docker/config.json"));
        }
        paths
    }

    /// Loads the named file (which must exist) or else every default file
    /// that exists.
    pub fn load(explicit: Option<&Path>) -> Result<Self, Error> {
        let mut files = Self::default();
        match explicit {
            Some(path) => files.add_file(path)?,
            None => {
                for path in Self::default_paths() {
                    if path.is_file() {
                        files.add_file(&path)?;
                    }
                }
            }
        }
        Ok(files)
    }

    /// Looks for the helper programs in `dir` only.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    fn add_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        let file: AuthFile = serde_json::from_str(&text).map_err(|e| {
            // serde_json's message names a position, never file content.
            Error::new(ErrorKind::Credentials(format!("{} is not a valid auth file: {e}", path.display())))
        })?;
        let mut creds = FileCredentials::default();
        for (key, entry) in file.auths {
            let Some(cred) = entry.credential() else { continue };
            let Some(key) = normalize_key(&key) else { continue };
            if !creds.entries.iter().any(|(k, _)| *k == key) {
                creds.entries.push((key, cred));
            }
        }
        for (host, helper) in file.cred_helpers {
            check_helper_name(&helper, path)?;
            if let Some(host) = normalize_key(&host) {
                creds.helpers.push((host, helper));
            }
        }
        if let Some(store) = file.creds_store.filter(|s| !s.is_empty()) {
            check_helper_name(&store, path)?;
            creds.store = Some(store);
        }
        self.files.push(creds);
        Ok(())
    }

    /// The credential for `registry`/`repository` (see the module's
    /// precedence), running a helper if a file says to.
    pub fn find(&self, registry: &str, repository: &str) -> Result<Option<Credential>, Error> {
        let full = format!("{registry}/{repository}");
        for file in &self.files {
            let helper = file
                .helpers
                .iter()
                .find(|(host, _)| host == registry)
                .map(|(_, h)| h)
                .or(file.store.as_ref());
            let found = match helper {
                Some(helper) => self.ask(helper, registry)?,
                None => file
                    .entries
                    .iter()
                    .filter(|(k, _)| *k == registry || *k == full || (full.starts_with(k.as_str()) && full[k.len()..].starts_with('/')))
                    .max_by_key(|(k, _)| k.len())
                    .map(|(_, c)| c.clone()),
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// A helper's credential for a registry, asked once per process.
    fn ask(&self, helper: &str, registry: &str) -> Result<Option<Credential>, Error> {
        // Docker keeps the Hub's credentials under its v1 URL.
        let server = if registry == "docker.io" {
            "https://index.docker.io/v1/".to_string()
        } else {
            registry.to_string()
        };
        let key = (helper.to_string(), server.clone());
        if let Some(known) = self.asked.lock().expect("helper answers").get(&key) {
            return Ok(known.clone());
        }
        let program = format!("docker-credential-{helper}");
        let program = match &self.helper_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let answer = run_helper(&program, helper, &server, self.helper_deadline.unwrap_or(HELPER_DEADLINE))?;
        self.asked.lock().expect("helper answers").insert(key, answer.clone());
        Ok(answer)
    }
}

/// A helper name becomes part of a program name: letters, digits, `.`,
/// `_` and `-` only.
fn check_helper_name(name: &str, file: &Path) -> Result<(), Error> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok && !name.starts_with('.') {
        return Ok(());
    }
    Err(Error::new(ErrorKind::Credentials(format!(
        "{} names the credential helper '{}', which is not a helper name (letters, digits, '.', '_', '-')",
        file.display(),
        crate::error::untrusted_text(name, 64)
    ))))
}

/// The protocol's answer to `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `<program> get` with the server on stdin, within
/// `deadline` ([`HELPER_DEADLINE`]) and reading at most [`HELPER_OUTPUT`] bytes of each
/// output. `None`: the helper has no credential for the server.
fn run_helper(program: &Path, helper: &str, server: &str, deadline: Duration) -> Result<Option<Credential>, Error> {
    let fail = |what: String| {
        Error::new(ErrorKind::Credentials(format!(
            "the credential helper {helper} ({}): {what}",
            program.display()
        )))
    };
    let mut child = std::process::Command::new(program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot be run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // A helper that does not read its input gets EPIPE: not our failure.
        let _ = stdin.write_all(server.as_bytes());
    }
    let bounded = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(HELPER_OUTPUT + 1).read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = bounded(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = bounded(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("gave no answer within {} s", deadline.as_secs_f64())));
            }
            Err(e) => return Err(fail(format!("cannot be waited for: {e}"))),
        }
    };
    // A helper that left a child holding the pipes open is not waited for.
    let join = |h: std::thread::JoinHandle<Vec<u8>>| {
        let until = Instant::now() + Duration::from_secs(2);
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    let (out, err) = (join(stdout), join(stderr));
    if out.len() as u64 > HELPER_OUTPUT || err.len() as u64 > HELPER_OUTPUT {
        return Err(fail(format!("printed more than {} KiB", HELPER_OUTPUT / 1024)));
    }
    helper_answer(status, &out, &err).map_err(fail)
}

/// What a helper's exit and output mean: a credential, none for this
/// server, or what was wrong (never quoting the secret it may have sent).
fn helper_answer(status: std::process::ExitStatus, out: &[u8], err: &[u8]) -> Result<Option<Credential>, String> {
    let said = String::from_utf8_lossy(if out.is_empty() { err } else { out }).into_owned();
    if !status.success() {
        // The protocol's words for "no credential for this server".
        if said.contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!(
            "failed ({status}): {}",
            crate::error::untrusted_text(said.lines().next().unwrap_or(""), 200)
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(out)
        // serde_json's message names a position, never the content.
        .map_err(|e| format!("did not answer with the protocol's JSON ({e})"))?;
    if answer.username == "<token>" {
        return Err("gave an identity token (Username <token>), which imagegate does not use: log in with a username and password".into());
    }
    if answer.username.is_empty() && answer.secret.is_empty() {
        return Ok(None);
    }
    let username: String = answer.username.chars().take(1024).collect();
    Ok(Some(Credential::new(username, answer.secret)))
}

impl AuthEntry {
    fn credential(&self) -> Option<Credential> {
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Some(Credential::new(u.clone(), p.clone()));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.as_deref()?.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        Some(Credential::new(u, p))
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`; `quay.io/org` stays.
fn normalize_key(key: &str) -> Option<String> {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let key = key.trim_end_matches('/');
    let (host, path) = match key.split_once('/') {
        Some((h, p)) => (h, p),
        None => (key, ""),
    };
    let host = normalize_registry(host).ok()?;
    // Docker's own key for the Hub ends in /v1; that is not a namespace.
    if path.is_empty() || path == "v1" || path == "v2" {
        Some(host)
    } else {
        Some(format!("{host}/{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_and_containers_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}"}},
                    "quay.io": {{"auth": "{}"}},
                    "quay.io/team/app": {{"auth": "{}"}},
                    "127.0.0.1:5000": {{"auth": "{}"}}
                }}}}"#,
                b64("hub:pw1"),
                b64("q:pw2"),
                b64("team:pw3"),
                b64("local:pw:with:colons")
            ),
        )
        .unwrap();
        let files = AuthFiles::load(Some(&path)).unwrap();
        let find = |r: &str, repo: &str| files.find(r, repo).unwrap();
        assert_eq!(find("docker.io", "library/busybox").unwrap().username, "hub");
        assert_eq!(find("quay.io", "other/x").unwrap().username, "q");
        assert_eq!(find("quay.io", "team/app").unwrap().username, "team");
        assert_eq!(find("quay.io", "team/application").unwrap().username, "q");
        let local = find("127.0.0.1:5000", "a").unwrap();
        assert_eq!(local.password.expose(), "pw:with:colons");
        assert!(find("ghcr.io", "a").is_none());
        assert!(!format!("{files:?} {local:?}").contains("pw"));
    }

    /// A helper script in `dir`: `docker-credential-<name>`.
    fn helper(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn files(dir: &Path, config: &str) -> AuthFiles {
        let path = dir.join("config.json");
        std::fs::write(&path, config).unwrap();
        let mut files = AuthFiles::load(Some(&path)).unwrap().with_helper_dir(dir);
        files.helper_deadline = Some(Duration::from_millis(700));
        files
    }

    #[test]
    fn helpers_answer_as_docker_asks_them() {
        let dir = tempfile::tempdir().unwrap();
        // The store knows one server; the per-host helper another; a
        // counter shows each is asked once per server.
        let count = dir.path().join("count");
        helper(
            dir.path(),
            "store",
            &format!(
                r#"read server; echo x >> {}
case "$server" in
  reg.example:5000) echo '{{"ServerURL":"reg.example:5000","Username":"store-user","Secret":"store-secret-1"}}' ;;
  https://index.docker.io/v1/) echo '{{"ServerURL":"x","Username":"hub-user","Secret":"hub-secret-2"}}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#,
                count.display()
            ),
        );
        helper(
            dir.path(),
            "ecr",
            r#"read server; echo '{"Username":"AWS","Secret":"ecr-secret-3"}'"#,
        );
        let files = files(
            dir.path(),
            r#"{"auths": {"reg.example:5000": {"auth": "aWdub3JlZDppZ25vcmVk"}, "other.example": {"auth": "b3RoZXI6cHc="}},
                "credsStore": "store", "credHelpers": {"123.dkr.ecr.example": "ecr"}}"#,
        );
        let got = files.find("reg.example:5000", "a/b").unwrap().unwrap();
        assert_eq!(
            (got.username.as_str(), got.password.expose()),
            ("store-user", "store-secret-1"),
            "the store before auths"
        );
        assert_eq!(files.find("docker.io", "library/x").unwrap().unwrap().username, "hub-user");
        assert_eq!(
            files.find("123.dkr.ecr.example", "r").unwrap().unwrap().password.expose(),
            "ecr-secret-3"
        );
        assert!(files.find("other.example", "r").unwrap().is_none(), "the store has none for it");
        files.find("reg.example:5000", "c/d").unwrap();
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3, "once per server");
        assert!(
            crate::secret::mask("x store-secret-1 y").contains("********"),
            "a helper's secret is masked"
        );
        assert!(!format!("{files:?}").contains("secret"));
    }

    #[test]
    fn a_misbehaving_helper_is_a_clear_bounded_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = |name: &str| format!(r#"{{"credsStore": "{name}"}}"#);
        helper(dir.path(), "hangs", "sleep 30");
        helper(dir.path(), "garbage", "echo 'not json, the-garbage-secret'");
        helper(dir.path(), "floods", "head -c 3000000 /dev/zero | tr '\\0' a");
        helper(dir.path(), "fails", "echo 'the store is locked' >&2; exit 3");
        helper(dir.path(), "token", r#"echo '{"Username":"<token>","Secret":"tok-secret-4"}'"#);
        let err = |name: &str| {
            let started = Instant::now();
            let e = files(dir.path(), &config(name)).find("reg.example", "a").unwrap_err().to_string();
            assert!(started.elapsed() < Duration::from_secs(5), "{name}: bounded");
            assert!(e.contains(&format!("credential helper {name}")), "{e}");
            e
        };
        assert!(err("hangs").contains("no answer within 0.7 s"));
        let e = err("garbage");
        assert!(e.contains("protocol's JSON") && !e.contains("the-garbage-secret"), "{e}");
        assert!(err("floods").contains("more than 64 KiB"));
        assert!(err("fails").contains("the store is locked"));
        let e = err("token");
        assert!(e.contains("identity token") && !e.contains("tok-secret-4"), "{e}");
        let e = err("missing");
        assert!(e.contains("cannot be run"), "{e}");
        let path = dir.path().join("bad.json");
        std::fs::write(&path, r#"{"credsStore": "../../bin/sh"}"#).unwrap();
        let e = AuthFiles::load(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("not a helper name"), "{e}");
    }

    #[test]
    fn a_broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{ not json").unwrap();
        let e = AuthFiles::load(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("not a valid auth file"), "{e}");
        assert!(AuthFiles::load(Some(&dir.path().join("missing.json"))).is_err());
    }
}
