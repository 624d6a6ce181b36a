//! Running a module binary the way Ansible does: `<binary> <args-file>`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

pub struct ModuleRun {
    pub result: Value,
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

impl ModuleRun {
    pub fn failed(&self) -> bool {
        self.result["failed"] == Value::Bool(true)
    }
    pub fn changed(&self) -> bool {
        self.result["changed"] == Value::Bool(true)
    }
    pub fn msg(&self) -> String {
        self.result["msg"].as_str().unwrap_or_default().to_string()
    }
    /// Panics with the module's output unless it succeeded (result and exit code).
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(!self.failed() && self.success, "module failed: {}\n{}", self.stdout, self.stderr);
    }

    /// Everything the module printed, for secret searches.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `binary` with `args` written to an args file, and parses stdout,
/// which must be exactly one JSON object.
pub fn run_module(binary: &Path, args: &Value) -> ModuleRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("args");
    std::fs::write(&path, args.to_string()).expect("write args");
    let out = Command::new(binary).arg(&path).output().expect("run module");
    parse_run(out)
}

/// A module's output parsed as [`run_module`] parses it, for a module run
/// some other way (under an emulator, say).
pub fn parse_run(out: std::process::Output) -> ModuleRun {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let result: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}\nstderr:\n{stderr}"));
    assert!(result.is_object(), "result is not an object: {stdout}");
    ModuleRun {
        result,
        stdout,
        stderr,
        success: out.status.success(),
    }
}

/// [`run_module`] under GNU time (Debian's `time`, which tools/setup.sh
/// installs), with the module's peak resident set in KiB.
pub fn run_module_measured(binary: &Path, args: &Value) -> (ModuleRun, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("args");
    let rss = dir.path().join("rss");
    std::fs::write(&path, args.to_string()).expect("write args");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(binary)
        .arg(&path)
        .output()
        .expect("run module under /usr/bin/time");
    let peak = std::fs::read_to_string(&rss)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .expect("GNU time's %M");
    (parse_run(out), peak)
}
