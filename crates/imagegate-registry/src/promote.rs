//! Promotion: pointing tags at the manifest another tag (or a digest)
//! points at, for a set of images at once and never half-way. Every source
//! is resolved before anything moves; if a write fails, every tag already
//! moved is put back. Each move is a compare-and-swap as far as the
//! registry API allows: the tag is read just before its write and must still
//! point where the plan saw it, and once every image is through, every
//! moved tag is read again.

use std::collections::HashMap;

use futures_util::StreamExt;
use serde::Serialize;

use crate::client::RegistryClient;
use crate::copy::{copy_tree, BlobCache, Source};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::journal::{Entry, EntryState, Journal, Record, RecordState};
use crate::log;
use crate::manifest::Manifest;
use crate::reference::Reference;
use crate::tags::{RemoveMethod, TagRemover, WebApi};

/// One image to promote.
#[derive(Debug, Clone)]
pub struct RetagRequest {
    /// The source: `registry/repo:tag` or `registry/repo@digest`.
    pub source: Reference,
    /// The repository that gets the target tags (same registry).
    pub dest: Reference,
    pub targets: Vec<String>,
    /// Promote only if the source still resolves to this digest.
    pub expected: Option<Digest>,
    /// Keep the digest a target pointed at under `previous-<target>`.
    pub keep_previous: bool,
    /// How messages name this request (`images[3]`).
    pub label: String,
}

/// One tag that moves (or would, or already points where it should).
#[derive(Debug, Clone, Serialize)]
pub struct TagMove {
    pub repository: String,
    pub tag: String,
    pub before: Option<String>,
    pub after: String,
    pub changed: bool,
}

/// A request with its source resolved.
pub struct Planned {
    pub request: RetagRequest,
    pub manifest: Manifest,
    pub moves: Vec<TagMove>,
    /// Manifests the moved tags pointed at, kept to put them back.
    old: HashMap<String, Manifest>,
}

/// Images resolved or moved at once by default (container_retag's
/// `concurrency`). Each image costs a few small requests, so round trips
/// run in parallel, not bandwidth, set the pace of a promotion; see
/// docs/architecture.md for the measurement behind the figure.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// The target tags of one image read at once while planning (so at most
/// `concurrency` x (1 + this) requests are in flight).
const TAG_READS_AT_ONCE: usize = 4;

/// How one image resolved.
enum Resolved {
    Ready(Box<Planned>),
    Missing(String),
    Mismatch(String),
}

/// Resolves every source and target. Fails, listing every missing source
/// and every digest mismatch, before anything is written.
pub async fn plan(items: &[(RetagRequest, RegistryClient)], concurrency: usize) -> Result<Vec<Planned>, Error> {
    for (req, _) in items {
        if req.source.registry != req.dest.registry {
            return Err(Error::new(ErrorKind::Protocol(format!(
                "{} and {} are on different registries; copy between registries with registry_mirror",
                req.source, req.dest
            ))));
        }
    }
    let resolved: Vec<Result<Resolved, Error>> = futures_util::stream::iter(items.iter().map(|(req, client)| plan_one(req, client)))
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut planned = Vec::new();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for r in resolved {
        match r? {
            Resolved::Ready(p) => planned.push(*p),
            Resolved::Missing(m) => missing.push(m),
            Resolved::Mismatch(m) => mismatched.push(m),
        }
    }
    if !missing.is_empty() || !mismatched.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} missing: {}", missing.len(), missing.join(", ")));
        }
        if !mismatched.is_empty() {
            parts.push(format!("digest mismatch: {}", mismatched.join(", ")));
        }
        return Err(Error::new(ErrorKind::Protocol(format!(
            "nothing was promoted; {}",
            parts.join("; ")
        ))));
    }
    refuse_conflicts(planned.iter().flat_map(|p| {
        p.moves.iter().map(|m| Claim {
            tag: format!("{}:{}", m.repository, m.tag),
            image: m.after.clone(),
            entry: format!("{} ({})", p.request.label, p.request.source),
        })
    }))?;
    Ok(planned)
}

/// One destination tag that an entry of a call wants to point at an image.
pub struct Claim {
    /// `registry/repository:tag`.
    pub tag: String,
    /// What identifies the image (its digest, and any platform filter).
    pub image: String,
    /// How messages name the entry (`images[3] (registry/repo:tag)`).
    pub entry: String,
}

/// Refuses a call in which one destination tag would receive two different
/// images, naming both entries. The same image claimed twice is no conflict.
pub fn refuse_conflicts(claims: impl IntoIterator<Item = Claim>) -> Result<(), Error> {
    let mut seen: HashMap<String, Claim> = HashMap::new();
    for c in claims {
        match seen.get(&c.tag) {
            Some(first) if first.image != c.image => {
                return Err(Error::new(ErrorKind::Conflict {
                    tag: c.tag.clone(),
                    first: format!("{} -> {}", first.entry, first.image),
                    second: format!("{} -> {}", c.entry, c.image),
                }))
            }
            Some(_) => {}
            None => {
                seen.insert(c.tag.clone(), c);
            }
        }
    }
    Ok(())
}

/// The journal entries of a plan: every target, moving or not, once (two
/// entries of a call may name one tag for the same image).
pub fn record(planned: &[Planned]) -> Record {
    let mut seen = std::collections::HashSet::new();
    Record::new(
        planned
            .iter()
            .flat_map(|p| {
                p.moves.iter().map(|m| Entry {
                    registry: p.request.dest.registry.clone(),
                    repository: p.request.dest.repository.clone(),
                    tag: m.tag.clone(),
                    before: m.before.clone(),
                    after: Some(m.after.clone()),
                    state: if m.changed { EntryState::Pending } else { EntryState::Unchanged },
                })
            })
            .filter(|e| seen.insert(e.name()))
            .collect(),
    )
}

async fn plan_one(req: &RetagRequest, client: &RegistryClient) -> Result<Resolved, Error> {
    // The source and every target are read at once: one round trip, not
    // one per tag, before the plan is known.
    let (source, befores) = futures_util::future::join(
        client.get_manifest(&req.source.repository, &req.source.tag_or_digest()),
        futures_util::stream::iter(req.targets.iter().map(|tag| client.manifest_digest(&req.dest.repository, tag)))
            .buffered(TAG_READS_AT_ONCE)
            .collect::<Vec<_>>(),
    )
    .await;
    let m = match source {
        Ok(m) => m,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound { .. }) => match already_promoted(client, req).await? {
            // The source tag is gone but every target is at the expected
            // digest: an earlier run promoted this image and removed it.
            Some(m) => m,
            None => return Ok(Resolved::Missing(req.source.to_string())),
        },
        Err(e) => return Err(e),
    };
    if let Some(expected) = &req.expected {
        if *expected != m.digest {
            return Ok(Resolved::Mismatch(format!("{} is {} (expected {expected})", req.source, m.digest)));
        }
    }
    let mut moves = Vec::new();
    let mut old = HashMap::new();
    let repo = req.dest.repository_name();
    for (tag, before) in req.targets.iter().zip(befores) {
        let before = before?;
        let changed = before.as_ref() != Some(&m.digest);
        if let (true, Some(b)) = (changed, &before) {
            // Fetched now, so that putting it back never depends on a read at failure time.
            let prev = client.get_manifest(&req.dest.repository, b.as_str()).await?;
            if req.keep_previous {
                let keep = format!("previous-{tag}");
                let keep_before = client.manifest_digest(&req.dest.repository, &keep).await?;
                moves.push(TagMove {
                    repository: repo.clone(),
                    changed: keep_before.as_ref() != Some(b),
                    before: keep_before.map(|d| d.to_string()),
                    after: b.to_string(),
                    tag: keep,
                });
            }
            old.insert(b.to_string(), prev);
        }
        moves.push(TagMove {
            repository: repo.clone(),
            tag: tag.clone(),
            before: before.map(|d| d.to_string()),
            after: m.digest.to_string(),
            changed,
        });
    }
    Ok(Resolved::Ready(Box::new(Planned {
        request: req.clone(),
        manifest: m,
        moves,
        old,
    })))
}

async fn already_promoted(client: &RegistryClient, req: &RetagRequest) -> Result<Option<Manifest>, Error> {
    let Some(expected) = &req.expected else { return Ok(None) };
    for tag in &req.targets {
        if client.manifest_digest(&req.dest.repository, tag).await?.as_ref() != Some(expected) {
            return Ok(None);
        }
    }
    client.get_manifest(&req.dest.repository, expected.as_str()).await.map(Some)
}

/// What happened when a promotion failed midway.
#[derive(Debug)]
pub struct PromoteFailure {
    pub error: Error,
    /// Tags this run moved (and verified) before it stopped.
    pub moved: Vec<String>,
    /// Tags put back to where they were.
    pub restored: Vec<String>,
    /// Tags that could not be put back, with why.
    pub not_restored: Vec<String>,
}

/// How to put back tags after a failed write: `None` leaves them moved.
pub type Rollback<'a> = Option<(&'a TagRemover, &'a [WebApi])>;

/// Moves every planned tag, images at once. On failure no further image
/// starts; once the images under way have finished, with `rollback`, every
/// tag already moved is put back (the previous manifest, or removed if it
/// did not exist) and the outcome reported. With a `journal`, every move
/// and every put-back is recorded as it lands, and the end marked.
pub async fn apply(
    planned: &[Planned],
    clients: &[RegistryClient],
    rollback_with: Rollback<'_>,
    journal: Option<&Journal>,
    concurrency: usize,
) -> Result<(), PromoteFailure> {
    let done: std::sync::Mutex<Vec<(usize, &TagMove)>> = std::sync::Mutex::default();
    let failed = std::sync::atomic::AtomicBool::new(false);
    let cache = BlobCache::default();
    let (done_ref, failed_ref, cache_ref) = (&done, &failed, &cache);
    let results: Vec<Result<(), Error>> = futures_util::stream::iter(planned.iter().enumerate().map(|(i, p)| async move {
        if failed_ref.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let result = apply_one(p, &clients[i], cache_ref, journal, |mv| {
            done_ref.lock().expect("done").push((i, mv))
        })
        .await;
        if result.is_err() {
            failed_ref.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }))
    .buffer_unordered(concurrency.max(1))
    .collect()
    .await;
    let done = done.into_inner().expect("done");
    let error = match results.into_iter().find_map(Result::err) {
        None => verify_all(planned, clients, &done, concurrency).await.err(),
        Some(e) => Some(e),
    };
    let Some(error) = error else {
        if let Some(j) = journal {
            j.finish(RecordState::Complete).map_err(|error| PromoteFailure {
                error,
                moved: names(&done),
                restored: Vec::new(),
                not_restored: Vec::new(),
            })?;
        }
        return Ok(());
    };
    let failure = rollback(planned, clients, rollback_with, &done, error, journal).await;
    if let Some(j) = journal {
        if let Err(e) = j.finish(RecordState::Failed) {
            log::info(&format!("cannot mark the record {} failed: {e}", j.path().display()));
        }
    }
    Err(failure)
}

fn names(done: &[(usize, &TagMove)]) -> Vec<String> {
    done.iter().map(|(_, m)| format!("{}:{}", m.repository, m.tag)).collect()
}

/// Once every image is through: every tag this run moved must still point
/// where it put it (a concurrent writer may have moved one since).
async fn verify_all(planned: &[Planned], clients: &[RegistryClient], done: &[(usize, &TagMove)], concurrency: usize) -> Result<(), Error> {
    // Reads only, so at once; the first tag found moved (in the order the
    // moves landed) is the one reported.
    let checks: Vec<Result<(), Error>> = futures_util::stream::iter(done.iter().map(|(i, mv)| async move {
        let now = clients[*i].manifest_digest(&planned[*i].request.dest.repository, &mv.tag).await?;
        if now.as_ref().map(Digest::as_str) != Some(mv.after.as_str()) {
            return Err(moved_underneath(mv, &mv.after, now));
        }
        Ok(())
    }))
    .buffered(concurrency.max(1))
    .collect()
    .await;
    checks.into_iter().collect()
}

fn moved_underneath(mv: &TagMove, expected: &str, found: Option<Digest>) -> Error {
    Error::new(ErrorKind::TagMoved {
        tag: format!("{}:{}", mv.repository, mv.tag),
        expected: expected.to_string(),
        found: found.map(|d| d.to_string()).unwrap_or_else(|| "(absent)".into()),
    })
}

async fn apply_one<'a>(
    p: &'a Planned,
    client: &RegistryClient,
    cache: &BlobCache,
    journal: Option<&Journal>,
    mut moved: impl FnMut(&'a TagMove),
) -> Result<(), Error> {
    let req = &p.request;
    if req.dest.repository != req.source.repository && p.moves.iter().any(|m| m.changed) {
        let source = Source::Registry(client, &req.source.repository);
        copy_tree(source, client, &req.dest.repository, &p.manifest, 4, cache).await?;
        if p.manifest.is_index() {
            client
                .put_manifest(&req.dest.repository, p.manifest.digest.as_str(), &p.manifest)
                .await?;
        }
    }
    for mv in p.moves.iter().filter(|m| m.changed) {
        let m = if mv.after == p.manifest.digest.as_str() {
            &p.manifest
        } else {
            &p.old[&mv.after]
        };
        let repo = &req.dest.repository;
        // Compare: the tag must still point where the plan saw it. The
        // registry API has no conditional PUT, so this read just before the
        // write, and the read after it, are as close to a swap as it allows.
        let now = client.manifest_digest(repo, &mv.tag).await?;
        let now_str = now.as_ref().map(Digest::as_str);
        if now_str == Some(mv.after.as_str()) {
            // Already there (another entry of this call, or a twin run).
            continue;
        }
        if now_str != mv.before.as_deref() {
            return Err(moved_underneath(mv, mv.before.as_deref().unwrap_or("(absent)"), now));
        }
        // A stop asked for: no further tag moves; the caller rolls back.
        crate::interrupt::check(&format!("moving {}:{}", mv.repository, mv.tag))?;
        client.put_manifest(repo, &mv.tag, m).await?;
        // The read after the write is verify_all's, once every image is
        // through: one read per tag instead of two, the same check.
        log::info(&format!("{}:{} -> {}", mv.repository, mv.tag, mv.after));
        moved(mv);
        if let Some(j) = journal {
            j.mark(&format!("{}:{}", mv.repository, mv.tag), EntryState::Moved)?;
        }
    }
    Ok(())
}

async fn rollback(
    planned: &[Planned],
    clients: &[RegistryClient],
    with: Rollback<'_>,
    done: &[(usize, &TagMove)],
    error: Error,
    journal: Option<&Journal>,
) -> PromoteFailure {
    let mut restored = Vec::new();
    let mut not_restored = Vec::new();
    let moved = names(done);
    let Some((remover, web)) = with else {
        return PromoteFailure {
            error,
            moved,
            restored,
            not_restored: done
                .iter()
                .map(|(_, m)| format!("{}:{}: left moved (atomic is off)", m.repository, m.tag))
                .collect(),
        };
    };
    for (i, mv) in done.iter().rev() {
        let p = &planned[*i];
        let client = &clients[*i];
        let name = format!("{}:{}", mv.repository, mv.tag);
        // Only a tag still where this run put it is put back: one that a
        // concurrent writer has moved since is theirs now.
        match client.manifest_digest(&p.request.dest.repository, &mv.tag).await {
            Ok(now) if now.as_ref().map(Digest::as_str) == Some(mv.after.as_str()) => {}
            Ok(now) => {
                not_restored.push(format!("{}; left as is", moved_underneath(mv, &mv.after, now)));
                continue;
            }
            Err(e) => {
                not_restored.push(format!("{name}: {e}"));
                continue;
            }
        }
        let result = match &mv.before {
            Some(d) => match p.old.get(d).or_else(|| (p.manifest.digest.as_str() == d).then_some(&p.manifest)) {
                Some(m) => client.put_manifest(&p.request.dest.repository, &mv.tag, m).await,
                None => Err(Error::new(ErrorKind::Protocol(format!("the manifest {d} was not kept")))),
            },
            None => remover
                .remove(client, &p.request.dest.repository, &mv.tag, RemoveMethod::Auto, &web[*i], false)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => {
                log::info(&format!("{name}: put back to {}", mv.before.as_deref().unwrap_or("(absent)")));
                if let Some(j) = journal {
                    if let Err(e) = j.mark(&name, EntryState::PutBack) {
                        log::info(&format!("cannot record {name} as put back: {e}"));
                    }
                }
                restored.push(name);
            }
            Err(e) => not_restored.push(format!("{name}: {e}")),
        }
    }
    PromoteFailure {
        error,
        moved,
        restored,
        not_restored,
    }
}
