//! `container_push`: upload an image from an OCI image layout (or from a
//! builder's storage, exported through the builder) to a registry.

use std::path::PathBuf;
use std::sync::Arc;

use imagegate_ansible::{Context, ModuleError, ModuleSpec, Outcome};
use imagegate_registry::builder::{BuildError, Program};
use imagegate_registry::copy::{human_bytes, TagChange};
use imagegate_registry::layout::OciLayout;
use imagegate_registry::push::push_layout;
use imagegate_registry::reference::is_valid_tag;
use imagegate_registry::report::{Rate, TextDiff};
use imagegate_registry::{BlobCache, Reference, Stats, StatsSnapshot};
use serde::{Deserialize, Serialize};

use crate::registries::{concurrency, credential_pair, runtime, Registries, Side, DEFAULT_BLOB_CONCURRENCY, SECRET_OPTIONS};

pub const SPEC: ModuleSpec = ModuleSpec {
    name: "container_push",
    secret_options: SECRET_OPTIONS,
    lenient: &["registries.*"],
};

// The builder storage options (for `image`) and the registry options.
crate::builder_storage_args! { then crate::registry_module_args;
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// An OCI image layout directory.
    #[serde(default)]
    pub layout: Option<PathBuf>,
    /// The image's name in the layout (`org.opencontainers.image.ref.name`).
    #[serde(default)]
    pub name: Option<String>,
    /// Or an image in the builder's storage, exported with the builder.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default = "podman")]
    pub container_command: String,
    pub repository: String,
    #[serde(default = "latest")]
    pub tags: Vec<String>,
    /// zuul-jobs: the key of `registries` holding the credentials.
    #[serde(default)]
    pub registry: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub blob_concurrency: Option<usize>,
}
}

/// Exports an image from the builder's storage into an OCI layout, its
/// image named `image` (the engine's
/// [`Builder::export_stored`](imagegate_registry::builder::Builder::export_stored)).
fn export_image(args: &Args, image: &str, target: &std::path::Path) -> Result<(), ModuleError> {
    let program = args.container_command.as_str();
    let Some(program) = Program::from_name(program) else {
        return Err(ModuleError::option(
            "container_command",
            format!("'{program}' is not podman, buildah or docker"),
        ));
    };
    let builder = args.builder(program, None);
    builder.export_stored(image, target, "image").map_err(|e| match e {
        // podman's and buildah's export says what went wrong in a line.
        BuildError::Step { what, run } if program != Program::Docker => {
            ModuleError::failed(format!("{what} failed: {}", run.stderr.trim()))
        }
        BuildError::Start { error, .. } => ModuleError::option("container_command", format!("cannot run {}: {error}", program.name())),
        other => crate::build::build_failure(other),
    })
}

/// The name the builder stored `image` under: a reference as
/// container_build tags it (registry and all: `team/app` is
/// `docker.io/team/app`), or an image ID (12 to 64 lowercase hex digits,
/// `sha256:` optional). Anything else is refused, so no value can reach the
/// builder's command line as an option.
fn builder_name(image: &str) -> Result<String, ModuleError> {
    // An ID first, as the builders read it: twelve hex digits are also a
    // valid repository name.
    let id = image.strip_prefix("sha256:").unwrap_or(image);
    if (12..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Ok(image.to_string());
    }
    if let Ok(r) = Reference::parse(image) {
        return Ok(match &r.tag {
            Some(t) => format!("{}:{t}", r.repository_name()),
            None => r.repository_name(),
        });
    }
    Err(ModuleError::option(
        "image",
        format!(
            "'{}' is neither an image reference nor an image ID",
            imagegate_registry::error::untrusted_text(image, 200)
        ),
    ))
}

fn podman() -> String {
    "podman".into()
}
fn latest() -> Vec<String> {
    vec!["latest".into()]
}

pub fn run(mut args: Args, ctx: &Context) -> Result<Outcome, ModuleError> {
    let started = std::time::Instant::now();
    let common = args.take_common();
    let dest = Reference::parse_repository(&args.repository).map_err(|e| ModuleError::option("repository", e.to_string()))?;
    if args.tags.is_empty() {
        return Err(ModuleError::option("tags", "give at least one tag"));
    }
    if let Some(t) = args.tags.iter().find(|t| !is_valid_tag(t)) {
        return Err(ModuleError::option("tags", format!("'{t}' is not a valid tag")));
    }
    let blob_conc = concurrency(args.blob_concurrency, DEFAULT_BLOB_CONCURRENCY, "blob_concurrency")?;
    // The layout: given, or exported from the builder's storage (into a
    // directory removed when the module ends).
    let (layout_dir, name, _export_dir) = layout_of(&args)?;
    let layout = OciLayout::open(&layout_dir).map_err(|e| ModuleError::option("layout", e.to_string()))?;
    let creds = credential_pair(args.username, args.password, "username", "password")?;
    let regs = Registries::new(&common, None, creds)?;
    regs.check_repository(&dest.registry, args.registry.as_deref(), &dest.repository, "repository")?;
    let stats = Arc::new(Stats::default());
    let client = regs
        .client(&dest.registry, &dest.repository, args.registry.as_deref(), Side::Destination, stats)
        .map_err(|e| ModuleError::failed(e.to_string()))?;
    let rt = runtime()?;
    let cache = BlobCache::default();
    let report = rt
        .block_on(push_layout(
            &layout,
            name.as_deref(),
            &client,
            &dest,
            &args.tags,
            ctx.check_mode,
            blob_conc,
            &cache,
        ))
        .map_err(|e| ModuleError::failed(e.to_string()))?;
    let mut diff = TextDiff::default();
    for t in &report.tags {
        diff.push(&format!("{}:{}", report.dest, t.tag), t.before.as_deref(), Some(&t.after));
    }
    let n_changed = report.tags.iter().filter(|t| t.changed).count();
    let msg = if report.changed {
        format!(
            "{} {n_changed} of {} tags to {}; {} blobs uploaded ({}), {} already present",
            if ctx.check_mode { "would push" } else { "pushed" },
            report.tags.len(),
            report.dest_digest,
            report.stats.blobs_copied,
            human_bytes(report.stats.bytes_moved),
            report.stats.blobs_present
        )
    } else {
        format!("every tag already points at {}", report.dest_digest)
    };
    let values = imagegate_ansible::values(&Pushed {
        digest: &report.dest_digest,
        repository: &report.dest,
        media_type: &report.media_type,
        tags: &report.tags,
        stats: PushStats {
            counts: report.stats,
            rate: Rate::since(report.stats.bytes_moved, started),
        },
    });
    Ok(Outcome {
        changed: report.changed,
        msg,
        diff: Some(crate::diff(diff)),
        values,
        lists: Vec::new(),
    })
}

/// The layout to push and the image's name in it: `layout` (with `name`),
/// or `image` exported from the builder's storage into a private directory
/// (returned with it, to be removed when dropped).
fn layout_of(args: &Args) -> Result<(PathBuf, Option<String>, Option<tempfile::TempDir>), ModuleError> {
    match (&args.layout, &args.image) {
        (Some(_), Some(_)) => Err(ModuleError::option("layout", "give layout or image, not both")),
        (Some(l), None) => Ok((l.clone(), args.name.clone(), None)),
        (None, Some(image)) => {
            // The name the builder stored it under: registry and all
            // (`team/app` is `docker.io/team/app`), as container_build tags.
            let image = &builder_name(image)?;
            let dir = crate::build::tempdir()?;
            let target = dir.path().join("layout");
            export_image(args, image, &target)?;
            Ok((target, Some("image".to_string()), Some(dir)))
        }
        (None, None) => Err(ModuleError::option("layout", "missing required option (or image)")),
    }
}

/// The result: where the image went, its tags, what it took.
#[derive(Serialize)]
struct Pushed<'a> {
    digest: &'a str,
    repository: &'a str,
    media_type: &'a str,
    tags: &'a [TagChange],
    stats: PushStats,
}

#[derive(Serialize)]
struct PushStats {
    #[serde(flatten)]
    counts: StatsSnapshot,
    #[serde(flatten)]
    rate: Rate,
}

#[cfg(test)]
mod tests {
    use super::builder_name;

    #[test]
    fn only_references_and_image_ids_name_an_image() {
        assert_eq!(builder_name("team/app:1").unwrap(), "docker.io/team/app:1");
        assert_eq!(builder_name("localhost/app").unwrap(), "localhost/app");
        assert_eq!(builder_name("0123456789ab").unwrap(), "0123456789ab");
        assert_eq!(
            builder_name(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            format!("sha256:{}", "a".repeat(64))
        );
        for bad in ["--digestfile=/tmp/x", "-q", "", "UPPER CASE", "a//b", "-0123456789ab"] {
            let e = format!("{:?}", builder_name(bad).unwrap_err());
            assert!(e.contains("image"), "{bad}: {e}");
        }
    }
}
