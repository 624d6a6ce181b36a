//! How long the engine waits, and on whom: deadlines for small answers, the
//! minimum progress of a blob transfer, and backoff shared per host.
//!
//! A registry decides how fast it answers, so every wait here is bounded.
//! Small answers (manifests, tokens, tag pages, web API calls, HEADs, the
//! answers to writes) must arrive whole within a deadline. Blob bodies may be
//! large and links slow, so instead of a deadline they must keep moving: a
//! transfer that moves fewer than a minimum of bytes in a window fails, and a
//! finished upload must be answered within a commit deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind};

/// A small answer (manifest, token, tag page, API call) must arrive whole in
/// this long. Registries answer these in well under a second; thirty covers a
/// slow token service or a cold cache, and no more than that is a registry
/// that is holding us.
pub const DEFAULT_ANSWER_DEADLINE: Duration = Duration::from_secs(30);
/// A blob transfer is judged over windows of this length...
pub const DEFAULT_STALL_WINDOW: Duration = Duration::from_secs(30);
/// ...in each of which it must move at least this many bytes (about 2 KiB/s:
/// far below any link a registry is used over, far above a trickle).
pub const DEFAULT_MIN_PROGRESS: u64 = 64 * 1024;
/// Once an upload's bytes are all sent, the registry must answer within this
/// long. Registries on object storage copy a finished upload into place
/// before answering, which for a layer of some GiB takes minutes.
pub const DEFAULT_COMMIT_DEADLINE: Duration = Duration::from_secs(300);
/// A transfer still running after this long logs its progress, and again
/// every this long until it ends.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The bounds of every wait.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub answer: Duration,
    pub stall_window: Duration,
    pub min_progress: u64,
    pub commit: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            answer: DEFAULT_ANSWER_DEADLINE,
            stall_window: DEFAULT_STALL_WINDOW,
            min_progress: DEFAULT_MIN_PROGRESS,
            commit: DEFAULT_COMMIT_DEADLINE,
        }
    }
}

impl Limits {
    /// Runs `fut`, a small answer, within the answer deadline.
    pub(crate) async fn answer<T>(&self, url: &str, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        match tokio::time::timeout(self.answer, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(ErrorKind::Timeout {
                url: url.to_string(),
                secs: self.answer.as_secs(),
            })),
        }
    }

    /// Runs `fut`, a blob transfer whose bytes are counted in `progress`,
    /// failing it when it stalls or when its commit is not answered in time.
    /// No timer bounds how long a transfer that keeps moving may take. One
    /// that runs long logs its progress every [`PROGRESS_EVERY`].
    pub(crate) async fn transfer<T>(
        &self,
        what: &str,
        progress: &Arc<Progress>,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        crate::interrupt::check(what)?;
        let watch = crate::progress::Watch::start(what, progress);
        let result = tokio::select! {
            r = fut => r,
            () = crate::interrupt::wait() => Err(crate::interrupt::interrupted(what)),
            e = self.watch(what, progress) => Err(e),
            never = report(what, progress) => match never {},
        };
        if result.is_ok() {
            watch.done();
        }
        result
    }

    async fn watch(&self, what: &str, progress: &Progress) -> Error {
        let mut last = 0;
        loop {
            tokio::time::sleep(self.stall_window).await;
            if progress.done.load(Ordering::SeqCst) {
                tokio::time::sleep(self.commit).await;
                return Error::new(ErrorKind::Timeout {
                    url: format!("{what} (waiting for the registry to accept the finished upload)"),
                    secs: self.commit.as_secs(),
                });
            }
            let now = progress.moved.load(Ordering::SeqCst);
            if now - last < self.min_progress {
                return Error::new(ErrorKind::Stalled {
                    what: what.to_string(),
                    received: now - last,
                    window_secs: self.stall_window.as_secs(),
                    min_bytes: self.min_progress,
                });
            }
            last = now;
        }
    }
}

/// Logs a running transfer's progress every [`PROGRESS_EVERY`]: bytes
/// done of the whole, the rate since it started and the time left at that
/// rate. Never ends; the transfer it watches does.
async fn report(what: &str, progress: &Progress) -> std::convert::Infallible {
    let start = Instant::now();
    let first = progress.bytes();
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        if crate::progress::observed() {
            // A display follows the transfer (crate::progress).
            continue;
        }
        if progress.done.load(Ordering::SeqCst) {
            crate::log::info(&format!("{what}: all bytes sent, waiting for the registry to accept them"));
            continue;
        }
        let done = progress.bytes();
        crate::log::info(&format!(
            "{what}: {}",
            progress_line(done, progress.total, done.saturating_sub(first), start.elapsed())
        ));
    }
}

/// `12.0 of 64.0 MiB (18%), 450 KiB/s, about 2m 1s left`: `done` bytes of
/// `total`, at the rate of the `moved` bytes in `elapsed`.
pub(crate) fn progress_line(done: u64, total: u64, moved: u64, elapsed: Duration) -> String {
    let rate = moved as f64 / elapsed.as_secs_f64().max(0.001);
    let mut line = format!("{} of {}", crate::copy::human_bytes(done), crate::copy::human_bytes(total));
    if let Some(percent) = (done.min(total) * 100).checked_div(total) {
        line.push_str(&format!(" ({percent}%)"));
    }
    line.push_str(&format!(", {}/s", crate::copy::human_bytes(rate as u64)));
    if rate >= 1.0 && total > done {
        let left = ((total - done) as f64 / rate).ceil() as u64;
        line.push_str(&format!(", about {} left", human_secs(left)));
    }
    line
}

/// `1h 2m`, `1m 44s`, `9s`.
fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// Where a transfer of `total` bytes stands, and whether its body is
/// complete. Two counts: `bytes`, the position in the blob (what the
/// upload has taken), and `moved`, every byte read or sent, which the stall
/// watch looks at. A streamed upload takes bytes as they are read; a
/// chunked one ([`Progress::sending`]) as each chunk is sent, its reads
/// counting as movement only (reading a chunk and sending it are separate).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    bytes: AtomicU64,
    moved: AtomicU64,
    done: AtomicBool,
    total: u64,
    counts_sends: bool,
}

impl Progress {
    /// A streamed transfer of `total` bytes.
    pub(crate) fn of(total: u64) -> Self {
        Self { total, ..Self::default() }
    }
    /// A transfer of `total` bytes whose position moves as it sends.
    pub(crate) fn sending(total: u64) -> Self {
        Self {
            total,
            counts_sends: true,
            ..Self::default()
        }
    }
    /// Starts at `offset` (a resumed upload), which is no movement.
    pub(crate) fn start_at(&self, offset: u64) {
        self.bytes.store(offset, Ordering::SeqCst);
    }
    /// The blob's size.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
    /// The position so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
    /// `n` bytes read from the source.
    pub(crate) fn read(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::SeqCst);
        if !self.counts_sends {
            self.bytes.fetch_add(n, Ordering::SeqCst);
        }
    }
    /// `n` bytes sent to the destination.
    pub(crate) fn sent(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::SeqCst);
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }
    /// The source's body has ended; for a streamed transfer, so has the
    /// upload's.
    pub(crate) fn read_all(&self) {
        if !self.counts_sends {
            self.finish();
        }
    }
    /// Every byte is sent: what is left is the registry's answer.
    pub(crate) fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// Backoff shared by every request to one host: when a host asks for a pause
/// (429, 503, a timeout), requests to it that start afterwards wait too,
/// while requests to other hosts go on.
#[derive(Debug, Default)]
pub struct HostGates {
    hosts: Mutex<HashMap<String, Instant>>,
}

impl HostGates {
    /// Waits until `host` may be asked again.
    pub(crate) async fn wait(&self, host: &str) {
        let until = self.hosts.lock().expect("host gates").get(host).copied();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Holds back requests to `host` for `delay` from now (never shortening
    /// a longer pause already in force).
    pub(crate) fn defer(&self, host: &str, delay: Duration) {
        let until = Instant::now() + delay;
        let mut hosts = self.hosts.lock().expect("host gates");
        let entry = hosts.entry(host.to_string()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }
}

/// Shared ownership, as transports hold it.
pub type SharedGates = Arc<HostGates>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_trickle_fails_and_a_steady_transfer_does_not() {
        let limits = Limits {
            stall_window: Duration::from_secs(10),
            min_progress: 1000,
            ..Limits::default()
        };
        let progress = Arc::new(Progress::default());
        let trickle = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.sent(10);
            }
        };
        let e = limits.transfer::<()>("blob x", &progress, trickle).await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Stalled { received: 90..=100, .. }), "{e}");
        assert!(e.is_temporary());

        let progress = Arc::new(Progress::default());
        let steady = async {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.sent(200);
            }
            Ok::<_, Error>(42)
        };
        assert_eq!(limits.transfer("blob y", &progress, steady).await.unwrap(), 42);
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_upload_waits_for_the_commit_deadline_only() {
        let limits = Limits {
            stall_window: Duration::from_secs(10),
            commit: Duration::from_secs(60),
            ..Limits::default()
        };
        let progress = Arc::new(Progress::default());
        progress.finish();
        let start = tokio::time::Instant::now();
        let e = limits
            .transfer("upload z", &progress, std::future::pending::<Result<(), Error>>())
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Timeout { secs: 60, .. }), "{e}");
        assert_eq!(start.elapsed(), Duration::from_secs(70));
    }

    #[test]
    fn progress_lines_say_what_is_done_and_left() {
        let mib = 1024 * 1024;
        assert_eq!(
            progress_line(12 * mib, 64 * mib, 12 * mib, Duration::from_secs(24)),
            "12.0 MiB of 64.0 MiB (18%), 512.0 KiB/s, about 1m 44s left"
        );
        assert_eq!(
            progress_line(40 * mib, 64 * mib, 12 * mib, Duration::from_secs(24)),
            "40.0 MiB of 64.0 MiB (62%), 512.0 KiB/s, about 48s left",
            "resumed at 28 MiB: the rate is of the bytes moved since"
        );
        assert_eq!(progress_line(0, 0, 0, Duration::ZERO), "0 B of 0 B, 0 B/s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_answer_has_a_deadline() {
        let limits = Limits {
            answer: Duration::from_secs(5),
            ..Limits::default()
        };
        let e = limits
            .answer("http://r/v2/a/manifests/x", std::future::pending::<Result<(), Error>>())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "http://r/v2/a/manifests/x: no answer within 5 seconds");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_per_host() {
        let gates = HostGates::default();
        gates.defer("slow:5000", Duration::from_secs(30));
        let start = tokio::time::Instant::now();
        gates.wait("fast:5000").await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        gates.wait("slow:5000").await;
        assert!(start.elapsed() >= Duration::from_secs(30));
    }
}
