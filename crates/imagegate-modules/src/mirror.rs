//! `registry_mirror`: copy images between registries.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use imagegate_ansible::{Context, Diff, ModuleError, ModuleSpec, Outcome};
use imagegate_registry::copy::human_bytes;
use imagegate_registry::listing::TagList;
use imagegate_registry::promote::{refuse_conflicts, Claim};
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::referrers::Carried;
use imagegate_registry::{copy_image, BlobCache, CopyReport, CopyRequest, Reference, Stats, StatsSnapshot};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::registries::{concurrency, credential_pair, runtime, Registries, Side, DEFAULT_BLOB_CONCURRENCY, SECRET_OPTIONS};

pub const SPEC: ModuleSpec = ModuleSpec {
    name: "registry_mirror",
    secret_options: SECRET_OPTIONS,
    lenient: &["images[]", "registries.*"],
};

/// Images copied at once by default: with 4 blobs each, 32 transfers to a
/// registry at most; chosen by measurement (docs/architecture.md).
const DEFAULT_CONCURRENCY: usize = 8;

crate::registry_module_args! {
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub images: Vec<ImageArgs>,
    #[serde(default)]
    pub src_username: Option<String>,
    #[serde(default)]
    pub src_password: Option<String>,
    #[serde(default)]
    pub dest_username: Option<String>,
    #[serde(default)]
    pub dest_password: Option<String>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub blob_concurrency: Option<usize>,
    /// Carry referrers and cosign signature tags with each image.
    #[serde(default = "yes")]
    pub referrers: bool,
}
}

fn yes() -> bool {
    true
}

/// One item of `images`. Either the imagegate shape (`src`, `dest`) or the
/// zuul-jobs `mirror_container_images_images` shape.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageArgs {
    #[serde(default)]
    pub src: Option<String>,
    #[serde(default)]
    pub dest: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub tag_regex: Option<String>,
    #[serde(default)]
    pub all_tags: bool,
    #[serde(default)]
    pub platforms: Vec<String>,
    #[serde(default)]
    pub src_repository: Option<String>,
    #[serde(default)]
    pub src_tag: Option<String>,
    #[serde(default)]
    pub dest_repository: Option<String>,
    #[serde(default)]
    pub dest_tag: Option<String>,
    #[serde(default)]
    pub dest_registry: Option<String>,
}

/// How the tags of one image are chosen.
#[derive(Debug)]
enum Selection {
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

#[derive(Debug)]
struct Image {
    index: usize,
    src: Reference,
    dest: Reference,
    dest_registry: Option<String>,
    selection: Selection,
    platforms: Vec<String>,
}

fn opt(i: usize, name: &str) -> String {
    format!("images[{i}].{name}")
}

fn validate(i: usize, a: ImageArgs) -> Result<Image, ModuleError> {
    let src_text = match (&a.src, &a.src_repository) {
        (Some(_), Some(_)) => return Err(ModuleError::option(opt(i, "src"), "give src or src_repository, not both")),
        (Some(s), None) => {
            if a.src_tag.is_some() {
                return Err(ModuleError::option(opt(i, "src_tag"), "goes with src_repository, not src"));
            }
            s.clone()
        }
        (None, Some(r)) => match &a.src_tag {
            Some(t) => format!("{r}:{t}"),
            None => r.clone(),
        },
        (None, None) => return Err(ModuleError::option(opt(i, "src"), "missing required option (or src_repository)")),
    };
    let src_opt = if a.src.is_some() { opt(i, "src") } else { opt(i, "src_repository") };
    let src = Reference::parse(&src_text).map_err(|e| ModuleError::option(&src_opt, e.to_string()))?;
    let dest_text = match (&a.dest, &a.dest_repository) {
        (Some(_), Some(_)) => return Err(ModuleError::option(opt(i, "dest"), "give dest or dest_repository, not both")),
        (Some(d), None) => d.clone(),
        (None, Some(r)) => match &a.dest_tag {
            Some(t) => format!("{r}:{t}"),
            None => r.clone(),
        },
        (None, None) => return Err(ModuleError::option(opt(i, "dest"), "missing required option (or dest_repository)")),
    };
    if a.dest.is_some() && a.dest_tag.is_some() {
        return Err(ModuleError::option(opt(i, "dest_tag"), "goes with dest_repository, not dest"));
    }
    let dest_opt = if a.dest.is_some() {
        opt(i, "dest")
    } else {
        opt(i, "dest_repository")
    };
    let dest = Reference::parse(&dest_text).map_err(|e| ModuleError::option(&dest_opt, e.to_string()))?;
    if dest.digest.is_some() {
        return Err(ModuleError::option(
            dest_opt,
            "a destination is a repository or repository:tag, not a digest",
        ));
    }
    let many = [a.tags.is_some(), a.tag_regex.is_some(), a.all_tags].iter().filter(|b| **b).count();
    if many > 1 {
        return Err(ModuleError::option(
            opt(i, "tags"),
            "tags, tag_regex and all_tags exclude each other",
        ));
    }
    let selection = if many == 1 {
        if src.tag.is_some() || src.digest.is_some() {
            return Err(ModuleError::option(
                src_opt,
                "with tags, tag_regex or all_tags the source is a repository without tag",
            ));
        }
        if dest.tag.is_some() {
            return Err(ModuleError::option(
                dest_opt,
                "with tags, tag_regex or all_tags the destination is a repository without tag",
            ));
        }
        if let Some(tags) = a.tags {
            if tags.is_empty() {
                return Err(ModuleError::option(opt(i, "tags"), "an empty list copies nothing"));
            }
            if let Some(bad) = tags.iter().find(|t| !is_valid_tag(t)) {
                return Err(ModuleError::option(opt(i, "tags"), format!("'{bad}' is not a valid tag")));
            }
            Selection::Tags(tags)
        } else if let Some(re) = a.tag_regex {
            Selection::Regex(
                regex::Regex::new(&re).map_err(|e| ModuleError::option(opt(i, "tag_regex"), format!("not a valid regex: {e}")))?,
            )
        } else {
            Selection::All
        }
    } else {
        let dest_tag = match (&dest.tag, &src.tag) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => t.clone(),
            // By digest: PUT /v2/<name>/manifests/<digest>, which the
            // distribution spec allows; the manifest is then in the
            // repository under no tag (a promotion moves tags to it next).
            (None, None) if src.digest.is_some() => {
                if !a.platforms.is_empty() {
                    return Err(ModuleError::option(
                        opt(i, "platforms"),
                        "a digest source copied by digest (no destination tag) keeps its digest, so every platform; give the destination a tag to choose platforms",
                    ));
                }
                src.digest.as_ref().map(|d| d.to_string()).unwrap_or_default()
            }
            (None, None) => "latest".to_string(),
        };
        Selection::One { dest_tag }
    };
    for p in &a.platforms {
        let parts: Vec<&str> = p.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|s| s.is_empty()) {
            return Err(ModuleError::option(opt(i, "platforms"), format!("'{p}' is not os/arch[/variant]")));
        }
    }
    Ok(Image {
        index: i,
        src,
        dest,
        dest_registry: a.dest_registry,
        selection,
        platforms: a.platforms,
    })
}

/// The result of one entry of `images`: what it copied (also when it
/// failed part-way: those tags did move) and the error it met, if any.
struct ImageResult {
    index: usize,
    src: String,
    dest: String,
    copies: Copies,
    error: Option<imagegate_registry::Error>,
    /// Names the source listed that are not valid tag names.
    skipped: TagList,
}

/// How many copies of one entry the result reports one by one; the rest
/// (an entry with `all_tags` can have 100,000) are added up in one summary,
/// so that memory and the result stay small whatever the tag count.
const LISTED_PER_ENTRY: usize = 1000;

/// The copies of one entry, as they finish.
#[derive(Default)]
struct Copies {
    listed: Vec<(CopyReport, Carried)>,
    rest: Rest,
}

/// The copies of an entry beyond [`LISTED_PER_ENTRY`], added up.
#[derive(Default)]
struct Rest {
    copies: usize,
    changed_tags: Vec<String>,
    stats: StatsSnapshot,
    referrers: usize,
    signature_tags: usize,
    extras_changed: bool,
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

pub fn run(mut args: Args, ctx: &Context) -> Result<Outcome, ModuleError> {
    let started = std::time::Instant::now();
    let common = args.take_common();
    if args.images.is_empty() {
        return Err(ModuleError::option("images", "the list is empty; nothing to mirror"));
    }
    let images: Vec<Image> = args
        .images
        .into_iter()
        .enumerate()
        .map(|(i, a)| validate(i, a))
        .collect::<Result<_, _>>()?;
    let conc = concurrency(args.concurrency, DEFAULT_CONCURRENCY, "concurrency")?;
    let blob_conc = concurrency(args.blob_concurrency, DEFAULT_BLOB_CONCURRENCY, "blob_concurrency")?;
    let regs = Registries::new(
        &common,
        credential_pair(args.src_username, args.src_password, "src_username", "src_password")?,
        credential_pair(args.dest_username, args.dest_password, "dest_username", "dest_password")?,
    )?;
    for img in &images {
        regs.check_repository(
            &img.dest.registry,
            img.dest_registry.as_deref(),
            &img.dest.repository,
            &opt(img.index, "dest"),
        )?;
    }
    // Only entries that share a destination repository with another entry
    // can send two different images to one tag; only theirs are resolved
    // before anything is copied. (One entry's tags are distinct.)
    let mut per_repo: HashMap<String, usize> = HashMap::new();
    for img in &images {
        *per_repo.entry(img.dest.repository_name()).or_default() += 1;
    }
    let rt = runtime()?;
    let cache = BlobCache::default();
    let results: Vec<ImageResult> = rt.block_on(async {
        // 1. Resolve the sources of entries sharing a repository first: one
        //    destination tag must not receive two different images, and
        //    that is known only now.
        let resolved: Vec<Result<Resolved, imagegate_registry::Error>> = futures_util::stream::iter(
            images
                .iter()
                .map(|img| resolve(&regs, img, per_repo[&img.dest.repository_name()] > 1)),
        )
        .buffered(conc)
        .collect()
        .await;
        let claims = images.iter().zip(&resolved).flat_map(|(img, pairs)| {
            let platforms = img.platforms.join(",");
            pairs.iter().flat_map(|r| &r.pairs).filter_map(move |p| {
                let digest = p.digest.as_ref()?;
                Some(Claim {
                    tag: format!("{}:{}", img.dest.repository_name(), p.tag),
                    image: if platforms.is_empty() {
                        digest.to_string()
                    } else {
                        format!("{digest} [{platforms}]")
                    },
                    entry: format!("images[{}] ({})", img.index, src_ref(img, &p.tag)),
                })
            })
        });
        refuse_conflicts(claims).map_err(|e| ModuleError::failed(e.to_string()))?;
        // 2. Copy.
        Ok::<_, ModuleError>(
            futures_util::stream::iter(
                images
                    .iter()
                    .zip(resolved)
                    .map(|(img, pairs)| mirror_one(&regs, img, pairs, ctx.check_mode, blob_conc, args.referrers, &cache)),
            )
            .buffer_unordered(conc)
            .collect()
            .await,
        )
    })?;
    summarize(results, ctx, started)
}

/// One destination tag of an entry (the source tag too, with `tags`,
/// `tag_regex` or `all_tags`) and, where resolved for the conflict check,
/// the digest its source pointed at (`None`: missing; the copy reports it).
/// Small on purpose: a repository can have 100,000 tags.
struct Pair {
    tag: String,
    digest: Option<imagegate_registry::Digest>,
}

/// The source of the copy to `tag` of an entry.
fn src_ref(img: &Image, tag: &str) -> Reference {
    match img.selection {
        Selection::One { .. } => img.src.clone(),
        _ => img.src.with_tag(tag),
    }
}

/// The destination tags of an entry (its source's tag list read for
/// `tag_regex` and `all_tags`), with `resolve_digests` each source's digest.
async fn resolve(regs: &Registries, img: &Image, resolve_digests: bool) -> Result<Resolved, imagegate_registry::Error> {
    let stats = Arc::new(Stats::default());
    let src = regs.client(&img.src.registry, &img.src.repository, None, Side::Source, stats)?;
    let mut skipped = TagList::default();
    let tags: Vec<String> = match &img.selection {
        Selection::One { dest_tag } => vec![dest_tag.clone()],
        Selection::Tags(tags) => tags.clone(),
        Selection::Regex(_) | Selection::All => {
            // Only valid names are listed; the others are skipped, named in
            // the result and the log, and never written.
            let mut list = src.list_tags(&img.src.repository).await?;
            let mut tags = std::mem::take(&mut list.tags);
            skipped = list;
            tags.sort();
            // A registry that lists a tag twice does not get it copied twice.
            tags.dedup();
            if let Selection::Regex(re) = &img.selection {
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
        let src_ref = src_ref(img, &tag);
        let digest = src.manifest_digest(&src_ref.repository, &src_ref.tag_or_digest()).await?;
        Ok::<_, imagegate_registry::Error>(Pair { tag, digest })
    }))
    .buffered(TAGS_AT_ONCE)
    .try_collect()
    .await?;
    Ok(Resolved { pairs, skipped })
}

/// An entry's destination tags, and the names its source listed that are
/// not valid tag names (skipped).
struct Resolved {
    pairs: Vec<Pair>,
    skipped: TagList,
}

/// Tags of one image (with `tags`, `tag_regex` or `all_tags`) resolved and
/// copied at once, in the order of the tag list: a repository of many tags
/// is round trips one after the other otherwise.
const TAGS_AT_ONCE: usize = 8;

async fn mirror_one(
    regs: &Registries,
    img: &Image,
    resolved: Result<Resolved, imagegate_registry::Error>,
    check_mode: bool,
    blob_conc: usize,
    referrers: bool,
    cache: &BlobCache,
) -> ImageResult {
    let mut result = ImageResult {
        index: img.index,
        src: img.src.to_string(),
        dest: img.dest.to_string(),
        copies: Copies::default(),
        error: None,
        skipped: TagList::default(),
    };
    let pairs = match resolved {
        Ok(r) => {
            result.skipped = r.skipped;
            r.pairs
        }
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    // Exactly the room needed: with 10,000 single-tag items, a list grown
    // by pushing would hold room for four reports each.
    result.copies.listed.reserve_exact(pairs.len().min(LISTED_PER_ENTRY));
    // After a failure no further tag of this entry starts; the copies under
    // way finish and are reported (their tags did move).
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stop = &stop;
    let copies = pairs.into_iter().map(|Pair { tag, .. }| async move {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        // Each report carries only its own counters.
        let stats = Arc::new(Stats::default());
        let src = regs.client(&img.src.registry, &img.src.repository, None, Side::Source, stats.clone())?;
        let dst = regs.client(
            &img.dest.registry,
            &img.dest.repository,
            img.dest_registry.as_deref(),
            Side::Destination,
            stats,
        )?;
        let req = CopyRequest {
            src: src_ref(img, &tag),
            dest: img.dest.clone(),
            dest_tags: vec![tag],
            platforms: img.platforms.clone(),
        };
        let (report, subject) = copy_image(&src, &dst, &req, check_mode, blob_conc, cache).await?;
        let carried = if referrers {
            // The copied manifest (with a platform filter, a new index
            // whose kept children still carry their referrers).
            imagegate_registry::referrers::carry(&src, &img.src.repository, &dst, &img.dest.repository, &subject, check_mode, cache).await?
        } else {
            Carried::default()
        };
        Ok::<_, imagegate_registry::Error>(Some((report, carried)))
    });
    let mut done = futures_util::stream::iter(copies).buffered(TAGS_AT_ONCE);
    while let Some(one) = done.next().await {
        match one {
            Ok(Some((report, carried))) => result.copies.add(report, carried),
            Ok(None) => {}
            Err(e) => {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                result.error.get_or_insert(e);
            }
        }
    }
    result
}

fn summarize(mut results: Vec<ImageResult>, ctx: &Context, started: std::time::Instant) -> Result<Outcome, ModuleError> {
    results.sort_by_key(|r| r.index);
    let mut totals = StatsSnapshot::default();
    // Each entry becomes JSON text as it is made (10,000 images' entries
    // as a tree of values would take several times their text).
    let masker = imagegate_ansible::masker();
    let mut out_images = imagegate_ansible::RawList::default();
    let mut failures = Vec::new();
    let (mut before, mut after) = (String::new(), String::new());
    let mut tags_changed = 0usize;
    let mut moved = Vec::new();
    let mut copies = 0usize;
    let (mut referrers, mut signature_tags, mut extras_changed) = (0usize, 0usize, false);
    let any_failed = results.iter().any(|r| r.error.is_some());
    let mut skipped = Vec::new();
    for r in results {
        if r.skipped.skipped_total > 0 {
            ctx.warn(format!(
                "images[{}] {}: skipped {} listed names that are not valid tag names: {}",
                r.index,
                r.src,
                r.skipped.skipped_total,
                r.skipped.skipped.join(", ")
            ));
            skipped.push(json!({
                "index": r.index, "src": r.src, "names": r.skipped.skipped, "total": r.skipped.skipped_total,
            }));
        }
        for (rep, carried) in r.copies.listed {
            totals += rep.stats;
            copies += 1;
            for t in &rep.tags {
                tags_changed += usize::from(t.changed);
                let wanted = t.changed && any_failed;
                if !ctx.diff && !wanted {
                    continue;
                }
                let name = format!("{}:{}", rep.dest, t.tag);
                if ctx.diff {
                    before.push_str(&format!("{name} {}\n", t.before.as_deref().unwrap_or("(absent)")));
                    after.push_str(&format!("{name} {}\n", t.after));
                }
                if wanted {
                    moved.push(name);
                }
            }
            for tag in carried.signature_tags.iter().filter(|_| ctx.diff) {
                after.push_str(&format!("{}:{tag} (signature)\n", rep.dest));
            }
            referrers += carried.referrers;
            signature_tags += carried.signature_tags.len();
            extras_changed |= carried.changed;
            let mut value = serde_json::to_value(&rep).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut value {
                m.insert("referrers".into(), json!(carried.referrers));
                m.insert("signature_tags".into(), json!(carried.signature_tags));
                m.insert("changed".into(), json!(rep.changed || carried.changed));
            }
            out_images.push(&masker, value);
        }
        let rest = r.copies.rest;
        if rest.copies > 0 {
            totals += rest.stats;
            copies += rest.copies;
            tags_changed += rest.changed_tags.len();
            referrers += rest.referrers;
            signature_tags += rest.signature_tags;
            extras_changed |= rest.extras_changed;
            // A summary is of an entry with tags, whose destination has no tag.
            let dest = &r.dest;
            before.push_str(&format!("{dest}: {} more tags, not listed\n", rest.copies));
            after.push_str(&format!(
                "{dest}: {} more tags, {} of them {} (the result's changed_tags names them)\n",
                rest.copies,
                rest.changed_tags.len(),
                if ctx.check_mode { "to change" } else { "changed" }
            ));
            if any_failed {
                moved.extend(rest.changed_tags.iter().map(|t| format!("{dest}:{t}")));
            }
            let mut value = serde_json::to_value(rest.stats).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut value {
                m.insert("src".into(), json!(r.src));
                m.insert("dest".into(), json!(dest));
                m.insert("summary".into(), json!(true));
                m.insert("copies".into(), json!(rest.copies));
                m.insert("changed".into(), json!(!rest.changed_tags.is_empty() || rest.extras_changed));
                m.insert("referrers".into(), json!(rest.referrers));
                m.insert("signature_tags".into(), json!(rest.signature_tags));
                m.insert(
                    "changed_tags".into(),
                    Value::Array(rest.changed_tags.into_iter().map(Value::String).collect()),
                );
            }
            out_images.push(&masker, value);
        }
        if let Some(e) = r.error {
            let retries = e.retries();
            failures.push(format!("images[{}] {} -> {}: {e}", r.index, r.src, r.dest));
            out_images.push(
                &masker,
                json!({"src": r.src, "dest": r.dest, "failed": true, "msg": e.to_string(), "retries": retries}),
            );
        }
    }
    let mut values = Map::new();
    let mut t = serde_json::to_value(totals).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut t {
        m.insert("images".into(), json!(copies));
        m.insert("tags_changed".into(), json!(tags_changed));
        m.insert("referrers".into(), json!(referrers));
        m.insert("signature_tags".into(), json!(signature_tags));
        m.extend(crate::rate(totals.bytes_moved, started));
    }
    values.insert("totals".into(), t);
    values.insert("skipped_tags".into(), Value::Array(skipped));
    if !failures.is_empty() {
        let msg = if failures.len() == 1 {
            failures.remove(0)
        } else {
            format!("{} images failed: {}", failures.len(), failures.join("; "))
        };
        // The images that did copy stay copied: say so.
        let changed = !ctx.check_mode && (tags_changed > 0 || extras_changed);
        values.insert("moved".into(), json!(moved));
        values.insert("images".into(), out_images.into_value());
        return Err(ModuleError::Failed { msg, changed, values });
    }
    let verb = if ctx.check_mode { "would change" } else { "changed" };
    let carried = if referrers + signature_tags > 0 {
        format!("; {referrers} referrers and {signature_tags} signature tags carried")
    } else {
        String::new()
    };
    let msg = if tags_changed == 0 && !extras_changed {
        format!("all {copies} image tags already up to date")
    } else if tags_changed == 0 {
        format!("all {copies} image tags already up to date{carried}")
    } else {
        format!(
            "{verb} {tags_changed} of {copies} image tags; {} blobs copied ({}), {} mounted, {} already present, {} retries",
            totals.blobs_copied,
            human_bytes(totals.bytes_moved),
            totals.blobs_mounted,
            totals.blobs_present,
            totals.retries
        ) + &carried
    };
    Ok(Outcome {
        changed: tags_changed > 0 || extras_changed,
        msg,
        diff: Some(Diff { before, after }),
        values,
        lists: vec![("images".into(), out_images)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(src: &str, dest: &str) -> ImageArgs {
        ImageArgs {
            src: Some(src.into()),
            dest: Some(dest.into()),
            ..Default::default()
        }
    }

    fn err(a: ImageArgs) -> String {
        match validate(0, a) {
            Err(ModuleError::Option { option, problem }) => format!("{option}: {problem}"),
            other => panic!("expected an option error, got {other:?}"),
        }
    }

    #[test]
    fn dest_tag_defaults_to_the_source_tag() {
        let i = validate(0, img("quay.io/a/b:v1", "reg.example/b")).unwrap();
        assert!(matches!(i.selection, Selection::One { ref dest_tag } if dest_tag == "v1"));
        let i = validate(0, img("quay.io/a/b", "reg.example/b:x")).unwrap();
        assert!(matches!(i.selection, Selection::One { ref dest_tag } if dest_tag == "x"));
    }

    #[test]
    fn a_digest_source_without_a_destination_tag_is_copied_by_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let i = validate(0, img(&format!("quay.io/a/b@{d}"), "reg.example/b")).unwrap();
        assert!(matches!(i.selection, Selection::One { ref dest_tag } if *dest_tag == d));
        let i = validate(0, img(&format!("quay.io/a/b@{d}"), "reg.example/b:v2")).unwrap();
        assert!(matches!(i.selection, Selection::One { ref dest_tag } if dest_tag == "v2"));
        let mut a = img(&format!("quay.io/a/b@{d}"), "reg.example/b");
        a.platforms = vec!["linux/amd64".into()];
        assert!(err(a).starts_with("images[0].platforms: a digest source copied by digest"));
    }

    #[test]
    fn zuul_jobs_shape() {
        let a = ImageArgs {
            src_repository: Some("quay.io/a/b".into()),
            src_tag: Some("1".into()),
            dest_repository: Some("docker.io/a/b".into()),
            dest_tag: Some("2".into()),
            dest_registry: Some("dockerhub".into()),
            ..Default::default()
        };
        let i = validate(0, a).unwrap();
        assert_eq!(i.src.to_string(), "quay.io/a/b:1");
        assert_eq!(i.dest.to_string(), "docker.io/a/b:2");
        assert_eq!(i.dest_registry.as_deref(), Some("dockerhub"));
    }

    #[test]
    fn bad_combinations_name_the_option() {
        assert!(err(img("quay.io/A", "x.io/b")).starts_with("images[0].src:"));
        assert!(err(img(
            "quay.io/a",
            "x.io/b@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ))
        .starts_with("images[0].dest:"));
        let mut a = img("quay.io/a:1", "x.io/b");
        a.all_tags = true;
        assert!(err(a).starts_with("images[0].src:"));
        let mut a = img("quay.io/a", "x.io/b");
        a.tag_regex = Some("(".into());
        assert!(err(a).starts_with("images[0].tag_regex:"));
        let mut a = img("quay.io/a", "x.io/b");
        a.tags = Some(vec!["ok".into()]);
        a.all_tags = true;
        assert!(err(a).starts_with("images[0].tags:"));
        let mut a = img("quay.io/a", "x.io/b");
        a.platforms = vec!["linux".into()];
        assert!(err(a).starts_with("images[0].platforms:"));
        assert!(err(ImageArgs::default()).starts_with("images[0].src:"));
    }
}
