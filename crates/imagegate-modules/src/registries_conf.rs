//! `registries_conf`: write the buildset registry's registries.conf drop-in
//! (containers-registries.conf.d(5)) for podman, buildah, skopeo and cri-o,
//! merged with the node's own configuration so that no site setting is
//! lost (see [`merge`]). Runs on the node, as root through `become`.

pub mod merge;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use imagegate_ansible::{Context, Diff, ModuleError, ModuleSpec, Outcome};
use serde::{Deserialize, Serialize};

use merge::{file_error, Request, SiteFile};

pub const SPEC: ModuleSpec = ModuleSpec {
    name: "registries_conf",
    secret_options: &[],
    lenient: &[],
};

/// The main file the container tools read (containers-registries.conf(5)).
const DEFAULT_MAIN: &str = "/etc/containers/registries.conf";
/// The tools read only drop-ins named so.
const DROP_IN_SUFFIX: &str = ".conf";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Our drop-in.
    pub path: PathBuf,
    /// The buildset registry as image names spell it (`host:port`).
    pub buildset_registry: String,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub unqualified_search_registries: Vec<String>,
    /// The site's main file.
    #[serde(default = "default_main")]
    pub registries_conf: PathBuf,
    /// The site's drop-in directory; by default the main file's name with `.d`.
    #[serde(default)]
    pub registries_conf_d: Option<PathBuf>,
}

fn default_main() -> PathBuf {
    PathBuf::from(DEFAULT_MAIN)
}

pub fn run(args: Args, ctx: &Context) -> Result<Outcome, ModuleError> {
    check(&args)?;
    let dir = args.registries_conf_d.clone().unwrap_or_else(|| {
        let mut d = args.registries_conf.clone().into_os_string();
        d.push(".d");
        PathBuf::from(d)
    });
    if args.path.parent() != Some(dir.as_path()) {
        ctx.warn(format!(
            "{} is not in {}, where the container tools read drop-ins",
            args.path.display(),
            dir.display()
        ));
    }
    let files = site_files(&args.registries_conf, &dir, &args.path)?;
    let request = Request {
        buildset: &args.buildset_registry,
        namespaces: &args.namespaces,
        unqualified: &args.unqualified_search_registries,
    };
    let merged = merge::merge(&files, &request).map_err(ModuleError::failed)?;
    for w in merged.warnings {
        ctx.warn(w);
    }
    let before = current(&args.path)?;
    let changed = before.as_deref() != Some(merged.text.as_str());
    if changed && !ctx.check_mode {
        write(&args.path, &merged.text)?;
    }
    let values = imagegate_ansible::values(&Written {
        path: &args.path,
        sources: files.iter().map(|f| f.path.as_path()).collect(),
        content: &merged.text,
    });
    Ok(Outcome {
        changed,
        msg: format!("{} {}", args.path.display(), if changed { "written" } else { "unchanged" }),
        diff: ctx.diff.then(|| Diff {
            before: before.unwrap_or_default(),
            after: merged.text,
        }),
        values,
        lists: Vec::new(),
    })
}

/// The result: the file, the site files it was merged from, its text.
#[derive(Serialize)]
struct Written<'a> {
    path: &'a Path,
    sources: Vec<&'a Path>,
    content: &'a str,
}

/// Names as the configuration spells them: no scheme, no blanks, no
/// trailing slash.
fn check(args: &Args) -> Result<(), ModuleError> {
    let bad = |s: &str| s.is_empty() || s.contains("://") || s.chars().any(char::is_whitespace) || s.ends_with('/');
    if bad(&args.buildset_registry) {
        return Err(ModuleError::option(
            "buildset_registry",
            format!("{:?} is not a registry as image names spell it (host:port)", args.buildset_registry),
        ));
    }
    for (option, list) in [
        ("namespaces", &args.namespaces),
        ("unqualified_search_registries", &args.unqualified_search_registries),
    ] {
        if let Some((i, name)) = list.iter().enumerate().find(|(_, n)| bad(n)) {
            return Err(ModuleError::option(
                format!("{option}[{i}]"),
                format!("{name:?} is not a registry name (host[:port], no scheme)"),
            ));
        }
    }
    if !args.path.to_string_lossy().ends_with(DROP_IN_SUFFIX) {
        return Err(ModuleError::option(
            "path",
            format!(
                "{} does not end in {DROP_IN_SUFFIX}: the container tools would not read it",
                args.path.display()
            ),
        ));
    }
    Ok(())
}

/// The site's files in the order the tools read them: the main file, then
/// the drop-ins by name; ours is left out, and those after it marked.
fn site_files(main: &Path, dir: &Path, ours: &Path) -> Result<Vec<SiteFile>, ModuleError> {
    let mut files = Vec::new();
    if let Some(table) = read_toml(main)? {
        files.push(SiteFile {
            path: main.to_path_buf(),
            table,
            after_ours: false,
        });
    }
    let our_name = ours.file_name().map(|n| n.to_os_string());
    for path in drop_ins(dir)? {
        if path == ours {
            continue;
        }
        let after_ours = path.parent() == ours.parent() && path.file_name().map(|n| n.to_os_string()) > our_name;
        if let Some(table) = read_toml(&path)? {
            files.push(SiteFile { path, table, after_ours });
        }
    }
    Ok(files)
}

/// The `.conf` files of `dir`, sorted by name; none if it does not exist.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ModuleError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ModuleError::failed(file_error(dir, format!("cannot list it: {e}")))),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| ModuleError::failed(file_error(dir, format!("cannot list it: {e}"))))?
            .path();
        if path.to_string_lossy().ends_with(DROP_IN_SUFFIX) && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// A site file as TOML; None if it does not exist.
fn read_toml(path: &Path) -> Result<Option<toml::Table>, ModuleError> {
    let Some(text) = current(path)? else { return Ok(None) };
    text.parse::<toml::Table>()
        .map(Some)
        .map_err(|e| ModuleError::failed(file_error(path, format!("is not valid TOML: {}", e.message().trim()))))
}

/// A file's text; None if it does not exist.
fn current(path: &Path) -> Result<Option<String>, ModuleError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModuleError::failed(file_error(path, format!("cannot be read: {e}")))),
    }
}

/// Writes `path` whole or not at all (a file beside it renamed over it),
/// mode 0644 as the container tools' files are; makes its directory.
fn write(path: &Path, text: &str) -> Result<(), ModuleError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| ModuleError::failed(file_error(path, format!("cannot be written: {e}")));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".registries-conf-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}
