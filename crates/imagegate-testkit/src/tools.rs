//! Locating and running the external tools the kit drives.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::repo_root;

/// A tool from the project venv (`.venv/bin`) if it is there, else `PATH`.
pub fn venv_tool(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("IMAGEGATE_VENV") {
        let p = PathBuf::from(dir).join("bin").join(name);
        if p.exists() {
            return p;
        }
    }
    let p = repo_root().join(".venv/bin").join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

/// The venv zuul-registry is installed in (the buildset registry roles'
/// `venv` input), found from its executable.
pub fn zuul_registry_venv() -> PathBuf {
    let tool = venv_tool("zuul-registry");
    tool.parent()
        .and_then(|bin| bin.parent())
        .expect("zuul-registry is in a venv's bin")
        .to_path_buf()
}

/// Runs a command and panics with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}
