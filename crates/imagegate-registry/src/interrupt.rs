//! A request to stop, from outside the engine (the `imagegate` command's
//! Ctrl-C). The engine stops where stopping leaves registries as a person
//! can understand them: a blob transfer ends (an unfinished upload is never
//! visible), a mirror starts no further image, and a promotion writes no
//! further tag and then rolls back what it wrote, or leaves its record,
//! exactly as when a write fails. The writes of a rollback are not stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio::sync::Notify;

use crate::error::{Error, ErrorKind};

static REQUESTED: AtomicBool = AtomicBool::new(false);

fn notify() -> &'static Notify {
    static NOTIFY: OnceLock<Notify> = OnceLock::new();
    NOTIFY.get_or_init(Notify::new)
}

/// Asks every running operation to stop at its next safe point. Safe to
/// call from any thread; calling it again changes nothing.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
    notify().notify_waiters();
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// An error saying that `what` was not done because a stop was asked for;
/// `Ok` when none was.
pub(crate) fn check(what: &str) -> Result<(), Error> {
    if requested() {
        return Err(interrupted(what));
    }
    Ok(())
}

pub(crate) fn interrupted(what: &str) -> Error {
    Error::new(ErrorKind::Interrupted { what: what.to_string() })
}

/// Resolves once a stop is asked for (at once if it already was).
pub(crate) async fn wait() {
    loop {
        let asked = notify().notified();
        if requested() {
            return;
        }
        asked.await;
    }
}
