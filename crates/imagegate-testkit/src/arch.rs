//! An aarch64 node on this x86_64 machine: a shell that is Debian's
//! busybox-static for arm64 (tools/setup.sh fetches it into
//! `.work/arm64-busybox`), run by qemu-user-static through binfmt_misc
//! (setup.sh registers it). Its `uname -m` says aarch64, and what it runs
//! of aarch64 runs under qemu. Given as a host's `ansible_shell_executable`
//! (with the local connection), it is the tests' aarch64 host.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo_root;

/// A `sh` in `dir` that is the aarch64 busybox; panics, naming the setup
/// step, if it is missing or this machine cannot run aarch64 executables.
pub fn aarch64_shell(dir: &Path) -> PathBuf {
    let busybox = repo_root().join(".work/arm64-busybox/bin/busybox");
    assert!(busybox.is_file(), "{} is missing: run tools/setup.sh", busybox.display());
    let sh = dir.join("sh");
    std::os::unix::fs::symlink(&busybox, &sh).expect("symlink");
    let out = Command::new(&sh).args(["-c", "uname -m"]).output().expect("run the aarch64 shell");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "aarch64",
        "aarch64 executables run here (binfmt_misc; tools/setup.sh registers qemu-aarch64-static)"
    );
    sh
}
