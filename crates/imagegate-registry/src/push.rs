//! Pushing an image from an OCI image layout to a registry: blobs and child
//! manifests first (skipping what the repository has), then the manifest
//! under each tag that does not point at it yet.

use crate::client::RegistryClient;
use crate::copy::{BlobCache, CopyReport, Delivery, Source};
use crate::error::Error;
use crate::layout::OciLayout;
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
    layout.check_files(&manifest)?;
    let src = format!("{}{}", layout.root().display(), name.map(|n| format!(":{n}")).unwrap_or_default());
    let delivery = Delivery {
        dst,
        dest,
        tags,
        check_mode,
        blob_concurrency,
        cache,
    };
    let (tags, changed) = delivery.run(Source::Layout(layout), &src, &manifest).await?;
    Ok(CopyReport {
        src,
        dest: dest.repository_name(),
        src_digest: manifest.digest.to_string(),
        dest_digest: manifest.digest.to_string(),
        media_type: manifest.media_type.clone(),
        tags,
        changed,
        stats: dst.stats().snapshot(),
    })
}
