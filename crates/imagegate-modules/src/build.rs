//! `container_build`: build an image with podman, buildah or docker, and
//! export it (or its multi-platform index) to an OCI image layout for
//! `container_push`. The options are checked here; the build and the
//! export are the engine's ([`imagegate_registry::builder`]).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use imagegate_ansible::{Context, ModuleError, ModuleSpec, Outcome};
use imagegate_registry::builder::{BuildError, BuildSpec, Builder, CommandRun, Program};
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::Reference;
use serde::{Deserialize, Serialize};

pub const SPEC: ModuleSpec = ModuleSpec {
    name: "container_build",
    secret_options: crate::registries::SECRET_OPTIONS,
    lenient: &[],
};

/// Lines of builder output kept in `msg` when a build fails (all of it is in
/// `stdout` and `stderr`).
const TAIL_LINES: usize = 20;
/// Where siblings are copied inside the context, as zuul-jobs does.
const SIBLINGS_DIR: &str = ".zuul-siblings";

crate::builder_storage_args! {
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub context: PathBuf,
    /// The image name, registry included (`quay.io/org/app`).
    pub repository: String,
    #[serde(default = "latest")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub container_filename: Option<String>,
    #[serde(default)]
    pub container_command: Program,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub build_args: Vec<String>,
    /// A mapping, or a list of `key=value` strings as zuul-jobs takes them.
    #[serde(default)]
    pub labels: Labels,
    /// The build directory, relative to `context` (zuul-jobs' `path`).
    #[serde(default)]
    pub path: Option<String>,
    /// Added as the `org.zuul-ci.change` label.
    #[serde(default)]
    pub change: Option<String>,
    /// Added as the `org.zuul-ci.change_url` label.
    #[serde(default)]
    pub change_url: Option<String>,
    /// Platforms (`linux/amd64`, or just `arm64`); more than one builds an index.
    #[serde(default)]
    pub arch: Vec<String>,
    #[serde(default)]
    pub siblings: Vec<String>,
    #[serde(default)]
    pub siblings_root: Option<PathBuf>,
    /// Where to export the OCI layout; by default a private temporary
    /// directory, removed when the module ends.
    #[serde(default)]
    pub layout: Option<PathBuf>,
    #[serde(default)]
    pub isolation: Option<String>,
    #[serde(default)]
    pub extra_args: Vec<String>,
}
}

/// Declares a module's args struct with the builder storage options
/// appended (`storage_driver`, `storage_root`, `storage_runroot` for podman
/// and buildah, `env` for every builder) and a `builder` method that makes
/// the engine's [`Builder`] of them. Written into the struct, as
/// [`registry_module_args!`](crate::registry_module_args) does, to keep
/// unknown options refused and the option path of errors. `then <macro>;`
/// hands the struct on to another such macro.
#[macro_export]
macro_rules! builder_storage_args {
    (then $($next:ident)::+; $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $($next)::+! {
            $(#[$meta])*
            pub struct $name {
                $($body)*
                #[serde(default)]
                pub storage_driver: Option<String>,
                #[serde(default)]
                pub storage_root: Option<std::path::PathBuf>,
                #[serde(default)]
                pub storage_runroot: Option<std::path::PathBuf>,
                #[serde(default)]
                pub env: std::collections::BTreeMap<String, String>,
            }
        }

        impl $name {
            /// The engine's builder: `program` with these storage options
            /// and environment.
            pub fn builder(
                &self,
                program: imagegate_registry::builder::Program,
                isolation: Option<String>,
            ) -> imagegate_registry::builder::Builder {
                imagegate_registry::builder::Builder {
                    program,
                    storage_driver: self.storage_driver.clone(),
                    storage_root: self.storage_root.clone(),
                    storage_runroot: self.storage_runroot.clone(),
                    isolation,
                    env: self.env.clone(),
                }
            }
        }
    };
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::builder_storage_args! { then $crate::plain_args; $(#[$meta])* pub struct $name { $($body)* } }
    };
}

/// The end of a chain of args macros: the struct as it is.
#[doc(hidden)]
#[macro_export]
macro_rules! plain_args {
    ($item:item) => {
        $item
    };
}

/// Image labels, given as zuul-jobs gives them (a list of `key=value`
/// strings) or as a mapping.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(untagged)]
pub enum Labels {
    #[default]
    None,
    Map(BTreeMap<String, String>),
    List(Vec<String>),
}

impl Labels {
    fn pairs(&self) -> Result<BTreeMap<String, String>, ModuleError> {
        match self {
            Labels::None => Ok(BTreeMap::new()),
            Labels::Map(m) => Ok(m.clone()),
            Labels::List(items) => items
                .iter()
                .map(|item| match item.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                    _ => Err(ModuleError::option("labels", format!("'{item}' is not key=value"))),
                })
                .collect(),
        }
    }
}

fn latest() -> Vec<String> {
    vec!["latest".into()]
}

/// The platform as the builders take it: `amd64` -> `linux/amd64`.
fn platform(a: &str) -> String {
    if a.contains('/') {
        a.to_string()
    } else {
        format!("linux/{a}")
    }
}

/// Copies a directory tree (symlinks kept as links).
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Removes `.zuul-siblings` when dropped, whatever happened to the build.
struct Siblings(Option<PathBuf>);

impl Drop for Siblings {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The siblings to copy, as (name, resolved source directory), checked
/// before anything is copied: each must be a relative path naming a
/// directory that resolves (through `..` and symlinks) inside
/// `siblings_root`, and must not hold the build context, which the copy
/// lands in.
fn checked_siblings(args: &Args, siblings_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, ModuleError> {
    if args.siblings.is_empty() {
        return Ok(Vec::new());
    }
    if std::fs::symlink_metadata(siblings_dir).is_ok() {
        return Err(ModuleError::option(
            "siblings",
            format!("{} already exists; refusing to overwrite it", siblings_dir.display()),
        ));
    }
    let root = args
        .siblings_root
        .as_deref()
        .ok_or_else(|| ModuleError::option("siblings_root", "required with siblings"))?;
    let real_root = std::fs::canonicalize(root).map_err(|e| ModuleError::option("siblings_root", format!("{}: {e}", root.display())))?;
    let real_context =
        std::fs::canonicalize(&args.context).map_err(|e| ModuleError::option("context", format!("{}: {e}", args.context.display())))?;
    let mut out = Vec::new();
    for s in &args.siblings {
        let refuse = |why: String| ModuleError::option("siblings", format!("entry '{s}' {why}; nothing was copied"));
        let name = Path::new(s);
        if name.is_absolute() {
            return Err(refuse(format!("is an absolute path; give a path relative to {}", root.display())));
        }
        if !name.components().any(|c| matches!(c, Component::Normal(_))) {
            return Err(refuse(format!("names no project under {}", root.display())));
        }
        if name.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(refuse(format!("leaves {} through '..'", root.display())));
        }
        let real =
            std::fs::canonicalize(root.join(name)).map_err(|e| refuse(format!("is not a directory under {}: {e}", root.display())))?;
        if !real.starts_with(&real_root) || real == real_root {
            return Err(refuse(format!(
                "resolves to {}, outside {} (through a symlink)",
                real.display(),
                root.display()
            )));
        }
        if !real.is_dir() {
            return Err(refuse(format!("is not a directory under {}", root.display())));
        }
        if real_context.starts_with(&real) {
            return Err(refuse(format!("holds the build context {}", args.context.display())));
        }
        out.push((name.to_path_buf(), real));
    }
    Ok(out)
}

/// A layout path the user named: replaced by the build, so it must be
/// absent, an empty directory, or an OCI image layout; anything else (a
/// home directory given by mistake) is refused rather than deleted.
fn checked_layout(layout: &Path) -> Result<PathBuf, ModuleError> {
    let meta = match std::fs::symlink_metadata(layout) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(layout.to_path_buf()),
        Err(e) => return Err(ModuleError::option("layout", format!("{}: {e}", layout.display()))),
        Ok(m) => m,
    };
    let refuse = |why: &str| ModuleError::option("layout", format!("{} {why}; refusing to replace it", layout.display()));
    if !meta.is_dir() {
        return Err(refuse("exists and is not a directory"));
    }
    let empty = std::fs::read_dir(layout)
        .map_err(|e| ModuleError::option("layout", format!("{}: {e}", layout.display())))?
        .next()
        .is_none();
    if !empty && !layout.join("oci-layout").is_file() {
        return Err(refuse("is a directory that is neither empty nor an OCI image layout"));
    }
    Ok(layout.to_path_buf())
}

pub fn run(args: Args, ctx: &Context) -> Result<Outcome, ModuleError> {
    let checked = check(&args)?;
    let name = checked.spec.name();
    let layout_dir = checked.layout_dir.as_deref();
    if ctx.check_mode {
        return Ok(Outcome {
            changed: true,
            msg: format!("would build {name} from {}", checked.spec.containerfile.display()),
            diff: None,
            values: imagegate_ansible::values(&Planned {
                layout: layout_dir,
                layout_name: Some(&args.tags[0]),
                image: &name,
                platforms: &checked.spec.platforms,
            }),
            lists: Vec::new(),
        });
    }
    // Siblings are copied in for the build and removed afterwards.
    let _siblings = copy_siblings(&checked.siblings, &args.context.join(SIBLINGS_DIR))?;
    // Everything the builder writes (iid file, docker's OCI archive, and the
    // layout unless the user named one) goes to a private directory (0700,
    // a unique name), removed when the module ends.
    let workdir = tempdir()?;
    let layout = layout_dir.map_or_else(|| workdir.path().join("layout"), Path::to_path_buf);
    let built = checked
        .builder
        .build(&checked.spec, &layout, layout_dir.is_some(), workdir.path())
        .map_err(build_failure)?;
    let exported_to = match layout_dir {
        Some(l) => format!("exported to {}", l.display()),
        None => "no layout kept (none asked for)".to_string(),
    };
    Ok(Outcome {
        changed: true,
        msg: format!("built {name} ({}), {exported_to}", built.digest),
        diff: None,
        values: imagegate_ansible::values(&BuildResult {
            planned: Planned {
                layout: layout_dir,
                layout_name: built.layout_name.as_deref(),
                image: &name,
                platforms: &checked.spec.platforms,
            },
            digest: &built.digest,
            media_type: &built.media_type,
            image_id: built.image_id.as_deref(),
            stdout: &built.stdout,
        }),
        lists: Vec::new(),
    })
}

/// What a build would make (the whole result in check mode).
#[derive(Serialize)]
struct Planned<'a> {
    layout: Option<&'a Path>,
    layout_name: Option<&'a str>,
    image: &'a str,
    platforms: &'a [String],
}

#[derive(Serialize)]
struct BuildResult<'a> {
    #[serde(flatten)]
    planned: Planned<'a>,
    digest: &'a str,
    media_type: &'a str,
    image_id: Option<&'a str>,
    stdout: &'a str,
}

/// The options, checked: the builder, what to build, the siblings to copy
/// in and the layout asked for.
struct Checked {
    builder: Builder,
    spec: BuildSpec,
    siblings: Vec<(PathBuf, PathBuf)>,
    layout_dir: Option<PathBuf>,
}

fn check(args: &Args) -> Result<Checked, ModuleError> {
    if !args.context.is_dir() {
        return Err(ModuleError::option(
            "context",
            format!("{} is not a directory", args.context.display()),
        ));
    }
    let repo = Reference::parse_repository(&args.repository).map_err(|e| ModuleError::option("repository", e.to_string()))?;
    check_words(args)?;
    let build_dir = match &args.path {
        None => args.context.clone(),
        Some(p) if Path::new(p).is_absolute() || Path::new(p).components().any(|c| c == std::path::Component::ParentDir) => {
            return Err(ModuleError::option("path", format!("'{p}' must be a relative path inside context")));
        }
        Some(p) => args.context.join(p),
    };
    if !build_dir.is_dir() {
        return Err(ModuleError::option("path", format!("{} is not a directory", build_dir.display())));
    }
    let mut labels = args.labels.pairs()?;
    let builder = args.builder(args.container_command, args.isolation.clone());
    if !args.arch.is_empty() && !builder.builds_for_platforms() {
        return Err(ModuleError::option(
            "arch",
            "docker builds for a platform only with buildx, which is not installed: install the docker buildx plugin, or leave arch out",
        ));
    }
    let containerfile = containerfile(args, &build_dir)?;
    let siblings = checked_siblings(args, &args.context.join(SIBLINGS_DIR))?;
    let layout_dir = args.layout.as_deref().map(checked_layout).transpose()?;
    if let Some(c) = &args.change {
        labels.insert("org.zuul-ci.change".into(), c.clone());
    }
    if let Some(u) = &args.change_url {
        labels.insert("org.zuul-ci.change_url".into(), u.clone());
    }
    let spec = BuildSpec {
        containerfile,
        build_dir,
        target: args.target.clone(),
        build_args: args.build_args.clone(),
        siblings: args.siblings.clone(),
        labels,
        platforms: args.arch.iter().map(|a| platform(a)).collect(),
        repository: repo.repository_name(),
        tags: args.tags.clone(),
        extra_args: args.extra_args.clone(),
    };
    Ok(Checked {
        builder,
        spec,
        siblings,
        layout_dir,
    })
}

/// The options that reach the builder's command line as words: tags,
/// build arguments, the target stage.
fn check_words(args: &Args) -> Result<(), ModuleError> {
    if args.tags.is_empty() {
        return Err(ModuleError::option("tags", "give at least one tag"));
    }
    if let Some(t) = args.tags.iter().find(|t| !is_valid_tag(t)) {
        return Err(ModuleError::option("tags", format!("'{t}' is not a valid tag")));
    }
    // A build argument without `=` takes its value from the build's
    // environment (container_build_extra_env), as the builders do.
    if let Some(b) = args
        .build_args
        .iter()
        .find(|b| !is_build_arg_name(b.split('=').next().unwrap_or("")))
    {
        return Err(ModuleError::option(
            "build_args",
            format!("'{b}' does not start with an argument name (letters, digits and _; not a digit first)"),
        ));
    }
    if let Some(t) = args.target.as_deref().filter(|t| !is_stage_name(t)) {
        return Err(ModuleError::option("target", format!("'{t}' is not a build stage name")));
    }
    Ok(())
}

/// The Containerfile: `container_filename` in the context, or the build
/// directory's Containerfile (podman, buildah) or Dockerfile.
fn containerfile(args: &Args, build_dir: &Path) -> Result<PathBuf, ModuleError> {
    let containerfile = match &args.container_filename {
        Some(f) => args.context.join(f),
        None if args.container_command == Program::Docker => build_dir.join("Dockerfile"),
        None => {
            let c = build_dir.join("Containerfile");
            if c.is_file() {
                c
            } else {
                build_dir.join("Dockerfile")
            }
        }
    };
    if !containerfile.is_file() {
        return Err(ModuleError::option(
            "container_filename",
            format!("{} does not exist", containerfile.display()),
        ));
    }
    Ok(containerfile)
}

/// Copies the siblings into the context; they go when the guard drops.
fn copy_siblings(siblings: &[(PathBuf, PathBuf)], siblings_dir: &Path) -> Result<Siblings, ModuleError> {
    if siblings.is_empty() {
        return Ok(Siblings(None));
    }
    let guard = Siblings(Some(siblings_dir.to_path_buf()));
    for (name, from) in siblings {
        copy_tree(from, &siblings_dir.join(name))
            .map_err(|e| ModuleError::failed(format!("copying sibling {} into the context: {e}", name.display())))?;
    }
    Ok(guard)
}

/// A builder's failure as the module reports it.
pub(crate) fn build_failure(e: BuildError) -> ModuleError {
    match e {
        BuildError::Start { command, error } => ModuleError::option("container_command", format!("cannot run {command}: {error}")),
        BuildError::Step { what, run } => step_failure(&what, run),
        BuildError::Layout(detail) => ModuleError::option("layout", detail),
        BuildError::Archive { image, error } => ModuleError::failed(format!("reading the docker save archive of {image}: {error}")),
        BuildError::Exported(e) => ModuleError::failed(format!("the exported layout: {e}")),
    }
}

/// The output of a step that failed, in the result beside its last lines.
#[derive(Serialize)]
struct StepOutput<'a> {
    stdout: &'a str,
    stderr: &'a str,
    cmd: &'a str,
}

fn step_failure(what: &str, run: CommandRun) -> ModuleError {
    ModuleError::Failed {
        msg: format!("{what} failed; last lines of its output:\n{}", run.tail(TAIL_LINES)),
        changed: false,
        values: imagegate_ansible::values(&StepOutput {
            stdout: &run.stdout,
            stderr: &run.stderr,
            cmd: &run.command,
        }),
    }
}

/// A build argument's name, as the Containerfile's `ARG` takes it.
fn is_build_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A build stage's name (`FROM ... AS <name>`), or a stage's index.
fn is_stage_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A private temporary directory (mode 0700, a unique name), removed when
/// dropped. The mode is set explicitly: without it the directory gets the
/// umask's mode (often 0755), readable by every user of the machine.
pub fn tempdir() -> Result<tempfile::TempDir, ModuleError> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("imagegate-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| {
            ModuleError::failed(format!(
                "cannot make a temporary directory in {}: {e}",
                std::env::temp_dir().display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tempdir_is_private_whatever_the_umask() {
        let dir = super::tempdir().unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(dir.path().file_name().unwrap().to_str().unwrap().starts_with("imagegate-"));
    }
}
