//! Options shared by every module that talks to registries: per-registry
//! credentials and TLS settings (the shape of zuul-jobs'
//! `container_registry_credentials`), auth files, retries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use imagegate_ansible::ModuleError;
use imagegate_registry::reference::normalize_registry;
use imagegate_registry::{
    AuthFiles, Credential, Engine, EngineOptions, Limits, RegistryClient, RegistryConfig, RetryPolicy, Stats, UploadMode,
};
use serde::Deserialize;

/// Option names whose values are secrets, in every module.
pub const SECRET_OPTIONS: &[&str] = &["password", "src_password", "dest_password", "api_token", "token"];

/// One entry of `registries` (keyed by registry `host[:port]` or, as in
/// zuul-jobs, by a registry name that `dest_registry` refers to). Keys it
/// does not know are ignored, as zuul-jobs ignores them, so that
/// `container_registry_credentials` entries written for other tools pass
/// unchanged; but each with a warning naming it (the modules' specs list
/// `registries.*` as lenient), so that a misspelt `passwd` is seen.
#[derive(Deserialize, Debug, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryEntry {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Speak plain HTTP to this registry.
    pub plain_http: bool,
    /// On unless turned off (see the `Default` below).
    pub tls_verify: bool,
    pub ca_cert: Option<PathBuf>,
    /// zuul-jobs: a regex the destination repository must match.
    pub repository: Option<String>,
    /// zuul-jobs keys used by tag removal; accepted here so that
    /// `container_registry_credentials` can be passed unchanged.
    pub api_token: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub api_url: Option<String>,
}

/// A registry not listed in `registries`, and the value of each key an
/// entry leaves out: TLS verified, no credentials (auth files may still
/// supply some). Written out because a derived `Default` would turn
/// `tls_verify` off.
impl Default for RegistryEntry {
    fn default() -> Self {
        Self {
            username: None,
            password: None,
            plain_http: false,
            tls_verify: true,
            ca_cert: None,
            repository: None,
            api_token: None,
            kind: None,
            api_url: None,
        }
    }
}

/// Registry-related options common to all modules (each module's args
/// struct lists them and hands them over in this shape).
#[derive(Debug, Default)]
pub struct CommonOptions {
    pub registries: BTreeMap<String, RegistryEntry>,
    pub auth_file: Option<PathBuf>,
    pub retries: Option<u32>,
    /// First retry delay in seconds (doubled per retry).
    pub retry_delay: Option<f64>,
    pub upload_chunk_size: Option<u64>,
    /// Deadline in seconds for each small answer (manifest, token, tag page).
    pub timeout: Option<f64>,
}

/// Declares a module's args struct with the options every registry module
/// shares appended (`registries`, `auth_file`, `retries`, `retry_delay`,
/// `upload_chunk_size`, `timeout`) and a `take_common` method. The fields are written
/// into the struct rather than `#[serde(flatten)]`ed because serde loses the
/// option path of errors inside a flattened struct.
#[macro_export]
macro_rules! registry_module_args {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($body)*
            #[serde(default)]
            pub registries: std::collections::BTreeMap<String, $crate::registries::RegistryEntry>,
            #[serde(default)]
            pub auth_file: Option<std::path::PathBuf>,
            #[serde(default)]
            pub retries: Option<u32>,
            #[serde(default)]
            pub retry_delay: Option<f64>,
            #[serde(default)]
            pub upload_chunk_size: Option<u64>,
            #[serde(default)]
            pub timeout: Option<f64>,
        }

        impl $name {
            /// Moves the shared registry options out.
            pub fn take_common(&mut self) -> $crate::registries::CommonOptions {
                $crate::registries::CommonOptions {
                    registries: std::mem::take(&mut self.registries),
                    auth_file: self.auth_file.take(),
                    retries: self.retries.take(),
                    retry_delay: self.retry_delay.take(),
                    upload_chunk_size: self.upload_chunk_size.take(),
                    timeout: self.timeout.take(),
                }
            }
        }
    };
}

/// Which side of a copy a client serves; sides may have their own
/// credentials for the same registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

/// Validated registry settings.
pub struct Registries {
    entries: BTreeMap<String, RegistryEntry>,
    auth_files: AuthFiles,
    engine: Engine,
    src_cred: Option<Credential>,
    dest_cred: Option<Credential>,
}

/// The most retries one may ask for; more turns a dead registry into a hung job.
const MAX_RETRIES: u32 = 20;
/// The longest `timeout` one may set: an hour per small answer is already
/// far beyond any registry that works.
const MAX_TIMEOUT: f64 = 3600.0;

impl Registries {
    pub fn new(
        common: &CommonOptions,
        src_cred: Option<(String, String)>,
        dest_cred: Option<(String, String)>,
    ) -> Result<Self, ModuleError> {
        let mut entries = BTreeMap::new();
        for (key, entry) in &common.registries {
            if entry.username.is_some() != entry.password.is_some() {
                return Err(ModuleError::option(
                    format!("registries.{key}"),
                    format!(
                        "username and password go together: it has a {} but no {} (a key this module does not know is ignored, with a warning)",
                        if entry.username.is_some() { "username" } else { "password" },
                        if entry.username.is_some() { "password" } else { "username" },
                    ),
                ));
            }
            if let Some(ca) = &entry.ca_cert {
                if !ca.is_file() {
                    return Err(ModuleError::option(
                        format!("registries.{key}.ca_cert"),
                        format!("{} is not a file", ca.display()),
                    ));
                }
            }
            if let Some(re) = &entry.repository {
                regex::Regex::new(re)
                    .map_err(|e| ModuleError::option(format!("registries.{key}.repository"), format!("not a valid regex: {e}")))?;
            }
            // Keys are registry hosts, or names used by dest_registry.
            let norm = normalize_registry(key).unwrap_or_else(|_| key.clone());
            entries.insert(norm, entry.clone());
        }
        let auth_files = AuthFiles::load(common.auth_file.as_deref()).map_err(|e| ModuleError::option("auth_file", e.to_string()))?;
        let mut retry = RetryPolicy::default();
        if let Some(r) = common.retries {
            if r > MAX_RETRIES {
                return Err(ModuleError::option("retries", format!("at most {MAX_RETRIES}")));
            }
            retry.max_attempts = r + 1;
        }
        if let Some(d) = common.retry_delay {
            if !(0.0..=60.0).contains(&d) {
                return Err(ModuleError::option("retry_delay", "must be between 0 and 60 seconds"));
            }
            retry.initial_delay = std::time::Duration::from_secs_f64(d);
        }
        let mut limits = Limits::default();
        if let Some(t) = common.timeout {
            if !(0.1..=MAX_TIMEOUT).contains(&t) {
                return Err(ModuleError::option(
                    "timeout",
                    format!("must be between 0.1 and {MAX_TIMEOUT} seconds"),
                ));
            }
            limits.answer = std::time::Duration::from_secs_f64(t);
        }
        let upload = match common.upload_chunk_size {
            None => UploadMode::Monolithic,
            Some(n) if (1024..=1 << 30).contains(&n) => UploadMode::Chunked(n as usize),
            Some(_) => return Err(ModuleError::option("upload_chunk_size", "must be between 1024 bytes and 1 GiB")),
        };
        Ok(Self {
            entries,
            auth_files,
            engine: Engine::new(EngineOptions { retry, limits, upload }),
            src_cred: src_cred.map(|(u, p)| Credential::new(u, p)),
            dest_cred: dest_cred.map(|(u, p)| Credential::new(u, p)),
        })
    }

    /// The entry for a registry, looked up by `name` (a zuul-jobs registry
    /// name) first, then by host.
    pub fn entry(&self, registry: &str, name: Option<&str>) -> Option<&RegistryEntry> {
        name.and_then(|n| {
            self.entries
                .get(n)
                .or_else(|| normalize_registry(n).ok().and_then(|n| self.entries.get(&n)))
        })
        .or_else(|| self.entries.get(registry))
    }

    /// Checks a destination repository against the entry's `repository`
    /// regex as zuul-jobs does (`repository | regex_search(pattern)`): a
    /// search, unanchored unless the pattern anchors it, in the whole
    /// repository name with its registry (`quay.io/org/app`). Docker Hub
    /// repositories may also be written short (`org/app`, `app`), so those
    /// forms are tried as well.
    pub fn check_repository(&self, registry: &str, name: Option<&str>, repository: &str, option: &str) -> Result<(), ModuleError> {
        let Some(re) = self.entry(registry, name).and_then(|e| e.repository.as_deref()) else {
            return Ok(());
        };
        let re = regex::Regex::new(re).map_err(|e| ModuleError::option(option, e.to_string()))?;
        let full = format!("{registry}/{repository}");
        let mut forms = vec![full.clone()];
        if registry == imagegate_registry::reference::DOCKER_HUB {
            forms.push(repository.to_string());
            if let Some(short) = repository.strip_prefix("library/") {
                forms.push(short.to_string());
            }
        }
        if forms.iter().any(|f| re.is_match(f)) {
            Ok(())
        } else {
            Err(ModuleError::option(
                option,
                format!("{full} is not permitted by the repository pattern '{re}' of the credentials for {registry}"),
            ))
        }
    }

    /// The web API settings (Quay, Docker Hub) of a registry's entry.
    pub fn web_api(&self, registry: &str, name: Option<&str>) -> imagegate_registry::tags::WebApi {
        let entry = self.entry(registry, name).cloned().unwrap_or_default();
        imagegate_registry::tags::WebApi {
            kind: imagegate_registry::tags::WebApiKind::from_type(entry.kind.as_deref()),
            api_url: entry.api_url,
            api_token: entry.api_token.map(imagegate_registry::Secret::new),
            username: entry.username,
            password: entry.password.map(imagegate_registry::Secret::new),
        }
    }

    /// The engine's transport options (retries, deadlines, shared backoff),
    /// for a transport to a non-registry API.
    pub fn transport_options(&self) -> imagegate_registry::TransportOptions {
        self.engine.transport_options()
    }

    /// A client for one side of a copy.
    pub fn client(
        &self,
        registry: &str,
        repository: &str,
        name: Option<&str>,
        side: Side,
        stats: Arc<Stats>,
    ) -> Result<RegistryClient, imagegate_registry::Error> {
        let entry = self.entry(registry, name).cloned().unwrap_or_default();
        let explicit = match side {
            Side::Source => &self.src_cred,
            Side::Destination => &self.dest_cred,
        };
        let credential = match explicit.clone().or_else(|| {
            entry
                .username
                .clone()
                .zip(entry.password.clone())
                .map(|(u, p)| Credential::new(u, p))
        }) {
            Some(c) => Some(c),
            None => self.auth_files.find(registry, repository)?,
        };
        let config = RegistryConfig {
            plain_http: entry.plain_http,
            tls_verify: entry.tls_verify,
            ca_cert: entry.ca_cert.clone(),
            credential,
        };
        let role = format!("{side:?}:{}", name.unwrap_or(""));
        self.engine.client(registry, &role, &config, stats)
    }
}

/// Blobs of one image moved at once by default: enough to fill a link with
/// small layers, few enough not to trip per-client limits of public registries.
pub const DEFAULT_BLOB_CONCURRENCY: usize = 4;
/// The most images or blobs one may ask to move at once.
const MAX_CONCURRENCY: usize = 32;

/// A concurrency option: `default` if unset, else 1 to 32.
pub fn concurrency(v: Option<usize>, default: usize, option: &str) -> Result<usize, ModuleError> {
    match v {
        None => Ok(default),
        Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        Some(_) => Err(ModuleError::option(option, format!("must be between 1 and {MAX_CONCURRENCY}"))),
    }
}

/// A username and password given as two options: both or neither.
pub fn credential_pair(
    user: Option<String>,
    pass: Option<String>,
    user_option: &str,
    pass_option: &str,
) -> Result<Option<(String, String)>, ModuleError> {
    match (user, pass) {
        (Some(u), Some(p)) => Ok(Some((u, p))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ModuleError::option(pass_option, format!("required with {user_option}"))),
        (None, Some(_)) => Err(ModuleError::option(user_option, format!("required with {pass_option}"))),
    }
}

/// A runtime for one module run. Two workers: one drives transfers while the
/// other hashes and parses; more buys nothing on the nodes we run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, ModuleError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ModuleError::failed(format!("cannot start the async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_and_listed_registries_verify_tls() {
        assert!(RegistryEntry::default().tls_verify);
        let e: RegistryEntry = serde_json::from_str(r#"{"username": "u", "password": "p"}"#).unwrap();
        assert!(e.tls_verify && !e.plain_http);
    }
}
