//! `registry_mirror`: copy images between registries. The options become
//! an engine [`Mirror`]; its summary becomes the result.

use std::sync::Arc;

use imagegate_ansible::{Context, ModuleError, ModuleSpec, Outcome, RawList};
use imagegate_registry::copy::human_bytes;
use imagegate_registry::mirror::{self, Entry, EntryResult, Mirror, Selection, Sides, SkippedNames, Summary, Totals};
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::{BlobCache, Reference, RegistryClient, Stats};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registries::{concurrency, credential_pair, runtime, Registries, Side, DEFAULT_BLOB_CONCURRENCY, SECRET_OPTIONS};

pub const SPEC: ModuleSpec = ModuleSpec {
    name: "registry_mirror",
    secret_options: SECRET_OPTIONS,
    lenient: &["images[]", "registries.*"],
};

/// Images copied at once by default: with 4 blobs each, 32 transfers to a
/// registry at most; chosen by measurement (docs/architecture.md).
pub const DEFAULT_CONCURRENCY: usize = 8;

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
    #[serde(default = "crate::yes")]
    pub referrers: bool,
}
}

/// One item of `images`. Either the imagegate shape (`src`, `dest`) or the
/// zuul-jobs `mirror_container_images_images` shape.
#[derive(Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ImageArgs {
    pub src: Option<String>,
    pub dest: Option<String>,
    pub tags: Option<Vec<String>>,
    pub tag_regex: Option<String>,
    pub all_tags: bool,
    pub platforms: Vec<String>,
    pub src_repository: Option<String>,
    pub src_tag: Option<String>,
    pub dest_repository: Option<String>,
    pub dest_tag: Option<String>,
    pub dest_registry: Option<String>,
}

fn opt(i: usize, name: &str) -> String {
    format!("images[{i}].{name}")
}

fn validate(i: usize, mut a: ImageArgs) -> Result<Entry, ModuleError> {
    let (src, src_opt) = source_of(i, &a)?;
    let (dest, dest_opt) = dest_of(i, &a)?;
    let selection = selection_of(i, &mut a, (&src, src_opt), (&dest, dest_opt))?;
    for p in &a.platforms {
        let parts: Vec<&str> = p.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|s| s.is_empty()) {
            return Err(ModuleError::option(opt(i, "platforms"), format!("'{p}' is not os/arch[/variant]")));
        }
    }
    Ok(Entry {
        index: i,
        src,
        dest,
        dest_registry: a.dest_registry,
        selection,
        platforms: a.platforms,
    })
}

/// The source (`src`, or zuul-jobs' `src_repository` and `src_tag`), and
/// the option that names it.
fn source_of(i: usize, a: &ImageArgs) -> Result<(Reference, String), ModuleError> {
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
    Ok((src, src_opt))
}

/// The destination (`dest`, or `dest_repository` and `dest_tag`): a
/// repository, with or without a tag; and the option that names it.
fn dest_of(i: usize, a: &ImageArgs) -> Result<(Reference, String), ModuleError> {
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
    Ok((dest, dest_opt))
}

/// Which tags the entry copies: `tags`, `tag_regex` or `all_tags` (from a
/// repository to a repository), or the one the references name.
fn selection_of(
    i: usize,
    a: &mut ImageArgs,
    (src, src_opt): (&Reference, String),
    (dest, dest_opt): (&Reference, String),
) -> Result<Selection, ModuleError> {
    let many = [a.tags.is_some(), a.tag_regex.is_some(), a.all_tags].iter().filter(|b| **b).count();
    if many > 1 {
        return Err(ModuleError::option(
            opt(i, "tags"),
            "tags, tag_regex and all_tags exclude each other",
        ));
    }
    if many == 0 {
        return one_tag(i, a, src, dest);
    }
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
    if let Some(tags) = a.tags.take() {
        if tags.is_empty() {
            return Err(ModuleError::option(opt(i, "tags"), "an empty list copies nothing"));
        }
        if let Some(bad) = tags.iter().find(|t| !is_valid_tag(t)) {
            return Err(ModuleError::option(opt(i, "tags"), format!("'{bad}' is not a valid tag")));
        }
        Ok(Selection::Tags(tags))
    } else if let Some(re) = &a.tag_regex {
        let re = regex::Regex::new(re).map_err(|e| ModuleError::option(opt(i, "tag_regex"), format!("not a valid regex: {e}")))?;
        Ok(Selection::Regex(re))
    } else {
        Ok(Selection::All)
    }
}

/// One source to one destination tag: the destination's tag, else the
/// source's, else (a digest source) by digest, else `latest`.
fn one_tag(i: usize, a: &ImageArgs, src: &Reference, dest: &Reference) -> Result<Selection, ModuleError> {
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
    Ok(Selection::One { dest_tag })
}

pub fn run(mut args: Args, ctx: &Context) -> Result<Outcome, ModuleError> {
    let started = std::time::Instant::now();
    let common = args.take_common();
    if args.images.is_empty() {
        return Err(ModuleError::option("images", "the list is empty; nothing to mirror"));
    }
    let entries = crate::validate_each(args.images, validate)?;
    let images_at_once = concurrency(args.concurrency, DEFAULT_CONCURRENCY, "concurrency")?;
    let blobs_at_once = concurrency(args.blob_concurrency, DEFAULT_BLOB_CONCURRENCY, "blob_concurrency")?;
    let regs = Registries::new(
        &common,
        credential_pair(args.src_username, args.src_password, "src_username", "src_password")?,
        credential_pair(args.dest_username, args.dest_password, "dest_username", "dest_password")?,
    )?;
    for e in &entries {
        regs.check_repository(
            &e.dest.registry,
            e.dest_registry.as_deref(),
            &e.dest.repository,
            &opt(e.index, "dest"),
        )?;
    }
    let run = Mirror {
        entries,
        check: ctx.check_mode,
        concurrency: images_at_once,
        blob_concurrency: blobs_at_once,
        referrers: args.referrers,
    };
    let cache = BlobCache::default();
    let results = runtime()?
        .block_on(mirror::run(&run, &Both(&regs), &cache))
        .map_err(|e| ModuleError::failed(e.to_string()))?;
    result(results, ctx, started)
}

/// The registries as the mirror reaches them: each side with its own
/// credentials.
struct Both<'a>(&'a Registries);

impl Sides for Both<'_> {
    fn source(&self, src: &Reference, stats: Arc<Stats>) -> Result<RegistryClient, imagegate_registry::Error> {
        self.0.client(&src.registry, &src.repository, None, Side::Source, stats)
    }

    fn destination(&self, dest: &Reference, key: Option<&str>, stats: Arc<Stats>) -> Result<RegistryClient, imagegate_registry::Error> {
        self.0.client(&dest.registry, &dest.repository, key, Side::Destination, stats)
    }
}

/// The result besides `images` (a list of its own, see [`RawList`]).
#[derive(Serialize)]
struct Mirrored<'a> {
    totals: &'a Totals,
    skipped_tags: &'a [SkippedNames],
}

/// Failures named in a failed mirror's message at most.
const FAILURES_SAID: usize = 10;

/// A mirror with failed entries: what did move, and every entry.
#[derive(Serialize)]
struct Unfinished<'a> {
    #[serde(flatten)]
    done: Mirrored<'a>,
    moved: &'a [String],
    images: Value,
}

fn result(results: Vec<EntryResult>, ctx: &Context, started: std::time::Instant) -> Result<Outcome, ModuleError> {
    // Each entry becomes JSON text as it is made (10,000 images' entries
    // as a tree of values would take several times their text).
    let masker = imagegate_ansible::masker();
    let mut images = RawList::default();
    let mut s = mirror::summarize(results, ctx.check_mode, ctx.diff, started, |entry| {
        images.push(&masker, serde_json::to_value(entry).unwrap_or(Value::Null))
    });
    for k in &s.skipped_tags {
        ctx.warn(format!(
            "images[{}] {}: skipped {} listed names that are not valid tag names: {}",
            k.index,
            k.src,
            k.total,
            k.names.join(", ")
        ));
    }
    let done = Mirrored {
        totals: &s.totals,
        skipped_tags: &s.skipped_tags,
    };
    if !s.failures.is_empty() {
        // A message a log can hold: the first failures; every one is in
        // its entry of `images`.
        let msg = match s.failures.len() {
            1 => s.failures.remove(0),
            n if n > FAILURES_SAID => format!(
                "{n} images failed: {}; and {} more (each image's error is in its entry of images)",
                s.failures[..FAILURES_SAID].join("; "),
                n - FAILURES_SAID
            ),
            n => format!("{n} images failed: {}", s.failures.join("; ")),
        };
        // The images that did copy stay copied: say so.
        let changed = !ctx.check_mode && s.changed();
        let values = imagegate_ansible::values(&Unfinished {
            done,
            moved: &s.moved,
            images: images.into_value(),
        });
        return Err(ModuleError::Failed { msg, changed, values });
    }
    let values = imagegate_ansible::values(&done);
    Ok(Outcome {
        changed: s.changed(),
        msg: message(&s, ctx.check_mode),
        values,
        diff: Some(crate::diff(s.diff)),
        lists: vec![("images".into(), images)],
    })
}

fn message(s: &Summary, check: bool) -> String {
    let t = &s.totals;
    let (copies, tags_changed) = (t.images, t.tags_changed);
    let carried = if t.referrers + t.signature_tags > 0 {
        format!("; {} referrers and {} signature tags carried", t.referrers, t.signature_tags)
    } else {
        String::new()
    };
    if tags_changed == 0 && !s.extras_changed {
        format!("all {copies} image tags already up to date")
    } else if tags_changed == 0 {
        format!("all {copies} image tags already up to date{carried}")
    } else {
        format!(
            "{} {tags_changed} of {copies} image tags; {} blobs copied ({}), {} mounted, {} already present, {} retries",
            if check { "would change" } else { "changed" },
            t.stats.blobs_copied,
            human_bytes(t.stats.bytes_moved),
            t.stats.blobs_mounted,
            t.stats.blobs_present,
            t.stats.retries
        ) + &carried
    }
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
