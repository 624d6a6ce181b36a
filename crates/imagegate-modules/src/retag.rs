//! `container_retag`: promote images by moving tags, remove tags, clean up
//! stale tags.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imagegate_ansible::{Context, ModuleError, ModuleSpec, Outcome};
use imagegate_registry::criteria::Unmet;
use imagegate_registry::journal::Record;
use imagegate_registry::promote::{self, RetagRequest};
use imagegate_registry::promotion::{self, Endpoints, Gated, Promotion, PromotionError, PromotionReport, StaleTags};
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::restore::{self, RestoreError};
use imagegate_registry::tags::{RemoveMethod, WebApi};
use imagegate_registry::{Digest, Reference, RegistryClient, Stats, TransportOptions};
use serde::{Deserialize, Serialize};

use crate::registries::{concurrency, runtime, Registries, Side, SECRET_OPTIONS};

pub const SPEC: ModuleSpec = ModuleSpec {
    name: "container_retag",
    secret_options: SECRET_OPTIONS,
    lenient: &["registries.*"],
};

/// zuul-jobs' default age for stale tags: one day.
pub const DEFAULT_AGE: u64 = 86_400;
pub const DEFAULT_REGEX: &str = "^change_.*$";

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
    #[serde(default = "crate::yes")]
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

#[derive(Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ImageArgs {
    /// `registry/repo`; the source and (by default) the destination.
    pub repository: Option<String>,
    /// A full source reference instead of repository + src_tag/src_digest.
    pub src: Option<String>,
    pub src_tag: Option<String>,
    pub src_digest: Option<String>,
    /// Another repository of the same registry for the target tags.
    pub dest: Option<String>,
    pub tags: Vec<String>,
    pub expected_digest: Option<String>,
    pub keep_previous: bool,
    pub remove_tags: Vec<String>,
    /// zuul-jobs: the key of `registries` holding this image's credentials
    /// (`container_images[].registry`); by default the registry host.
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
    image: promotion::Image,
    /// What names the image's repository in a message (`images[0].repository`).
    option: String,
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
            img.image.request.source = r;
            return Ok(img);
        }
    }
    let source = source_of(i, &a)?;
    let dest = dest_of(i, &a, &source)?;
    check_tags(i, &a)?;
    let expected = a
        .expected_digest
        .as_deref()
        .map(Digest::parse)
        .transpose()
        .map_err(|e| ModuleError::option(opt("images", i, "expected_digest"), e.to_string()))?;
    Ok(Image {
        image: promotion::Image {
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
        },
        option: opt("images", i, "repository"),
    })
}

/// The source: `src`, or `repository` with `src_tag` or `src_digest`.
fn source_of(i: usize, a: &ImageArgs) -> Result<Reference, ModuleError> {
    let option = |name: &str, problem: String| ModuleError::option(opt("images", i, name), problem);
    match (&a.src, &a.repository) {
        (Some(_), Some(_)) => Err(option("src", "give src or repository, not both".into())),
        (Some(src), None) => {
            if a.src_tag.is_some() || a.src_digest.is_some() {
                return Err(option("src_tag", "src_tag and src_digest go with repository, not src".into()));
            }
            let r = Reference::parse(src).map_err(|e| option("src", e.to_string()))?;
            if r.tag.is_none() && r.digest.is_none() {
                return Err(option("src", "name the source tag or digest".into()));
            }
            Ok(r)
        }
        (None, Some(repo)) => {
            let mut r = Reference::parse_repository(repo).map_err(|e| option("repository", e.to_string()))?;
            match (&a.src_tag, &a.src_digest) {
                (Some(_), Some(_)) => return Err(option("src_tag", "give src_tag or src_digest, not both".into())),
                (Some(t), None) if is_valid_tag(t) => r.tag = Some(t.clone()),
                (Some(t), None) => return Err(option("src_tag", format!("'{t}' is not a valid tag"))),
                (None, Some(d)) => r.digest = Some(Digest::parse(d).map_err(|e| option("src_digest", e.to_string()))?),
                (None, None) => return Err(option("src_tag", "name the source with src_tag or src_digest".into())),
            }
            Ok(r)
        }
        (None, None) => Err(option("repository", "missing required option (or src)".into())),
    }
}

/// The repository that gets the target tags: `dest` (on the source's
/// registry), or the source's own.
fn dest_of(i: usize, a: &ImageArgs, source: &Reference) -> Result<Reference, ModuleError> {
    let Some(d) = &a.dest else {
        return Ok(Reference {
            tag: None,
            digest: None,
            ..source.clone()
        });
    };
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
    Ok(r)
}

/// Target tags and tags to remove: valid, at least one, never both.
fn check_tags(i: usize, a: &ImageArgs) -> Result<(), ModuleError> {
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
    Ok(())
}

/// The images of `images`, or of `declared` (checked in the declared file's
/// own words, and named by file and entry in every later message).
fn validate_images(images: Vec<ImageArgs>, declared: Option<crate::declared::DeclaredArgs>) -> Result<Vec<Image>, ModuleError> {
    let Some(declared) = declared else {
        return crate::validate_each(images, validate_image);
    };
    if !images.is_empty() {
        return Err(ModuleError::option("declared", "give images or declared, not both"));
    }
    let mut out = Vec::new();
    for (i, d) in crate::declared::images(declared)?.into_iter().enumerate() {
        let mut img = validate_image(i, d.image)?;
        img.option = format!("{} name", d.label);
        img.image.request.label = d.label;
        out.push(img);
    }
    Ok(out)
}

fn validate_cleanup(i: usize, a: CleanupArgs) -> Result<StaleTags, ModuleError> {
    let repo =
        Reference::parse_repository(&a.repository).map_err(|e| ModuleError::option(opt("cleanup", i, "repository"), e.to_string()))?;
    let regex = regex::Regex::new(a.regex.as_deref().unwrap_or(DEFAULT_REGEX))
        .map_err(|e| ModuleError::option(opt("cleanup", i, "regex"), format!("not a valid regex: {e}")))?;
    Ok(StaleTags {
        repo,
        pattern: regex,
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
    let cleanups = crate::validate_each(args.cleanup, validate_cleanup)?;
    let concurrency = concurrency(args.concurrency, promote::DEFAULT_CONCURRENCY, "concurrency")?;
    let criteria = args.criteria.take().map(crate::criteria::validate).transpose()?;
    if criteria.is_some() && images.iter().all(|i| i.image.request.targets.is_empty()) {
        return Err(ModuleError::option("criteria", "gates a promotion: give images with target tags"));
    }
    let regs = Registries::new(&common, None, None)?;
    for img in &images {
        let d = &img.image.request.dest;
        regs.check_repository(&d.registry, img.image.registry.as_deref(), &d.repository, &img.option)?;
    }
    let stats = Arc::new(Stats::default());
    let promotion = Promotion {
        images: images.into_iter().map(|i| i.image).collect(),
        cleanups,
        method: args.method,
        atomic: args.atomic,
        check: ctx.check_mode,
        record_file: args.record_file.clone(),
        require_signature: args.require_signature,
        criteria,
        concurrency,
        stats: stats.clone(),
    };
    let at = Destinations { regs: &regs, stats };
    let report = runtime()?
        .block_on(promotion::run(&promotion, &at))
        .map_err(|e| failure(e, args.record_file.as_deref()))?;
    for w in &report.not_removed {
        ctx.warn(w.clone());
    }
    Ok(Outcome {
        changed: report.changed,
        msg: message(&report, ctx.check_mode),
        values: imagegate_ansible::values(&report),
        diff: Some(crate::diff(report.diff)),
        lists: Vec::new(),
    })
}

/// The registries as the promotion reaches them: every client on the
/// destination side of the module's settings.
struct Destinations<'a> {
    regs: &'a Registries,
    stats: Arc<Stats>,
}

impl Endpoints for Destinations<'_> {
    fn client(&self, r: &Reference, key: Option<&str>) -> Result<RegistryClient, imagegate_registry::Error> {
        self.regs
            .client(&r.registry, &r.repository, key, Side::Destination, self.stats.clone())
    }

    fn web_api(&self, registry: &str, key: Option<&str>) -> WebApi {
        self.regs.web_api(registry, key)
    }

    fn transport_options(&self) -> TransportOptions {
        self.regs.transport_options()
    }
}

fn message(report: &PromotionReport, check: bool) -> String {
    let not_removed = report.not_removed.len();
    let mut msg = if report.changed {
        format!(
            "{} {} tags and {} {} tags",
            if check { "would move" } else { "moved" },
            report.tags_moved(),
            if check { "remove" } else { "removed" },
            report.tags_removed()
        )
    } else if not_removed > 0 {
        "nothing moved or removed".to_string()
    } else {
        "every tag is already where it should be".to_string()
    };
    if not_removed > 0 {
        msg.push_str(&format!("; {not_removed} tags could not be removed (see the warnings)"));
    }
    msg
}

/// A promotion that failed midway: what the plan found, what moved and
/// what was put back.
#[derive(Serialize)]
struct Unfinished<'a> {
    #[serde(flatten)]
    plan: &'a Gated,
    moved: &'a [String],
    restored: &'a [String],
    not_restored: &'a [String],
}

#[derive(Serialize)]
struct CriteriaUnmet<'a> {
    criteria_unmet: &'a [Unmet],
}

fn failure(e: PromotionError, record_file: Option<&Path>) -> ModuleError {
    match e {
        PromotionError::Registry { error, changed } => fail(error).with_changed(changed),
        PromotionError::CriteriaUnreadable(e) => {
            ModuleError::failed(format!("nothing moved; the promotion criteria could not be read: {e}"))
        }
        PromotionError::CriteriaUnmet(unmet) => {
            let said: Vec<String> = unmet.iter().map(ToString::to_string).collect();
            ModuleError::Failed {
                msg: format!("nothing moved; criteria not met: {}", said.join("; ")),
                changed: false,
                values: imagegate_ansible::values(&CriteriaUnmet { criteria_unmet: &unmet }),
            }
        }
        PromotionError::Unsigned(missing) => ModuleError::failed(format!(
            "require_signature: no signature found for {}; nothing moved",
            missing.join(", ")
        )),
        PromotionError::Record { error, changed } => {
            ModuleError::option("record_file", format!("cannot write the record: {error}")).with_changed(changed)
        }
        PromotionError::Apply { plan, failure: f } => {
            let mut msg = format!("promotion failed: {}", f.error);
            if !f.restored.is_empty() {
                msg.push_str(&format!("; put back {} tags already moved", f.restored.len()));
            }
            if !f.not_restored.is_empty() {
                msg.push_str(&format!("; could NOT put back: {}", f.not_restored.join("; ")));
            }
            if let Some(path) = record_file {
                msg.push_str(&format!("; the record is in {}", path.display()));
            }
            let values = imagegate_ansible::values(&Unfinished {
                plan: &plan,
                moved: &f.moved,
                restored: &f.restored,
                not_restored: &f.not_restored,
            });
            ModuleError::Failed {
                msg,
                changed: !f.moved.is_empty(),
                values,
            }
        }
        PromotionError::Removal { tag, error, changed } => ModuleError::failed(format!("removing {tag}: {error}")).with_changed(changed),
    }
}

/// A restore that failed part-way.
#[derive(Serialize)]
struct RestoreUnfinished<'a> {
    moves: &'a [restore::RestoreMove],
    restored: &'a [String],
    not_restored: &'a [String],
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
    let done = runtime()?.block_on(restore::run(&record, &clients, &webs, method, ctx.check_mode, &stats));
    let report = match done {
        Ok(report) => report,
        Err(RestoreError::Plan(e)) => return Err(fail(e)),
        Err(RestoreError::Apply { moves, failure: f }) => {
            return Err(ModuleError::Failed {
                msg: format!(
                    "restoring {} failed: put back {} tags; could NOT put back: {}",
                    path.display(),
                    f.restored.len(),
                    f.errors.join("; ")
                ),
                changed: !f.restored.is_empty(),
                values: imagegate_ansible::values(&RestoreUnfinished {
                    moves: &moves,
                    restored: &f.restored,
                    not_restored: &f.errors,
                }),
            })
        }
    };
    let n = report.tags_moved();
    let verb = if ctx.check_mode { "would put back" } else { "put back" };
    Ok(Outcome {
        changed: n > 0,
        msg: if n > 0 {
            format!("{verb} {n} tags recorded in {}", path.display())
        } else {
            format!("every tag recorded in {} is already where it was", path.display())
        },
        values: imagegate_ansible::values(&report),
        diff: Some(crate::diff(report.diff)),
        lists: Vec::new(),
    })
}

fn fail(e: imagegate_registry::Error) -> ModuleError {
    ModuleError::failed(e.to_string())
}
