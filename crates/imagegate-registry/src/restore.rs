//! Putting every tag of a promotion record back where it was before the
//! promotion: to its previous manifest, or removed if it did not exist; a
//! tag the promotion removed (a change tag) is put back at its digest.
//!
//! Every tag is read first; a tag that points neither at the record's
//! previous digest nor at its new one has been moved by someone else since,
//! and then nothing is written at all. A tag already at its previous digest
//! needs nothing, so a second restore changes nothing.

use futures_util::StreamExt;
use serde::Serialize;

use crate::client::RegistryClient;
use crate::error::{Error, ErrorKind};
use crate::journal::{Entry, Record};
use crate::log;
use crate::manifest::Manifest;
use crate::report::TextDiff;
use crate::stats::Stats;
use crate::tags::{RemoveMethod, TagRemover, WebApi};

/// Tags put back at once.
const CONCURRENCY: usize = 8;

/// What restoring does to one tag.
enum Action {
    /// Already where it was before the promotion.
    Nothing,
    /// Point the tag at this manifest again (fetched while planning).
    Put(Box<Manifest>),
    /// The tag did not exist before the promotion.
    Remove,
}

/// One tag of the record, as found now.
struct Step {
    /// Index into the record's entries (and the caller's clients).
    index: usize,
    current: Option<String>,
    action: Action,
}

/// One tag that moves back (or would, or already is back).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreMove {
    /// `registry/repository`.
    pub repository: String,
    pub tag: String,
    /// Where the tag points now; `None`: absent.
    pub before: Option<String>,
    /// Where the tag points once restored; `None`: absent.
    pub after: Option<String>,
    pub changed: bool,
}

/// The restore of a record, read and checked, nothing written yet.
pub struct RestorePlan {
    entries: Vec<Entry>,
    steps: Vec<Step>,
}

impl RestorePlan {
    /// Every tag the record moved, with where it is and where it goes back to.
    pub fn moves(&self) -> Vec<RestoreMove> {
        self.steps
            .iter()
            .map(|s| {
                let e = &self.entries[s.index];
                RestoreMove {
                    repository: format!("{}/{}", e.registry, e.repository),
                    tag: e.tag.clone(),
                    before: s.current.clone(),
                    after: e.before.clone(),
                    changed: !matches!(s.action, Action::Nothing),
                }
            })
            .collect()
    }
}

/// Reads every tag the record moved (`clients[i]` serves `record.entries[i]`)
/// and fetches the manifests to put back. Fails, naming every tag someone
/// else has moved since, before anything is written.
pub async fn plan(record: &Record, clients: &[RegistryClient]) -> Result<RestorePlan, Error> {
    let moved: Vec<usize> = (0..record.entries.len())
        .filter(|&i| record.entries[i].before != record.entries[i].after)
        .collect();
    let found: Vec<Result<Result<Step, String>, Error>> =
        futures_util::stream::iter(moved.into_iter().map(|i| plan_one(i, &record.entries[i], &clients[i])))
            .buffered(CONCURRENCY)
            .collect()
            .await;
    let mut steps = Vec::new();
    let mut foreign = Vec::new();
    for f in found {
        match f? {
            Ok(s) => steps.push(s),
            Err(who) => foreign.push(who),
        }
    }
    if !foreign.is_empty() {
        return Err(Error::new(ErrorKind::Protocol(format!(
            "nothing was restored; moved by someone else since the promotion: {}",
            foreign.join("; ")
        ))));
    }
    Ok(RestorePlan {
        entries: record.entries.clone(),
        steps,
    })
}

async fn plan_one(index: usize, e: &Entry, client: &RegistryClient) -> Result<Result<Step, String>, Error> {
    let current = client.manifest_digest(&e.repository, &e.tag).await?.map(|d| d.to_string());
    let action = if current == e.before {
        Action::Nothing
    } else if current == e.after {
        // A tag the promotion removed comes back at its digest.
        match &e.before {
            // By digest: the manifest outlives its tag in the repository.
            Some(d) => Action::Put(Box::new(client.get_manifest(&e.repository, d).await?)),
            None => Action::Remove,
        }
    } else {
        return Ok(Err(format!(
            "{} points at {}, neither {} (before the promotion) nor {} (after it)",
            e.name(),
            current.as_deref().unwrap_or("(absent)"),
            e.before.as_deref().unwrap_or("(absent)"),
            e.after.as_deref().unwrap_or("(removed)")
        )));
    };
    Ok(Ok(Step { index, current, action }))
}

/// A restore done (or, in check mode, planned).
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub moves: Vec<RestoreMove>,
    /// The tags put back (none in check mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Vec<String>>,
    pub retries: u64,
    #[serde(skip)]
    pub diff: TextDiff,
}

impl RestoreReport {
    pub fn tags_moved(&self) -> usize {
        self.moves.iter().filter(|m| m.changed).count()
    }
}

/// Why a restore stopped.
#[derive(Debug)]
pub enum RestoreError {
    /// Reading the tags failed, or one moved since: nothing written.
    Plan(Error),
    /// Some tags could not be put back; `moves` is the plan.
    Apply { moves: Vec<RestoreMove>, failure: RestoreFailure },
}

/// The whole restore of `record`: plan, then (unless `check`) put back.
/// `clients` and `webs` serve the record's entries, one each, in order.
pub async fn run(
    record: &Record,
    clients: &[RegistryClient],
    webs: &[WebApi],
    method: RemoveMethod,
    check: bool,
    stats: &Stats,
) -> Result<RestoreReport, RestoreError> {
    let plan = plan(record, clients).await.map_err(RestoreError::Plan)?;
    let moves = plan.moves();
    let mut diff = TextDiff::default();
    for m in &moves {
        diff.push(&format!("{}:{}", m.repository, m.tag), m.before.as_deref(), m.after.as_deref());
    }
    let restored = if check {
        None
    } else {
        match apply(&plan, clients, &TagRemover::default(), method, webs).await {
            Ok(restored) => Some(restored),
            Err(failure) => return Err(RestoreError::Apply { moves, failure }),
        }
    };
    Ok(RestoreReport {
        moves,
        restored,
        retries: stats.snapshot().retries,
        diff,
    })
}

/// What happened when a restore failed part-way.
#[derive(Debug)]
pub struct RestoreFailure {
    /// Every error, one per tag that could not be put back.
    pub errors: Vec<String>,
    /// Tags put back before or beside the failures.
    pub restored: Vec<String>,
}

/// Puts every planned tag back. Each tag is read again just before its write
/// and must still point where the plan saw it; a tag put back to a manifest
/// is read once more after the write. Returns the tags put back.
pub async fn apply(
    plan: &RestorePlan,
    clients: &[RegistryClient],
    remover: &TagRemover,
    method: RemoveMethod,
    webs: &[WebApi],
) -> Result<Vec<String>, RestoreFailure> {
    let results: Vec<(String, Result<(), Error>)> = futures_util::stream::iter(
        plan.steps
            .iter()
            .filter(|s| !matches!(s.action, Action::Nothing))
            .map(|s| async move {
                let e = &plan.entries[s.index];
                let r = apply_one(e, s, &clients[s.index], (remover, method), &webs[s.index]).await;
                (e.name(), r)
            }),
    )
    .buffered(CONCURRENCY)
    .collect()
    .await;
    let mut restored = Vec::new();
    let mut errors = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) => restored.push(name),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(restored)
    } else {
        Err(RestoreFailure { errors, restored })
    }
}

async fn apply_one(
    e: &Entry,
    s: &Step,
    client: &RegistryClient,
    (remover, method): (&TagRemover, RemoveMethod),
    web: &WebApi,
) -> Result<(), Error> {
    let moved = |found: Option<String>, expected: Option<&str>| {
        Error::new(ErrorKind::TagMoved {
            tag: e.name(),
            expected: expected.unwrap_or("(absent)").to_string(),
            found: found.unwrap_or_else(|| "(absent)".into()),
        })
    };
    let now = client.manifest_digest(&e.repository, &e.tag).await?.map(|d| d.to_string());
    if now != s.current {
        return Err(moved(now, s.current.as_deref()));
    }
    match &s.action {
        Action::Nothing => {}
        Action::Put(m) => {
            client.put_manifest(&e.repository, &e.tag, m).await?;
            let now = client.manifest_digest(&e.repository, &e.tag).await?.map(|d| d.to_string());
            if now.as_deref() != Some(m.digest.as_str()) {
                return Err(moved(now, Some(m.digest.as_str())));
            }
        }
        Action::Remove => {
            remover.remove(client, &e.repository, &e.tag, method, web, false).await?;
        }
    }
    log::info(&format!("{}: put back to {}", e.name(), e.before.as_deref().unwrap_or("(absent)")));
    Ok(())
}
