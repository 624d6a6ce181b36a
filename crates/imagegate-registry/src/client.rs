//! Registry operations on one registry: manifests, blobs, uploads, tags.
//! Each describes its requests and hands them to the [`Transport`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{HeaderName, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION, RANGE};
use reqwest::Method;
use url::Url;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::listing::{self, PageError, TagList};
use crate::log;
use crate::manifest::{self, Descriptor, Manifest};
use crate::quirks;
use crate::stats::Stats;
use crate::transport::limits::Progress;
use crate::transport::{Request, Scope, Transport};
use crate::verify;

/// Manifests larger than this are refused (the distribution registry's own
/// limit is 4 MiB).
const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// Chunk size for chunked uploads. Each chunk is held in memory once.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// Tags asked for per page; registries cap it (distribution at 1000 by default).
const TAG_PAGE: usize = 1000;
/// Pages of one tag list followed at most: a million tags at the usual page
/// size, so only a registry that pages forever reaches it.
const MAX_TAG_PAGES: usize = 10_000;
/// Tags of one repository kept at most (a few tens of MiB of names).
const MAX_TAGS: usize = 1_000_000;
/// One page of a tag list read at most this far (some registries answer
/// with every tag at once, ignoring `n`).
const MAX_TAG_PAGE_BYTES: usize = 64 * 1024 * 1024;

/// How blobs are uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// One `PUT` with the whole blob; falls back to chunks on `413`.
    Monolithic,
    /// `PATCH` chunks of this many bytes, then a closing `PUT`.
    Chunked(usize),
}

/// A registry client for one operation: a shared transport plus the
/// operation's counters.
#[derive(Clone)]
pub struct RegistryClient {
    transport: Arc<Transport>,
    stats: Arc<Stats>,
    upload: UploadMode,
}

impl RegistryClient {
    pub fn new(transport: Arc<Transport>, stats: Arc<Stats>, upload: UploadMode) -> Self {
        Self { transport, stats, upload }
    }

    pub fn registry(&self) -> &str {
        self.transport.registry()
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn name(&self, repo: &str, reference: &str) -> String {
        let sep = if reference.starts_with("sha256:") { '@' } else { ':' };
        format!("{}/{repo}{sep}{reference}", self.registry())
    }

    /// Sends and reads the whole body (at most `limit` bytes, within the
    /// answer deadline), retrying both together so a body cut short is
    /// fetched again.
    async fn fetch(&self, req: &Request, limit: usize) -> Result<(reqwest::header::HeaderMap, Bytes), Error> {
        let what = format!("{} {}", req.method, crate::error::redact_url(&req.target));
        self.transport
            .retrying(&what, &self.stats, || {
                self.transport.limits().answer(&what, async {
                    let resp = self.transport.send_once(req, None).await?;
                    let headers = resp.headers().clone();
                    let url = resp.url().clone();
                    let body = crate::transport::read_limited(resp, limit).await.map_err(|e| match e {
                        Some(e) => self.transport.transport_error(&url, e),
                        None => Error::new(ErrorKind::Protocol(format!("{what}: answer larger than {limit} bytes"))),
                    })?;
                    Ok((headers, body))
                })
            })
            .await
    }

    /// The digest a tag or digest resolves to, or `None` if it does not exist.
    pub async fn manifest_digest(&self, repo: &str, reference: &str) -> Result<Option<Digest>, Error> {
        let req = Request::new(Method::HEAD, format!("/v2/{repo}/manifests/{reference}"), vec![Scope::pull(repo)])
            .header(ACCEPT, manifest::ACCEPT);
        match self.transport.send(&req, &self.stats).await {
            Ok(resp) => {
                let header = resp
                    .headers()
                    .get(DOCKER_CONTENT_DIGEST)
                    .and_then(|v| v.to_str().ok())
                    .map(Digest::parse);
                match header {
                    Some(Ok(d)) => Ok(Some(d)),
                    // No usable header: fetch the bytes and hash them.
                    _ => self.get_manifest(repo, reference).await.map(|m| Some(m.digest)),
                }
            }
            Err(e) if quirks::not_there(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fetches a manifest, checking its bytes against the digest asked for
    /// and against the digest the registry says it served.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Manifest, Error> {
        let name = self.name(repo, reference);
        let req = Request::new(Method::GET, format!("/v2/{repo}/manifests/{reference}"), vec![Scope::pull(repo)])
            .header(ACCEPT, manifest::ACCEPT);
        let (headers, bytes) = match self.fetch(&req, MAX_MANIFEST).await {
            Ok(v) => v,
            Err(e) if quirks::not_there(&e) => {
                return Err(Error::new(ErrorKind::NotFound {
                    reference: name,
                    detail: Some("no such manifest (check the repository and tag)".into()),
                }))
            }
            Err(e) => return Err(e),
        };
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let m = Manifest::from_bytes(&name, bytes, content_type)?;
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            headers.get(DOCKER_CONTENT_DIGEST).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        if let Some(expected) = expected {
            if expected != m.digest.as_str() {
                return Err(Error::new(ErrorKind::DigestMismatch {
                    what: format!("manifest {name}"),
                    expected,
                    actual: m.digest.to_string(),
                }));
            }
        }
        Ok(m)
    }

    /// Stores a manifest under a tag or its digest.
    pub async fn put_manifest(&self, repo: &str, reference: &str, m: &Manifest) -> Result<(), Error> {
        let req = Request::new(Method::PUT, format!("/v2/{repo}/manifests/{reference}"), vec![Scope::push(repo)])
            .header(CONTENT_TYPE, m.media_type.clone())
            .body(m.bytes.clone());
        let resp = self.transport.send(&req, &self.stats).await?;
        if let Some(d) = resp.headers().get(DOCKER_CONTENT_DIGEST).and_then(|v| v.to_str().ok()) {
            if d != m.digest.as_str() {
                return Err(Error::new(ErrorKind::DigestMismatch {
                    what: format!("manifest stored at {}", self.name(repo, reference)),
                    expected: m.digest.to_string(),
                    actual: d.to_string(),
                }));
            }
        }
        self.stats.manifest_written();
        Ok(())
    }

    /// The OCI tag delete (`DELETE /v2/<name>/manifests/<tag>`), which few
    /// registries implement.
    pub async fn delete_tag_oci(&self, repo: &str, tag: &str) -> Result<(), Error> {
        let req = Request::new(Method::DELETE, format!("/v2/{repo}/manifests/{tag}"), vec![Scope::push(repo)]);
        self.transport.send(&req, &self.stats).await.map(|_| ())
    }

    /// Uploads a small blob from memory (a config), unless it is there.
    pub async fn put_blob_bytes(&self, repo: &str, bytes: Bytes) -> Result<Digest, Error> {
        let digest = Digest::of(&bytes);
        if self.blob_size(repo, digest.as_str()).await?.is_some() {
            return Ok(digest);
        }
        let what = format!("upload blob {digest} to {}/{repo}", self.registry());
        self.transport
            .retrying(&what, &self.stats, || {
                self.transport.limits().answer(&what, async {
                    let location = self.start_upload(repo).await?;
                    let req = Request::new(Method::PUT, with_digest(&location, &digest), vec![Scope::push(repo)])
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .body(bytes.clone());
                    self.transport.send_once(&req, None).await.map(|_| ())
                })
            })
            .await?;
        Ok(digest)
    }

    /// Reads a small blob (a config) whole, checking its digest.
    pub async fn get_blob_bytes(&self, repo: &str, digest: &str, limit: usize) -> Result<Bytes, Error> {
        let req = Request::new(Method::GET, format!("/v2/{repo}/blobs/{digest}"), vec![Scope::pull(repo)]);
        let (_, body) = self.fetch(&req, limit).await?;
        let actual = Digest::of(&body);
        if actual.as_str() != digest {
            return Err(Error::new(ErrorKind::DigestMismatch {
                what: format!("blob {digest} of {}/{repo}", self.registry()),
                expected: digest.to_string(),
                actual: actual.to_string(),
            }));
        }
        Ok(body)
    }

    /// A registry web API call (Quay, Docker Hub) with its own
    /// Authorization, through the same transport and retries. Returns the
    /// JSON answer (`null` for an empty body), parsed within
    /// [`crate::bounded::INDEX_BUDGET`] values.
    pub(crate) async fn web_json(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Error> {
        let mut req = Request::web(method, url).header(ACCEPT, "application/json");
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(Bytes::from(b.to_string()));
        }
        let (_, bytes) = self.fetch(&req, 16 * 1024 * 1024).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        crate::bounded::from_slice(&bytes, crate::bounded::INDEX_BUDGET).map_err(|e| {
            Error::new(ErrorKind::Protocol(format!(
                "{} answered with something other than a web API answer: {e}",
                crate::error::untrusted_text(&crate::error::redact_url(url), 200)
            )))
        })
    }

    /// Deletes a manifest by digest (every tag pointing at it goes too).
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<(), Error> {
        let req = Request::new(Method::DELETE, format!("/v2/{repo}/manifests/{digest}"), vec![Scope::push(repo)]);
        self.transport.send(&req, &self.stats).await.map(|_| ())
    }

    /// The size of a blob if the repository has it.
    pub async fn blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>, Error> {
        let req = Request::new(Method::HEAD, format!("/v2/{repo}/blobs/{digest}"), vec![Scope::pull(repo)]);
        match self.transport.send(&req, &self.stats).await {
            Ok(resp) => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            Err(e) if quirks::not_there(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks the registry to link a blob from another repository. `false`
    /// when the registry declined (it does not support mounts, or does not
    /// have the blob there); the caller then uploads.
    pub async fn mount_blob(&self, repo: &str, digest: &str, from: &str) -> Result<bool, Error> {
        let req = Request::new(
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
            vec![Scope::push(repo), Scope::pull(from)],
        )
        .header(CONTENT_LENGTH, "0");
        match self.transport.send(&req, &self.stats).await {
            Ok(resp) if resp.status().as_u16() == 201 => Ok(true),
            Ok(resp) => {
                // 202: the registry opened an ordinary upload instead; close it.
                if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                    let cancel = Request::new(Method::DELETE, loc.to_string(), vec![Scope::push(repo)]);
                    let _ = self
                        .transport
                        .limits()
                        .answer("cancel an upload", self.transport.send_once(&cancel, None))
                        .await;
                }
                Ok(false)
            }
            Err(e) if quirks::mount_declined(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The referrers of `digest` through the OCI 1.1 referrers API: the
    /// descriptors of its index, or `None` when the registry has no such API
    /// (it answers 404, 400, 405 or 501).
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Option<Vec<serde_json::Value>>, Error> {
        if self.transport.lacks_referrers_api() {
            return Ok(None);
        }
        let req = Request::new(Method::GET, format!("/v2/{repo}/referrers/{digest}"), vec![Scope::pull(repo)])
            .header(ACCEPT, manifest::OCI_INDEX);
        match self.fetch(&req, MAX_MANIFEST).await {
            Ok((_, body)) => {
                let index = crate::bounded::from_slice(&body, crate::bounded::INDEX_BUDGET).map_err(|e| {
                    Error::new(ErrorKind::Protocol(format!(
                        "the referrers of {} are not an index: {e}",
                        self.name(repo, digest.as_str())
                    )))
                })?;
                Ok(Some(index["manifests"].as_array().cloned().unwrap_or_default()))
            }
            Err(e) if quirks::lacks_referrers_api(&e) => {
                self.transport.note_no_referrers_api();
                Ok(None)
            }
            Err(e) if quirks::no_referrers_here(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All tags of a repository, following `Link` pagination.
    pub async fn list_tags(&self, repo: &str) -> Result<TagList, Error> {
        self.list_tags_paged(repo, TAG_PAGE).await
    }

    /// All tags, asking for `page` tags per request. The registry's pages
    /// are untrusted: the next page must stay on the registry's origin and
    /// on this repository's tag list, a page asked for twice is a loop, the
    /// number of pages and tags is capped while each page is parsed, and a
    /// name that is not a valid tag name is skipped (counted, reported
    /// escaped in the log and the list, never kept).
    pub async fn list_tags_paged(&self, repo: &str, page: usize) -> Result<TagList, Error> {
        let paging = |detail: String| {
            Error::new(ErrorKind::Pagination {
                registry: self.registry().to_string(),
                detail: format!("{repo}: {detail}"),
            })
        };
        let list_path = format!("/v2/{repo}/tags/list");
        let mut tags = TagList::default();
        let mut seen = std::collections::HashSet::new();
        let mut target = format!("{list_path}?n={page}");
        for _ in 0..MAX_TAG_PAGES {
            if !seen.insert(target.clone()) {
                return Err(paging(format!(
                    "the page {} was named twice (a pagination loop)",
                    crate::error::untrusted_text(&crate::error::redact_url(&target), 200)
                )));
            }
            let req = Request::new(Method::GET, target.clone(), vec![Scope::pull(repo)]);
            let first = tags.tags.is_empty() && seen.len() == 1;
            let (headers, body) = match self.fetch(&req, MAX_TAG_PAGE_BYTES).await {
                Ok(v) => v,
                Err(e) if first && target != list_path && quirks::page_size_refused(&e) => {
                    log::info(&format!(
                        "{}/{repo}: the tag list refused a page size; asking for it whole",
                        self.registry()
                    ));
                    target = list_path.clone();
                    continue;
                }
                Err(e) if quirks::not_there(&e) => {
                    return Err(Error::new(ErrorKind::NotFound {
                        reference: format!("{}/{repo}", self.registry()),
                        detail: Some("no such repository".into()),
                    }))
                }
                Err(e) => return Err(e),
            };
            self.add_tag_page(repo, &body, &mut tags)
                .map_err(|e| e.unwrap_or_else(|| paging(format!("more than {MAX_TAGS} tags"))))?;
            drop(body);
            match headers.get(LINK).and_then(|v| v.to_str().ok()).and_then(next_link) {
                Some(next) => {
                    // Relative to the registry; the transport refuses
                    // another origin, and a page elsewhere on this one is
                    // no page of this list.
                    let path = Url::parse("http://x/")
                        .and_then(|b| b.join(&next))
                        .map(|u| u.path().to_string())
                        .unwrap_or_default();
                    if path != list_path {
                        return Err(paging(format!(
                            "the next page {} is not a page of this tag list",
                            crate::error::untrusted_text(&crate::error::redact_url(&next), 200)
                        )));
                    }
                    target = next;
                }
                None => {
                    if tags.skipped_total > tags.skipped.len() {
                        log::info(&format!(
                            "{}/{repo}: skipped {} listed names in all that are not valid tag names",
                            self.registry(),
                            tags.skipped_total
                        ));
                    }
                    return Ok(tags);
                }
            }
        }
        Err(paging(format!("more than {MAX_TAG_PAGES} pages")))
    }

    /// Adds one page of a tag list to `tags`, bounded, logging each name it
    /// skips. `Err(None)`: more than [`MAX_TAGS`] tags.
    fn add_tag_page(&self, repo: &str, body: &[u8], tags: &mut TagList) -> Result<(), Option<Error>> {
        let reported = tags.skipped.len();
        match listing::add_page(body, tags, MAX_TAGS) {
            Ok(()) => {}
            Err(PageError::TooMany) => return Err(None),
            Err(PageError::Malformed(e)) => {
                return Err(Some(Error::new(ErrorKind::Protocol(format!(
                    "tag list of {repo} is not a tag list: {}",
                    crate::error::untrusted_text(&e, 200)
                )))))
            }
        }
        for name in &tags.skipped[reported..] {
            log::info(&format!(
                "{}/{repo}: skipped the listed tag \"{name}\": not a valid tag name",
                self.registry()
            ));
        }
        Ok(())
    }

    /// Opens an upload session. Sent once: callers run it inside their own
    /// retried unit, with the upload that follows.
    async fn start_upload(&self, repo: &str) -> Result<String, Error> {
        let req = Request::new(Method::POST, format!("/v2/{repo}/blobs/uploads/"), vec![Scope::push(repo)]).header(CONTENT_LENGTH, "0");
        let resp = self.transport.send_once(&req, None).await?;
        resp.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::new(ErrorKind::Protocol(format!(
                    "{} opened an upload without a Location",
                    self.registry()
                )))
            })
    }

    /// Opens the body of a blob for streaming, from byte `offset` on: past
    /// the first byte a `Range` request, which a registry may answer with
    /// the rest (206) or, lacking range support, with the whole blob (200).
    /// Sent once: the copy that reads it is the retried unit.
    pub(crate) async fn open_blob_from(&self, repo: &str, digest: &str, offset: u64) -> Result<reqwest::Response, Error> {
        let mut req = Request::new(Method::GET, format!("/v2/{repo}/blobs/{digest}"), vec![Scope::pull(repo)]).bulk();
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        match self.transport.send_once(&req, None).await {
            Err(e) if quirks::not_there(&e) => Err(Error::new(ErrorKind::NotFound {
                reference: format!("blob {digest} in {}/{repo}", self.registry()),
                detail: None,
            })),
            other => other,
        }
    }

    /// Streams a blob from `src` into this registry, verifying size and
    /// digest on the way; nothing is held in memory or on disk beyond one
    /// chunk. A download that breaks continues where it stopped
    /// ([`crate::resume`]). Returns the bytes moved.
    pub async fn copy_blob_from(&self, repo: &str, src: &RegistryClient, src_repo: &str, desc: &Descriptor) -> Result<u64, Error> {
        let label = format!("blob {} from {}/{src_repo}", desc.digest, src.registry());
        self.upload_from(repo, desc, label, |offset| {
            crate::resume::download(src.clone(), src_repo, &desc.digest, desc.size, offset)
        })
        .await
    }

    /// Uploads a blob from a local file (an OCI image layout's blob),
    /// verifying it as it streams.
    pub async fn upload_file(&self, repo: &str, desc: &Descriptor, path: &std::path::Path) -> Result<u64, Error> {
        let label = format!("blob {} from {}", desc.digest, path.display());
        self.upload_from(repo, desc, label, |offset| file_stream(path, offset)).await
    }

    /// Uploads one blob whose bytes from a given offset `open` streams
    /// (called again for every attempt). The streamed copy is retried as a
    /// unit: a fresh upload session each time, except that a chunked upload
    /// continues its session where the registry still holds every chunk it
    /// acknowledged ([`RegistryClient::resumable`]). The bytes an attempt
    /// had sent past where the next one starts count as resent.
    async fn upload_from<F, Fut, S, E>(&self, repo: &str, desc: &Descriptor, label: String, open: F) -> Result<u64, Error>
    where
        F: Fn(u64) -> Fut,
        Fut: std::future::Future<Output = Result<S, Error>>,
        S: futures_util::Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        use std::sync::atomic::Ordering::Relaxed;
        let digest = Digest::parse(&desc.digest)?;
        let what = format!("upload {label} to {}/{repo}", self.registry());
        let fallback = std::sync::atomic::AtomicBool::new(false);
        let reached = std::sync::atomic::AtomicU64::new(0);
        let checkpoint = std::sync::Mutex::new(None);
        let (what, label, digest, fallback, open, reached, checkpoint) = (&what, &label, &digest, &fallback, &open, &reached, &checkpoint);
        let limits = self.transport.limits();
        self.transport
            .retrying(what, &self.stats, || async move {
                loop {
                    let mode = if fallback.load(Relaxed) {
                        UploadMode::Chunked(DEFAULT_CHUNK_SIZE)
                    } else {
                        self.upload
                    };
                    let earlier = checkpoint.lock().expect("checkpoint lock").take();
                    let resume = match mode {
                        UploadMode::Chunked(_) => self.resumable(repo, what, desc.size, earlier).await,
                        UploadMode::Monolithic => None,
                    };
                    let (hashed, location) = resume.map_or((crate::digest::Verifier::default(), None), |c| (c.hashed, Some(c.location)));
                    let offset = hashed.len();
                    self.stats.resent(reached.swap(0, Relaxed).saturating_sub(offset));
                    let source = limits.answer(what, open(offset)).await?;
                    let progress = std::sync::Arc::new(match mode {
                        UploadMode::Monolithic => Progress::of(desc.size),
                        UploadMode::Chunked(_) => Progress::sending(desc.size),
                    });
                    progress.start_at(offset);
                    let (stream, outcome) =
                        verify::verifying_from(source, hashed.clone(), digest.clone(), desc.size, label.clone(), progress.clone());
                    // The whole session (open, body, commit) must keep
                    // moving; see transport::limits.
                    let result = limits
                        .transfer(what, &progress, async {
                            let location = match location {
                                Some(l) => l,
                                None => self.start_upload(repo).await?,
                            };
                            match mode {
                                UploadMode::Monolithic => self.put_whole(repo, &location, digest, desc.size, stream).await,
                                UploadMode::Chunked(size) => {
                                    let chunks = Chunks {
                                        size,
                                        progress: &progress,
                                        hashed,
                                        checkpoint,
                                    };
                                    self.put_chunks(repo, location, digest, stream, chunks).await
                                }
                            }
                        })
                        .await;
                    reached.store(progress.bytes(), Relaxed);
                    if let Some(e) = outcome.lock().expect("outcome lock").take() {
                        return Err(e);
                    }
                    match result {
                        Err(e) if quirks::body_too_large(&e) && mode == UploadMode::Monolithic => {
                            log::info(&format!("{what}: the registry refused a whole upload (413); uploading in chunks"));
                            fallback.store(true, Relaxed);
                        }
                        other => return other.map(|()| desc.size),
                    }
                }
            })
            .await
    }

    /// Whether a chunked upload that failed can go on: asks the registry
    /// where its session stands (`GET` on the upload's location, answered
    /// with `Range: 0-<last>`) and continues only when that is exactly the
    /// bytes it acknowledged, whose digest state `earlier` kept. Anything
    /// else (the session gone, as distribution drops one whose chunk broke
    /// midway, or another offset) starts a new upload.
    async fn resumable(&self, repo: &str, what: &str, size: u64, earlier: Option<Checkpoint>) -> Option<Checkpoint> {
        let cp = earlier?;
        let req = Request::new(Method::GET, cp.location.clone(), vec![Scope::push(repo)]);
        let answer = self.transport.limits().answer(what, self.transport.send_once(&req, None)).await;
        let held = match &answer {
            Ok(resp) => resp
                .headers()
                .get(RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.strip_prefix("0-"))
                .and_then(|n| n.parse::<u64>().ok())
                .map(|last| last + 1),
            Err(_) => None,
        };
        let acknowledged = cp.hashed.len();
        if held == Some(acknowledged) {
            log::info(&format!(
                "{what}: resuming the upload at byte {acknowledged} of {size}, where the registry holds every acknowledged chunk"
            ));
            return Some(cp);
        }
        let why = match answer {
            Err(e) => format!("the registry no longer has it ({e})"),
            Ok(_) => format!(
                "the registry holds {} bytes of it, not the {acknowledged} it acknowledged",
                held.map_or("unknown".into(), |h| h.to_string())
            ),
        };
        log::info(&format!("{what}: starting a new upload: {why}"));
        None
    }

    async fn put_whole(
        &self,
        repo: &str,
        location: &str,
        digest: &Digest,
        size: u64,
        stream: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), Error> {
        let req = Request::new(Method::PUT, with_digest(location, digest), vec![Scope::push(repo)])
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size.to_string())
            .bulk();
        self.transport
            .send_once(&req, Some(reqwest::Body::wrap_stream(stream)))
            .await
            .map(|_| ())
    }

    /// Sends a blob in chunks of `chunks.size` from the upload at
    /// `location` (which holds `chunks.hashed.len()` bytes already), keeping
    /// a [`Checkpoint`] after every chunk the registry acknowledges, then
    /// closes the upload.
    async fn put_chunks(
        &self,
        repo: &str,
        mut location: String,
        digest: &Digest,
        stream: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        chunks: Chunks<'_>,
    ) -> Result<(), Error> {
        let Chunks {
            size: chunk_size,
            progress,
            mut hashed,
            checkpoint,
        } = chunks;
        let mut stream = std::pin::pin!(stream);
        let mut offset = hashed.len();
        let mut buf = BytesMut::with_capacity(chunk_size);
        let mut ended = false;
        while !ended {
            while buf.len() < chunk_size {
                match stream.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(e)) => return Err(Error::new(ErrorKind::Protocol(e.to_string()))),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            if buf.is_empty() {
                break;
            }
            let chunk = buf.split().freeze();
            let end = offset + chunk.len() as u64 - 1;
            let req = Request::new(Method::PATCH, location.clone(), vec![Scope::push(repo)])
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(HeaderName::from_static("content-range"), format!("{offset}-{end}"))
                .header(CONTENT_LENGTH, chunk.len().to_string())
                .bulk();
            hashed.update(&chunk);
            // Sent in slices that count as progress, so a chunk crossing a
            // slow link is not taken for a stall.
            let slices = counted_slices(chunk, progress.clone());
            let resp = self.transport.send_once(&req, Some(reqwest::Body::wrap_stream(slices))).await?;
            offset = end + 1;
            if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                location = loc.to_string();
            }
            *checkpoint.lock().expect("checkpoint lock") = Some(Checkpoint {
                location: location.clone(),
                hashed: hashed.clone(),
            });
        }
        progress.finish();
        let req = Request::new(Method::PUT, with_digest(&location, digest), vec![Scope::push(repo)]).header(CONTENT_LENGTH, "0");
        self.transport.send_once(&req, None).await.map(|_| ())
    }
}

/// Where a chunked upload stands: the registry acknowledged the bytes
/// `hashed` has hashed (its length) at `location`, the upload's latest
/// location.
struct Checkpoint {
    location: String,
    hashed: crate::digest::Verifier,
}

/// How [`RegistryClient::put_chunks`] sends: the chunk size, the transfer's
/// progress, the digest state of the bytes the upload already holds, and
/// where to keep the latest [`Checkpoint`].
struct Chunks<'a> {
    size: usize,
    progress: &'a std::sync::Arc<Progress>,
    hashed: crate::digest::Verifier,
    checkpoint: &'a std::sync::Mutex<Option<Checkpoint>>,
}

/// A chunk as a stream of slices, each counted in `progress` as it is sent.
fn counted_slices(
    chunk: Bytes,
    progress: std::sync::Arc<Progress>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    /// Slice size: small enough that progress shows on a slow link.
    const SLICE: usize = 64 * 1024;
    futures_util::stream::unfold(0usize, move |at| {
        let chunk = chunk.clone();
        let progress = progress.clone();
        async move {
            if at >= chunk.len() {
                return None;
            }
            let end = (at + SLICE).min(chunk.len());
            progress.sent((end - at) as u64);
            Some((Ok(chunk.slice(at..end)), end))
        }
    })
}

/// Reads a file from byte `offset` on as a stream of chunks.
async fn file_stream(
    path: &std::path::Path,
    offset: u64,
) -> Result<impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static, Error> {
    use std::io::Seek;
    use tokio::io::AsyncReadExt;
    /// Read size: large enough to keep syscalls few, small next to the memory budget.
    const READ_CHUNK: usize = 256 * 1024;
    // A regular file only: no symlink, FIFO or device (see layout.rs).
    let mut file = crate::layout::open_regular(path)?;
    if offset > 0 {
        file.seek(std::io::SeekFrom::Start(offset))
            .map_err(|e| Error::io(path.display(), e))?;
    }
    let file = tokio::fs::File::from_std(file);
    Ok(Box::pin(futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = BytesMut::zeroed(READ_CHUNK);
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf.freeze()), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })))
}

/// Adds `digest=` to an upload location, which may already carry a query.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", digest.as_str().replace(':', "%3A"))
}

/// The target of `Link: </v2/...>; rel="next"`.
fn next_link(value: &str) -> Option<String> {
    value
        .split(',')
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            Some(part[start..end].to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_locations() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        let d = Digest::of(b"");
        assert!(with_digest("/v2/a/blobs/uploads/u?_state=x", &d).contains("?_state=x&digest=sha256%3A"));
        assert!(with_digest("/v2/a/blobs/uploads/u", &d).contains("u?digest=sha256%3A"));
    }
}
