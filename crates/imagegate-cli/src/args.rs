//! The registry settings every command takes, and the one command that is
//! not a module's (`tags`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use imagegate_modules::registries::{runtime, CommonOptions, RegistryEntry, Side};
use imagegate_registry::{Reference, Stats};
use serde_json::{json, Map, Value};

use crate::Done;

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
}

fn entry<'a>(registries: &'a mut Map<String, Value>, host: &str) -> &'a mut Map<String, Value> {
    match registries.entry(host.to_string()).or_insert_with(|| json!({})) {
        Value::Object(m) => m,
        _ => unreachable!("entries are objects"),
    }
}

/// `imagegate tags`: the repository's tags (valid names only; the others
/// are named in a warning), sorted, those `regex` matches.
pub(crate) fn tags(settings: &Registries, repository: &str, regex: Option<&str>) -> Result<Done, String> {
    let repo = Reference::parse_repository(repository).map_err(|e| format!("{repository}: {e}"))?;
    let pattern = regex
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| format!("--regex: not a valid regular expression: {e}"))?;
    let options = settings.options()?;
    let registries: BTreeMap<String, RegistryEntry> =
        serde_json::from_value(options.get("registries").cloned().unwrap_or_else(|| json!({}))).map_err(|e| e.to_string())?;
    let common = CommonOptions {
        registries,
        auth_file: settings.auth_file.clone(),
        ..Default::default()
    };
    let regs = imagegate_modules::registries::Registries::new(&common, None, None).map_err(|e| e.message())?;
    let stats = Arc::new(Stats::default());
    let client = regs
        .client(&repo.registry, &repo.repository, None, Side::Source, stats)
        .map_err(|e| e.to_string())?;
    let rt = runtime().map_err(|e| e.message())?;
    let listed = match rt.block_on(client.list_tags(&repo.repository)) {
        Ok(l) => l,
        Err(e) => {
            return Ok(Done {
                result: json!({"failed": true, "changed": false, "msg": e.to_string()}),
                bad_input: false,
            })
        }
    };
    let mut tags: Vec<String> = listed
        .tags
        .into_iter()
        .filter(|t| match &pattern {
            Some(p) => p.is_match(t),
            None => true,
        })
        .collect();
    tags.sort();
    tags.dedup();
    let mut result = json!({
        "failed": false,
        "changed": false,
        "msg": format!("{} tags in {}", tags.len(), repo.repository_name()),
        "tags": tags,
    });
    if listed.skipped_total > 0 {
        result["warnings"] = json!([format!(
            "skipped {} listed names that are not valid tag names: {}",
            listed.skipped_total,
            listed.skipped.join(", ")
        )]);
    }
    Ok(Done { result, bad_input: false })
}
