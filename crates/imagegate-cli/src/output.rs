//! What a command prints, and its exit code.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;

use crate::Done;

/// Exit codes.
const FAILED: u8 = 1;
const BAD_INPUT: u8 = 2;
const REFUSED: u8 = 3;
/// Stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub(crate) const INTERRUPTED: u8 = 130;

/// Prints the result (the document with `json`, else a summary; with
/// `dry_run`, what would change) and returns the exit code.
pub(crate) fn print(done: &Done, json: bool, dry_run: bool) -> ExitCode {
    let r = &done.result;
    let failed = r["failed"] == Value::Bool(true);
    // The command's output; a closed pipe (`| head`) is no error of ours.
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(r).unwrap_or_default());
    } else {
        for w in r["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            eprintln!("warning: {w}");
        }
        let msg = r["msg"].as_str().unwrap_or_default();
        if failed {
            eprintln!("imagegate: {msg}");
        } else if let Some(tags) = r["tags"].as_array().filter(|_| r.get("moves").is_none()) {
            for t in tags.iter().filter_map(Value::as_str) {
                let _ = writeln!(out, "{t}");
            }
        } else {
            if dry_run {
                print_diff(&mut out, &r["diff"]);
            }
            let _ = writeln!(out, "{msg}");
        }
    }
    ExitCode::from(code(done))
}

fn code(done: &Done) -> u8 {
    let r = &done.result;
    if r["failed"] != Value::Bool(true) {
        return 0;
    }
    if done.bad_input {
        return BAD_INPUT;
    }
    if imagegate_registry::interrupt::requested() {
        return INTERRUPTED;
    }
    let msg = r["msg"].as_str().unwrap_or_default();
    if r.get("criteria_unmet").is_some() || msg.contains("changed underneath") {
        return REFUSED;
    }
    FAILED
}

/// The lines that change: `-` before, `+` after.
fn print_diff(out: &mut impl Write, diff: &Value) {
    let lines = |side: &str| -> Vec<&str> { diff[side].as_str().unwrap_or_default().lines().collect() };
    let (before, after) = (lines("before"), lines("after"));
    let (b, a): (BTreeSet<&str>, BTreeSet<&str>) = (before.iter().copied().collect(), after.iter().copied().collect());
    for l in before.iter().filter(|l| !a.contains(*l)) {
        let _ = writeln!(out, "- {l}");
    }
    for l in after.iter().filter(|l| !b.contains(*l)) {
        let _ = writeln!(out, "+ {l}");
    }
}
