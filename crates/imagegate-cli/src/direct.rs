//! The commands that only read, straight from the engine: `tags` and
//! `inspect`. Everything a registry sends is untrusted: names are checked,
//! and text shown is escaped and cut short.

use std::sync::Arc;

use imagegate_modules::registries::{runtime, Side};
use imagegate_registry::error::untrusted_text;
use imagegate_registry::manifest::Parsed;
use imagegate_registry::{Reference, RegistryClient, Stats};
use serde_json::{json, Value};

use crate::args::Registries;
use crate::Done;

/// A client for `repo` with the command's settings and the user's
/// credentials.
fn client(settings: &Registries, repo: &Reference) -> Result<RegistryClient, String> {
    settings
        .validated()?
        .client(&repo.registry, &repo.repository, None, Side::Source, Arc::new(Stats::default()))
        .map_err(|e| e.to_string())
}

fn failed(msg: String) -> Done {
    Done {
        result: json!({"failed": true, "changed": false, "msg": msg}),
        bad_input: false,
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
    let client = client(settings, &repo)?;
    let rt = runtime().map_err(|e| e.message())?;
    let listed = match rt.block_on(client.list_tags(&repo.repository)) {
        Ok(l) => l,
        Err(e) => return Ok(failed(e.to_string())),
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

/// `imagegate inspect`: what a reference points at: its digest and media
/// type, the platforms of an index (each with its digest) or the layers of
/// an image, what refers to it (referrers, cosign tags) and whether a
/// signature is among them.
pub(crate) fn inspect(settings: &Registries, reference: &str) -> Result<Done, String> {
    let r = Reference::parse(reference).map_err(|e| format!("{reference}: {e}"))?;
    let client = client(settings, &r)?;
    let rt = runtime().map_err(|e| e.message())?;
    let looked = rt.block_on(async {
        let manifest = client.get_manifest(&r.repository, &r.tag_or_digest()).await?;
        let referring = imagegate_registry::referrers::referring(&client, &r.repository, &manifest.digest, true).await?;
        Ok::<_, imagegate_registry::Error>((manifest, referring))
    });
    let (manifest, referring) = match looked {
        Ok(v) => v,
        Err(e) => return Ok(failed(e.to_string())),
    };
    let name = r.to_string();
    let mut result = json!({
        "failed": false,
        "changed": false,
        "reference": name,
        "digest": manifest.digest.to_string(),
        "media_type": untrusted_text(&manifest.media_type, 200),
        "size": manifest.bytes.len(),
        "signature": referring.signature(),
        "referrers": referring.referrers,
        "cosign_tags": referring.cosign_tags,
    });
    let shape = match manifest.parse(&name).map_err(|e| e.to_string())? {
        Parsed::Index { manifests } => {
            let platforms: Vec<Value> = manifests
                .iter()
                .map(|d| {
                    json!({
                        "platform": d.platform.as_ref().map(|p| untrusted_text(&p.to_string(), 100)),
                        "digest": untrusted_text(&d.digest, 100),
                        "size": d.size,
                    })
                })
                .collect();
            let line = format!("an index of {} images", platforms.len());
            result["platforms"] = Value::Array(platforms);
            line
        }
        Parsed::Image { layers, .. } => {
            let size: u64 = layers.iter().map(|l| l.size).sum();
            result["layers"] = json!(layers.len());
            result["layers_size"] = json!(size);
            format!("an image of {} layers ({size} bytes)", layers.len())
        }
    };
    let referrers = match referring.referrers.len() {
        0 => String::new(),
        1 => "; 1 referrer".into(),
        n => format!("; {n} referrers"),
    };
    result["msg"] = json!(format!(
        "{name}: {} {shape}; {}{referrers}",
        manifest.digest,
        if result["signature"].is_null() {
            "no signature found"
        } else {
            "signed"
        }
    ));
    Ok(Done { result, bad_input: false })
}
