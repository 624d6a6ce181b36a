//! Copying images between repositories and registries: manifests byte for
//! byte, blobs and child manifests before the manifests that reference them,
//! and nothing at all when the destination tags already point at the source.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::client::RegistryClient;
use crate::digest::Digest;
use crate::error::Error;
use crate::layout::OciLayout;
use crate::log;
use crate::manifest::{Descriptor, Manifest, Parsed};
use crate::reference::Reference;
use crate::stats::StatsSnapshot;

/// Where blobs are known to be in each destination registry, shared by all
/// copies of one run. A blob that one image brought into a registry is
/// mounted into the next repository that needs it instead of streamed again,
/// and two copies needing the same blob at once do not both upload it: the
/// second waits for the first, then mounts.
#[derive(Default)]
pub struct BlobCache {
    slots: std::sync::Mutex<HashMap<(String, String), BlobSlot>>,
}

/// The repository a blob is known to be in, locked while it is moving.
type BlobSlot = Arc<tokio::sync::Mutex<Option<String>>>;

impl BlobCache {
    fn slot(&self, registry: &str, digest: &str) -> BlobSlot {
        self.slots
            .lock()
            .expect("blob cache")
            .entry((registry.to_string(), digest.to_string()))
            .or_default()
            .clone()
    }
}

/// One image to copy: a source (tag or digest) to one or more destination
/// tags of one repository.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    pub src: Reference,
    /// Destination repository; its tag and digest are ignored.
    pub dest: Reference,
    pub dest_tags: Vec<String>,
    /// `os/arch[/variant]` to keep from an index; empty keeps all.
    pub platforms: Vec<String>,
}

/// What happened (or would happen) to one destination tag.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagChange {
    pub tag: String,
    pub before: Option<String>,
    pub after: String,
    pub changed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub src: String,
    pub dest: String,
    pub src_digest: String,
    pub dest_digest: String,
    pub media_type: String,
    pub tags: Vec<TagChange>,
    pub changed: bool,
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// Where an image's child manifests and blobs come from: a repository of a
/// registry, or an OCI image layout on disk.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Registry(&'a RegistryClient, &'a str),
    Layout(&'a OciLayout),
}

impl Source<'_> {
    fn label(&self, digest: &Digest) -> String {
        match self {
            Source::Registry(client, repo) => format!("{}/{repo}@{digest}", client.registry()),
            Source::Layout(layout) => format!("{}@{digest}", layout.root().display()),
        }
    }

    async fn manifest(&self, child: &Descriptor) -> Result<Manifest, Error> {
        match self {
            Source::Registry(client, repo) => client.get_manifest(repo, &child.digest).await,
            Source::Layout(layout) => layout.manifest(&child.digest, Some(child.media_type.as_str()).filter(|t| !t.is_empty())),
        }
    }

    /// The source repository, if it is on the destination's registry (and
    /// so a place to mount blobs from).
    fn mountable_repo(&self, dst: &RegistryClient, dst_repo: &str) -> Option<&str> {
        match self {
            Source::Registry(client, repo) if client.registry() == dst.registry() && *repo != dst_repo => Some(repo),
            _ => None,
        }
    }

    /// Streams one blob into `dst_repo`; returns the bytes moved.
    async fn upload(&self, dst: &RegistryClient, dst_repo: &str, d: &Descriptor) -> Result<u64, Error> {
        match self {
            Source::Registry(client, repo) => dst.copy_blob_from(dst_repo, client, repo, d).await,
            Source::Layout(layout) => dst.upload_file(dst_repo, d, &layout.checked_blob(&d.digest)?).await,
        }
    }
}

/// Copies one image. In check mode only reads happen. `blob_concurrency`
/// blobs of one manifest move at once. Returns the report and the manifest
/// delivered (after any platform filter), so that what comes next (its
/// referrers) need not fetch it again.
pub async fn copy_image(
    src: &RegistryClient,
    dst: &RegistryClient,
    req: &CopyRequest,
    check_mode: bool,
    blob_concurrency: usize,
    cache: &BlobCache,
) -> Result<(CopyReport, Manifest), Error> {
    let src_ref = req.src.tag_or_digest();
    let src_name = req.src.to_string();
    let delivery = Delivery {
        dst,
        dest: &req.dest,
        tags: &req.dest_tags,
        check_mode,
        blob_concurrency,
        cache,
    };
    // The source manifest and the destination tags are read at once.
    let (manifest, befores) = futures_util::future::join(src.get_manifest(&req.src.repository, &src_ref), delivery.read_tags()).await;
    let mut manifest = manifest?;
    let src_digest = manifest.digest.clone();
    if manifest.is_index() && !req.platforms.is_empty() {
        manifest = manifest.filter_platforms(&src_name, &req.platforms)?;
    }
    let source = Source::Registry(src, &req.src.repository);
    let (tags, changed) = delivery.deliver(source, &src_name, &manifest, befores?).await?;
    let mut stats = src.stats().snapshot();
    if !std::sync::Arc::ptr_eq(src.stats(), dst.stats()) {
        stats += dst.stats().snapshot();
    }
    let report = CopyReport {
        src: src_name,
        dest: req.dest.repository_name(),
        src_digest: src_digest.to_string(),
        dest_digest: manifest.digest.to_string(),
        media_type: manifest.media_type.clone(),
        tags,
        changed,
        stats,
    };
    Ok((report, manifest))
}

/// Putting one manifest under tags of one repository, with everything it
/// references: the part copy and push share.
pub(crate) struct Delivery<'a> {
    pub dst: &'a RegistryClient,
    pub dest: &'a Reference,
    pub tags: &'a [String],
    pub check_mode: bool,
    pub blob_concurrency: usize,
    pub cache: &'a BlobCache,
}

impl Delivery<'_> {
    /// Resolves each tag; if any does not point at `manifest` yet (and not
    /// in check mode), copies what the manifest references from `source`,
    /// then writes the tags that move.
    pub(crate) async fn run(&self, source: Source<'_>, src_name: &str, manifest: &Manifest) -> Result<(Vec<TagChange>, bool), Error> {
        let befores = self.read_tags().await?;
        self.deliver(source, src_name, manifest, befores).await
    }

    /// Where each destination tag points now (a few at once).
    pub(crate) async fn read_tags(&self) -> Result<Vec<Option<Digest>>, Error> {
        futures_util::stream::iter(self.tags.iter().map(|tag| self.dst.manifest_digest(&self.dest.repository, tag)))
            .buffered(4)
            .try_collect()
            .await
    }

    /// [`Delivery::run`] with the tags already read (`befores`, in the
    /// order of `tags`).
    pub(crate) async fn deliver(
        &self,
        source: Source<'_>,
        src_name: &str,
        manifest: &Manifest,
        befores: Vec<Option<Digest>>,
    ) -> Result<(Vec<TagChange>, bool), Error> {
        let (dst, repo) = (self.dst, &self.dest.repository);
        let mut tags = Vec::new();
        for (tag, before) in self.tags.iter().zip(befores) {
            tags.push(TagChange {
                tag: tag.clone(),
                changed: before.as_ref() != Some(&manifest.digest),
                before: before.map(|d| d.to_string()),
                after: manifest.digest.to_string(),
            });
        }
        let changed = tags.iter().any(|t| t.changed);
        let dest_name = self.dest.repository_name();
        if !changed {
            log::info(&format!(
                "{src_name} ({}) -> {dest_name}: already up to date",
                manifest.digest.short()
            ));
        } else if !self.check_mode {
            log::info(&format!("{src_name} ({}) -> {dest_name}: copying", manifest.digest.short()));
            copy_tree(source, dst, repo, manifest, self.blob_concurrency, self.cache).await?;
            for t in tags.iter().filter(|t| t.changed) {
                dst.put_manifest(repo, &t.tag, manifest).await?;
                log::info(&format!("{dest_name}:{} -> {}", t.tag, manifest.digest));
            }
            self.read_back(&tags, manifest).await?;
        }
        Ok((tags, changed))
    }

    /// Reads every tag just written back (a few at once) before the call
    /// claims it: a registry on eventually consistent storage, or a broken
    /// proxy, can answer 201 and not serve the tag. A tag that is missing or
    /// at another digest fails the copy, naming it.
    async fn read_back(&self, tags: &[TagChange], manifest: &Manifest) -> Result<(), Error> {
        let written: Vec<&TagChange> = tags.iter().filter(|t| t.changed).collect();
        let found: Vec<Option<Digest>> =
            futures_util::stream::iter(written.iter().map(|t| self.dst.manifest_digest(&self.dest.repository, &t.tag)))
                .buffered(4)
                .try_collect()
                .await?;
        let dest_name = self.dest.repository_name();
        let wrong: Vec<String> = written
            .iter()
            .zip(found)
            .filter(|(_, f)| f.as_ref() != Some(&manifest.digest))
            .map(|(t, f)| match f {
                Some(other) => format!("{dest_name}:{} is at {other}", t.tag),
                None => format!("{dest_name}:{} is missing", t.tag),
            })
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        Err(Error::new(crate::error::ErrorKind::NotServed {
            registry: self.dst.registry().to_string(),
            digest: manifest.digest.to_string(),
            detail: wrong.join(", "),
        }))
    }
}

/// Copies everything `manifest` references (not the manifest itself).
pub(crate) async fn copy_tree(
    src: Source<'_>,
    dst: &RegistryClient,
    dst_repo: &str,
    manifest: &Manifest,
    blob_concurrency: usize,
    cache: &BlobCache,
) -> Result<(), Error> {
    let label = src.label(&manifest.digest);
    match manifest.parse(&label)? {
        Parsed::Image { config, layers } => {
            let mut seen = BTreeSet::new();
            let unique: Vec<Descriptor> = std::iter::once(config)
                .chain(layers)
                .filter(|d| !d.is_foreign() && seen.insert(d.digest.clone()))
                .collect();
            futures_util::stream::iter(unique.iter().map(|d| copy_blob(src, dst, dst_repo, d, cache)))
                .buffer_unordered(blob_concurrency.max(1))
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        }
        Parsed::Index { manifests } => {
            for child in manifests {
                if dst.manifest_digest(dst_repo, &child.digest).await?.is_some() {
                    continue;
                }
                let child_m = src.manifest(&child).await?;
                if child_m.is_index() {
                    return Err(Error::new(crate::error::ErrorKind::InvalidManifest {
                        reference: label,
                        reason: "an index nested in an index is not supported".into(),
                    }));
                }
                let what = child
                    .platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| child.digest.clone());
                log::info(&format!("{label}: platform {what}"));
                Box::pin(copy_tree(src, dst, dst_repo, &child_m, blob_concurrency, cache)).await?;
                dst.put_manifest(dst_repo, &child.digest, &child_m).await?;
            }
            Ok(())
        }
    }
}

/// Brings one blob into `dst_repo`: already there, mounted from a
/// repository of the same registry that has it, or streamed from `src`.
/// (Descriptor digests were validated when the manifest was parsed.)
///
/// Between two registries, a blob of at most [`ASK_FIRST_ABOVE`] bytes is
/// sent without asking the destination whether it has it: such blobs are
/// image configs (new with almost every new manifest) and small layers,
/// whose upload costs about what the question does (docs/architecture.md).
/// Within one registry the question is always asked: the blob is there.
async fn copy_blob(src: Source<'_>, dst: &RegistryClient, dst_repo: &str, d: &Descriptor, cache: &BlobCache) -> Result<(), Error> {
    let short = &d.digest[7..19];
    let same_registry = matches!(src, Source::Registry(client, _) if client.registry() == dst.registry());
    let ask = same_registry || d.size > ASK_FIRST_ABOVE;
    if ask && dst.blob_size(dst_repo, &d.digest).await?.is_some() {
        dst.stats().present();
        log::info(&format!("  blob {short} already in {}/{dst_repo}", dst.registry()));
        return Ok(());
    }
    // Held while this blob moves into this registry; see BlobCache.
    let slot = cache.slot(dst.registry(), &d.digest);
    let mut known = slot.lock().await;
    if known.as_deref() == Some(dst_repo) {
        // Another image of this run brought it here while we waited.
        dst.stats().present();
        log::info(&format!("  blob {short} already in {}/{dst_repo}", dst.registry()));
        return Ok(());
    }
    let earlier = known.clone();
    for from in earlier.as_deref().into_iter().chain(src.mountable_repo(dst, dst_repo)) {
        if dst.mount_blob(dst_repo, &d.digest, from).await? {
            dst.stats().mounted();
            log::info(&format!("  blob {short} mounted from {from}"));
            *known = Some(dst_repo.to_string());
            return Ok(());
        }
    }
    let bytes = src.upload(dst, dst_repo, d).await?;
    dst.stats().copied(bytes);
    *known = Some(dst_repo.to_string());
    log::info(&format!("  blob {short} copied ({})", human_bytes(bytes)));
    Ok(())
}

/// Blobs larger than this are looked for at the destination before any
/// byte moves; smaller ones are sent (see [`copy_blob`]).
pub const ASK_FIRST_ABOVE: u64 = 16 * 1024;

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
