//! `container_retag`'s `declared` option: a promotion declared by digest in a
//! file that lives in git and is reviewed like code.
//!
//! The file is read where the task is templated (the playbook reads it with
//! Ansible's `file` lookup and `from_yaml`) and arrives here parsed, with the
//! path as the user gave it. It is held to the same standard as a module's
//! options: every key it does not know is refused, at every level, and every
//! error names the file, the entry and the file's own key (`name`, `digest`,
//! `tags`), not the option the entry is turned into. A line a reviewer
//! approves is then a line that does something.
//!
//! ```yaml
//! images:
//!   - name: registry.example.com/tripleo/nova-api
//!     digest: sha256:...
//!     tags: [current-tripleo]
//! ```

use imagegate_ansible::ModuleError;
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::{Digest, Reference};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::retag::ImageArgs;

/// The keys of the file's top level.
const TOP_KEYS: &[&str] = &["images"];
/// The keys of one entry of `images`.
const ENTRY_KEYS: &[&str] = &["name", "digest", "tags"];

/// The `declared` option.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeclaredArgs {
    /// The file as the user named it; every message names it so.
    pub file: String,
    /// The file's parsed content.
    pub content: Value,
    /// Keep the digest each target tag pointed at under `previous-<tag>`:
    /// a setting of the job, not of the reviewed file.
    #[serde(default)]
    pub keep_previous: bool,
}

/// One entry of the file, as the images of `container_retag` take it.
#[derive(Debug)]
pub struct Declared {
    pub image: ImageArgs,
    /// `<file> images[<i>]`, for messages about this entry (which name the
    /// image beside it).
    pub label: String,
}

/// What a YAML value is, in the words a file's author uses.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn failure(file: &str, place: &str, problem: impl std::fmt::Display) -> ModuleError {
    ModuleError::failed(format!("{file}: {place}: {problem}; nothing moved"))
}

/// Refuses any key of `map` not in `known`, naming it and the known ones.
fn known_keys(map: &Map<String, Value>, known: &[&str], file: &str, place: &str) -> Result<(), ModuleError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(failure(
            file,
            place,
            format!("unknown key '{key}' (the keys here are {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Reads the declared file's content into the images to promote, in the
/// file's order. Nothing is contacted: this runs before anything moves.
pub fn images(args: DeclaredArgs) -> Result<Vec<Declared>, ModuleError> {
    let file = args.file.as_str();
    let Value::Object(top) = &args.content else {
        return Err(failure(
            file,
            "the file",
            format!("must be a mapping with the key images, not {}", kind(&args.content)),
        ));
    };
    known_keys(top, TOP_KEYS, file, "top level")?;
    let list = match top.get("images") {
        None => return Err(failure(file, "images", "missing: list the images to promote")),
        Some(Value::Array(list)) if list.is_empty() => return Err(failure(file, "images", "empty: nothing to promote")),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(failure(
                file,
                "images",
                format!("must be a list of entries with name, digest and tags, not {}", kind(other)),
            ))
        }
    };
    let mut out: Vec<Declared> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let declared = entry_image(file, i, entry, args.keep_previous)?;
        let name = declared.image.repository.as_deref().unwrap_or_default();
        if let Some(j) = out.iter().position(|d| d.image.repository == declared.image.repository) {
            return Err(failure(
                file,
                &format!("images[{i}] ({name})"),
                format!("name: also given by images[{j}]; declare each image once"),
            ));
        }
        out.push(declared);
    }
    Ok(out)
}

/// One entry: `name`, `digest` and `tags`, each checked in the file's words.
fn entry_image(file: &str, i: usize, entry: &Value, keep_previous: bool) -> Result<Declared, ModuleError> {
    let Value::Object(map) = entry else {
        return Err(failure(
            file,
            &format!("images[{i}]"),
            format!("must be a mapping with name, digest and tags, not {}", kind(entry)),
        ));
    };
    let name = map.get("name").and_then(Value::as_str);
    let label = match name {
        Some(n) => format!("images[{i}] ({n})"),
        None => format!("images[{i}]"),
    };
    known_keys(map, ENTRY_KEYS, file, &label)?;
    let text = |key: &str| -> Result<&str, ModuleError> {
        match map.get(key) {
            None => Err(failure(file, &label, format!("{key}: missing"))),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(failure(file, &label, format!("{key}: must be a string, not {}", kind(other)))),
        }
    };
    let name = text("name")?;
    Reference::parse_repository(name).map_err(|e| failure(file, &label, format!("name: {e}")))?;
    let digest = text("digest")?;
    Digest::parse(digest).map_err(|e| failure(file, &label, format!("digest: {e}")))?;
    let tags = entry_tags(map.get("tags"), file, &label)?;
    Ok(Declared {
        image: ImageArgs {
            repository: Some(name.to_string()),
            src_digest: Some(digest.to_string()),
            tags,
            keep_previous,
            ..ImageArgs::default()
        },
        label: format!("{file} images[{i}]"),
    })
}

/// `tags`: a non-empty list of valid tags, each a string as written (a YAML
/// number such as `1.10` would have lost its text: it is refused, quoted it
/// is a tag).
fn entry_tags(value: Option<&Value>, file: &str, label: &str) -> Result<Vec<String>, ModuleError> {
    let list = match value {
        None => return Err(failure(file, label, "tags: missing")),
        Some(Value::Array(list)) if list.is_empty() => return Err(failure(file, label, "tags: empty: give the tags to move")),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(failure(file, label, format!("tags: must be a list of tags, not {}", kind(other)))),
    };
    let mut tags: Vec<String> = Vec::with_capacity(list.len());
    for t in list {
        let Value::String(t) = t else {
            return Err(failure(file, label, format!("tags: {t} is {}, not a string (quote it)", kind(t))));
        };
        if !is_valid_tag(t) {
            return Err(failure(file, label, format!("tags: '{t}' is not a valid tag")));
        }
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn read(content: Value) -> Result<Vec<Declared>, String> {
        images(DeclaredArgs {
            file: "stages/current-tripleo.yaml".into(),
            content,
            keep_previous: true,
        })
        .map_err(|e| match e {
            ModuleError::Failed { msg, changed, .. } => {
                assert!(!changed);
                msg
            }
            other => panic!("{other:?}"),
        })
    }

    fn entry(extra: Value) -> Value {
        let mut e = json!({"name": "registry.example.com/tripleo/nova-api", "digest": D, "tags": ["current-tripleo"]});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    }

    #[test]
    fn a_valid_file_becomes_images_by_digest() {
        let got = read(json!({"images": [entry(json!({})), entry(json!({"name": "r.example/x/y", "tags": ["a", "b", "a"]}))]})).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].image.repository.as_deref(), Some("registry.example.com/tripleo/nova-api"));
        assert_eq!(got[0].image.src_digest.as_deref(), Some(D));
        assert!(got[0].image.keep_previous);
        assert_eq!(got[1].image.tags, ["a", "b"]);
        assert_eq!(got[1].label, "stages/current-tripleo.yaml images[1]");
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let e =
            read(json!({"images": [entry(json!({})), entry(json!({"name": "r.example/x/y", "platform": "linux/arm64"}))]})).unwrap_err();
        assert_eq!(
            e,
            "stages/current-tripleo.yaml: images[1] (r.example/x/y): unknown key 'platform' (the keys here are name, digest, tags); nothing moved"
        );
        let e = read(json!({"images": [entry(json!({}))], "keep_previous": true})).unwrap_err();
        assert_eq!(
            e,
            "stages/current-tripleo.yaml: top level: unknown key 'keep_previous' (the keys here are images); nothing moved"
        );
    }

    #[test]
    fn errors_name_the_files_own_keys() {
        let e = read(json!({"images": [entry(json!({})), entry(json!({"name": "r.example/x/y", "digest": "sha256:abc"}))]})).unwrap_err();
        assert!(
            e.starts_with("stages/current-tripleo.yaml: images[1] (r.example/x/y): digest: "),
            "{e}"
        );
        assert!(e.contains("sha256:abc"), "{e}");
        assert!(!e.contains("src_digest"), "{e}");
        let e = read(json!({"images": [entry(json!({"name": "Not A Repo"}))]})).unwrap_err();
        assert!(e.starts_with("stages/current-tripleo.yaml: images[0] (Not A Repo): name: "), "{e}");
        let e = read(json!({"images": [{"digest": D, "tags": ["t"]}]})).unwrap_err();
        assert!(e.contains("images[0]: name: missing"), "{e}");
        let e = read(json!({"images": [entry(json!({"tags": ["ok", "no/slash"]}))]})).unwrap_err();
        assert!(e.contains("tags: 'no/slash' is not a valid tag"), "{e}");
    }

    #[test]
    fn wrong_types_and_empty_lists_are_refused() {
        for (content, want) in [
            (json!([1]), "the file: must be a mapping with the key images, not a list"),
            (json!({}), "images: missing"),
            (json!({"images": []}), "images: empty"),
            (
                json!({"images": "x"}),
                "images: must be a list of entries with name, digest and tags, not a string",
            ),
            (
                json!({"images": ["x"]}),
                "images[0]: must be a mapping with name, digest and tags, not a string",
            ),
            (
                json!({"images": [entry(json!({"digest": 5}))]}),
                "digest: must be a string, not a number",
            ),
            (
                json!({"images": [entry(json!({"tags": "current-tripleo"}))]}),
                "tags: must be a list of tags, not a string",
            ),
            (json!({"images": [entry(json!({"tags": []}))]}), "tags: empty"),
            (
                json!({"images": [entry(json!({"tags": [1.1]}))]}),
                "tags: 1.1 is a number, not a string (quote it)",
            ),
            (
                json!({"images": [entry(json!({})), entry(json!({}))]}),
                "images[1] (registry.example.com/tripleo/nova-api): name: also given by images[0]; declare each image once",
            ),
        ] {
            let e = read(content.clone()).unwrap_err();
            assert!(e.contains(want), "{content}: {e}");
            assert!(e.starts_with("stages/current-tripleo.yaml: "), "{e}");
        }
    }
}
