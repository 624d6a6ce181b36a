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

/// A free TCP port on 127.0.0.1 (bound, then released for the server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
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

/// A port that is free on `host` now.
pub fn free_port_on(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("bind {host}:0: {e}"))
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
