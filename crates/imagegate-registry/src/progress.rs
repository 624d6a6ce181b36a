//! Blob transfers as they run, for a display that follows them (the
//! `imagegate` command's bars). Without an observer nothing is recorded and
//! a long transfer logs a progress line every few seconds
//! ([`crate::transport::limits::PROGRESS_EVERY`]); with one, the observer
//! decides what to show and those lines are left out.
//!
//! The observer is told when a transfer starts and ends; it reads the
//! position whenever it draws, so counting bytes costs the transfer nothing
//! more than it does already.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::transport::limits::Progress;

/// What a display is told.
pub trait Observer: Send + Sync {
    /// A transfer began (or began again, after a retry).
    fn started(&self, transfer: &Arc<Transfer>);
    /// It ended: every byte accepted (`done`), or not.
    fn ended(&self, transfer: &Arc<Transfer>, done: bool);
}

static OBSERVER: OnceLock<Box<dyn Observer>> = OnceLock::new();

/// Installs the observer of every transfer in this process; the first call
/// wins.
pub fn set_observer(observer: impl Observer + 'static) {
    let _ = OBSERVER.set(Box::new(observer));
}

/// Whether an observer follows transfers (and the periodic lines are left
/// out).
pub(crate) fn observed() -> bool {
    OBSERVER.get().is_some()
}

/// One running blob transfer.
#[derive(Debug)]
pub struct Transfer {
    id: u64,
    what: String,
    total: u64,
    progress: Arc<Progress>,
}

impl Transfer {
    /// Unique in this process.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// What moves where (`upload sha256:… to registry/repo`), control
    /// characters escaped.
    pub fn what(&self) -> &str {
        &self.what
    }
    /// The blob's size.
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Bytes of the blob done so far (a resumed upload starts past zero).
    pub fn position(&self) -> u64 {
        self.progress.bytes().min(self.total)
    }
}

/// Tells the observer of a transfer for as long as this lives; dropped
/// before [`Watch::done`] (an error, or the future given up), it ended
/// without success.
pub(crate) struct Watch(Option<Arc<Transfer>>, bool);

impl Watch {
    pub(crate) fn start(what: &str, progress: &Arc<Progress>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let Some(observer) = OBSERVER.get() else {
            return Self(None, false);
        };
        let transfer = Arc::new(Transfer {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            what: crate::log::escape_controls(what).into_owned(),
            total: progress.total(),
            progress: progress.clone(),
        });
        observer.started(&transfer);
        Self(Some(transfer), false)
    }

    pub(crate) fn done(mut self) {
        self.1 = true;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let (Some(t), Some(observer)) = (&self.0, OBSERVER.get()) {
            observer.ended(t, self.1);
        }
    }
}
