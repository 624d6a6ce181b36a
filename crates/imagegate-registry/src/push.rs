//! Pushing an image from an OCI image layout to a registry: blobs and child
//! manifests first (skipping what the repository has), then the manifest
//! under each tag that does not point at it yet.

use std::collections::BTreeSet;

use futures_util::{StreamExt, TryStreamExt};

use crate::client::RegistryClient;
use crate::copy::{human_bytes, BlobCache, CopyReport, TagChange};
use crate::error::{Error, ErrorKind};
use crate::layout::OciLayout;
use crate::log;
use crate::manifest::{Descriptor, Manifest, Parsed};
use crate::reference::Reference;

/// Pushes the image `name` (or the only image) of `layout` to `dest` under
/// `tags`. In check mode only reads happen.
#[allow(clippy::too_many_arguments)]
pub async fn push_layout(
    layout: &OciLayout,
    name: Option<&str>,
    dst: &RegistryClient,
    dest: &Reference,
    tags: &[String],
    check_mode: bool,
    blob_concurrency: usize,
    cache: &BlobCache,
) -> Result<CopyReport, Error> {
    let manifest = layout.resolve(name)?;
    let repo = &dest.repository;
    let mut changes = Vec::new();
    for tag in tags {
        let before = dst.manifest_digest(repo, tag).await?;
        changes.push(TagChange {
            tag: tag.clone(),
            changed: before.as_ref() != Some(&manifest.digest),
            before: before.map(|d| d.to_string()),
            after: manifest.digest.to_string(),
        });
    }
    let changed = changes.iter().any(|t| t.changed);
    let src = format!("{}{}", layout.root().display(), name.map(|n| format!(":{n}")).unwrap_or_default());
    if changed && !check_mode {
        log::info(&format!(
            "{src} ({}) -> {}: pushing",
            manifest.digest.short(),
            dest.repository_name()
        ));
        push_tree(layout, dst, repo, &manifest, blob_concurrency, cache).await?;
        for t in changes.iter().filter(|t| t.changed) {
            dst.put_manifest(repo, &t.tag, &manifest).await?;
            log::info(&format!("{}:{} -> {}", dest.repository_name(), t.tag, manifest.digest));
        }
    }
    Ok(CopyReport {
        src,
        dest: dest.repository_name(),
        src_digest: manifest.digest.to_string(),
        dest_digest: manifest.digest.to_string(),
        media_type: manifest.media_type.clone(),
        tags: changes,
        changed,
        stats: dst.stats().snapshot(),
    })
}

async fn push_tree(
    layout: &OciLayout,
    dst: &RegistryClient,
    repo: &str,
    manifest: &Manifest,
    concurrency: usize,
    cache: &BlobCache,
) -> Result<(), Error> {
    let label = format!("{}@{}", layout.root().display(), manifest.digest);
    match manifest.parse(&label)? {
        Parsed::Image { config, layers } => {
            let mut seen = BTreeSet::new();
            let blobs: Vec<Descriptor> = std::iter::once(config)
                .chain(layers)
                .filter(|d| !d.is_foreign() && seen.insert(d.digest.clone()))
                .collect();
            futures_util::stream::iter(blobs.iter().map(|d| push_blob(layout, dst, repo, d, cache)))
                .buffer_unordered(concurrency.max(1))
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        }
        Parsed::Index { manifests } => {
            for child in manifests {
                if dst.manifest_digest(repo, &child.digest).await?.is_some() {
                    continue;
                }
                let child_m = layout.manifest(&child.digest, Some(&child.media_type).filter(|t| !t.is_empty()).map(String::as_str))?;
                if child_m.is_index() {
                    return Err(Error::new(ErrorKind::InvalidManifest {
                        reference: label,
                        reason: "an index nested in an index is not supported".into(),
                    }));
                }
                Box::pin(push_tree(layout, dst, repo, &child_m, concurrency, cache)).await?;
                dst.put_manifest(repo, &child.digest, &child_m).await?;
            }
            Ok(())
        }
    }
}

async fn push_blob(layout: &OciLayout, dst: &RegistryClient, repo: &str, d: &Descriptor, cache: &BlobCache) -> Result<(), Error> {
    let short = &d.digest[7..19.min(d.digest.len())];
    if dst.blob_size(repo, &d.digest).await?.is_some() {
        dst.stats().present();
        log::info(&format!("  blob {short} already in {}/{repo}", dst.registry()));
        return Ok(());
    }
    let slot = cache.slot(dst.registry(), &d.digest);
    let mut known = slot.lock().await;
    if let Some(from) = known.clone().filter(|r| r != repo) {
        if dst.mount_blob(repo, &d.digest, &from).await? {
            dst.stats().mounted();
            log::info(&format!("  blob {short} mounted from {from}"));
            *known = Some(repo.to_string());
            return Ok(());
        }
    }
    let path = layout.blob_path(&d.digest)?;
    let bytes = dst.upload_file(repo, d, &path).await?;
    dst.stats().copied(bytes);
    *known = Some(repo.to_string());
    log::info(&format!("  blob {short} uploaded ({})", human_bytes(bytes)));
    Ok(())
}
