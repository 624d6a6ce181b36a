//! The registry settings every command takes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use imagegate_modules::registries::{CommonOptions, RegistryEntry};
use serde_json::{json, Map, Value};

/// How to reach registries, beyond the auth files docker and podman keep
/// (read as the modules read them: credential helpers included).
#[derive(Args)]
pub(crate) struct Registries {
    /// Speak plain HTTP to this registry (`host[:port]`); repeat for more.
    #[arg(long = "plain-http", value_name = "HOST", global = true)]
    plain_http: Vec<String>,
    /// Trust this CA for a registry: `HOST=PATH` (a PEM file); repeat for more.
    #[arg(long = "ca-cert", value_name = "HOST=PATH", global = true)]
    ca_cert: Vec<String>,
    /// Read credentials from this auth file only.
    #[arg(long = "auth-file", value_name = "PATH", global = true)]
    auth_file: Option<PathBuf>,
}

impl Registries {
    /// The settings as module options: `registries` (and `auth_file`).
    pub(crate) fn options(&self) -> Result<Map<String, Value>, String> {
        let mut registries = Map::new();
        for host in &self.plain_http {
            entry(&mut registries, host).insert("plain_http".into(), Value::Bool(true));
        }
        for pair in &self.ca_cert {
            let (host, path) = pair
                .split_once('=')
                .filter(|(h, p)| !h.is_empty() && !p.is_empty())
                .ok_or_else(|| format!("--ca-cert {pair}: give HOST=PATH"))?;
            let path = std::path::absolute(path).map_err(|e| format!("--ca-cert {pair}: {e}"))?;
            entry(&mut registries, host).insert("ca_cert".into(), json!(path));
        }
        let mut out = Map::new();
        if !registries.is_empty() {
            out.insert("registries".into(), Value::Object(registries));
        }
        if let Some(f) = &self.auth_file {
            out.insert("auth_file".into(), json!(f));
        }
        Ok(out)
    }

    /// The settings as the modules hold them, for a command that is not a
    /// module's.
    pub(crate) fn validated(&self) -> Result<imagegate_modules::registries::Registries, String> {
        let options = self.options()?;
        let registries: BTreeMap<String, RegistryEntry> =
            serde_json::from_value(options.get("registries").cloned().unwrap_or_else(|| json!({}))).map_err(|e| e.to_string())?;
        let common = CommonOptions {
            registries,
            auth_file: self.auth_file.clone(),
            ..Default::default()
        };
        imagegate_modules::registries::Registries::new(&common, None, None).map_err(|e| e.message())
    }
}

fn entry<'a>(registries: &'a mut Map<String, Value>, host: &str) -> &'a mut Map<String, Value> {
    match registries.entry(host.to_string()).or_insert_with(|| json!({})) {
        Value::Object(m) => m,
        _ => unreachable!("entries are objects"),
    }
}
