//! `container_build`: build an image with podman, buildah or docker, and
//! export it (or its multi-platform index) to an OCI image layout for
//! `container_push`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use imagegate_ansible::{Context, ModuleError, ModuleSpec, Outcome};
use imagegate_registry::layout::OciLayout;
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::Reference;
use serde::Deserialize;
use serde_json::{json, Map, Value};

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
    pub container_command: Builder,
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
    #[serde(default)]
    pub env: BTreeMap<String, String>,
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
    pub storage_driver: Option<String>,
    #[serde(default)]
    pub storage_root: Option<PathBuf>,
    #[serde(default)]
    pub storage_runroot: Option<PathBuf>,
    #[serde(default)]
    pub isolation: Option<String>,
    #[serde(default)]
    pub extra_args: Vec<String>,
}

#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    #[default]
    Podman,
    Buildah,
    Docker,
}

impl Builder {
    fn program(self) -> &'static str {
        match self {
            Builder::Podman => "podman",
            Builder::Buildah => "buildah",
            Builder::Docker => "docker",
        }
    }
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

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    command: String,
}

fn run_cmd(mut cmd: Command, env: &BTreeMap<String, String>) -> Result<Run, ModuleError> {
    cmd.envs(env);
    let command = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| ModuleError::option("container_command", format!("cannot run {command}: {e}")))?;
    Ok(Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        command,
    })
}

fn failure(what: &str, run: Run) -> ModuleError {
    let mut lines: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let keep = lines.len().saturating_sub(TAIL_LINES);
    lines.drain(..keep);
    let mut values = Map::new();
    values.insert("stdout".into(), json!(run.stdout));
    values.insert("stderr".into(), json!(run.stderr));
    values.insert("cmd".into(), json!(run.command));
    ModuleError::Failed {
        msg: format!("{what} failed; last lines of its output:\n{}", lines.join("\n")),
        changed: false,
        values,
    }
}

/// Global flags for podman and buildah (storage location and driver).
fn global_flags(args: &Args) -> Vec<String> {
    if args.container_command == Builder::Docker {
        return Vec::new();
    }
    storage_flags(
        args.storage_driver.as_deref(),
        args.storage_root.as_deref(),
        args.storage_runroot.as_deref(),
    )
}

/// podman's and buildah's global flags that locate their storage.
pub(crate) fn storage_flags(driver: Option<&str>, root: Option<&Path>, runroot: Option<&Path>) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(r) = root {
        f.extend(["--root".to_string(), r.display().to_string()]);
    }
    if let Some(r) = runroot {
        f.extend(["--runroot".to_string(), r.display().to_string()]);
    }
    if let Some(d) = driver {
        f.extend(["--storage-driver".to_string(), d.to_string()]);
    }
    f
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
    if !args.context.is_dir() {
        return Err(ModuleError::option(
            "context",
            format!("{} is not a directory", args.context.display()),
        ));
    }
    let repo = Reference::parse_repository(&args.repository).map_err(|e| ModuleError::option("repository", e.to_string()))?;
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
    if args.container_command == Builder::Docker && !args.arch.is_empty() && !docker_has_buildx(&args.env) {
        return Err(ModuleError::option(
            "arch",
            "docker builds for a platform only with buildx, which is not installed: install the docker buildx plugin, or leave arch out",
        ));
    }
    let containerfile = match &args.container_filename {
        Some(f) => args.context.join(f),
        None if args.container_command == Builder::Docker => build_dir.join("Dockerfile"),
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
    let siblings_dir = args.context.join(SIBLINGS_DIR);
    let siblings = checked_siblings(&args, &siblings_dir)?;
    let layout_dir = match &args.layout {
        Some(l) => Some(checked_layout(l)?),
        None => None,
    };
    let platforms: Vec<String> = args.arch.iter().map(|a| platform(a)).collect();
    let name = format!("{}:{}", repo.repository_name(), args.tags[0]);
    if let Some(c) = &args.change {
        labels.insert("org.zuul-ci.change".into(), c.clone());
    }
    if let Some(u) = &args.change_url {
        labels.insert("org.zuul-ci.change_url".into(), u.clone());
    }
    let mut values = Map::new();
    values.insert("layout".into(), json!(layout_dir));
    values.insert("layout_name".into(), json!(args.tags[0]));
    values.insert("image".into(), json!(name));
    values.insert("platforms".into(), json!(platforms));
    if ctx.check_mode {
        return Ok(Outcome {
            changed: true,
            msg: format!("would build {name} from {}", containerfile.display()),
            diff: None,
            values,
            lists: Vec::new(),
        });
    }

    // Siblings are copied in for the build and removed afterwards.
    let _siblings = if siblings.is_empty() {
        Siblings(None)
    } else {
        let guard = Siblings(Some(siblings_dir.clone()));
        for (name, from) in &siblings {
            copy_tree(from, &siblings_dir.join(name))
                .map_err(|e| ModuleError::failed(format!("copying sibling {} into the context: {e}", name.display())))?;
        }
        guard
    };

    // Everything the builder writes (iid file, docker's OCI archive, and the
    // layout unless the user named one) goes to a private directory (0700,
    // a unique name), removed when the module ends.
    let workdir = tempdir()?;
    let layout = layout_dir.clone().unwrap_or_else(|| workdir.path().join("layout"));
    let iidfile = workdir.path().join("iid");
    let program = args.container_command.program();
    let multi = platforms.len() > 1;
    let mut cmd = Command::new(program);
    cmd.args(global_flags(&args));
    if args.container_command == Builder::Docker && !platforms.is_empty() {
        cmd.args(["buildx", "build"]);
    } else {
        cmd.arg("build");
    }
    if let Some(i) = &args.isolation {
        if args.container_command != Builder::Docker {
            cmd.arg(format!("--isolation={i}"));
        }
    }
    // Every value goes in the same word as its option (`--opt=value`), so a
    // value that starts with `-` is that option's value and never an option
    // of its own; the context comes after `--`.
    cmd.arg(flag_value("--file", &containerfile));
    if let Some(t) = &args.target {
        cmd.arg(format!("--target={t}"));
    }
    for b in &args.build_args {
        cmd.arg(format!("--build-arg={b}"));
    }
    if !args.siblings.is_empty() {
        // As zuul-jobs does: the sibling paths, for the Containerfile to use.
        cmd.arg(format!("--build-arg=ZUUL_SIBLINGS={}", args.siblings.join(" ")));
    }
    for (k, v) in &labels {
        cmd.arg(format!("--label={k}={v}"));
    }
    let docker_oci_tar = workdir.path().join("image.tar");
    match (args.container_command, multi) {
        (Builder::Docker, _) if !platforms.is_empty() => {
            cmd.arg(format!("--platform={}", platforms.join(",")));
            cmd.arg(format!("--output=type=oci,dest={}", docker_oci_tar.display()));
        }
        (_, true) => {
            cmd.arg(format!("--platform={}", platforms.join(",")))
                .arg(format!("--manifest={name}"));
            // podman and buildah 4.3 (Debian 12) reuse a step cached for one
            // platform for the next when nothing platform-specific precedes
            // it (FROM scratch): the second platform gets the first one's
            // image and the list ends up with a single, mislabelled entry.
            // Seen by the conformance suite (tests/conformance, multiarch).
            cmd.arg("--no-cache");
        }
        (_, false) => {
            if let Some(p) = platforms.first() {
                cmd.arg(format!("--platform={p}"));
            }
            for t in &args.tags {
                cmd.arg(format!("--tag={}:{t}", repo.repository_name()));
            }
        }
    }
    if !multi {
        cmd.arg(flag_value("--iidfile", &iidfile));
    }
    cmd.args(&args.extra_args);
    cmd.arg("--").arg(&build_dir);
    if multi && args.container_command != Builder::Docker {
        // A manifest list of that name from an earlier build would be extended.
        let mut rm = Command::new(program);
        rm.args(global_flags(&args)).args(["manifest", "rm", "--", &name]);
        let _ = run_cmd(rm, &args.env);
    }
    let build = run_cmd(cmd, &args.env)?;
    if !build.ok {
        return Err(failure(&format!("{program} build"), build));
    }
    let build_output = build.stdout.clone();

    // Export to the OCI layout. A layout the user named is replaced (it was
    // checked above to be empty or a layout); the default one is new.
    if layout_dir.is_some() && layout.exists() {
        std::fs::remove_dir_all(&layout).map_err(|e| ModuleError::option("layout", format!("cannot replace {}: {e}", layout.display())))?;
    }
    std::fs::create_dir_all(&layout).map_err(|e| ModuleError::option("layout", format!("cannot create {}: {e}", layout.display())))?;
    let export = match args.container_command {
        Builder::Docker if !platforms.is_empty() => {
            let mut c = Command::new("tar");
            c.arg("-xf").arg(&docker_oci_tar).arg("-C").arg(&layout);
            Some(c)
        }
        Builder::Docker => {
            let image = format!("{}:{}", repo.repository_name(), args.tags[0]);
            docker_save(&image, &layout, &args.tags[0], &args.env)?;
            None
        }
        _ => {
            let mut c = Command::new(program);
            c.args(global_flags(&args));
            if multi {
                c.args(["manifest", "push", "--all"]);
            } else {
                c.arg("push");
            }
            c.arg("--").arg(&name).arg(format!("oci:{}:{}", layout.display(), args.tags[0]));
            Some(c)
        }
    };
    if let Some(export) = export {
        let exported = run_cmd(export, &args.env)?;
        if !exported.ok {
            return Err(failure("exporting the image to an OCI layout", exported));
        }
    }
    let oci = OciLayout::open(&layout).map_err(|e| ModuleError::failed(format!("the exported layout: {e}")))?;
    let layout_name = if oci.names().contains(&args.tags[0]) {
        Some(args.tags[0].as_str())
    } else {
        None
    };
    let manifest = oci
        .resolve(layout_name)
        .map_err(|e| ModuleError::failed(format!("the exported layout: {e}")))?;
    let image_id = std::fs::read_to_string(&iidfile).unwrap_or_default().trim().to_string();
    values.insert("digest".into(), json!(manifest.digest.to_string()));
    values.insert("media_type".into(), json!(manifest.media_type));
    values.insert("image_id".into(), if image_id.is_empty() { Value::Null } else { json!(image_id) });
    values.insert("layout_name".into(), json!(layout_name));
    values.insert("stdout".into(), json!(build_output));
    let exported_to = match &layout_dir {
        Some(l) => format!("exported to {}", l.display()),
        None => "no layout kept (none asked for)".to_string(),
    };
    Ok(Outcome {
        changed: true,
        msg: format!("built {name} ({}), {exported_to}", manifest.digest),
        diff: None,
        values,
        lists: Vec::new(),
    })
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

/// `--opt=<path>` in one word: a path that starts with `-` stays the
/// option's value.
fn flag_value(option: &str, path: &Path) -> std::ffi::OsString {
    let mut word = std::ffi::OsString::from(format!("{option}="));
    word.push(path);
    word
}

/// Whether `docker buildx` answers.
fn docker_has_buildx(env: &BTreeMap<String, String>) -> bool {
    let mut c = Command::new("docker");
    c.args(["buildx", "version"]).envs(env);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    c.status().map(|s| s.success()).unwrap_or(false)
}

/// Streams `docker save <image>` into an OCI layout (layers compressed as
/// they pass and checked against the config's diff_ids), so a plain
/// `docker build` is pushed by the engine without buildx.
pub(crate) fn docker_save(image: &str, layout: &Path, ref_name: &str, env: &BTreeMap<String, String>) -> Result<(), ModuleError> {
    use std::io::Read;
    let mut cmd = Command::new("docker");
    cmd.args(["save", "--", image]).envs(env);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let command = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| ModuleError::option("container_command", format!("cannot run {command}: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    // stderr is read on its own thread so a chatty docker cannot block.
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.by_ref().take(64 * 1024).read_to_string(&mut text);
        text
    });
    let converted = imagegate_registry::docker_archive::archive_to_layout(std::io::BufReader::new(stdout), layout, ref_name);
    let status = child.wait().map_err(|e| ModuleError::failed(format!("{command}: {e}")))?;
    let stderr = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(failure(
            "docker save",
            Run {
                ok: false,
                stdout: String::new(),
                stderr,
                command,
            },
        ));
    }
    converted.map_err(|e| ModuleError::failed(format!("reading the docker save archive of {image}: {e}")))?;
    Ok(())
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
