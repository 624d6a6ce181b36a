//! Counters of what an operation did, shared by the requests it makes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct Stats {
    retries: AtomicU64,
    blobs_copied: AtomicU64,
    blobs_mounted: AtomicU64,
    blobs_present: AtomicU64,
    bytes_moved: AtomicU64,
    bytes_resent: AtomicU64,
    manifests_written: AtomicU64,
}

/// A plain copy of [`Stats`] for results.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub retries: u64,
    pub blobs_copied: u64,
    pub blobs_mounted: u64,
    pub blobs_present: u64,
    pub bytes_moved: u64,
    /// Bytes sent or read again after a break: the part of a failed
    /// attempt that its retry sent again, and the start of a blob a source
    /// without range support sent again when a download resumed.
    pub bytes_resent: u64,
    pub manifests_written: u64,
}

impl Stats {
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn copied(&self, bytes: u64) {
        self.blobs_copied.fetch_add(1, Relaxed);
        self.bytes_moved.fetch_add(bytes, Relaxed);
    }
    pub(crate) fn resent(&self, bytes: u64) {
        self.bytes_resent.fetch_add(bytes, Relaxed);
    }
    pub(crate) fn mounted(&self) {
        self.blobs_mounted.fetch_add(1, Relaxed);
    }
    pub(crate) fn present(&self) {
        self.blobs_present.fetch_add(1, Relaxed);
    }
    pub(crate) fn manifest_written(&self) {
        self.manifests_written.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            retries: self.retries.load(Relaxed),
            blobs_copied: self.blobs_copied.load(Relaxed),
            blobs_mounted: self.blobs_mounted.load(Relaxed),
            blobs_present: self.blobs_present.load(Relaxed),
            bytes_moved: self.bytes_moved.load(Relaxed),
            bytes_resent: self.bytes_resent.load(Relaxed),
            manifests_written: self.manifests_written.load(Relaxed),
        }
    }
}

impl std::ops::AddAssign for StatsSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.retries += o.retries;
        self.blobs_copied += o.blobs_copied;
        self.blobs_mounted += o.blobs_mounted;
        self.blobs_present += o.blobs_present;
        self.bytes_moved += o.bytes_moved;
        self.bytes_resent += o.bytes_resent;
        self.manifests_written += o.manifests_written;
    }
}
