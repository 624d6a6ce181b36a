//! The merge of `registries_conf`, without any file access: the site's
//! registries.conf files as parsed TOML in, the text of our drop-in out.
//!
//! containers-registries.conf.d(5): files are read in order (the main file,
//! then the drop-ins by name) and a later file's `[[registry]]` of the same
//! prefix replaces the earlier entry whole, as a later
//! `unqualified-search-registries` replaces the earlier list. So our
//! drop-in must repeat what the site configured for each prefix it writes,
//! or the site's mirrors are gone while the job runs.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// One site file, parsed.
#[derive(Debug, Clone)]
pub struct SiteFile {
    pub path: PathBuf,
    pub table: Table,
    /// A drop-in read after ours (its name sorts after ours): what it sets
    /// wins over our drop-in.
    pub after_ours: bool,
}

/// What the drop-in is to say.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The buildset registry as image names spell it (`host:port`).
    pub buildset: &'a str,
    /// The registries whose pulls try the buildset registry first.
    pub namespaces: &'a [String],
    /// The registries short names are searched in, ours first.
    pub unqualified: &'a [String],
}

/// Our drop-in's text, and what the module should warn about.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub text: String,
    pub warnings: Vec<String>,
}

const HEADER: &str = "\
# Written by imagegate.containers.registries_conf (use_buildset_registry):
# pulls of these registries try the buildset registry first, then the
# mirrors this node's own registries.conf files give them. Rewritten on
# every run; change the site's files instead.
";

/// The effective site configuration: every file applied in order.
#[derive(Debug, Default)]
struct Site<'a> {
    /// Entries by prefix, in the order first seen, with the file that set
    /// each last.
    registries: Vec<(String, Table, &'a SiteFile)>,
    unqualified: Option<(Vec<String>, &'a SiteFile)>,
    short_name_mode: Option<String>,
}

/// An error in a site file: the file and what is wrong with it.
pub fn file_error(path: &Path, problem: impl std::fmt::Display) -> String {
    format!("{}: {problem}", path.display())
}

/// The mirror location of `namespace` in the buildset registry: docker.io
/// images are kept there un-namespaced, others under their registry's
/// name, as zuul-jobs lays them out.
pub fn buildset_location(buildset: &str, namespace: &str) -> String {
    if namespace == "docker.io" {
        buildset.to_string()
    } else {
        format!("{buildset}/{namespace}")
    }
}

/// Merges the site files (in the order the tools read them) with the
/// request into our drop-in's text. Fails naming the file whose content the
/// tools would refuse, or could not be merged faithfully.
pub fn merge(files: &[SiteFile], request: &Request) -> Result<Merged, String> {
    let site = effective(files)?;
    let mut warnings = Vec::new();
    let mut out = Table::new();
    if let Some(list) = unqualified(&site, request, &mut warnings) {
        out.insert("unqualified-search-registries".into(), strings(&list));
    }
    let mut entries = Vec::new();
    for namespace in request.namespaces {
        let found = site.registries.iter().find(|(prefix, _, _)| prefix == namespace);
        if let Some((_, _, file)) = found.filter(|(_, _, f)| f.after_ours) {
            warnings.push(format!(
                "{} is read after this drop-in and replaces its {namespace} entry: pulls of {namespace} will not try the buildset registry",
                file.path.display()
            ));
        }
        let site_entry = found.map(|(_, entry, file)| (entry, *file));
        entries.push(Value::Table(entry_for(namespace, site_entry, request.buildset)?));
    }
    if !entries.is_empty() {
        out.insert("registry".into(), Value::Array(entries));
    }
    let body = toml::to_string(&out).map_err(|e| format!("cannot write the drop-in as TOML: {e}"))?;
    Ok(Merged {
        text: format!("{HEADER}\n{body}"),
        warnings,
    })
}

/// The site's configuration after every file is applied.
fn effective(files: &[SiteFile]) -> Result<Site<'_>, String> {
    let mut site = Site::default();
    for file in files {
        let v2 = as_v2(file)?;
        for entry in v2.registries {
            let prefix = entry_prefix(&entry).ok_or_else(|| file_error(&file.path, "a [[registry]] has neither prefix nor location"))?;
            match site.registries.iter_mut().find(|(p, _, _)| *p == prefix) {
                Some(slot) => *slot = (prefix, entry, file),
                None => site.registries.push((prefix, entry, file)),
            }
        }
        if let Some(list) = v2.unqualified {
            site.unqualified = Some((list, file));
        }
        if let Some(mode) = v2.short_name_mode {
            site.short_name_mode = Some(mode);
        }
    }
    Ok(site)
}

/// One file's settings in the version 2 shape.
struct V2 {
    registries: Vec<Table>,
    unqualified: Option<Vec<String>>,
    short_name_mode: Option<String>,
}

/// The settings of a file, reading the deprecated version 1 tables
/// (`[registries.search]`, `[registries.insecure]`, `[registries.block]`)
/// as the version 2 settings they stand for.
fn as_v2(file: &SiteFile) -> Result<V2, String> {
    let t = &file.table;
    let err = |problem: String| file_error(&file.path, problem);
    let short_name_mode = match t.get("short-name-mode") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(err("short-name-mode is not a string".into())),
    };
    if let Some(v1) = t.get("registries") {
        if t.contains_key("registry") || t.contains_key("unqualified-search-registries") {
            return Err(err(
                "mixes the version 1 [registries.*] tables with version 2 settings, which the container tools refuse".into(),
            ));
        }
        let v1 = v1.as_table().ok_or_else(|| err("registries is not a table".into()))?;
        return Ok(V2 {
            registries: v1_entries(v1).map_err(err)?,
            unqualified: v1_list(v1, "search").map_err(err)?,
            short_name_mode,
        });
    }
    let registries = match t.get("registry") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| checked_entry(item).map_err(|p| err(format!("[[registry]] {}: {p}", i + 1))))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err("registry is not an array of [[registry]] tables".into())),
    };
    let unqualified = match t.get("unqualified-search-registries") {
        None => None,
        Some(v) => Some(string_list(v).ok_or_else(|| err("unqualified-search-registries is not a list of strings".into()))?),
    };
    Ok(V2 {
        registries,
        unqualified,
        short_name_mode,
    })
}

/// `[registries.<kind>] registries = [...]` of a version 1 file.
fn v1_list(v1: &Table, kind: &str) -> Result<Option<Vec<String>>, String> {
    let Some(section) = v1.get(kind) else { return Ok(None) };
    let list = section.get("registries").map(string_list);
    match list {
        None => Ok(None),
        Some(Some(list)) => Ok(Some(list)),
        Some(None) => Err(format!("[registries.{kind}] registries is not a list of strings")),
    }
}

/// The version 2 entries a version 1 file's insecure and blocked lists
/// stand for: one per registry, with `insecure` and `blocked` set.
fn v1_entries(v1: &Table) -> Result<Vec<Table>, String> {
    let insecure = v1_list(v1, "insecure")?.unwrap_or_default();
    let blocked = v1_list(v1, "block")?.unwrap_or_default();
    let mut entries: Vec<Table> = Vec::new();
    for (name, key) in insecure
        .iter()
        .map(|n| (n, "insecure"))
        .chain(blocked.iter().map(|n| (n, "blocked")))
    {
        let index = match entries.iter().position(|e| e.get("prefix").and_then(Value::as_str) == Some(name)) {
            Some(i) => i,
            None => {
                let mut entry = Table::new();
                entry.insert("prefix".into(), Value::String(name.clone()));
                entry.insert("location".into(), Value::String(name.clone()));
                entries.push(entry);
                entries.len() - 1
            }
        };
        entries[index].insert(key.into(), Value::Boolean(true));
    }
    Ok(entries)
}

/// A `[[registry]]` table, checked in the keys the merge reads.
fn checked_entry(item: &Value) -> Result<Table, String> {
    let entry = item.as_table().ok_or("is not a table")?;
    for key in ["prefix", "location"] {
        if entry.get(key).is_some_and(|v| !v.is_str()) {
            return Err(format!("{key} is not a string"));
        }
    }
    if entry.get("mirror-by-digest-only").is_some_and(|v| !v.is_bool()) {
        return Err("mirror-by-digest-only is not true or false".into());
    }
    for (i, mirror) in mirrors_of(entry)?.iter().enumerate() {
        if mirror.get("location").and_then(Value::as_str).is_none() {
            return Err(format!("[[registry.mirror]] {} has no location", i + 1));
        }
    }
    Ok(entry.clone())
}

/// The `[[registry.mirror]]` tables of an entry.
fn mirrors_of(entry: &Table) -> Result<Vec<Table>, String> {
    match entry.get("mirror") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.as_table()
                    .cloned()
                    .ok_or_else(|| "a [[registry.mirror]] is not a table".to_string())
            })
            .collect(),
        Some(_) => Err("mirror is not an array of [[registry.mirror]] tables".into()),
    }
}

/// An entry's prefix: `prefix`, or `location` when there is none.
fn entry_prefix(entry: &Table) -> Option<String> {
    entry
        .get("prefix")
        .or_else(|| entry.get("location"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Our entry for `namespace`: the site's entry (every key of it kept), with
/// the buildset registry as first mirror and the site's mirrors after it.
/// The site's `mirror-by-digest-only = true` would keep the buildset
/// registry from tag pulls (the speculative images are pulled by tag), so
/// it becomes `pull-from-mirror = "digest-only"` on each of the site's
/// mirrors: the same for them, and the buildset registry serves all pulls.
fn entry_for(namespace: &str, site: Option<(&Table, &SiteFile)>, buildset: &str) -> Result<Table, String> {
    let ours = buildset_location(buildset, namespace);
    let mut entry = Table::new();
    entry.insert("prefix".into(), Value::String(namespace.to_string()));
    entry.insert("location".into(), Value::String(namespace.to_string()));
    let Some((site_entry, file)) = site else {
        entry.insert("mirror".into(), Value::Array(vec![Value::Table(mirror(&ours))]));
        return Ok(entry);
    };
    let digest_only = site_entry.get("mirror-by-digest-only").and_then(Value::as_bool) == Some(true);
    for (key, value) in site_entry {
        if key != "mirror" && !(digest_only && key == "mirror-by-digest-only") {
            entry.insert(key.clone(), value.clone());
        }
    }
    let mut mirrors = vec![Value::Table(mirror(&ours))];
    for mut m in mirrors_of(site_entry).map_err(|p| file_error(&file.path, p))? {
        if m.get("location").and_then(Value::as_str) == Some(ours.as_str()) {
            continue;
        }
        if digest_only {
            if m.contains_key("pull-from-mirror") {
                return Err(file_error(
                    &file.path,
                    format!("the {namespace} entry sets mirror-by-digest-only and a mirror's pull-from-mirror, which the container tools refuse"),
                ));
            }
            m.insert("pull-from-mirror".into(), Value::String("digest-only".into()));
        }
        mirrors.push(Value::Table(m));
    }
    entry.insert("mirror".into(), Value::Array(mirrors));
    Ok(entry)
}

fn mirror(location: &str) -> Table {
    let mut m = Table::new();
    m.insert("location".into(), Value::String(location.to_string()));
    m
}

/// The search list to write: ours first, then the site's, each once. Where
/// the site enforces short-name resolution, a list of more than one
/// registry makes every short-name pull without a terminal fail, so ours is
/// written alone, as zuul-jobs writes it. None: nothing to write.
fn unqualified(site: &Site, request: &Request, warnings: &mut Vec<String>) -> Option<Vec<String>> {
    let mut list: Vec<String> = Vec::new();
    for name in request.unqualified {
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
    let ours = list.len();
    if let Some((site_list, file)) = &site.unqualified {
        if file.after_ours {
            warnings.push(format!(
                "{} is read after this drop-in and replaces its unqualified-search-registries",
                file.path.display()
            ));
        }
        for name in site_list {
            if !list.contains(name) {
                list.push(name.clone());
            }
        }
    }
    if site.short_name_mode.as_deref() == Some("enforcing") && ours > 0 && list.len() > ours.max(1) {
        warnings.push(format!(
            "short-name-mode is enforcing: unqualified-search-registries is {:?} alone, without the site's {:?}, so that short names resolve without a terminal",
            &list[..ours],
            &list[ours..]
        ));
        list.truncate(ours);
    }
    (!list.is_empty()).then_some(list)
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|s| s.as_str().map(str::to_string)).collect()
}

fn strings(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
