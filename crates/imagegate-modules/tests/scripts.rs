//! The scripts that start servers (tools/demo.sh, bench/*.sh through
//! bench/lib.sh) stop them on every exit path, by pid: a normal end, a
//! failing command under `set -e`, an `exit` mid-way, SIGTERM to the script,
//! and ^C (SIGINT to its process group). The scripts here start servers the
//! way those scripts do (through tools/servers.sh, and bench/lib.sh's
//! start_registry with a real distribution registry), print their pids, and
//! every pid must be gone once the script has ended.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imagegate_testkit::repo_root;

/// How long a script gets to start its servers, and to end after a signal.
const DEADLINE: Duration = Duration::from_secs(30);

/// True while `pid` runs (a zombie does not count).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')).unwrap_or(false),
    }
}

fn signal(target: &str, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {target}");
}

fn wait_with_deadline(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the script did not end within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `body` (bash, from the repository root, in its own process group),
/// collects the pids it prints as `pid N` until it prints `ready`, checks
/// they run, lets it go on (it reads a line first), applies `how` and checks that each pid is gone once the script ended.
fn assert_servers_stopped(body: &str, how: &str) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, format!("set -euo pipefail\nW={}\n{body}", dir.path().join("w").display())).unwrap();
    let mut child = Command::new("bash")
        .arg(&script)
        .current_dir(repo_root())
        .env("BENCH_RESULTS", dir.path().join("results"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut go = child.stdin.take().unwrap();
    let mut pids = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(pid) = line.strip_prefix("pid ") {
            pids.push(pid.trim().parse::<u32>().unwrap());
        } else if line == "ready" {
            break;
        }
    }
    assert!(!pids.is_empty(), "{how}: the script started no server");
    assert!(pids.iter().all(|&p| running(p)), "{how}: the servers are not running");
    // The script waits for this line before it goes on to its ending.
    std::io::Write::write_all(&mut go, b"go\n").unwrap();
    drop(go);
    let group = format!("-{}", child.id());
    match how {
        "sigterm" => signal(&child.id().to_string(), "TERM"),
        "sigint-group" => signal(&group, "INT"),
        "sighup" => signal(&child.id().to_string(), "HUP"),
        _ => {}
    }
    let status = wait_with_deadline(&mut child);
    // The trap stops the servers before the script ends.
    let alive = outliving(&pids);
    assert!(alive.is_empty(), "{how}: servers {alive:?} outlived the script ({status:?})");
    match how {
        "normal" => assert!(status.success(), "{status:?}"),
        "sigterm" | "sigint-group" | "sighup" => assert!(status.code().is_none(), "{how}: not killed by the signal: {status:?}"),
        _ => assert!(!status.success(), "{how}: {status:?}"),
    }
}

/// What a script does after `ready` for each way of ending.
fn ending(how: &str) -> &'static str {
    match how {
        "normal" => "echo done\n",
        "set-e" => "false\necho not reached\n",
        "exit" => "exit 3\n",
        // Busy with work when the signal comes (a foreground command).
        _ => "while :; do sleep 0.1; done\n",
    }
}

const ENDINGS: [&str; 6] = ["normal", "set-e", "exit", "sigterm", "sigint-group", "sighup"];

#[test]
fn servers_helper_stops_servers_on_every_exit_path() {
    for how in ENDINGS {
        let body = format!(
            "source tools/servers.sh\n\
             server_start \"$W.a.log\" sleep 600\necho \"pid $SERVER_PID\"\n\
             server_start \"$W.b.log\" sleep 600\necho \"pid $SERVER_PID\"\n\
             echo ready\nread -r _\n{}",
            ending(how)
        );
        assert_servers_stopped(&body, how);
    }
}

/// bench/lib.sh's start_registry starts real registries; its scripts end
/// them whatever happens (the benchmarks used to rely on an EXIT trap only).
#[test]
fn bench_lib_stops_its_registries_on_every_exit_path() {
    for how in ENDINGS {
        let body = format!(
            "LATENCY_MS=0\nsource bench/lib.sh\n\
             start_registry \"$W/a\"\necho \"pid $REG_PID\"\n\
             start_registry \"$W/b\"\necho \"pid $REG_PID\"\n\
             echo ready\nread -r _\n{}",
            ending(how)
        );
        assert_servers_stopped(&body, how);
    }
}

/// Starting a server inside `$(...)` loses its pid (the bug of
/// tools/demo.sh): the helper refuses it, and no server is left behind.
#[test]
fn server_start_in_a_subshell_is_refused() {
    let body = "source tools/servers.sh\n\
                out=$(server_start \"$W.log\" sleep 600 && echo \"pid $SERVER_PID\") && exit 9\n\
                echo ready\n";
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.sh");
    std::fs::write(&script, format!("W={}\n{body}", dir.path().join("w").display())).unwrap();
    let out = Command::new("bash").arg(&script).current_dir(repo_root()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("subshell"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ready");
}

/// Every script that starts a server does it through tools/servers.sh
/// (server_start), never with a bare `&` whose pid could be lost.
#[test]
fn scripts_start_servers_only_through_the_helper() {
    let root = repo_root();
    // How each server is invoked (as a command, not a mention in a message).
    let servers = [
        "docker-registry serve",
        "release/imagegate-faultproxy",
        "zuul-registry serve",
        "dockerd --",
    ];
    let mut scripts = Vec::new();
    for dir in ["tools", "bench"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sh") && p.file_name().unwrap() != "servers.sh" {
                scripts.push(p);
            }
        }
    }
    assert!(scripts.iter().any(|p| p.ends_with("tools/demo.sh")));
    for p in &scripts {
        let text = std::fs::read_to_string(p).unwrap();
        let name = p.strip_prefix(&root).unwrap_or(Path::new("?")).display().to_string();
        let mut starts = false;
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            if servers.iter().any(|s| line.contains(s)) {
                assert!(
                    line.starts_with("server_start "),
                    "{name}: a server not started by server_start: {line}"
                );
                starts = true;
            }
            assert!(
                !line.ends_with(" &") && !line.contains(" & "),
                "{name}: a background job outside tools/servers.sh: {line}"
            );
        }
        if starts {
            assert!(
                text.contains("source tools/servers.sh") || text.contains("source bench/lib.sh"),
                "{name} starts servers without tools/servers.sh"
            );
        }
    }
}

/// Processes whose command line mentions `needle` (a unique temporary
/// path of this test, so only what the script under test started).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) && running(pid) {
            out.push(pid);
        }
    }
    out
}

/// tools/demo.sh itself: its registries used to outlive it (their pids were
/// recorded inside `$(...)`). Here it fails mid-way (a buildah that fails)
/// and, in a second run, gets SIGTERM while buildah runs; both times its
/// registries must be gone when it has ended.
#[test]
fn demo_stops_its_registries_when_it_fails_or_is_killed() {
    for how in ["fails", "sigterm"] {
        let dir = tempfile::Builder::new().prefix("imagegate-demo-test-").tempdir().unwrap();
        let demo = dir.path().join("demo");
        let stubs = dir.path().join("bin");
        std::fs::create_dir(&stubs).unwrap();
        // buildah that takes a moment, then fails: the demo is mid-way.
        let stub = stubs.join("buildah");
        std::fs::write(&stub, "#!/bin/sh\nsleep 2\nexit 1\n").unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap_or_default());
        let mut child = Command::new("bash")
            .arg(repo_root().join("tools/demo.sh"))
            .env("IMAGEGATE_SKIP_SETUP", "1")
            .env("DEMO_DIR", &demo)
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let needle = demo.display().to_string();
        // Wait until both registries run (the demo is then at buildah).
        let start = Instant::now();
        let mut servers = Vec::new();
        while start.elapsed() < DEADLINE && child.try_wait().unwrap().is_none() {
            servers = processes_mentioning(&format!("{needle}/"))
                .into_iter()
                .filter(|&p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "docker-registry"))
                .collect();
            if servers.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(servers.len(), 2, "{how}: the demo did not start its two registries");
        if how == "sigterm" {
            signal(&child.id().to_string(), "TERM");
        }
        let status = wait_with_deadline(&mut child);
        assert!(!status.success(), "{how}: {status:?}");
        let alive = outliving(&servers);
        assert!(alive.is_empty(), "{how}: the demo's registries {alive:?} outlived it");
        assert!(
            processes_mentioning(&needle).is_empty(),
            "{how}: something the demo started still runs"
        );
    }
}

/// The collection's build step needs only Rust for the build machine's own
/// architecture: tools/build-modules.sh runs with nothing but cargo, rustup
/// and the base system on PATH (no Python, no Ansible, no Docker) and leaves
/// a static binary of every module in `<dir>/<arch>/` of the directory it is
/// given. Asked for aarch64 too without the C cross compiler ring needs, it
/// fails naming the Debian packages.
#[test]
fn the_module_build_needs_only_rust() {
    let cargo = Command::new("sh").args(["-c", "command -v cargo"]).output().unwrap();
    let cargo_dir = Path::new(String::from_utf8_lossy(&cargo.stdout).trim())
        .parent()
        .unwrap()
        .to_path_buf();
    // A PATH of the Rust tools and a directory of the few base commands the
    // script uses, linked one by one: nothing else is there.
    let base = tempfile::tempdir().unwrap();
    for tool in [
        "bash", "env", "mkdir", "install", "grep", "timeout", "printf", "cc", "ld", "dirname", "uname", "rm", "cp", "tr",
    ] {
        if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output() {
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if found.starts_with('/') {
                std::os::unix::fs::symlink(&found, base.path().join(tool)).unwrap();
            }
        }
    }
    let dest = tempfile::tempdir().unwrap();
    let arch = std::env::consts::ARCH;
    let build = |arches: &str| {
        Command::new(base.path().join("bash"))
            .arg(repo_root().join("tools/build-modules.sh"))
            .arg(dest.path())
            .env_clear()
            .env("PATH", format!("{}:{}", cargo_dir.display(), base.path().display()))
            .env("HOME", std::env::var("HOME").unwrap())
            .env("CARGO_TARGET_DIR", repo_root().join("target"))
            .env("IMAGEGATE_ARCHES", arches)
            .output()
            .unwrap()
    };
    let out = build(arch);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for module in [
        "registry_mirror",
        "container_retag",
        "container_push",
        "container_build",
        "registries_conf",
    ] {
        let bin = std::fs::read(dest.path().join(arch).join(module)).unwrap_or_else(|e| panic!("{module}: {e}"));
        assert_eq!(&bin[..4], b"\x7fELF", "{module} is an executable");
    }
    // The other architecture needs a C cross compiler, which this PATH lacks.
    let other = if arch == "x86_64" { "aarch64" } else { "x86_64" };
    let out = build(&format!("{arch} {other}"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("{other}-linux-gnu-gcc")) && said.contains("apt-get install"),
        "{said}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("building for glibc"),
        "static musl binaries: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The processes of `pids` still running two seconds on (a moment for the
/// kernel to finish tearing down what was stopped), killed now: this test
/// cleans up what it started before it fails.
fn outliving(pids: &[u32]) -> Vec<u32> {
    let start = Instant::now();
    while pids.iter().any(|&p| running(p)) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive: Vec<u32> = pids.iter().copied().filter(|&p| running(p)).collect();
    for p in &alive {
        let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
    }
    alive
}
