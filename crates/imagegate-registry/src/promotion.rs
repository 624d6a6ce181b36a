//! The promotion workflow, as container_retag runs it: resolve every image,
//! gate the plan (criteria, signatures), journal it, move the tags (all or
//! nothing), then remove tags and clean up stale ones. Each phase is a
//! function here; [`run`] calls them in order and returns a typed report,
//! or a typed failure that says what changed. The moves themselves are
//! [`crate::promote`]'s; putting a record back is [`crate::restore`]'s.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::client::RegistryClient;
use crate::criteria::{self, Candidate, Met, Unmet, ZuulCriteria};
use crate::error::Error;
use crate::journal::{Entry, EntryState, Journal, RecordState};
use crate::promote::{self, Planned, PromoteFailure, RetagRequest, TagMove};
use crate::reference::Reference;
use crate::referrers;
use crate::report::TextDiff;
use crate::stats::Stats;
use crate::tags::{human_age, Removal, RemoveMethod, TagRemover, WebApi};
use crate::transport::TransportOptions;

/// How the workflow reaches registries: clients with the right credentials
/// for a repository, a registry's web API, and the transport options for
/// other HTTP APIs (Zuul's). The module layer implements it over its
/// validated options.
pub trait Endpoints {
    /// A client for `reference`'s repository, with the credentials of the
    /// settings named `key` (by default the registry host's).
    fn client(&self, reference: &Reference, key: Option<&str>) -> Result<RegistryClient, Error>;
    fn web_api(&self, registry: &str, key: Option<&str>) -> WebApi;
    fn transport_options(&self) -> TransportOptions;
}

/// One image: tags to move to its source, tags to remove from its
/// destination repository (after every move succeeded).
pub struct Image {
    pub request: RetagRequest,
    pub remove: Vec<String>,
    /// The settings key for its credentials (zuul-jobs' `registry`).
    pub registry: Option<String>,
}

/// Tags of a repository matching `pattern` and older than `age` seconds.
pub struct StaleTags {
    pub repo: Reference,
    pub pattern: regex::Regex,
    pub age: u64,
}

/// A whole run.
pub struct Promotion {
    pub images: Vec<Image>,
    pub cleanups: Vec<StaleTags>,
    pub method: RemoveMethod,
    /// Put back every tag already moved when a move fails.
    pub atomic: bool,
    /// Check mode: read, plan and gate; write nothing.
    pub check: bool,
    pub record_file: Option<PathBuf>,
    pub require_signature: bool,
    pub criteria: Option<ZuulCriteria>,
    pub concurrency: usize,
    pub stats: Arc<Stats>,
}

/// What the plan and its gates found, before anything is written.
#[derive(Debug, Default, Serialize)]
pub struct Gated {
    /// Every image re-tagged within its own repository: no byte moves, so
    /// every signature made over its digest stays valid.
    pub signatures_stay_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criteria: Option<CriteriaMet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<Vec<SignatureFound>>,
    pub moves: Vec<TagMove>,
    /// The moves as the zuul-jobs promote record lists them.
    pub record: Vec<RecordedMove>,
}

/// The criteria, met.
#[derive(Debug, Serialize)]
pub struct CriteriaMet {
    pub jobs: Vec<String>,
    pub pipelines: Vec<String>,
    pub met: Vec<Met>,
    pub builds_read: usize,
    pub msg: String,
}

#[derive(Debug, Serialize)]
pub struct SignatureFound {
    /// `registry/repository@digest`.
    pub image: String,
    pub signature: String,
}

#[derive(Debug, Serialize)]
pub struct RecordedMove {
    pub image: String,
    pub tag: String,
    pub old_digest: Option<String>,
    pub new_digest: String,
    pub changed: bool,
}

/// A tag named for removal, removed or not.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RemovedTag {
    /// Removed (`method`), or already absent (`before` and `method` null).
    Removed {
        tag: String,
        before: Option<String>,
        method: Option<RemoveMethod>,
    },
    /// Left in place: the registry cannot remove tags (method `auto`).
    Failed {
        tag: String,
        method: Option<RemoveMethod>,
        failed: bool,
        msg: String,
    },
}

/// A stale tag cleaned up, with its age and where the age came from.
#[derive(Debug, Serialize)]
pub struct CleanedTag {
    pub tag: String,
    pub age: String,
    pub age_seconds: u64,
    pub age_from: &'static str,
}

/// A finished run.
#[derive(Debug, Serialize)]
pub struct PromotionReport {
    #[serde(flatten)]
    pub plan: Gated,
    pub removed: Vec<RemovedTag>,
    pub cleaned: Vec<CleanedTag>,
    pub retries: u64,
    /// Anything moved or removed (or would be, in check mode).
    #[serde(skip)]
    pub changed: bool,
    #[serde(skip)]
    pub diff: TextDiff,
    /// One per tag that could not be removed.
    #[serde(skip)]
    pub not_removed: Vec<String>,
}

impl PromotionReport {
    pub fn tags_moved(&self) -> usize {
        self.plan.moves.iter().filter(|m| m.changed).count()
    }

    pub fn tags_removed(&self) -> usize {
        self.removed
            .iter()
            .filter(|r| matches!(r, RemovedTag::Removed { method: Some(_), .. }))
            .count()
    }
}

/// Why a run stopped. `changed`: tags had already moved.
#[derive(Debug)]
pub enum PromotionError {
    Registry {
        error: Error,
        changed: bool,
    },
    /// The criteria could not be read (nothing moved).
    CriteriaUnreadable(Error),
    /// Jobs that did not succeed for an image (nothing moved).
    CriteriaUnmet(Vec<Unmet>),
    /// Images with no signature, by label and name (nothing moved).
    Unsigned(Vec<String>),
    /// The record file could not be written.
    Record {
        error: Error,
        changed: bool,
    },
    /// A move failed; what moved and what was put back.
    Apply {
        plan: Box<Gated>,
        failure: PromoteFailure,
    },
    /// A tag could not be removed.
    Removal {
        tag: String,
        error: Error,
        changed: bool,
    },
}

fn registry(changed: bool) -> impl Fn(Error) -> PromotionError {
    move |error| PromotionError::Registry { error, changed }
}

fn record(changed: bool) -> impl Fn(Error) -> PromotionError {
    move |error| PromotionError::Record { error, changed }
}

/// Runs every phase in order.
pub async fn run(p: &Promotion, at: &dyn Endpoints) -> Result<PromotionReport, PromotionError> {
    let mut items = Vec::new();
    for img in p.images.iter().filter(|i| !i.request.targets.is_empty()) {
        let client = at.client(&img.request.source, img.registry.as_deref()).map_err(registry(false))?;
        items.push((img.request.clone(), client));
    }
    let planned = promote::plan(&items, p.concurrency).await.map_err(registry(false))?;
    let plan = gate(p, at, &planned, &items).await?;
    let remover = TagRemover::default();
    let journal = if p.check {
        None
    } else {
        match move_tags(p, at, &planned, &items, &remover).await {
            Ok(journal) => journal,
            Err(MoveError::Record(error)) => return Err(PromotionError::Record { error, changed: false }),
            Err(MoveError::Apply(failure)) => {
                return Err(PromotionError::Apply {
                    plan: Box::new(plan),
                    failure,
                })
            }
        }
    };
    // A tag to move (check mode: one that would); written only out of check mode.
    let changed = plan.moves.iter().any(|m| m.changed);
    let wrote = !p.check && changed;
    let mut diff = TextDiff::default();
    for m in &plan.moves {
        diff.push(&format!("{}:{}", m.repository, m.tag), m.before.as_deref(), Some(&m.after));
    }
    let mut report = PromotionReport {
        changed,
        plan,
        removed: Vec::new(),
        cleaned: Vec::new(),
        retries: 0,
        diff,
        not_removed: Vec::new(),
    };
    remove_tags(p, at, &remover, journal, wrote, &mut report).await?;
    clean_up(p, at, &remover, wrote, &mut report).await?;
    report.retries = p.stats.snapshot().retries;
    Ok(report)
}

/// Phase 2: the gates, before anything moves (and in check mode too): the
/// criteria and the signatures, for exactly the digests the plan resolved
/// (the ones that move even if a source tag moves meanwhile).
async fn gate(
    p: &Promotion,
    at: &dyn Endpoints,
    planned: &[Planned],
    items: &[(RetagRequest, RegistryClient)],
) -> Result<Gated, PromotionError> {
    // A re-tag within one repository moves no bytes: the digest, and so
    // every signature and attestation made over it, stays valid.
    let signatures_stay_valid = planned
        .iter()
        .all(|p| p.request.source.registry == p.request.dest.registry && p.request.source.repository == p.request.dest.repository);
    let criteria = match &p.criteria {
        Some(c) => Some(check_criteria(c, planned, at, &p.stats).await?),
        None => None,
    };
    let signatures = if p.require_signature {
        Some(find_signatures(planned, items).await?)
    } else {
        None
    };
    let moves: Vec<TagMove> = planned.iter().flat_map(|p| p.moves.iter().cloned()).collect();
    let record = planned
        .iter()
        .flat_map(|p| {
            p.moves
                .iter()
                .filter(|m| !m.tag.starts_with("previous-") || !p.request.keep_previous)
                .map(|m| RecordedMove {
                    image: m.repository.clone(),
                    tag: m.tag.clone(),
                    old_digest: m.before.clone(),
                    new_digest: m.after.clone(),
                    changed: m.changed,
                })
        })
        .collect();
    Ok(Gated {
        signatures_stay_valid,
        criteria,
        signatures,
        moves,
        record,
    })
}

/// The jobs named must have succeeded for every planned digest.
async fn check_criteria(c: &ZuulCriteria, planned: &[Planned], at: &dyn Endpoints, stats: &Stats) -> Result<CriteriaMet, PromotionError> {
    let candidates: Vec<Candidate> = planned
        .iter()
        .map(|p| Candidate {
            image: p.request.source.repository_name(),
            digest: p.manifest.digest.clone(),
        })
        .collect();
    let verdict = criteria::check(c, &candidates, &at.transport_options(), stats)
        .await
        .map_err(PromotionError::CriteriaUnreadable)?;
    if !verdict.unmet.is_empty() {
        return Err(PromotionError::CriteriaUnmet(verdict.unmet));
    }
    let images: BTreeSet<&str> = candidates.iter().map(|c| c.image.as_str()).collect();
    Ok(CriteriaMet {
        jobs: c.jobs.clone(),
        pipelines: c.pipelines.clone(),
        met: verdict.met,
        builds_read: verdict.builds_read,
        msg: format!("{} jobs succeeded for all {} images", c.jobs.len(), images.len()),
    })
}

/// Every planned image must have a signature; all missing ones are named.
async fn find_signatures(planned: &[Planned], items: &[(RetagRequest, RegistryClient)]) -> Result<Vec<SignatureFound>, PromotionError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for p in planned {
        let Some((_, c)) = items.iter().find(|(r, _)| r.label == p.request.label) else {
            continue;
        };
        let image = format!("{}@{}", p.request.source.repository_name(), p.manifest.digest);
        match referrers::signature_present(c, &p.request.source.repository, &p.manifest.digest)
            .await
            .map_err(registry(false))?
        {
            Some(signature) => found.push(SignatureFound { image, signature }),
            None => missing.push(format!("{} ({image})", p.request.label)),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(PromotionError::Unsigned(missing))
    }
}

/// A failure of [`move_tags`].
enum MoveError {
    Record(Error),
    Apply(PromoteFailure),
}

/// Phase 3: the record written before the first write (the whole plan,
/// every target's previous digest or its absence), then every move, all or
/// nothing. Returns the record, kept open for the removals.
async fn move_tags(
    p: &Promotion,
    at: &dyn Endpoints,
    planned: &[Planned],
    items: &[(RetagRequest, RegistryClient)],
    remover: &TagRemover,
) -> Result<Option<Journal>, MoveError> {
    let any_change = planned.iter().any(|pl| pl.moves.iter().any(|m| m.changed));
    let clients: Vec<RegistryClient> = items.iter().map(|(_, c)| c.clone()).collect();
    let webs: Vec<WebApi> = p
        .images
        .iter()
        .filter(|i| !i.request.targets.is_empty())
        .map(|i| at.web_api(&i.request.dest.registry, i.registry.as_deref()))
        .collect();
    let rollback = p.atomic.then_some((remover, webs.as_slice()));
    let journal = match &p.record_file {
        Some(path) if any_change => Some(Journal::create(path, promote::record(planned)).map_err(MoveError::Record)?),
        _ => None,
    };
    promote::apply(planned, &clients, rollback, journal.as_ref(), p.concurrency)
        .await
        .map_err(MoveError::Apply)?;
    if journal.is_some() {
        return Ok(journal);
    }
    // Nothing moved. A record already there (of the promotion this run
    // repeats) is kept, so that it can still be restored; else the record
    // says where every tag is.
    match &p.record_file {
        Some(path) if !path.exists() => {
            let mut rec = promote::record(planned);
            rec.state = RecordState::Complete;
            Journal::create(path, rec).map(Some).map_err(MoveError::Record)
        }
        _ => Ok(None),
    }
}

/// Phase 4: each image's `remove` tags, each journaled before it goes.
async fn remove_tags(
    p: &Promotion,
    at: &dyn Endpoints,
    remover: &TagRemover,
    mut journal: Option<Journal>,
    wrote: bool,
    report: &mut PromotionReport,
) -> Result<(), PromotionError> {
    for img in &p.images {
        let r = &img.request.dest;
        let c = at.client(r, img.registry.as_deref()).map_err(registry(wrote))?;
        let web = at.web_api(&r.registry, img.registry.as_deref());
        for tag in &img.remove {
            if let Some(j) = journal.as_mut() {
                journal_removal(j, &c, r, tag, wrote).await?;
            }
            let outcome = remover.remove(&c, &r.repository, tag, p.method, &web, p.check).await;
            if let (Some(j), Ok(_)) = (journal.as_ref(), &outcome) {
                let name = format!("{}/{}:{tag}", r.registry, r.repository);
                j.mark(&name, EntryState::Moved).map_err(record(wrote))?;
            }
            report.removal(r, tag, outcome, p.method, wrote)?;
        }
    }
    Ok(())
}

/// Writes a tag about to be removed into the promotion's record, with the
/// digest it points at (nothing for a tag that is already absent), so that
/// a restore puts it back: the record is written before the removal.
async fn journal_removal(j: &mut Journal, c: &RegistryClient, r: &Reference, tag: &str, wrote: bool) -> Result<(), PromotionError> {
    let Some(before) = c.manifest_digest(&r.repository, tag).await.map_err(registry(wrote))? else {
        return Ok(());
    };
    j.append(Entry {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        tag: tag.to_string(),
        before: Some(before.to_string()),
        after: None,
        state: EntryState::Pending,
    })
    .map_err(record(wrote))
}

/// Phase 5: stale tags, never one this run just moved.
async fn clean_up(
    p: &Promotion,
    at: &dyn Endpoints,
    remover: &TagRemover,
    wrote: bool,
    report: &mut PromotionReport,
) -> Result<(), PromotionError> {
    let targets: BTreeSet<String> = report.plan.moves.iter().map(|m| format!("{}:{}", m.repository, m.tag)).collect();
    for cl in &p.cleanups {
        let c = at.client(&cl.repo, None).map_err(registry(wrote))?;
        let web = at.web_api(&cl.repo.registry, None);
        let ages = remover
            .tag_ages(&c, &cl.repo.repository, &cl.pattern, &web)
            .await
            .map_err(registry(wrote))?;
        for a in ages {
            let name = format!("{}:{}", cl.repo.repository_name(), a.tag);
            if a.age_seconds < cl.age || targets.contains(&name) {
                continue;
            }
            let outcome = remover.remove(&c, &cl.repo.repository, &a.tag, p.method, &web, p.check).await;
            report.removal(&cl.repo, &a.tag, outcome, p.method, wrote)?;
            report.cleaned.push(CleanedTag {
                tag: name,
                age: human_age(a.age_seconds),
                age_seconds: a.age_seconds,
                age_from: a.source,
            });
        }
    }
    Ok(())
}

impl PromotionReport {
    /// Adds a removal's outcome. With `auto`, a registry that cannot remove
    /// tags at all (zuul-registry) leaves the tag: noted, not a failure,
    /// since the promotion itself succeeded.
    fn removal(
        &mut self,
        repo: &Reference,
        tag: &str,
        outcome: Result<Removal, Error>,
        method: RemoveMethod,
        wrote: bool,
    ) -> Result<(), PromotionError> {
        let name = format!("{}:{tag}", repo.repository_name());
        match outcome {
            Ok(r) => {
                if let Some(before) = &r.before {
                    self.changed = true;
                    self.diff.push(&name, Some(before), None);
                }
                self.removed.push(RemovedTag::Removed {
                    tag: name,
                    before: r.before,
                    method: r.method,
                });
                Ok(())
            }
            Err(e) if method == RemoveMethod::Auto && !e.is_temporary() => {
                self.not_removed.push(format!("{name} was not removed: {e}"));
                self.removed.push(RemovedTag::Failed {
                    tag: name,
                    method: None,
                    failed: true,
                    msg: e.to_string(),
                });
                Ok(())
            }
            Err(error) => Err(PromotionError::Removal {
                tag: name,
                error,
                changed: wrote,
            }),
        }
    }
}
