//! Building an image with podman, buildah or docker and exporting it (or its
//! multi-platform index) to an OCI image layout, which the engine then
//! pushes. What differs between the three builders is said here, once:
//! their global flags, how they build for platforms, how they export.
//! Every value reaches a builder in the same word as its option
//! (`--opt=value`), and the build context after `--`, so a value that
//! starts with `-` is never read as an option.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;
use crate::layout::OciLayout;

/// The builder program.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Program {
    #[default]
    Podman,
    Buildah,
    Docker,
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Program::Podman => "podman",
            Program::Buildah => "buildah",
            Program::Docker => "docker",
        }
    }

    /// `podman`, `buildah` or `docker`; anything else is `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "podman" => Some(Program::Podman),
            "buildah" => Some(Program::Buildah),
            "docker" => Some(Program::Docker),
            _ => None,
        }
    }
}

/// A builder as a run uses it: the program, where podman and buildah keep
/// their storage, their isolation, and the environment every command gets.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    pub program: Program,
    pub storage_driver: Option<String>,
    pub storage_root: Option<PathBuf>,
    pub storage_runroot: Option<PathBuf>,
    /// podman's and buildah's `--isolation` (docker has none).
    pub isolation: Option<String>,
    pub env: BTreeMap<String, String>,
}

/// A command that ran, with what it printed.
#[derive(Debug)]
pub struct CommandRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    /// The command line, as it is shown in results.
    pub command: String,
}

impl CommandRun {
    /// The last `n` lines of output that are not blank (stdout, then stderr).
    pub fn tail(&self, n: usize) -> String {
        let mut lines: Vec<&str> = self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        let keep = lines.len().saturating_sub(n);
        lines.drain(..keep);
        lines.join("\n")
    }
}

/// Why a build stopped.
#[derive(Debug)]
pub enum BuildError {
    /// The builder could not be started at all.
    Start { command: String, error: std::io::Error },
    /// A step ran and failed (`what`: `podman build`, `docker save`, ...).
    Step { what: String, run: CommandRun },
    /// The layout directory could not be replaced or made.
    Layout(String),
    /// `docker save`'s archive could not be read into the layout.
    Archive { image: String, error: Error },
    /// The exported layout is not what it should be.
    Exported(Error),
}

/// What to build.
#[derive(Debug, Default)]
pub struct BuildSpec {
    pub containerfile: PathBuf,
    /// The build context (the directory after `--`).
    pub build_dir: PathBuf,
    pub target: Option<String>,
    /// `NAME=value`, or `NAME` for a value from the environment.
    pub build_args: Vec<String>,
    /// zuul-jobs' sibling paths, passed as the `ZUUL_SIBLINGS` argument.
    pub siblings: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// `os/arch[/variant]`; more than one builds an index.
    pub platforms: Vec<String>,
    /// `registry/repository`, the image's name in the builder's storage.
    pub repository: String,
    /// The first names the image in the layout.
    pub tags: Vec<String>,
    pub extra_args: Vec<String>,
}

impl BuildSpec {
    /// `repository:first tag`: the builder's name of the image (or list).
    pub fn name(&self) -> String {
        format!("{}:{}", self.repository, self.tags[0])
    }

    fn multi(&self) -> bool {
        self.platforms.len() > 1
    }
}

/// A build done and exported.
#[derive(Debug)]
pub struct Built {
    pub digest: String,
    pub media_type: String,
    /// The builder's image ID (none for an index).
    pub image_id: Option<String>,
    /// The name the image has in the layout, if it has one.
    pub layout_name: Option<String>,
    /// What the build printed.
    pub stdout: String,
}

impl Builder {
    /// The global flags: podman's and buildah's storage; docker has none.
    pub fn global_flags(&self) -> Vec<String> {
        if self.program == Program::Docker {
            return Vec::new();
        }
        let mut f = Vec::new();
        if let Some(r) = &self.storage_root {
            f.extend(["--root".to_string(), r.display().to_string()]);
        }
        if let Some(r) = &self.storage_runroot {
            f.extend(["--runroot".to_string(), r.display().to_string()]);
        }
        if let Some(d) = &self.storage_driver {
            f.extend(["--storage-driver".to_string(), d.to_string()]);
        }
        f
    }

    fn command(&self) -> Command {
        let mut c = Command::new(self.program.name());
        c.args(self.global_flags()).envs(&self.env);
        c
    }

    /// Runs `cmd` with the builder's environment and keeps its output.
    pub fn run(&self, mut cmd: Command) -> Result<CommandRun, BuildError> {
        cmd.envs(&self.env);
        let command = format!("{cmd:?}");
        match cmd.output() {
            Ok(out) => Ok(CommandRun {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                command,
            }),
            Err(error) => Err(BuildError::Start { command, error }),
        }
    }

    /// Whether docker builds for platforms here: only with buildx.
    pub fn builds_for_platforms(&self) -> bool {
        if self.program != Program::Docker {
            return true;
        }
        let mut c = Command::new("docker");
        c.args(["buildx", "version"]).envs(&self.env);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        c.status().map(|s| s.success()).unwrap_or(false)
    }

    /// The build, its export to `layout` (replaced if `replace` and there),
    /// and the image found there. `workdir` is private to the run: the
    /// image ID file and docker's OCI archive go there.
    pub fn build(&self, spec: &BuildSpec, layout: &Path, replace: bool, workdir: &Path) -> Result<Built, BuildError> {
        let iidfile = workdir.join("iid");
        let docker_oci_tar = workdir.join("image.tar");
        if spec.multi() && self.program != Program::Docker {
            // A manifest list of that name from an earlier build would be extended.
            let mut rm = self.command();
            rm.args(["manifest", "rm", "--", &spec.name()]);
            let _ = self.run(rm);
        }
        let build = self.run(self.build_command(spec, &iidfile, &docker_oci_tar))?;
        if !build.ok {
            let what = format!("{} build", self.program.name());
            return Err(BuildError::Step { what, run: build });
        }
        if replace && layout.exists() {
            std::fs::remove_dir_all(layout).map_err(|e| BuildError::Layout(format!("cannot replace {}: {e}", layout.display())))?;
        }
        std::fs::create_dir_all(layout).map_err(|e| BuildError::Layout(format!("cannot create {}: {e}", layout.display())))?;
        self.export(spec, layout, &docker_oci_tar)?;
        let oci = OciLayout::open(layout).map_err(BuildError::Exported)?;
        let layout_name = oci.names().contains(&spec.tags[0]).then(|| spec.tags[0].clone());
        let manifest = oci.resolve(layout_name.as_deref()).map_err(BuildError::Exported)?;
        let image_id = std::fs::read_to_string(&iidfile).unwrap_or_default().trim().to_string();
        Ok(Built {
            digest: manifest.digest.to_string(),
            media_type: manifest.media_type.clone(),
            image_id: Some(image_id).filter(|i| !i.is_empty()),
            layout_name,
            stdout: build.stdout,
        })
    }

    /// The build command line.
    fn build_command(&self, spec: &BuildSpec, iidfile: &Path, docker_oci_tar: &Path) -> Command {
        let mut cmd = self.command();
        let docker = self.program == Program::Docker;
        if docker && !spec.platforms.is_empty() {
            cmd.args(["buildx", "build"]);
        } else {
            cmd.arg("build");
        }
        if let Some(i) = self.isolation.as_ref().filter(|_| !docker) {
            cmd.arg(format!("--isolation={i}"));
        }
        cmd.arg(flag_value("--file", &spec.containerfile));
        if let Some(t) = &spec.target {
            cmd.arg(format!("--target={t}"));
        }
        for b in &spec.build_args {
            cmd.arg(format!("--build-arg={b}"));
        }
        if !spec.siblings.is_empty() {
            // As zuul-jobs does: the sibling paths, for the Containerfile to use.
            cmd.arg(format!("--build-arg=ZUUL_SIBLINGS={}", spec.siblings.join(" ")));
        }
        for (k, v) in &spec.labels {
            cmd.arg(format!("--label={k}={v}"));
        }
        let platforms = spec.platforms.join(",");
        if docker && !spec.platforms.is_empty() {
            cmd.arg(format!("--platform={platforms}"));
            cmd.arg(format!("--output=type=oci,dest={}", docker_oci_tar.display()));
        } else if spec.multi() {
            cmd.arg(format!("--platform={platforms}"))
                .arg(format!("--manifest={}", spec.name()));
            // podman and buildah 4.3 (Debian 12) reuse a step cached for one
            // platform for the next when nothing platform-specific precedes
            // it (FROM scratch): the second platform gets the first one's
            // image and the list ends up with a single, mislabelled entry.
            // Seen by the conformance suite (tests/conformance, multiarch).
            cmd.arg("--no-cache");
        } else {
            if let Some(p) = spec.platforms.first() {
                cmd.arg(format!("--platform={p}"));
            }
            for t in &spec.tags {
                cmd.arg(format!("--tag={}:{t}", spec.repository));
            }
        }
        if !spec.multi() {
            cmd.arg(flag_value("--iidfile", iidfile));
        }
        cmd.args(&spec.extra_args);
        cmd.arg("--").arg(&spec.build_dir);
        cmd
    }

    /// The built image (or list) into the layout, named by the first tag.
    fn export(&self, spec: &BuildSpec, layout: &Path, docker_oci_tar: &Path) -> Result<(), BuildError> {
        let export = match self.program {
            Program::Docker if !spec.platforms.is_empty() => {
                let mut c = Command::new("tar");
                c.arg("-xf").arg(docker_oci_tar).arg("-C").arg(layout);
                c
            }
            Program::Docker => return self.docker_save(&spec.name(), layout, &spec.tags[0]),
            _ => {
                let mut c = self.command();
                if spec.multi() {
                    c.args(["manifest", "push", "--all"]);
                } else {
                    c.arg("push");
                }
                c.arg("--")
                    .arg(spec.name())
                    .arg(format!("oci:{}:{}", layout.display(), spec.tags[0]));
                c
            }
        };
        let exported = self.run(export)?;
        if !exported.ok {
            let what = "exporting the image to an OCI layout".to_string();
            return Err(BuildError::Step { what, run: exported });
        }
        Ok(())
    }

    /// An image already in the builder's storage (`image`: a name or an
    /// ID) into an OCI layout at `target`, named `ref_name`: `push oci:`
    /// for podman and buildah (`manifest push --all` for a list), `docker
    /// save` read by the engine for docker.
    pub fn export_stored(&self, image: &str, target: &Path, ref_name: &str) -> Result<(), BuildError> {
        if self.program == Program::Docker {
            return self.docker_save(image, target, ref_name);
        }
        // A multi-platform build leaves a manifest list under the name: plain
        // `push` would export one of its images (podman 4.3), `manifest push
        // --all` exports the list with every image.
        let mut exists = self.command();
        exists.args(["manifest", "exists", "--", image]);
        let is_list = self.run(exists).map(|r| r.ok).unwrap_or(false);
        let mut cmd = self.command();
        if is_list {
            cmd.args(["manifest", "push", "--all"]);
        } else {
            cmd.arg("push");
        }
        cmd.arg("--").arg(image).arg(format!("oci:{}:{ref_name}", target.display()));
        let run = self.run(cmd)?;
        if !run.ok {
            let what = format!("{} push {image} to an OCI layout", self.program.name());
            return Err(BuildError::Step { what, run });
        }
        Ok(())
    }

    /// Streams `docker save <image>` into an OCI layout (layers compressed
    /// as they pass and checked against the config's diff_ids), so a plain
    /// `docker build` is pushed by the engine without buildx.
    fn docker_save(&self, image: &str, layout: &Path, ref_name: &str) -> Result<(), BuildError> {
        use std::io::Read;
        let mut cmd = Command::new("docker");
        cmd.args(["save", "--", image]).envs(&self.env);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let command = format!("{cmd:?}");
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(error) => return Err(BuildError::Start { command, error }),
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        // stderr is read on its own thread so a chatty docker cannot block.
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.by_ref().take(64 * 1024).read_to_string(&mut text);
            text
        });
        let converted = crate::docker_archive::archive_to_layout(std::io::BufReader::new(stdout), layout, ref_name);
        let status = child.wait();
        let stderr = errors.join().unwrap_or_default();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            let stderr = match status {
                Err(e) => format!("{e}"),
                Ok(_) => stderr,
            };
            let run = CommandRun {
                ok: false,
                stdout: String::new(),
                stderr,
                command,
            };
            return Err(BuildError::Step {
                what: "docker save".into(),
                run,
            });
        }
        converted.map(drop).map_err(|error| BuildError::Archive {
            image: image.to_string(),
            error,
        })
    }
}

/// `--opt=<path>` in one word: a path that starts with `-` stays the
/// option's value.
fn flag_value(option: &str, path: &Path) -> OsString {
    let mut word = OsString::from(format!("{option}="));
    word.push(path);
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn spec(platforms: &[&str]) -> BuildSpec {
        BuildSpec {
            containerfile: "/ctx/-Containerfile".into(),
            build_dir: "/ctx".into(),
            repository: "quay.io/org/app".into(),
            tags: vec!["1.0".into(), "latest".into()],
            platforms: platforms.iter().map(ToString::to_string).collect(),
            build_args: vec!["A=1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn each_builder_gets_its_own_command_line() {
        let podman = Builder {
            storage_driver: Some("vfs".into()),
            isolation: Some("chroot".into()),
            ..Default::default()
        };
        let one = args(&podman.build_command(&spec(&[]), Path::new("/w/iid"), Path::new("/w/image.tar")));
        assert_eq!(
            one,
            [
                "--storage-driver",
                "vfs",
                "build",
                "--isolation=chroot",
                "--file=/ctx/-Containerfile",
                "--build-arg=A=1",
                "--tag=quay.io/org/app:1.0",
                "--tag=quay.io/org/app:latest",
                "--iidfile=/w/iid",
                "--",
                "/ctx"
            ]
        );
        let multi = args(&podman.build_command(&spec(&["linux/amd64", "linux/arm64"]), Path::new("/w/iid"), Path::new("/w/t")));
        assert!(multi.contains(&"--manifest=quay.io/org/app:1.0".to_string()), "{multi:?}");
        assert!(
            multi.contains(&"--no-cache".to_string()) && !multi.iter().any(|a| a.starts_with("--iidfile")),
            "{multi:?}"
        );
        let docker = Builder {
            program: Program::Docker,
            storage_driver: Some("vfs".into()),
            isolation: Some("chroot".into()),
            ..Default::default()
        };
        let plain = args(&docker.build_command(&spec(&[]), Path::new("/w/iid"), Path::new("/w/t")));
        assert_eq!(plain[0], "build", "docker takes no storage flags: {plain:?}");
        assert!(!plain.iter().any(|a| a.starts_with("--isolation")), "{plain:?}");
        let buildx = args(&docker.build_command(&spec(&["linux/arm64"]), Path::new("/w/iid"), Path::new("/w/t")));
        assert_eq!(&buildx[..2], ["buildx", "build"]);
        assert!(buildx.contains(&"--output=type=oci,dest=/w/t".to_string()), "{buildx:?}");
    }

    #[test]
    fn a_failed_steps_tail_keeps_the_last_lines_that_say_something() {
        let run = CommandRun {
            ok: false,
            stdout: "one\n\ntwo\n".into(),
            stderr: "three\n  \nfour\n".into(),
            command: "x".into(),
        };
        assert_eq!(run.tail(3), "two\nthree\nfour");
        assert_eq!(Program::from_name("buildah"), Some(Program::Buildah));
        assert_eq!(Program::from_name("kaniko"), None);
    }
}
