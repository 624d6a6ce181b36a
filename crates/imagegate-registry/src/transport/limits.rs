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
    pub(crate) async fn transfer<T>(
        &self,
        what: &str,
        progress: &Progress,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::select! {
            r = fut => r,
            e = self.watch(what, progress) => Err(e),
        }
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
            let now = progress.bytes.load(Ordering::SeqCst);
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

/// Bytes a transfer has moved, and whether its body is complete.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    bytes: AtomicU64,
    done: AtomicBool,
}

impl Progress {
    pub(crate) fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }
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
        let progress = Progress::default();
        let trickle = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.add(10);
            }
        };
        let e = limits.transfer::<()>("blob x", &progress, trickle).await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Stalled { received: 90..=100, .. }), "{e}");
        assert!(e.is_temporary());

        let progress = Progress::default();
        let steady = async {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.add(200);
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
        let progress = Progress::default();
        progress.finish();
        let start = tokio::time::Instant::now();
        let e = limits
            .transfer("upload z", &progress, std::future::pending::<Result<(), Error>>())
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Timeout { secs: 60, .. }), "{e}");
        assert_eq!(start.elapsed(), Duration::from_secs(70));
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
