//! Registry credentials: given explicitly, or read from the files docker,
//! podman, buildah and skopeo write (`~/.docker/config.json`,
//! `${XDG_RUNTIME_DIR}/containers/auth.json`, `REGISTRY_AUTH_FILE`).
//!
//! Credential helpers (`credsStore`, `credHelpers`) are not run yet.

use std::path::{Path, PathBuf};

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

/// Credentials read from auth files, most specific key first.
#[derive(Default, Clone)]
pub struct AuthFiles {
    /// (key, credential): key is `host[:port]` or `host[:port]/namespace/...`.
    entries: Vec<(String, Credential)>,
}

impl std::fmt::Debug for AuthFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "AuthFiles({keys:?})")
    }
}

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

    fn add_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        let file: AuthFile = serde_json::from_str(&text).map_err(|e| {
            // serde_json's message names a position, never file content.
            Error::new(ErrorKind::Credentials(format!("{} is not a valid auth file: {e}", path.display())))
        })?;
        for (key, entry) in file.auths {
            let Some(cred) = entry.credential() else { continue };
            let Some(key) = normalize_key(&key) else { continue };
            // Earlier files take precedence: keep the first entry for a key.
            if !self.entries.iter().any(|(k, _)| *k == key) {
                self.entries.push((key, cred));
            }
        }
        Ok(())
    }

    /// The credential for `registry`/`repository`: the longest matching key
    /// (`host/ns/repo`, then `host/ns`, then `host`).
    pub fn find(&self, registry: &str, repository: &str) -> Option<&Credential> {
        let full = format!("{registry}/{repository}");
        self.entries
            .iter()
            .filter(|(k, _)| *k == registry || *k == full || (full.starts_with(k.as_str()) && full[k.len()..].starts_with('/')))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, c)| c)
    }
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
                }}, "credsStore": "desktop"}}"#,
                b64("hub:pw1"),
                b64("q:pw2"),
                b64("team:pw3"),
                b64("local:pw:with:colons")
            ),
        )
        .unwrap();
        let files = AuthFiles::load(Some(&path)).unwrap();
        assert_eq!(files.find("docker.io", "library/busybox").unwrap().username, "hub");
        assert_eq!(files.find("quay.io", "other/x").unwrap().username, "q");
        assert_eq!(files.find("quay.io", "team/app").unwrap().username, "team");
        assert_eq!(files.find("quay.io", "team/application").unwrap().username, "q");
        let local = files.find("127.0.0.1:5000", "a").unwrap();
        assert_eq!(local.password.expose(), "pw:with:colons");
        assert!(files.find("ghcr.io", "a").is_none());
        assert!(!format!("{files:?} {local:?}").contains("pw"));
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
