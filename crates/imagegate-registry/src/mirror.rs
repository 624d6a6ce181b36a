//! The mirror workflow, as registry_mirror runs it: choose each entry's
//! tags (one, a list, a pattern over the source's tag list, or all), refuse
//! a call that sends two images to one tag, copy every tag (with referrers),
//! and sum it all up in a typed summary. Each entry's copies are kept small:
//! the first [`LISTED_PER_ENTRY`] are reported one by one, the rest added up,
//! whatever the tag count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::client::RegistryClient;
use crate::copy::{copy_image, BlobCache, CopyReport, CopyRequest, TagChange};
use crate::digest::Digest;
use crate::error::Error;
use crate::listing::TagList;
use crate::promote::{refuse_conflicts, Claim};
use crate::reference::Reference;
use crate::referrers::{self, Carried};
use crate::report::{Rate, TextDiff};
use crate::stats::{Stats, StatsSnapshot};

/// How the workflow reaches the two sides; each may have its own
/// credentials for one registry. `stats` collects what the client does.
pub trait Sides {
    fn source(&self, src: &Reference, stats: Arc<Stats>) -> Result<RegistryClient, Error>;
    /// `key`: the settings naming the destination's credentials.
    fn destination(&self, dest: &Reference, key: Option<&str>, stats: Arc<Stats>) -> Result<RegistryClient, Error>;
}

/// How the tags of one entry are chosen.
#[derive(Debug)]
pub enum Selection {
    /// One source tag or digest to one destination tag, or (a digest
    /// source without a destination tag) to the destination by that digest,
    /// untagged: `dest_tag` is then the digest.
    One {
        dest_tag: String,
    },
    /// Source tags, each copied to the same tag.
    Tags(Vec<String>),
    Regex(regex::Regex),
    All,
}

/// One entry of a mirror.
#[derive(Debug)]
pub struct Entry {
    /// Its place in the call (`images[index]` in messages).
    pub index: usize,
    pub src: Reference,
    pub dest: Reference,
    /// The settings key of the destination's credentials.
    pub dest_registry: Option<String>,
    pub selection: Selection,
    /// `os/arch[/variant]` to keep from an index; empty keeps all.
    pub platforms: Vec<String>,
}

/// A whole run.
pub struct Mirror {
    pub entries: Vec<Entry>,
    /// Check mode: read and compare; write nothing.
    pub check: bool,
    /// Entries copied at once.
    pub concurrency: usize,
    /// Blobs of one image copied at once.
    pub blob_concurrency: usize,
    /// Carry referrers and cosign signature tags with each image.
    pub referrers: bool,
}

/// How many copies of one entry are reported one by one; the rest (an entry
/// with `all_tags` can have 100,000) are added up in one summary, so that
/// memory and the result stay small whatever the tag count.
pub const LISTED_PER_ENTRY: usize = 1000;

/// Tags of one entry (with `tags`, `tag_regex` or `all_tags`) resolved and
/// copied at once, in the order of the tag list: a repository of many tags
/// is round trips one after the other otherwise.
const TAGS_AT_ONCE: usize = 8;

/// What one entry did: what it copied (also when it failed part-way: those
/// tags did move) and the error it met, if any.
pub struct EntryResult {
    pub index: usize,
    pub src: String,
    pub dest: String,
    pub copies: Copies,
    pub error: Option<Error>,
    /// Names the source listed that are not valid tag names.
    pub skipped: TagList,
}

/// The copies of one entry, as they finish.
#[derive(Default)]
pub struct Copies {
    pub listed: Vec<(CopyReport, Carried)>,
    pub rest: Rest,
}

/// The copies of an entry beyond [`LISTED_PER_ENTRY`], added up.
#[derive(Default)]
pub struct Rest {
    pub copies: usize,
    pub changed_tags: Vec<String>,
    pub stats: StatsSnapshot,
    pub referrers: usize,
    pub signature_tags: usize,
    pub extras_changed: bool,
}

impl Copies {
    fn add(&mut self, report: CopyReport, carried: Carried) {
        if self.listed.len() < LISTED_PER_ENTRY {
            self.listed.push((report, carried));
            return;
        }
        let rest = &mut self.rest;
        rest.copies += 1;
        rest.stats += report.stats;
        rest.changed_tags
            .extend(report.tags.into_iter().filter(|t| t.changed).map(|t| t.tag));
        rest.referrers += carried.referrers;
        rest.signature_tags += carried.signature_tags.len();
        rest.extras_changed |= carried.changed;
    }
}

/// Copies every entry. `Err` is a call that would send two images to one
/// tag, refused before any write; every other failure is its entry's.
pub async fn run(m: &Mirror, at: &dyn Sides, cache: &BlobCache) -> Result<Vec<EntryResult>, Error> {
    // Only entries that share a destination repository with another entry
    // can send two different images to one tag; only theirs are resolved
    // before anything is copied. (One entry's tags are distinct.)
    let mut per_repo: HashMap<String, usize> = HashMap::new();
    for e in &m.entries {
        *per_repo.entry(e.dest.repository_name()).or_default() += 1;
    }
    let resolved: Vec<Result<Resolved, Error>> =
        futures_util::stream::iter(m.entries.iter().map(|e| resolve(at, e, per_repo[&e.dest.repository_name()] > 1)))
            .buffered(m.concurrency.max(1))
            .collect()
            .await;
    refuse_conflicts(m.entries.iter().zip(&resolved).flat_map(|(e, r)| claims(e, r)))?;
    Ok(
        futures_util::stream::iter(m.entries.iter().zip(resolved).map(|(e, pairs)| mirror_one(m, at, e, pairs, cache)))
            .buffer_unordered(m.concurrency.max(1))
            .collect()
            .await,
    )
}

/// The destination tags an entry claims, with the image each would get.
fn claims<'a>(e: &'a Entry, resolved: &'a Result<Resolved, Error>) -> impl Iterator<Item = Claim> + 'a {
    let platforms = e.platforms.join(",");
    resolved.iter().flat_map(|r| &r.pairs).filter_map(move |p| {
        let digest = p.digest.as_ref()?;
        Some(Claim {
            tag: format!("{}:{}", e.dest.repository_name(), p.tag),
            image: if platforms.is_empty() {
                digest.to_string()
            } else {
                format!("{digest} [{platforms}]")
            },
            entry: format!("images[{}] ({})", e.index, src_ref(e, &p.tag)),
        })
    })
}

/// One destination tag of an entry (the source tag too, with `tags`,
/// `tag_regex` or `all_tags`) and, where resolved for the conflict check,
/// the digest its source pointed at (`None`: missing; the copy reports it).
/// Small on purpose: a repository can have 100,000 tags.
struct Pair {
    tag: String,
    digest: Option<Digest>,
}

/// An entry's destination tags, and the names its source listed that are
/// not valid tag names (skipped).
struct Resolved {
    pairs: Vec<Pair>,
    skipped: TagList,
}

/// The source of the copy to `tag` of an entry.
fn src_ref(e: &Entry, tag: &str) -> Reference {
    match e.selection {
        Selection::One { .. } => e.src.clone(),
        _ => e.src.with_tag(tag),
    }
}

/// The destination tags of an entry (its source's tag list read for
/// `tag_regex` and `all_tags`), with `resolve_digests` each source's digest.
async fn resolve(at: &dyn Sides, e: &Entry, resolve_digests: bool) -> Result<Resolved, Error> {
    let src = at.source(&e.src, Arc::default())?;
    let mut skipped = TagList::default();
    let tags: Vec<String> = match &e.selection {
        Selection::One { dest_tag } => vec![dest_tag.clone()],
        Selection::Tags(tags) => tags.clone(),
        Selection::Regex(_) | Selection::All => {
            // Only valid names are listed; the others are skipped, named in
            // the result and the log, and never written.
            let mut list = src.list_tags(&e.src.repository).await?;
            let mut tags = std::mem::take(&mut list.tags);
            skipped = list;
            tags.sort();
            // A registry that lists a tag twice does not get it copied twice.
            tags.dedup();
            if let Selection::Regex(re) = &e.selection {
                tags.retain(|t| re.is_match(t));
            }
            tags
        }
    };
    if !resolve_digests {
        let pairs = tags.into_iter().map(|tag| Pair { tag, digest: None }).collect();
        return Ok(Resolved { pairs, skipped });
    }
    let src = &src;
    let pairs = futures_util::stream::iter(tags.into_iter().map(|tag| async move {
        let src_ref = src_ref(e, &tag);
        let digest = src.manifest_digest(&src_ref.repository, &src_ref.tag_or_digest()).await?;
        Ok::<_, Error>(Pair { tag, digest })
    }))
    .buffered(TAGS_AT_ONCE)
    .try_collect()
    .await?;
    Ok(Resolved { pairs, skipped })
}

async fn mirror_one(m: &Mirror, at: &dyn Sides, e: &Entry, resolved: Result<Resolved, Error>, cache: &BlobCache) -> EntryResult {
    let mut result = EntryResult {
        index: e.index,
        src: e.src.to_string(),
        dest: e.dest.to_string(),
        copies: Copies::default(),
        error: None,
        skipped: TagList::default(),
    };
    let pairs = match resolved {
        Ok(r) => {
            result.skipped = r.skipped;
            r.pairs
        }
        Err(err) => {
            result.error = Some(err);
            return result;
        }
    };
    // Exactly the room needed: with 10,000 single-tag entries, a list grown
    // by pushing would hold room for four reports each.
    result.copies.listed.reserve_exact(pairs.len().min(LISTED_PER_ENTRY));
    // After a failure no further tag of this entry starts; the copies under
    // way finish and are reported (their tags did move).
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let copies = pairs.into_iter().map(|Pair { tag, .. }| async move {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        copy_tag(m, at, e, tag, cache).await.map(Some)
    });
    let mut done = futures_util::stream::iter(copies).buffered(TAGS_AT_ONCE);
    while let Some(one) = done.next().await {
        match one {
            Ok(Some((report, carried))) => result.copies.add(report, carried),
            Ok(None) => {}
            Err(err) => {
                stop.store(true, Ordering::SeqCst);
                result.error.get_or_insert(err);
            }
        }
    }
    result
}

/// One tag of an entry, with its referrers.
async fn copy_tag(m: &Mirror, at: &dyn Sides, e: &Entry, tag: String, cache: &BlobCache) -> Result<(CopyReport, Carried), Error> {
    // A stop asked for: no further image starts.
    crate::interrupt::check(&format!("copying {}", src_ref(e, &tag)))?;
    // Each report carries only its own counters.
    let stats = Arc::new(Stats::default());
    let src = at.source(&e.src, stats.clone())?;
    let dst = at.destination(&e.dest, e.dest_registry.as_deref(), stats)?;
    let req = CopyRequest {
        src: src_ref(e, &tag),
        dest: e.dest.clone(),
        dest_tags: vec![tag],
        platforms: e.platforms.clone(),
    };
    let (report, subject) = copy_image(&src, &dst, &req, m.check, m.blob_concurrency, cache).await?;
    let carried = if m.referrers {
        // The copied manifest (with a platform filter, a new index whose
        // kept children still carry their referrers).
        referrers::carry(&src, &e.src.repository, &dst, &e.dest.repository, &subject, m.check, cache).await?
    } else {
        Carried::default()
    };
    Ok((report, carried))
}

/// One entry of the result's `images`, made one at a time (10,000 of them
/// as a tree of values would take several times their text).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ImageEntry<'a> {
    Copied(CopiedImage<'a>),
    Summary(SummarizedCopies),
    Failed(FailedEntry),
}

/// One copy, as the engine reported it, with what travelled with it.
#[derive(Debug, Serialize)]
pub struct CopiedImage<'a> {
    pub src: &'a str,
    pub dest: &'a str,
    pub src_digest: &'a str,
    pub dest_digest: &'a str,
    pub media_type: &'a str,
    pub tags: &'a [TagChange],
    /// The image or anything that travelled with it.
    pub changed: bool,
    #[serde(flatten)]
    pub stats: StatsSnapshot,
    pub referrers: usize,
    pub signature_tags: &'a [String],
}

/// The copies of an entry beyond the ones listed, added up.
#[derive(Debug, Serialize)]
pub struct SummarizedCopies {
    #[serde(flatten)]
    pub stats: StatsSnapshot,
    pub src: String,
    pub dest: String,
    pub summary: bool,
    pub copies: usize,
    pub changed: bool,
    pub referrers: usize,
    pub signature_tags: usize,
    pub changed_tags: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FailedEntry {
    pub src: String,
    pub dest: String,
    pub failed: bool,
    pub msg: String,
    pub retries: u32,
}

/// Names a source listed that are not valid tag names, per entry.
#[derive(Debug, Serialize)]
pub struct SkippedNames {
    pub index: usize,
    pub src: String,
    pub names: Vec<String>,
    pub total: usize,
}

/// The whole run, added up.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub stats: StatsSnapshot,
    /// Image copies (a tag of an entry each).
    pub images: usize,
    pub tags_changed: usize,
    pub referrers: usize,
    pub signature_tags: usize,
    #[serde(flatten)]
    pub rate: Rate,
}

/// What the run did, apart from the entries themselves.
#[derive(Debug, Default)]
pub struct Summary {
    pub totals: Totals,
    pub skipped_tags: Vec<SkippedNames>,
    /// Something other than a tag changed (referrers, signature tags).
    pub extras_changed: bool,
    /// One line per failed entry.
    pub failures: Vec<String>,
    /// With a failure: every tag that did move.
    pub moved: Vec<String>,
    /// Only when asked for (`diff`).
    pub diff: TextDiff,
}

impl Summary {
    pub fn changed(&self) -> bool {
        self.totals.tags_changed > 0 || self.extras_changed
    }
}

/// Adds up the entries (in call order) and hands each entry of the
/// result's `images` to `each` as it is made; with `diff` the before/after
/// text is kept too. `started`: when the run began (for the rate).
pub fn summarize(
    mut results: Vec<EntryResult>,
    check: bool,
    diff: bool,
    started: std::time::Instant,
    mut each: impl FnMut(ImageEntry<'_>),
) -> Summary {
    results.sort_by_key(|r| r.index);
    let any_failed = results.iter().any(|r| r.error.is_some());
    let mut s = Summary::default();
    for mut r in results {
        if r.skipped.skipped_total > 0 {
            s.skipped_tags.push(SkippedNames {
                index: r.index,
                src: r.src.clone(),
                names: std::mem::take(&mut r.skipped.skipped),
                total: r.skipped.skipped_total,
            });
        }
        for (rep, carried) in &r.copies.listed {
            s.add_listed(rep, carried, any_failed, diff);
            each(ImageEntry::Copied(CopiedImage {
                src: &rep.src,
                dest: &rep.dest,
                src_digest: &rep.src_digest,
                dest_digest: &rep.dest_digest,
                media_type: &rep.media_type,
                tags: &rep.tags,
                changed: rep.changed || carried.changed,
                stats: rep.stats,
                referrers: carried.referrers,
                signature_tags: &carried.signature_tags,
            }));
        }
        if r.copies.rest.copies > 0 {
            let rest = std::mem::take(&mut r.copies.rest);
            each(ImageEntry::Summary(s.add_rest(rest, &r, check, any_failed)));
        }
        if let Some(e) = r.error {
            s.failures.push(format!("images[{}] {} -> {}: {e}", r.index, r.src, r.dest));
            each(ImageEntry::Failed(FailedEntry {
                retries: e.retries(),
                msg: e.to_string(),
                src: r.src,
                dest: r.dest,
                failed: true,
            }));
        }
    }
    s.totals.rate = Rate::since(s.totals.stats.bytes_moved, started);
    s
}

impl Summary {
    fn add_listed(&mut self, rep: &CopyReport, carried: &Carried, any_failed: bool, diff: bool) {
        let t = &mut self.totals;
        t.stats += rep.stats;
        t.images += 1;
        for tag in &rep.tags {
            t.tags_changed += usize::from(tag.changed);
            let name = format!("{}:{}", rep.dest, tag.tag);
            if diff {
                self.diff.push(&name, tag.before.as_deref(), Some(&tag.after));
            }
            if tag.changed && any_failed {
                self.moved.push(name);
            }
        }
        for tag in carried.signature_tags.iter().filter(|_| diff) {
            self.diff.after.push_str(&format!("{}:{tag} (signature)\n", rep.dest));
        }
        t.referrers += carried.referrers;
        t.signature_tags += carried.signature_tags.len();
        self.extras_changed |= carried.changed;
    }

    fn add_rest(&mut self, rest: Rest, r: &EntryResult, check: bool, any_failed: bool) -> SummarizedCopies {
        let t = &mut self.totals;
        t.stats += rest.stats;
        t.images += rest.copies;
        t.tags_changed += rest.changed_tags.len();
        t.referrers += rest.referrers;
        t.signature_tags += rest.signature_tags;
        self.extras_changed |= rest.extras_changed;
        // A summary is of an entry with tags, whose destination has no tag.
        let dest = &r.dest;
        self.diff
            .before
            .push_str(&format!("{dest}: {} more tags, not listed\n", rest.copies));
        self.diff.after.push_str(&format!(
            "{dest}: {} more tags, {} of them {} (the result's changed_tags names them)\n",
            rest.copies,
            rest.changed_tags.len(),
            if check { "to change" } else { "changed" }
        ));
        if any_failed {
            self.moved.extend(rest.changed_tags.iter().map(|t| format!("{dest}:{t}")));
        }
        SummarizedCopies {
            stats: rest.stats,
            src: r.src.clone(),
            dest: dest.clone(),
            summary: true,
            copies: rest.copies,
            changed: !rest.changed_tags.is_empty() || rest.extras_changed,
            referrers: rest.referrers,
            signature_tags: rest.signature_tags,
            changed_tags: rest.changed_tags,
        }
    }
}
