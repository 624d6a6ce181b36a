//! A TCP relay that delays bytes, not requests: every byte is delivered
//! `one_way` after it arrived, in each direction, so a round trip costs
//! twice that whatever rides on it (TCP set-up, TLS handshakes, HTTP/2
//! frames, requests and their answers), as a long link does. No kernel
//! netem is needed. An optional rate caps each direction's bytes per
//! second across all connections (one link). It counts connections, bytes
//! each way and turns: the times a connection's traffic changed direction
//! from the server's answer back to the client, which for HTTP is about one
//! per request after the first on that connection, and for a TLS handshake
//! one more.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Counts of what crossed the relay.
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub connections: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    /// Client bytes that followed server bytes on the same connection.
    pub turns: AtomicU64,
}

impl RelayCounters {
    /// The counters as JSON, with `round_trips`: connections (each opened
    /// by a round trip) plus turns.
    pub fn to_json(&self) -> serde_json::Value {
        let (connections, turns) = (self.connections.load(Relaxed), self.turns.load(Relaxed));
        serde_json::json!({
            "round_trips": connections + turns,
            "connections": connections,
            "bytes_up": self.bytes_up.load(Relaxed),
            "bytes_down": self.bytes_down.load(Relaxed),
            "turns": turns,
        })
    }
}

/// One direction's byte budget shared by every connection.
#[derive(Debug)]
struct Link {
    rate: u64,
    /// When the link is free to carry the next byte.
    free_at: Mutex<Instant>,
}

impl Link {
    /// When `n` bytes offered at `now` have crossed the link.
    fn cross(&self, n: usize, now: Instant) -> Instant {
        if self.rate == 0 {
            return now;
        }
        let mut free = self.free_at.lock().expect("link");
        let start = (*free).max(now);
        *free = start + Duration::from_secs_f64(n as f64 / self.rate as f64);
        *free
    }
}

pub struct LatencyRelay {
    /// `127.0.0.1:<port>` to connect to instead of the upstream.
    pub host: String,
    pub counters: Arc<RelayCounters>,
    _background: crate::server::Background,
}

impl LatencyRelay {
    /// Relays `127.0.0.1:<new port>` to `upstream` (`host:port`), each byte
    /// `one_way` late, each direction at most `rate` bytes a second (0: no
    /// cap).
    pub fn start(upstream: &str, one_way: Duration, rate: u64) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind relay");
        listener.set_nonblocking(true).expect("nonblocking");
        let host = listener.local_addr().expect("addr").to_string();
        let counters = Arc::new(RelayCounters::default());
        let upstream = upstream.to_string();
        let c = counters.clone();
        let background = crate::server::Background::spawn(move |mut rx| async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            let link = || {
                Arc::new(Link {
                    rate,
                    free_at: Mutex::new(Instant::now()),
                })
            };
            let (up, down) = (link(), link());
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        c.connections.fetch_add(1, Relaxed);
                        let (upstream, c, up, down) = (upstream.clone(), c.clone(), up.clone(), down.clone());
                        tokio::spawn(async move {
                            // The connection to the upstream is made once
                            // the client's handshake has crossed the link.
                            tokio::time::sleep(one_way).await;
                            let Ok(server) = TcpStream::connect(&upstream).await else { return };
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            relay(client, server, one_way, c, up, down).await;
                        });
                    }
                }
            }
        });
        Self {
            host,
            counters,
            _background: background,
        }
    }
}

/// Which way the last bytes of a connection went, for counting turns.
#[derive(Default)]
struct Direction {
    server_spoke_last: std::sync::atomic::AtomicBool,
}

async fn relay(client: TcpStream, server: TcpStream, one_way: Duration, c: Arc<RelayCounters>, up: Arc<Link>, down: Arc<Link>) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let dir = Arc::new(Direction::default());
    let to_server = pump(cr, sw, one_way, up, c.clone(), dir.clone(), true);
    let to_client = pump(sr, cw, one_way, down, c, dir, false);
    let _ = tokio::join!(to_server, to_client);
}

/// Moves bytes from `from` to `to`, each delivered `one_way` after it was
/// read (and after the link could carry it). Reading goes on while earlier
/// bytes wait, as on a real link; the queue between holds at most 64 reads
/// (4 MiB), a generous TCP window.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    one_way: Duration,
    link: Arc<Link>,
    c: Arc<RelayCounters>,
    dir: Arc<Direction>,
    client_side: bool,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(64);
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            if client_side {
                c.bytes_up.fetch_add(n as u64, Relaxed);
                if dir.server_spoke_last.swap(false, Relaxed) {
                    c.turns.fetch_add(1, Relaxed);
                }
            } else {
                c.bytes_down.fetch_add(n as u64, Relaxed);
                dir.server_spoke_last.store(true, Relaxed);
            }
            let due = link.cross(n, now) + one_way;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
        // Dropping the sender ends the writer once it has delivered all.
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An echo server on a free port; answers every byte it reads.
    fn echo() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn exchange(host: &str, bytes: usize) -> std::time::Duration {
        let start = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        s.set_nodelay(true).unwrap();
        let data = vec![7u8; bytes];
        let writer = {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || s.write_all(&data).unwrap())
        };
        let mut got = vec![0u8; bytes];
        s.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got.iter().all(|b| *b == 7));
        start.elapsed()
    }

    /// Bytes, not requests, are delayed: one exchange costs a round trip
    /// (twice the one-way delay) and a second on the same connection
    /// another; a rate cap holds a MiB to about a second.
    #[test]
    fn every_round_trip_pays_the_delay_and_the_rate_caps_the_link() {
        let upstream = echo();
        let relay = LatencyRelay::start(&upstream, Duration::from_millis(50), 0);
        let one = exchange(&relay.host, 10);
        assert!(one >= Duration::from_millis(100), "{one:?}");
        let mut s = std::net::TcpStream::connect(&relay.host).unwrap();
        let start = std::time::Instant::now();
        let mut buf = [0u8; 1];
        for _ in 0..3 {
            s.write_all(b"x").unwrap();
            s.read_exact(&mut buf).unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
        drop(s);
        assert_eq!(relay.counters.connections.load(Relaxed), 2);
        assert_eq!(relay.counters.bytes_up.load(Relaxed), 13);
        assert!(relay.counters.turns.load(Relaxed) >= 2, "{:?}", relay.counters.to_json());

        let capped = LatencyRelay::start(&upstream, Duration::from_millis(1), 1024 * 1024);
        let took = exchange(&capped.host, 1024 * 1024);
        assert!(took >= Duration::from_millis(950), "a MiB at a MiB a second took {took:?}");
    }
}
