//! `container_retag`: promote images by moving tags, remove tags, clean up
//! stale tags.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imagegate_ansible::{Context, Diff, ModuleError, ModuleSpec, Outcome};
use imagegate_registry::criteria::Candidate;
use imagegate_registry::journal::{Journal, Record};
use imagegate_registry::promote::{self, RetagRequest, TagMove};
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::referrers;
use imagegate_registry::restore;
use imagegate_registry::tags::{human_age, Removal, RemoveMethod, TagRemover, WebApi};
use imagegate_registry::{Digest, Reference, RegistryClient, Stats};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::registries::{concurrency, runtime, Registries, Side, SECRET_OPTIONS};

pub const SPEC: ModuleSpec = ModuleSpec {
    name: "container_retag",
    secret_options: SECRET_OPTIONS,
    lenient: &["registries.*"],
};

/// zuul-jobs' default age for stale tags: one day.
const DEFAULT_AGE: u64 = 86_400;
const DEFAULT_REGEX: &str = "^change_.*$";

crate::registry_module_args! {
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub images: Vec<ImageArgs>,
    /// A promotion declared by digest in a reviewed file (instead of images).
    #[serde(default)]
    pub declared: Option<crate::declared::DeclaredArgs>,
    #[serde(default)]
    pub cleanup: Vec<CleanupArgs>,
    #[serde(default = "auto")]
    pub method: RemoveMethod,
    #[serde(default = "yes")]
    pub atomic: bool,
    #[serde(default)]
    pub record_file: Option<PathBuf>,
    #[serde(default)]
    pub restore_from: Option<PathBuf>,
    /// Refuse, before any write, to promote an image with no signature.
    #[serde(default)]
    pub require_signature: bool,
    /// Named Zuul jobs must have succeeded for the digests about to move.
    #[serde(default)]
    pub criteria: Option<crate::criteria::CriteriaArgs>,
    /// Images resolved and moved at once (1-32).
    #[serde(default)]
    pub concurrency: Option<usize>,
}
}

fn auto() -> RemoveMethod {
    RemoveMethod::Auto
}
fn yes() -> bool {
    true
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageArgs {
    /// `registry/repo`; the source and (by default) the destination.
    #[serde(default)]
    pub repository: Option<String>,
    /// A full source reference instead of repository + src_tag/src_digest.
    #[serde(default)]
    pub src: Option<String>,
    #[serde(default)]
    pub src_tag: Option<String>,
    #[serde(default)]
    pub src_digest: Option<String>,
    /// Another repository of the same registry for the target tags.
    #[serde(default)]
    pub dest: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub expected_digest: Option<String>,
    #[serde(default)]
    pub keep_previous: bool,
    #[serde(default)]
    pub remove_tags: Vec<String>,
    /// zuul-jobs: the key of `registries` holding this image's credentials
    /// (`container_images[].registry`); by default the registry host.
    #[serde(default)]
    pub registry: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CleanupArgs {
    pub repository: String,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub age: Option<u64>,
}

struct Image {
    request: RetagRequest,
    remove: Vec<String>,
    registry: Option<String>,
    /// What names the image's repository in a message (`images[0].repository`).
    option: String,
}

struct Cleanup {
    repo: Reference,
    regex: regex::Regex,
    age: u64,
}

fn opt(list: &str, i: usize, name: &str) -> String {
    format!("{list}[{i}].{name}")
}

fn validate_image(i: usize, a: ImageArgs) -> Result<Image, ModuleError> {
    // Only removing tags: the repository is all that is needed.
    if a.tags.is_empty() && a.src.is_none() && a.src_tag.is_none() && a.src_digest.is_none() {
        if let Some(repo) = &a.repository {
            let r = Reference::parse_repository(repo).map_err(|e| ModuleError::option(opt("images", i, "repository"), e.to_string()))?;
            let a = ImageArgs {
                src_tag: Some("latest".into()),
                ..a
            };
            let mut img = validate_image(i, a)?;
            img.request.source = r;
            return Ok(img);
        }
    }
    let source = match (&a.src, &a.repository) {
        (Some(_), Some(_)) => return Err(ModuleError::option(opt("images", i, "src"), "give src or repository, not both")),
        (Some(src), None) => {
            if a.src_tag.is_some() || a.src_digest.is_some() {
                return Err(ModuleError::option(
                    opt("images", i, "src_tag"),
                    "src_tag and src_digest go with repository, not src",
                ));
            }
            let r = Reference::parse(src).map_err(|e| ModuleError::option(opt("images", i, "src"), e.to_string()))?;
            if r.tag.is_none() && r.digest.is_none() {
                return Err(ModuleError::option(opt("images", i, "src"), "name the source tag or digest"));
            }
            r
        }
        (None, Some(repo)) => {
            let mut r =
                Reference::parse_repository(repo).map_err(|e| ModuleError::option(opt("images", i, "repository"), e.to_string()))?;
            match (&a.src_tag, &a.src_digest) {
                (Some(_), Some(_)) => {
                    return Err(ModuleError::option(
                        opt("images", i, "src_tag"),
                        "give src_tag or src_digest, not both",
                    ))
                }
                (Some(t), None) if is_valid_tag(t) => r.tag = Some(t.clone()),
                (Some(t), None) => {
                    return Err(ModuleError::option(
                        opt("images", i, "src_tag"),
                        format!("'{t}' is not a valid tag"),
                    ))
                }
                (None, Some(d)) => {
                    r.digest = Some(Digest::parse(d).map_err(|e| ModuleError::option(opt("images", i, "src_digest"), e.to_string()))?)
                }
                (None, None) => {
                    return Err(ModuleError::option(
                        opt("images", i, "src_tag"),
                        "name the source with src_tag or src_digest",
                    ))
                }
            }
            r
        }
        (None, None) => {
            return Err(ModuleError::option(
                opt("images", i, "repository"),
                "missing required option (or src)",
            ))
        }
    };
    let dest = match &a.dest {
        Some(d) => {
            let r = Reference::parse_repository(d).map_err(|e| ModuleError::option(opt("images", i, "dest"), e.to_string()))?;
            if r.registry != source.registry {
                return Err(ModuleError::option(
                    opt("images", i, "dest"),
                    format!(
                        "{} is not on {}; copy between registries with registry_mirror",
                        r.registry, source.registry
                    ),
                ));
            }
            r
        }
        None => Reference {
            tag: None,
            digest: None,
            ..source.clone()
        },
    };
    for t in a.tags.iter().chain(&a.remove_tags) {
        if !is_valid_tag(t) {
            return Err(ModuleError::option(opt("images", i, "tags"), format!("'{t}' is not a valid tag")));
        }
    }
    if a.tags.is_empty() && a.remove_tags.is_empty() {
        return Err(ModuleError::option(
            opt("images", i, "tags"),
            "give target tags, remove_tags, or both",
        ));
    }
    if let Some(t) = a.remove_tags.iter().find(|t| a.tags.contains(t)) {
        return Err(ModuleError::option(
            opt("images", i, "remove_tags"),
            format!("'{t}' is also a target tag"),
        ));
    }
    let expected = a
        .expected_digest
        .as_deref()
        .map(Digest::parse)
        .transpose()
        .map_err(|e| ModuleError::option(opt("images", i, "expected_digest"), e.to_string()))?;
    Ok(Image {
        request: RetagRequest {
            source,
            dest,
            targets: a.tags,
            expected,
            keep_previous: a.keep_previous,
            label: format!("images[{i}]"),
        },
        remove: a.remove_tags,
        registry: a.registry,
        option: opt("images", i, "repository"),
    })
}

/// The images of `images`, or of `declared` (checked in the declared file's
/// own words, and named by file and entry in every later message).
fn validate_images(images: Vec<ImageArgs>, declared: Option<crate::declared::DeclaredArgs>) -> Result<Vec<Image>, ModuleError> {
    let Some(declared) = declared else {
        return images.into_iter().enumerate().map(|(i, a)| validate_image(i, a)).collect();
    };
    if !images.is_empty() {
        return Err(ModuleError::option("declared", "give images or declared, not both"));
    }
    let mut out = Vec::new();
    for (i, d) in crate::declared::images(declared)?.into_iter().enumerate() {
        let mut img = validate_image(i, d.image)?;
        img.option = format!("{} name", d.label);
        img.request.label = d.label;
        out.push(img);
    }
    Ok(out)
}

fn validate_cleanup(i: usize, a: CleanupArgs) -> Result<Cleanup, ModuleError> {
    let repo =
        Reference::parse_repository(&a.repository).map_err(|e| ModuleError::option(opt("cleanup", i, "repository"), e.to_string()))?;
    let regex = regex::Regex::new(a.regex.as_deref().unwrap_or(DEFAULT_REGEX))
        .map_err(|e| ModuleError::option(opt("cleanup", i, "regex"), format!("not a valid regex: {e}")))?;
    Ok(Cleanup {
        repo,
        regex,
        age: a.age.unwrap_or(DEFAULT_AGE),
    })
}

pub fn run(mut args: Args, ctx: &Context) -> Result<Outcome, ModuleError> {
    let common = args.take_common();
    if let Some(path) = &args.restore_from {
        if !args.images.is_empty()
            || args.declared.is_some()
            || !args.cleanup.is_empty()
            || args.record_file.is_some()
            || args.criteria.is_some()
        {
            return Err(ModuleError::option(
                "restore_from",
                "puts a recorded promotion back on its own: give it without images, declared, cleanup, record_file or criteria",
            ));
        }
        let regs = Registries::new(&common, None, None)?;
        return run_restore(path, &regs, args.method, ctx);
    }
    let images = validate_images(args.images, args.declared.take())?;
    if images.is_empty() && args.cleanup.is_empty() {
        return Err(ModuleError::option("images", "nothing to do: give images, cleanup, or both"));
    }
    let cleanups: Vec<Cleanup> = args
        .cleanup
        .into_iter()
        .enumerate()
        .map(|(i, a)| validate_cleanup(i, a))
        .collect::<Result<_, _>>()?;
    let conc = concurrency(args.concurrency, promote::DEFAULT_CONCURRENCY, "concurrency")?;
    let criteria = args.criteria.take().map(crate::criteria::validate).transpose()?;
    if criteria.is_some() && images.iter().all(|i| i.request.targets.is_empty()) {
        return Err(ModuleError::option("criteria", "gates a promotion: give images with target tags"));
    }
    let regs = Registries::new(&common, None, None)?;
    for img in &images {
        let d = &img.request.dest;
        regs.check_repository(&d.registry, img.registry.as_deref(), &d.repository, &img.option)?;
    }
    let stats = Arc::new(Stats::default());
    let client = |r: &Reference, name: Option<&str>| regs.client(&r.registry, &r.repository, name, Side::Destination, stats.clone());
    let rt = runtime()?;
    let remover = TagRemover::default();
    let method = args.method;
    let check = ctx.check_mode;
    let atomic = args.atomic;

    rt.block_on(async {
        let mut values = Map::new();
        let mut diff = (String::new(), String::new());
        let mut changed = false;
        let mut warnings = Vec::new();

        // 1. Promote: resolve everything, then move.
        let mut items = Vec::new();
        for img in images.iter().filter(|i| !i.request.targets.is_empty()) {
            items.push((
                img.request.clone(),
                client(&img.request.source, img.registry.as_deref()).map_err(fail)?,
            ));
        }
        let planned = promote::plan(&items, conc).await.map_err(fail)?;
        // A re-tag within one repository moves no bytes: the digest, and so
        // every signature and attestation made over it, stays valid.
        let same_repository = planned
            .iter()
            .all(|p| p.request.source.registry == p.request.dest.registry && p.request.source.repository == p.request.dest.repository);
        values.insert("signatures_stay_valid".into(), json!(same_repository));
        // Before anything moves (and in check mode too): the jobs named must
        // have succeeded for exactly the digests the plan resolved, which
        // are the ones that move even if a source tag moves meanwhile.
        if let Some(criteria) = &criteria {
            let candidates: Vec<Candidate> = planned
                .iter()
                .map(|p| Candidate {
                    image: p.request.source.repository_name(),
                    digest: p.manifest.digest.clone(),
                })
                .collect();
            let met = crate::criteria::check(criteria, &candidates, &regs, &stats).await?;
            values.insert("criteria".into(), met);
        }
        if args.require_signature {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for p in &planned {
                let Some((_, c)) = items.iter().find(|(r, _)| r.label == p.request.label) else {
                    continue;
                };
                let name = format!("{}@{}", p.request.source.repository_name(), p.manifest.digest);
                match referrers::signature_present(c, &p.request.source.repository, &p.manifest.digest)
                    .await
                    .map_err(fail)?
                {
                    Some(what) => found.push(json!({"image": name, "signature": what})),
                    None => missing.push(format!("{} ({name})", p.request.label)),
                }
            }
            if !missing.is_empty() {
                return Err(ModuleError::failed(format!(
                    "require_signature: no signature found for {}; nothing moved",
                    missing.join(", ")
                )));
            }
            values.insert("signatures".into(), json!(found));
        }
        let moves: Vec<&TagMove> = planned.iter().flat_map(|p| p.moves.iter()).collect();
        for m in &moves {
            diff.0.push_str(&format!(
                "{}:{} {}\n",
                m.repository,
                m.tag,
                m.before.as_deref().unwrap_or("(absent)")
            ));
            diff.1.push_str(&format!("{}:{} {}\n", m.repository, m.tag, m.after));
        }
        changed |= moves.iter().any(|m| m.changed);
        values.insert("moves".into(), json!(moves));
        let record: Vec<Value> = planned
            .iter()
            .flat_map(|p| {
                p.moves.iter().filter(|m| !m.tag.starts_with("previous-") || !p.request.keep_previous).map(|m| {
                    json!({"image": m.repository, "tag": m.tag, "old_digest": m.before, "new_digest": m.after, "changed": m.changed})
                })
            })
            .collect();
        values.insert("record".into(), Value::Array(record));
        // Whether this run has written anything: a later failure says so.
        let mut wrote = false;
        // The record of this run, kept open so the removals go into it too.
        let mut open_journal: Option<Journal> = None;
        if !check {
            let clients: Vec<RegistryClient> = items.iter().map(|(_, c)| c.clone()).collect();
            let webs: Vec<WebApi> = images
                .iter()
                .filter(|i| !i.request.targets.is_empty())
                .map(|i| regs.web_api(&i.request.dest.registry, i.registry.as_deref()))
                .collect();
            let rollback = atomic.then_some((&remover, webs.as_slice()));
            // Written before the first write: the whole plan, every target's
            // previous digest (or its absence).
            let journal = match &args.record_file {
                Some(path) if moves.iter().any(|m| m.changed) => Some(
                    Journal::create(path, promote::record(&planned))
                        .map_err(|e| ModuleError::option("record_file", format!("cannot write the record: {e}")))?,
                ),
                _ => None,
            };
            let result = promote::apply(&planned, &clients, rollback, journal.as_ref(), conc).await;
            wrote = moves.iter().any(|m| m.changed);
            if let Err(f) = result {
                let changed = !f.moved.is_empty();
                values.insert("moved".into(), json!(f.moved));
                values.insert("restored".into(), json!(f.restored));
                values.insert("not_restored".into(), json!(f.not_restored));
                let mut msg = format!("promotion failed: {}", f.error);
                if !f.restored.is_empty() {
                    msg.push_str(&format!("; put back {} tags already moved", f.restored.len()));
                }
                if !f.not_restored.is_empty() {
                    msg.push_str(&format!("; could NOT put back: {}", f.not_restored.join("; ")));
                }
                if let Some(path) = &args.record_file {
                    msg.push_str(&format!("; the record is in {}", path.display()));
                }
                return Err(ModuleError::Failed { msg, changed, values });
            }
            // Nothing moved. A record already there (of the promotion this
            // run repeats) is kept, so that it can still be restored; else
            // the record says where every tag is.
            if let (Some(path), None, false) = (&args.record_file, &journal, args.record_file.as_ref().is_some_and(|p| p.exists())) {
                let mut rec = promote::record(&planned);
                rec.state = imagegate_registry::journal::RecordState::Complete;
                open_journal = Some(
                    Journal::create(path, rec).map_err(|e| ModuleError::option("record_file", format!("cannot write the record: {e}")))?,
                );
            }
            open_journal = open_journal.or(journal);
        }

        // 2. Remove tags (after every move succeeded).
        let warned_before = warnings.len();
        let targets: BTreeSet<String> = moves.iter().map(|m| format!("{}:{}", m.repository, m.tag)).collect();
        let mut removed = Vec::new();
        for img in &images {
            let r = &img.request.dest;
            let c = client(r, img.registry.as_deref()).map_err(fail)?;
            let web = regs.web_api(&r.registry, img.registry.as_deref());
            for tag in &img.remove {
                if let Some(j) = open_journal.as_mut() {
                    journal_removal(j, &c, r, tag).await.map_err(|e| e.with_changed(wrote))?;
                }
                let outcome = remover.remove(&c, &r.repository, tag, method, &web, check).await;
                if let (Some(j), Ok(_)) = (open_journal.as_ref(), &outcome) {
                    let name = format!("{}/{}:{tag}", r.registry, r.repository);
                    j.mark(&name, imagegate_registry::journal::EntryState::Moved)
                        .map_err(|e| ModuleError::option("record_file", format!("cannot write the record: {e}")))?;
                }
                record_removal(r, tag, outcome, method, &mut removed, &mut warnings, &mut diff, &mut changed)
                    .map_err(|e| e.with_changed(wrote))?;
            }
        }

        // 3. Stale tags.
        let mut cleaned = Vec::new();
        for cl in &cleanups {
            let c = client(&cl.repo, None).map_err(fail)?;
            let web = regs.web_api(&cl.repo.registry, None);
            let ages = remover
                .tag_ages(&c, &cl.repo.repository, &cl.regex, &web)
                .await
                .map_err(|e| fail(e).with_changed(wrote))?;
            for a in ages {
                let name = format!("{}:{}", cl.repo.repository_name(), a.tag);
                if a.age_seconds < cl.age || targets.contains(&name) {
                    continue;
                }
                let outcome = remover.remove(&c, &cl.repo.repository, &a.tag, method, &web, check).await;
                let before = removed.len();
                record_removal(
                    &cl.repo,
                    &a.tag,
                    outcome,
                    method,
                    &mut removed,
                    &mut warnings,
                    &mut diff,
                    &mut changed,
                )
                .map_err(|e| e.with_changed(wrote))?;
                if removed.len() > before {
                    cleaned.push(json!({"tag": name, "age": human_age(a.age_seconds), "age_seconds": a.age_seconds, "age_from": a.source}));
                }
            }
        }
        values.insert("removed".into(), Value::Array(removed));
        values.insert("cleaned".into(), Value::Array(cleaned));
        values.insert("retries".into(), json!(stats.snapshot().retries));
        // Every warning since the removals began is a tag not removed.
        let not_removed = warnings.len() - warned_before;
        for w in warnings {
            ctx.warn(w);
        }
        let n_moved = moves.iter().filter(|m| m.changed).count();
        let n_removed = values["removed"]
            .as_array()
            .map(|a| a.iter().filter(|r| r["method"] != Value::Null).count())
            .unwrap_or(0);
        let verb = if check { "would move" } else { "moved" };
        let mut msg = if changed {
            format!(
                "{verb} {n_moved} tags and {} {n_removed} tags",
                if check { "remove" } else { "removed" }
            )
        } else if not_removed > 0 {
            "nothing moved or removed".to_string()
        } else {
            "every tag is already where it should be".to_string()
        };
        if not_removed > 0 {
            msg.push_str(&format!("; {not_removed} tags could not be removed (see the warnings)"));
        }
        Ok(Outcome {
            changed,
            msg,
            diff: Some(Diff {
                before: diff.0,
                after: diff.1,
            }),
            values,
            lists: Vec::new(),
        })
    })
}

#[allow(clippy::too_many_arguments)]
fn record_removal(
    repo: &Reference,
    tag: &str,
    outcome: Result<Removal, imagegate_registry::Error>,
    method: RemoveMethod,
    removed: &mut Vec<Value>,
    warnings: &mut Vec<String>,
    diff: &mut (String, String),
    changed: &mut bool,
) -> Result<(), ModuleError> {
    let name = format!("{}:{tag}", repo.repository_name());
    match outcome {
        Ok(r) => {
            if let Some(before) = &r.before {
                *changed = true;
                diff.0.push_str(&format!("{name} {before}\n"));
                diff.1.push_str(&format!("{name} (absent)\n"));
            }
            removed.push(json!({"tag": name, "before": r.before, "method": r.method}));
            Ok(())
        }
        // With `auto`, a registry that cannot remove tags at all (zuul-registry)
        // leaves the tag: a warning, since the promotion itself succeeded.
        Err(e) if method == RemoveMethod::Auto && !e.is_temporary() => {
            warnings.push(format!("{name} was not removed: {e}"));
            removed.push(json!({"tag": name, "method": null, "failed": true, "msg": e.to_string()}));
            Ok(())
        }
        Err(e) => Err(ModuleError::failed(format!("removing {name}: {e}"))),
    }
}

/// Writes a tag about to be removed into the promotion's record, with the
/// digest it points at (nothing for a tag that is already absent), so that
/// a restore puts it back: the record is written before the removal.
async fn journal_removal(j: &mut Journal, c: &RegistryClient, r: &Reference, tag: &str) -> Result<(), ModuleError> {
    let Some(before) = c.manifest_digest(&r.repository, tag).await.map_err(fail)? else {
        return Ok(());
    };
    j.append(imagegate_registry::journal::Entry {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        tag: tag.to_string(),
        before: Some(before.to_string()),
        after: None,
        state: imagegate_registry::journal::EntryState::Pending,
    })
    .map_err(|e| ModuleError::option("record_file", format!("cannot write the record: {e}")))
}

/// `restore_from`: every tag of a promotion record back where it was before.
fn run_restore(path: &Path, regs: &Registries, method: RemoveMethod, ctx: &Context) -> Result<Outcome, ModuleError> {
    let record = Record::read(path).map_err(|e| ModuleError::option("restore_from", e.to_string()))?;
    let stats = Arc::new(Stats::default());
    let mut clients = Vec::new();
    let mut webs = Vec::new();
    for e in &record.entries {
        regs.check_repository(&e.registry, None, &e.repository, "restore_from")?;
        clients.push(
            regs.client(&e.registry, &e.repository, None, Side::Destination, stats.clone())
                .map_err(fail)?,
        );
        webs.push(regs.web_api(&e.registry, None));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let plan = restore::plan(&record, &clients).await.map_err(fail)?;
        let moves = plan.moves();
        let absent = |d: &Option<String>| d.clone().unwrap_or_else(|| "(absent)".into());
        let (mut before, mut after) = (String::new(), String::new());
        for m in &moves {
            before.push_str(&format!("{}:{} {}\n", m.repository, m.tag, absent(&m.before)));
            after.push_str(&format!("{}:{} {}\n", m.repository, m.tag, absent(&m.after)));
        }
        let n = moves.iter().filter(|m| m.changed).count();
        let mut values = Map::new();
        values.insert("moves".into(), json!(moves));
        if !ctx.check_mode {
            match restore::apply(&plan, &clients, &TagRemover::default(), method, &webs).await {
                Ok(restored) => {
                    values.insert("restored".into(), json!(restored));
                }
                Err(f) => {
                    values.insert("restored".into(), json!(f.restored));
                    values.insert("not_restored".into(), json!(f.errors));
                    return Err(ModuleError::Failed {
                        msg: format!(
                            "restoring {} failed: put back {} tags; could NOT put back: {}",
                            path.display(),
                            f.restored.len(),
                            f.errors.join("; ")
                        ),
                        changed: !f.restored.is_empty(),
                        values,
                    });
                }
            }
        }
        values.insert("retries".into(), json!(stats.snapshot().retries));
        let verb = if ctx.check_mode { "would put back" } else { "put back" };
        Ok(Outcome {
            changed: n > 0,
            msg: if n > 0 {
                format!("{verb} {n} tags recorded in {}", path.display())
            } else {
                format!("every tag recorded in {} is already where it was", path.display())
            },
            diff: Some(Diff { before, after }),
            values,
            lists: Vec::new(),
        })
    })
}

fn fail(e: imagegate_registry::Error) -> ModuleError {
    ModuleError::failed(e.to_string())
}
