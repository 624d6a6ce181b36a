//! What `imagegate` shows while blobs move, on a terminal (a pty, through
//! util-linux's `script`) and without one, and how it stops on Ctrl-C
//! (SIGINT): a copy leaves no tag, a promotion puts back what it moved and
//! says so. Slow links come from the test kit's relay, which delays and
//! caps bytes, so a transfer lasts long enough to be watched or stopped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use imagegate_testkit::fixtures::big_image;
use imagegate_testkit::{Kind, LatencyRelay, TestRegistry};

/// A registry holding a 12 MiB image at `src/big:v1`, and a relay to it
/// that takes at most `rate` bytes a second each way: a copy through the
/// relay at 2 MiB/s lasts about six seconds.
struct Slow {
    reg: TestRegistry,
    relay: LatencyRelay,
    _layout: tempfile::TempDir,
}

fn slow(rate: u64) -> Slow {
    let reg = TestRegistry::start(Kind::Distribution);
    let layout = tempfile::tempdir().expect("tempdir");
    reg.seed(&big_image(layout.path(), 12 << 20, 25), "src/big:v1");
    let relay = LatencyRelay::start(&reg.host, Duration::from_millis(2), rate);
    Slow {
        reg,
        relay,
        _layout: layout,
    }
}

impl Slow {
    /// `imagegate` arguments copying the big image through the relay to
    /// `repo`, and the tag that copy writes.
    fn copy(&self, repo: &str) -> (Vec<String>, String) {
        let (reg, relay) = (&self.reg.host, &self.relay.host);
        let args = [
            "--plain-http",
            reg,
            "--plain-http",
            relay,
            "copy",
            &format!("{reg}/src/big:v1"),
            &format!("{relay}/{repo}/big:v1"),
        ];
        (args.map(String::from).to_vec(), format!("{repo}/big:v1"))
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegate"));
    cmd.args(args)
        .stdin(Stdio::null())
        .env("HOME", "/nonexistent")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
    cmd
}

/// `imagegate ARGS` on a pseudo-terminal: what the terminal received.
fn on_a_terminal(args: &[&str]) -> (i32, String) {
    let line = std::iter::once(env!("CARGO_BIN_EXE_imagegate"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .stdin(Stdio::null())
        .env("HOME", "/nonexistent")
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("on a terminal {args:?}: exit {:?}\n{text}", out.status.code());
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_terminal_shows_bars_and_a_log_gets_plain_lines_at_a_bounded_rate() {
    let s = slow(2 << 20);
    let (args, tag) = s.copy("tty");
    let (code, shown) = on_a_terminal(&strs(&args));
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("all blobs"), "the overall bar: {shown}");
    assert!(shown.contains("upload blob sha256:"), "a bar of the blob: {shown}");
    assert!(shown.contains("MiB/s"), "its rate: {shown}");
    assert!(shown.contains('\x1b'), "drawn with a terminal's escapes: {shown}");
    // The layer and the config.
    assert!(shown.contains("moved 12.00 MiB in 2 blobs in "), "the summary: {shown}");
    assert!(shown.contains("changed 1 of 1 image tags"), "{shown}");
    assert_eq!(s.reg.digest(&tag), s.reg.digest("src/big:v1"));

    let (args, tag) = s.copy("log");
    let started = Instant::now();
    let out = command(&strs(&args)).output().expect("imagegate runs");
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    eprintln!("without a terminal, {took:?}:\n{log}");
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!log.contains('\x1b') && !log.contains('\r'), "no terminal control in a log: {log}");
    let lines = log.lines().filter(|l| l.starts_with("progress: ")).count();
    assert!(took > Duration::from_secs(5), "the relay did not slow the copy ({took:?})");
    assert!(lines >= 1, "a copy of {took:?} shows its progress: {log}");
    let most = (took.as_secs() / 5 + 1) as usize;
    assert!(lines <= most, "{lines} progress lines in {took:?}, more than one per 5 s: {log}");
    assert!(log.contains("moved 12.00 MiB in 2 blobs in "), "the summary: {log}");
    assert_eq!(s.reg.digest(&tag), s.reg.digest("src/big:v1"));
}

/// Starts `imagegate ARGS` with stderr read line by line into a channel.
fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("imagegate runs");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("stderr: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a line `wanted` accepts; every line seen until then.
fn wait_for(rx: &mpsc::Receiver<String>, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let found = wanted(&line);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("no such line within a minute; saw: {seen:#?}");
}

fn ctrl_c(child: &Child) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// The rest of stderr, the exit code and stdout, within a minute.
fn finish(mut child: Child, rx: &mpsc::Receiver<String>) -> (i32, String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "imagegate did not stop within a minute of Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout).expect("stdout");
    std::thread::sleep(Duration::from_millis(200));
    let stderr: Vec<String> = rx.try_iter().collect();
    (status.code().unwrap_or(-1), stdout, stderr.join("\n"))
}

#[test]
fn ctrl_c_stops_a_copy_before_any_tag_is_written() {
    // 1 MiB/s: the first plain line (at 5 s) comes well before the end.
    let s = slow(1 << 20);
    let (args, tag) = s.copy("stopped");
    let (child, rx) = spawn(&strs(&args));
    // A plain progress line: the blob is on its way.
    wait_for(&rx, |l| l.starts_with("progress: "));
    ctrl_c(&child);
    let (code, stdout, stderr) = finish(child, &rx);
    assert_eq!(code, 130, "{stdout}{stderr}");
    assert!(stderr.contains("stopping at the next safe point"), "{stderr}");
    assert!(stderr.contains("stopped, as asked (interrupted)"), "the failure says why: {stderr}");
    assert_eq!(s.reg.digest(&tag), None, "no tag written after Ctrl-C");
}

#[test]
fn ctrl_c_during_a_promotion_puts_back_the_tags_it_moved_and_says_so() {
    let reg = TestRegistry::seeded(Kind::Distribution, &[(1, "stage/app:candidate"), (2, "stage/app:t00")]);
    // Every byte 40 ms late: each tag's read and write take a while.
    let relay = LatencyRelay::start(&reg.host, Duration::from_millis(40), 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("record.json");
    let tags: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    let before: Vec<Option<String>> = tags.iter().map(|t| reg.digest(&format!("stage/app:{t}"))).collect();
    let options = serde_json::json!({
        "images": [{"repository": format!("{}/stage/app", relay.host), "src_tag": "candidate", "tags": tags}],
        "record_file": record,
        "registries": {relay.host.clone(): {"plain_http": true}},
    });
    let file = dir.path().join("promote.json");
    std::fs::write(&file, options.to_string()).expect("options");
    let (child, rx) = spawn(&["promote", "-f", file.to_str().expect("path")]);
    // A tag moved: the promotion is writing.
    wait_for(&rx, |l| l.contains(" -> sha256:"));
    ctrl_c(&child);
    let (code, stdout, stderr) = finish(child, &rx);
    assert_eq!(code, 130, "{stdout}{stderr}");
    assert!(stderr.contains("stopped, as asked (interrupted)"), "{stderr}");
    assert!(
        stderr.contains("put back") && stderr.contains("tags already moved"),
        "says it rolled back: {stderr}"
    );
    assert!(stderr.contains(&format!("the record is in {}", record.display())), "{stderr}");
    let after: Vec<Option<String>> = tags.iter().map(|t| reg.digest(&format!("stage/app:{t}"))).collect();
    assert_eq!(after, before, "every tag where it was before the promotion");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).expect("the record stays")).expect("JSON");
    assert_eq!(kept["state"], "failed", "{kept}");
}
