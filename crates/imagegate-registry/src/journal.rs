//! The promotion journal: a record on disk of every tag a promotion moves,
//! written before the first write and kept current as moves land, so that a
//! promotion killed half-way can be put back (`restore`).
//!
//! Every update replaces the file whole: the new text goes to a temporary
//! file in the same directory, is synced, and is renamed over the old one
//! (then the directory is synced). A reader therefore sees the previous
//! record or the next one, never half of one, whenever the writer dies.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// The `format` field of every record: tells a record from any other JSON.
pub const RECORD_FORMAT: &str = "imagegate-promotion-record";
/// The version of the record layout this engine writes and reads. A record
/// of another version is refused rather than half understood.
/// Version 2: an entry's `after` may be null, a tag the promotion removed
/// (a change tag); version 1 records (every `after` a digest) are read too.
pub const RECORD_VERSION: u32 = 2;

/// Where a promotion stands.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Planned, and moves may have landed: the process may have died.
    InProgress,
    /// Every move landed and was verified.
    Complete,
    /// The promotion stopped on an error; see each entry's state.
    Failed,
}

/// Where one tag stands.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Not moved yet (or moved just before the process died: the registry,
    /// not the record, has the last word; `restore` reads it).
    Pending,
    /// Moved and verified.
    Moved,
    /// Already pointed at the new digest: nothing to move.
    Unchanged,
    /// Moved, then put back after a failure.
    PutBack,
}

/// One tag of a promotion.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The registry host (`host[:port]`).
    pub registry: String,
    /// The repository path within the registry.
    pub repository: String,
    pub tag: String,
    /// The digest the tag pointed at before the promotion; `None`: absent.
    pub before: Option<String>,
    /// The digest the promotion points the tag at; `None`: the promotion
    /// removes the tag.
    pub after: Option<String>,
    pub state: EntryState,
}

impl Entry {
    /// `registry/repository:tag`, as messages name a tag.
    pub fn name(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// The whole record, as stored.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub format: String,
    pub version: u32,
    pub state: RecordState,
    /// Unix seconds when the promotion started and when the record last changed.
    pub started: u64,
    pub updated: u64,
    pub entries: Vec<Entry>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::new(ErrorKind::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Record {
    /// A new record, in progress, of `entries`.
    pub fn new(entries: Vec<Entry>) -> Self {
        let t = now();
        Self {
            format: RECORD_FORMAT.to_string(),
            version: RECORD_VERSION,
            state: RecordState::InProgress,
            started: t,
            updated: t,
            entries,
        }
    }

    /// Reads and checks a record file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let value: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::new(ErrorKind::Protocol(format!("{} is not a promotion record: {e}", path.display()))))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(RECORD_FORMAT) {
            return Err(Error::new(ErrorKind::Protocol(format!(
                "{} is not a promotion record (no \"format\": \"{RECORD_FORMAT}\")",
                path.display()
            ))));
        }
        if !matches!(value.get("version").and_then(|v| v.as_u64()), Some(1) | Some(2)) {
            return Err(Error::new(ErrorKind::Protocol(format!(
                "{}: record version {} is not supported (this imagegate reads versions 1 and {RECORD_VERSION})",
                path.display(),
                value.get("version").map(|v| v.to_string()).unwrap_or_else(|| "(none)".into())
            ))));
        }
        serde_json::from_value(value).map_err(|e| {
            Error::new(ErrorKind::Protocol(format!(
                "{} is not a valid promotion record: {e}",
                path.display()
            )))
        })
    }
}

/// Replaces `path` with `bytes` so that a reader sees the old or the new
/// content, never a mix: temporary file in the same directory, fsync,
/// rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".imagegate-record-")
        .tempfile_in(&dir)
        .map_err(|e| io_error(path, e))?;
    tmp.write_all(bytes).map_err(|e| io_error(path, e))?;
    tmp.as_file().sync_all().map_err(|e| io_error(path, e))?;
    tmp.persist(path).map_err(|e| io_error(path, e.error))?;
    // The rename itself is durable only once the directory is synced.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A record being kept current on disk while a promotion runs.
pub struct Journal {
    path: PathBuf,
    record: Mutex<Record>,
    /// Entry index by `registry/repository:tag`.
    index: HashMap<String, usize>,
}

impl Journal {
    /// Writes `record` to `path` (before the first write of a promotion).
    pub fn create(path: &Path, record: Record) -> Result<Self, Error> {
        let index = record.entries.iter().enumerate().map(|(i, e)| (e.name(), i)).collect();
        let journal = Self {
            path: path.to_path_buf(),
            record: Mutex::new(record),
            index,
        };
        journal.save(&journal.record.lock().expect("journal"))?;
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn save(&self, record: &Record) -> Result<(), Error> {
        let mut text = serde_json::to_vec_pretty(record).expect("a record serialises");
        text.push(b'\n');
        write_atomically(&self.path, &text)
    }

    /// Records that the tag `name` (`registry/repository:tag`) is now in `state`.
    pub fn mark(&self, name: &str, state: EntryState) -> Result<(), Error> {
        let mut record = self.record.lock().expect("journal");
        if let Some(i) = self.index.get(name) {
            record.entries[*i].state = state;
            record.updated = now();
            self.save(&record)?;
        }
        Ok(())
    }

    /// Adds `entry` (a tag the promotion is about to change beyond its
    /// plan, such as a change tag it removes), written before that change.
    pub fn append(&mut self, entry: Entry) -> Result<(), Error> {
        let record = self.record.get_mut().expect("journal");
        self.index.insert(entry.name(), record.entries.len());
        record.entries.push(entry);
        record.updated = now();
        let record = self.record.lock().expect("journal");
        self.save(&record)
    }

    /// Marks the whole promotion `state` (complete or failed).
    pub fn finish(&self, state: RecordState) -> Result<(), Error> {
        let mut record = self.record.lock().expect("journal");
        record.state = state;
        record.updated = now();
        self.save(&record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: &str) -> Entry {
        Entry {
            registry: "r.example".into(),
            repository: "a/b".into(),
            tag: tag.into(),
            before: None,
            after: Some(format!("sha256:{}", "0".repeat(64))),
            state: EntryState::Pending,
        }
    }

    #[test]
    fn a_journal_is_read_back_as_it_was_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.json");
        let j = Journal::create(&path, Record::new(vec![entry("x"), entry("y")])).unwrap();
        j.mark("r.example/a/b:y", EntryState::Moved).unwrap();
        let r = Record::read(&path).unwrap();
        assert_eq!(r.state, RecordState::InProgress);
        assert_eq!(r.entries[0].state, EntryState::Pending);
        assert_eq!(r.entries[1].state, EntryState::Moved);
        j.finish(RecordState::Complete).unwrap();
        assert_eq!(Record::read(&path).unwrap().state, RecordState::Complete);
        // Only the record is left in the directory: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn other_json_and_other_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.json");
        std::fs::write(&path, "[]").unwrap();
        assert!(Record::read(&path).unwrap_err().to_string().contains("not a promotion record"));
        let mut v = serde_json::to_value(Record::new(vec![])).unwrap();
        v["version"] = 9.into();
        std::fs::write(&path, v.to_string()).unwrap();
        assert!(Record::read(&path).unwrap_err().to_string().contains("version 9"));
    }
}
