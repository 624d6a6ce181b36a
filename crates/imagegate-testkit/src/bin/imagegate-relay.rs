//! The byte-level latency relay as a command, for benchmarks:
//! `imagegate-relay <upstream host:port> --delay-ms N [--rate-bytes B]`.
//! Every byte crosses N ms late each way (a round trip costs 2N ms,
//! handshakes included); B caps each direction's bytes per second. Prints
//! the relay's `127.0.0.1:<port>` on the first line and, on the second,
//! where its counters are served as JSON over HTTP (connections, bytes
//! each way, turns); serves until killed.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use imagegate_testkit::LatencyRelay;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: imagegate-relay <upstream host:port> --delay-ms N [--rate-bytes B]";
    let Some(upstream) = args.next() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (mut delay_ms, mut rate) = (0u64, 0u64);
    while let Some(flag) = args.next() {
        let value: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("{flag} takes a number; {usage}");
            std::process::exit(2);
        });
        match flag.as_str() {
            "--delay-ms" => delay_ms = value,
            "--rate-bytes" => rate = value,
            other => {
                eprintln!("unknown flag {other}; {usage}");
                std::process::exit(2);
            }
        }
    }
    let relay = LatencyRelay::start(&upstream, Duration::from_millis(delay_ms), rate);
    let stats = std::net::TcpListener::bind("127.0.0.1:0").expect("bind stats");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", relay.host);
    let _ = writeln!(out, "{}", stats.local_addr().expect("addr"));
    let _ = out.flush();
    drop(out);
    for conn in stats.incoming() {
        let Ok(mut conn) = conn else { continue };
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request);
        let body = relay.counters.to_json().to_string();
        let _ = write!(
            conn,
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}
