//! The fault proxy as a command, for benchmarks and manual testing:
//! `imagegate-faultproxy <upstream-url> [--delay-ms N] [--fault-rate R]`.
//! Prints the proxy's `127.0.0.1:<port>` on one line and serves until killed.

use std::io::Write as _;

use imagegate_testkit::{FaultConfig, FaultProxy};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(upstream) = args.next() else {
        eprintln!("usage: imagegate-faultproxy <upstream-url> [--delay-ms N] [--fault-rate R]");
        std::process::exit(2);
    };
    let mut config = FaultConfig::default();
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--delay-ms" => config.delay_ms = value.parse().expect("--delay-ms takes a number"),
            "--fault-rate" => {
                config = FaultConfig {
                    delay_ms: config.delay_ms,
                    ..FaultConfig::mixed(value.parse().expect("--fault-rate takes a number"))
                }
            }
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    let proxy = FaultProxy::start(&upstream, config);
    let mut out = std::io::stdout().lock();
    // The one line a caller reads: where the proxy listens.
    let _ = writeln!(out, "{}", proxy.host);
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}
