//! The imagegate test kit. Everything here is real: registries are the
//! Debian distribution registry and zuul-registry from PyPI running as
//! processes on 127.0.0.1, fixture images are built with buildah, and faults
//! are injected by a proxy in front of a real registry.

pub mod ansible;
pub mod arch;
pub mod docker;
pub mod fixtures;
pub mod hostile;
pub mod module;
pub mod node;
pub mod proxy;
pub mod registry;
pub mod relay;
pub mod server;
pub mod tools;
pub mod webapi;

pub use fixtures::Fixtures;
pub use hostile::{HostileRegistry, Hostility, Recorder};
pub use module::{run_module, run_module_measured, ModuleRun};
pub use proxy::{FaultConfig, FaultProxy, STATS_PATH};
pub use registry::{Kind, TestRegistry};
pub use relay::LatencyRelay;

/// A short random hex string (for passwords and names).
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A free TCP port on 127.0.0.1, held for this test process (see
/// [`free_port_on`]).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// The ports handed out: below Linux's ephemeral range (32768 up), so that
/// no client connection's own port can take one before its server binds it.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A TCP port free on `host`, held for this test process until it exits.
/// The server that gets it binds it seconds later; meanwhile another test
/// (nextest runs each in a process of its own) must not be handed the same
/// port. So each port handed out is also locked (`flock` on a file named
/// after it in the temporary directory), the lock kept open for the life of
/// this process: another process skips a locked port, and ports come from
/// below the ephemeral range, so no outgoing connection takes one either.
pub fn free_port_on(host: &str) -> u16 {
    use std::sync::Mutex;
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    use std::os::unix::fs::PermissionsExt;
    // Shared by every user that runs tests here, like /tmp itself.
    let dir = std::env::temp_dir().join("imagegate-testkit-ports");
    if std::fs::create_dir(&dir).is_ok() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    let span = u32::from(PORTS.end - PORTS.start);
    let seed = u32::from_str_radix(&random_hex(4), 16).expect("hex");
    for i in 0..span {
        let port = PORTS.start + ((seed.wrapping_add(i.wrapping_mul(7919))) % span) as u16;
        let path = dir.join(port.to_string());
        // flock needs no write access: a lock file another user made is
        // opened read-only.
        let opened = std::fs::File::open(&path).or_else(|_| std::fs::File::create(&path));
        let Ok(lock) = opened else { continue };
        if lock.try_lock().is_err() {
            continue;
        }
        if std::net::TcpListener::bind((host, port)).is_err() {
            continue;
        }
        HELD.lock().expect("held ports").push(lock);
        return port;
    }
    panic!("no free port in {PORTS:?} on {host}")
}

/// A loopback address of this test process's own (127.a.b.c, from the
/// process id; nextest runs each test in a process of its own), for a server
/// that something else starts later, such as a role. A port picked free on
/// 127.0.0.1 could be taken by another test's server in the meantime; on an
/// address no other running test uses, it cannot.
pub fn private_loopback() -> String {
    let pid = std::process::id();
    format!("127.{}.{}.{}", 1 + (pid / 62_500) % 250, 1 + (pid / 250) % 250, 2 + pid % 250)
}

/// The collection version this checkout's galaxy.yml names.
pub fn galaxy_version() -> String {
    let text = std::fs::read_to_string(repo_root().join("galaxy.yml")).expect("galaxy.yml");
    text.lines()
        .find_map(|l| l.strip_prefix("version:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("galaxy.yml has a version")
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_port_handed_out_stays_held_for_this_process() {
        let (a, b) = (super::free_port(), super::free_port());
        assert_ne!(a, b);
        for port in [a, b] {
            assert!(super::PORTS.contains(&port), "{port} is in the ephemeral range");
            // Another process (another open file description) cannot take it.
            let path = std::env::temp_dir().join("imagegate-testkit-ports").join(port.to_string());
            let other = std::fs::File::open(&path).expect("lock file");
            assert!(other.try_lock().is_err(), "port {port} is not held");
            // Nothing listens on it yet: it is free for the server.
            drop(std::net::TcpListener::bind(("127.0.0.1", port)).expect("free"));
        }
    }
}
