//! Signatures and attestations that travel with an image.
//!
//! A copied image stays verifiable only if what refers to it is copied too:
//! - OCI 1.1 referrers: manifests whose `subject` is the image, found through
//!   the referrers API (`GET /v2/<name>/referrers/<digest>`) or, on a
//!   registry without it, the referrers tag schema (an index under the tag
//!   `sha256-<hex>`); on a destination without the API the same tag index
//!   is kept up to date (merged, never shrunk);
//! - cosign's tag scheme: `sha256-<hex>.sig`, `.att` and `.sbom`.
//!
//! Each is copied byte for byte, with its blobs, so its digest (and any
//! signature over it) is unchanged. An index's children are looked at too,
//! one level down.

use futures_util::StreamExt;
use serde::Serialize;

use crate::client::RegistryClient;
use crate::copy::{copy_tree, BlobCache, Source};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::log;
use crate::manifest::{Manifest, Parsed, OCI_INDEX};

/// cosign's tag suffixes: signatures, attestations, SBOMs.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];
/// Referrers of one manifest carried at most; more is no signature set.
const MAX_REFERRERS: usize = 1000;
/// Blobs of one referrer moved at once (they are small).
const BLOB_CONCURRENCY: usize = 4;

/// What travelled (or would) with one image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Carried {
    /// Referrer manifests copied (or that would be).
    pub referrers: usize,
    /// cosign tags copied or moved (or that would be).
    pub signature_tags: Vec<String>,
    /// Whether anything was written (or would be).
    pub changed: bool,
}

/// The tag of the referrers tag schema for `digest`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("sha256-{}", &digest.as_str()[7..])
}

/// Carries the referrers and cosign tags of `subject` (and of its children,
/// for an index) from `src_repo` to `dst_repo`. In check mode only reads.
pub async fn carry(
    src: &RegistryClient,
    src_repo: &str,
    dst: &RegistryClient,
    dst_repo: &str,
    subject: &Manifest,
    check_mode: bool,
    cache: &BlobCache,
) -> Result<Carried, Error> {
    let mut subjects = vec![subject.digest.clone()];
    if let Parsed::Index { manifests } = subject.parse(&format!("{}/{src_repo}@{}", src.registry(), subject.digest))? {
        for child in manifests {
            subjects.push(Digest::parse(&child.digest)?);
        }
    }
    let ctx = Ctx {
        src,
        src_repo,
        dst,
        dst_repo,
        check_mode,
        cache,
    };
    // Each subject's referrers and cosign tags are looked up side by side,
    // and a few subjects at once: over a network these lookups are round
    // trips, nearly always answered "none". Results merge in subject order.
    let ctx = &ctx;
    let per_subject: Vec<Result<Carried, Error>> = futures_util::stream::iter(subjects.iter().map(|digest| async move {
        let (mut a, b) = futures_util::future::try_join(ctx.referrers_of(digest), ctx.cosign_tags_of(digest)).await?;
        a.merge(b);
        Ok(a)
    }))
    .buffered(SUBJECTS_AT_ONCE)
    .collect()
    .await;
    let mut carried = Carried::default();
    for c in per_subject {
        carried.merge(c?);
    }
    Ok(carried)
}

/// Subjects (an image, an index and its children) whose referrers are
/// looked up at once.
const SUBJECTS_AT_ONCE: usize = 4;

impl Carried {
    fn merge(&mut self, other: Carried) {
        self.referrers += other.referrers;
        self.signature_tags.extend(other.signature_tags);
        self.changed |= other.changed;
    }
}

/// Artifact types of signatures among referrers: cosign's signature,
/// sigstore bundles, Notary Project signatures.
const SIGNATURE_TYPES: [&str; 4] = [
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.cncf.notary.signature",
];

/// Whether a signature of `digest` is present in `repo`: cosign's
/// `sha256-<hex>.sig` tag, or a referrer whose artifact type is a signature
/// (through the referrers API or its tag schema). Returns what was found.
/// Presence only: nothing is verified cryptographically.
pub async fn signature_present(client: &RegistryClient, repo: &str, digest: &Digest) -> Result<Option<String>, Error> {
    let tag = format!("{}.sig", fallback_tag(digest));
    if client.manifest_digest(repo, &tag).await?.is_some() {
        return Ok(Some(format!("cosign signature tag {tag}")));
    }
    Ok(referring(client, repo, digest, false).await?.signature())
}

/// What refers to one image: the referrers listed for it and its cosign
/// tags, as `imagegate inspect` shows them.
#[derive(Debug, Default, Serialize)]
pub struct Referring {
    pub referrers: Vec<Referrer>,
    /// cosign tags present (`sha256-<hex>.sig`, `.att`, `.sbom`).
    pub cosign_tags: Vec<String>,
}

/// One referrer, as its subject's list describes it.
#[derive(Debug, Serialize)]
pub struct Referrer {
    /// A valid digest (checked).
    pub digest: String,
    /// Text the registry sent: escaped and cut to 200 characters.
    pub artifact_type: Option<String>,
}

impl Referring {
    /// The first signature among them, said as [`signature_present`] says it.
    pub fn signature(&self) -> Option<String> {
        let tag = self.cosign_tags.iter().find(|t| t.ends_with(".sig"));
        tag.map(|t| format!("cosign signature tag {t}")).or_else(|| {
            self.referrers.iter().find_map(|r| {
                let kind = r.artifact_type.as_deref()?;
                SIGNATURE_TYPES.contains(&kind).then(|| format!("referrer {} ({kind})", r.digest))
            })
        })
    }
}

/// The referrers of `digest` in `repo` (through the referrers API or its
/// tag schema; at most [`MAX_REFERRERS`], each digest checked) and, with
/// `cosign`, which of its cosign tags are there.
pub async fn referring(client: &RegistryClient, repo: &str, digest: &Digest, cosign: bool) -> Result<Referring, Error> {
    let (_, found) = Ctx::list(client, repo, digest).await?;
    if found.len() > MAX_REFERRERS {
        return Err(too_many(client, repo, digest, found.len()));
    }
    let mut referring = Referring::default();
    for d in &found {
        referring.referrers.push(Referrer {
            digest: Digest::parse(d["digest"].as_str().unwrap_or_default())?.to_string(),
            artifact_type: d["artifactType"].as_str().map(|t| crate::error::untrusted_text(t, 200)),
        });
    }
    if !cosign {
        return Ok(referring);
    }
    for suffix in COSIGN_SUFFIXES {
        let tag = format!("{}.{suffix}", fallback_tag(digest));
        if client.manifest_digest(repo, &tag).await?.is_some() {
            referring.cosign_tags.push(tag);
        }
    }
    Ok(referring)
}

fn too_many(client: &RegistryClient, repo: &str, digest: &Digest, listed: usize) -> Error {
    Error::new(ErrorKind::Protocol(format!(
        "{}/{repo} lists {listed} referrers of {digest}, more than the {MAX_REFERRERS} carried",
        client.registry()
    )))
}

struct Ctx<'a> {
    src: &'a RegistryClient,
    src_repo: &'a str,
    dst: &'a RegistryClient,
    dst_repo: &'a str,
    check_mode: bool,
    cache: &'a BlobCache,
}

impl Ctx<'_> {
    /// Copies the source manifest `digest`, with its blobs, to `reference`
    /// (a tag, or the digest itself) of the destination.
    async fn copy_manifest(&self, digest: &Digest, reference: &str) -> Result<(), Error> {
        let m = self.src.get_manifest(self.src_repo, digest.as_str()).await?;
        let source = Source::Registry(self.src, self.src_repo);
        copy_tree(source, self.dst, self.dst_repo, &m, BLOB_CONCURRENCY, self.cache).await?;
        self.dst.put_manifest(self.dst_repo, reference, &m).await
    }

    /// The referrer descriptors of `digest` in `repo`: the API's answer or
    /// the fallback tag's index (empty if neither has any).
    async fn list(client: &RegistryClient, repo: &str, digest: &Digest) -> Result<(bool, Vec<serde_json::Value>), Error> {
        if let Some(list) = client.referrers(repo, digest).await? {
            return Ok((true, list));
        }
        let tag = fallback_tag(digest);
        match client.get_manifest(repo, &tag).await {
            Ok(m) => {
                let value = crate::bounded::from_slice(&m.bytes, crate::bounded::INDEX_BUDGET).unwrap_or_default();
                Ok((false, value["manifests"].as_array().cloned().unwrap_or_default()))
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound { .. }) => Ok((false, Vec::new())),
            Err(e) => Err(e),
        }
    }

    async fn referrers_of(&self, digest: &Digest) -> Result<Carried, Error> {
        let mut carried = Carried::default();
        let (_, found) = Self::list(self.src, self.src_repo, digest).await?;
        if found.is_empty() {
            return Ok(carried);
        }
        if found.len() > MAX_REFERRERS {
            return Err(too_many(self.src, self.src_repo, digest, found.len()));
        }
        for d in &found {
            let r = Digest::parse(d["digest"].as_str().unwrap_or_default())?;
            if self.dst.manifest_digest(self.dst_repo, r.as_str()).await?.is_some() {
                continue;
            }
            carried.referrers += 1;
            carried.changed = true;
            if self.check_mode {
                continue;
            }
            self.copy_manifest(&r, r.as_str()).await?;
            log::info(&format!("  referrer {} of {} copied", r.short(), digest.short()));
        }
        // A destination without the referrers API learns of them through
        // the tag schema: its index gains every referrer it lacks.
        let (has_api, existing) = Self::list(self.dst, self.dst_repo, digest).await?;
        if has_api {
            return Ok(carried);
        }
        let mut merged = existing.clone();
        for d in &found {
            if !merged.iter().any(|e| e["digest"] == d["digest"]) {
                merged.push(d.clone());
            }
        }
        if merged.len() == existing.len() {
            return Ok(carried);
        }
        carried.changed = true;
        if self.check_mode {
            return Ok(carried);
        }
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": merged});
        let bytes = bytes::Bytes::from(index.to_string());
        let m = Manifest::from_bytes("referrers index", bytes, Some(OCI_INDEX))?;
        self.dst.put_manifest(self.dst_repo, &fallback_tag(digest), &m).await?;
        log::info(&format!(
            "  referrers index of {} updated ({} entries)",
            digest.short(),
            merged.len()
        ));
        Ok(carried)
    }

    async fn cosign_tags_of(&self, digest: &Digest) -> Result<Carried, Error> {
        let mut carried = Carried::default();
        let tags = COSIGN_SUFFIXES.map(|suffix| format!("{}.{suffix}", fallback_tag(digest)));
        // The three source tags are asked for at once; what exists is then
        // copied in order.
        let found = futures_util::future::try_join_all(tags.iter().map(|tag| self.src.manifest_digest(self.src_repo, tag))).await?;
        for (tag, at) in tags.into_iter().zip(found) {
            let Some(at) = at else {
                continue;
            };
            if self.dst.manifest_digest(self.dst_repo, &tag).await?.as_ref() == Some(&at) {
                continue;
            }
            carried.signature_tags.push(tag.clone());
            carried.changed = true;
            if self.check_mode {
                continue;
            }
            self.copy_manifest(&at, &tag).await?;
            log::info(&format!("  {tag} copied"));
        }
        Ok(carried)
    }
}
