//! HTTP transport for one registry: TLS, authentication, redirects, and the
//! one retry loop of the engine. Protocol code describes a request and hands
//! it here; it never loops on errors itself.

pub(crate) mod auth;
pub mod limits;
pub mod retry;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderName, AUTHORIZATION, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::credentials::Credential;
use crate::error::{redact_url, Error, ErrorKind};
use crate::log;
use crate::reference::Reference;
use crate::stats::Stats;
use auth::AuthState;
pub use limits::{HostGates, Limits, SharedGates};
pub use retry::RetryPolicy;

/// Give up connecting after this long; a registry that does not accept a
/// TCP connection in 30 s is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Give up when a small answer stalls (no bytes at all) for this long; its
/// answer deadline ([`limits`]) decides first. Blob bodies have no such
/// timer: their minimum progress bounds them, however long they take.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Redirects followed per request (object storage uses one).
const MAX_REDIRECTS: usize = 5;
/// Error bodies read at most this far.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// How to talk to one registry.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Speak plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Verify the server certificate (on unless explicitly turned off).
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) trusted besides the system store and the
    /// registry's directories under [`tls::CERT_DIRS`].
    pub ca_cert: Option<PathBuf>,
    pub credential: Option<Credential>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            plain_http: false,
            tls_verify: true,
            ca_cert: None,
            credential: None,
        }
    }
}

/// A repository and the actions a request needs on it (`pull`, `pull,push`).
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub repository: String,
    pub actions: &'static str,
}

impl Scope {
    pub(crate) fn pull(repository: &str) -> Self {
        Self {
            repository: repository.to_string(),
            actions: "pull",
        }
    }
    pub(crate) fn push(repository: &str) -> Self {
        Self {
            repository: repository.to_string(),
            actions: "pull,push",
        }
    }
    fn token_scope(&self) -> String {
        format!("repository:{}:{}", self.repository, self.actions)
    }
}

/// A request described by protocol code.
pub(crate) struct Request {
    pub method: Method,
    /// A path below the registry (`/v2/...`) or an absolute URL on the
    /// registry's own origin (upload locations may be absolute).
    pub target: String,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<Bytes>,
    pub scope: Vec<Scope>,
    /// Whom the request is for, which decides its credentials and where it
    /// may be redirected.
    pub kind: RequestKind,
    /// A blob body (a blob GET, an upload's PUT or PATCH): sent on the
    /// transport's HTTP/1.1 connections (see [`Transport::bulk`]).
    pub bulk: bool,
}

/// Whom a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// The registry's API (/v2/...): the registry's credentials, answered
    /// challenges, and only on the registry's origin (a redirect elsewhere,
    /// to blob storage say, is followed without them).
    Registry,
    /// A registry's web API (Quay, Docker Hub) that carries its own
    /// Authorization header: no registry challenge handling for it, and
    /// that header goes only to the API's own origin.
    WebApi,
    /// A non-registry API (Zuul's) whose answer must come from the
    /// transport's own origin: no Authorization of any kind, no registry
    /// challenge handling, and a redirect to another origin is refused
    /// rather than followed.
    Pinned,
}

impl Request {
    /// Whether the registry's own credentials and challenges apply.
    fn registry_auth(&self) -> bool {
        self.kind == RequestKind::Registry
    }

    pub(crate) fn new(method: Method, target: impl Into<String>, scope: Vec<Scope>) -> Self {
        Self {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: None,
            scope,
            kind: RequestKind::Registry,
            bulk: false,
        }
    }

    /// Marks a request that carries a blob body (see [`Request::bulk`]).
    pub(crate) fn bulk(mut self) -> Self {
        self.bulk = true;
        self
    }

    /// A request pinned to the transport's origin (see [`RequestKind::Pinned`]).
    pub(crate) fn pinned(method: Method, url: impl Into<String>) -> Self {
        Self {
            kind: RequestKind::Pinned,
            ..Self::new(method, url, Vec::new())
        }
    }

    /// A web API request (see [`RequestKind::WebApi`]).
    pub(crate) fn web(method: Method, url: impl Into<String>) -> Self {
        Self {
            kind: RequestKind::WebApi,
            ..Self::new(method, url, Vec::new())
        }
    }
    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub(crate) fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

/// What a transport is given besides its registry's configuration.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    pub retry: RetryPolicy,
    pub limits: Limits,
    /// Backoff per host, shared by every transport of an engine.
    pub gates: SharedGates,
}

/// The HTTP side of one registry.
pub struct Transport {
    registry: String,
    base: Url,
    client: reqwest::Client,
    /// The client for blob bodies: HTTP/1.1 only, no read timeout (see
    /// [`tls::build_clients`]). Over TLS, `client` speaks
    /// HTTP/2 where the registry offers it (every small request of a call
    /// on one connection); blob bodies go over HTTP/1.1 connections of
    /// their own: distribution's Go server spent about a quarter less
    /// processor time serving them than as HTTP/2 streams (the client some
    /// more; docs/architecture.md).
    bulk: reqwest::Client,
    credential: Option<Credential>,
    retry: RetryPolicy,
    limits: Limits,
    gates: SharedGates,
    auth: AuthState,
    /// Set once the registry has answered that it has no referrers API, so
    /// that the call asks it once rather than once per image.
    no_referrers_api: AtomicBool,
    /// Whether the registry has answered a first request, and the lock the
    /// first request holds until it has (see [`Transport::first_contact`]).
    contacted: AtomicBool,
    first: tokio::sync::Mutex<()>,
    /// Whether requests wait for the first answer: over TLS (to share its
    /// connection) or with credentials (to share its challenge).
    prime: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transport({})", self.base)
    }
}

impl Transport {
    /// A transport for `registry` (a normalised registry name).
    pub fn new(registry: &str, config: &RegistryConfig, options: &TransportOptions) -> Result<Self, Error> {
        let scheme = if config.plain_http { "http" } else { "https" };
        let host = Reference::api_host(registry);
        let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| {
            Error::new(ErrorKind::InvalidReference {
                input: registry.to_string(),
                reason: if e == url::ParseError::InvalidPort {
                    "invalid port"
                } else {
                    "invalid registry host"
                },
            })
        })?;
        let (client, bulk) = tls::build_clients(
            registry,
            host,
            config.ca_cert.as_deref(),
            config.tls_verify,
            CONNECT_TIMEOUT,
            READ_TIMEOUT,
        )?;
        Ok(Self {
            registry: registry.to_string(),
            base,
            client,
            bulk,
            credential: config.credential.clone(),
            retry: options.retry,
            limits: options.limits,
            gates: options.gates.clone(),
            auth: AuthState::default(),
            no_referrers_api: Default::default(),
            contacted: AtomicBool::new(false),
            first: tokio::sync::Mutex::new(()),
            prime: !config.plain_http || config.credential.is_some(),
        })
    }

    /// Whether the registry has answered that it lacks the referrers API.
    pub(crate) fn lacks_referrers_api(&self) -> bool {
        self.no_referrers_api.load(Ordering::Relaxed)
    }

    /// Remembers, for the rest of the call, that the registry lacks the
    /// referrers API.
    pub(crate) fn note_no_referrers_api(&self) {
        self.no_referrers_api.store(true, Ordering::Relaxed);
    }

    /// The registry name this transport serves.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `scheme://host:port` of the registry, the one origin its credentials go to.
    pub(crate) fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }

    fn host_key(&self) -> &str {
        Reference::api_host(&self.registry)
    }

    /// The URL of a request. Registry requests must stay on the registry's
    /// own origin: an absolute URL elsewhere (a next page, an upload
    /// location) is refused rather than followed.
    pub(crate) fn url_for(&self, req: &Request) -> Result<Url, Error> {
        let target = &req.target;
        let absolute = target.starts_with("http://") || target.starts_with("https://");
        let joined = if absolute { Url::parse(target) } else { self.base.join(target) };
        let url = joined.map_err(|e| {
            Error::new(ErrorKind::Protocol(format!(
                "bad URL '{}' from {}: {e}",
                crate::error::untrusted_text(&redact_url(target), 200),
                self.registry
            )))
        })?;
        if req.kind != RequestKind::WebApi && url.origin() != self.base.origin() {
            return Err(Error::new(ErrorKind::ForeignUrl {
                registry: self.registry.clone(),
                url: crate::error::untrusted_text(&redact_url(url.as_str()), 200),
                own: self.origin(),
            }));
        }
        Ok(url)
    }

    /// Runs `op` until it succeeds, fails for good, or runs out of attempts.
    /// This is the engine's only retry loop: a temporary error (see
    /// [`Error::is_temporary`]) is retried after the backoff delay or the
    /// registry's `Retry-After`, and requests to the same host that start
    /// meanwhile wait as well. A `Retry-After` longer than the policy's
    /// longest wait fails at once.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, stats: &Stats, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let host = self.host_key();
        let mut retries = 0u32;
        loop {
            self.gates.wait(host).await;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_temporary() && retries + 1 < self.retry.max_attempts => {
                    let delay = match e.retry_after() {
                        Some(asked) if asked > self.retry.max_retry_after => {
                            return Err(Error::new(ErrorKind::WaitTooLong {
                                url: what.to_string(),
                                asked_secs: asked.as_secs(),
                                max_secs: self.retry.max_retry_after.as_secs(),
                            })
                            .with_retries(retries));
                        }
                        Some(asked) => asked,
                        None => self.retry.backoff(retries),
                    };
                    retries += 1;
                    stats.retried();
                    self.gates.defer(host, delay);
                    log::info(&format!(
                        "{what}: retry {retries}/{} in {:.1}s after: {e}",
                        self.retry.max_attempts - 1,
                        delay.as_secs_f64()
                    ));
                }
                Err(e) => return Err(e.with_retries(retries)),
            }
        }
    }

    /// Sends a request whose answer is small (everything but blob bodies),
    /// with retries and the answer deadline; a non-2xx answer is an error.
    pub(crate) async fn send(&self, req: &Request, stats: &Stats) -> Result<reqwest::Response, Error> {
        let what = format!("{} {}", req.method, redact_url(&req.target));
        self.retrying(&what, stats, || self.limits.answer(&what, self.send_once(req, None)))
            .await
    }

    /// The client a request goes by (see [`Transport::bulk`]).
    fn client_for(&self, req: &Request) -> &reqwest::Client {
        if req.bulk {
            &self.bulk
        } else {
            &self.client
        }
    }

    /// Sends a request once, authenticating as the registry asks and
    /// following redirects for GET and HEAD. `stream` replaces the body; a
    /// streamed body cannot be re-sent, so the caller must have authenticated
    /// with the same scope before (any earlier request does that). Bounded
    /// by the caller: an answer deadline or a transfer's progress rule.
    pub(crate) async fn send_once(&self, req: &Request, stream: Option<reqwest::Body>) -> Result<reqwest::Response, Error> {
        let url = self.url_for(req)?;
        // A streamed body is never a first request (see above), and must
        // not hold the others back while it is sent.
        let mut first = if stream.is_some() { None } else { self.first_contact(req).await };
        let mut stream = stream;
        let streamed = stream.is_some();
        let mut extra_scope: Option<String> = None;
        let mut retried_auth = false;
        loop {
            let authorization = if !req.registry_auth() {
                None
            } else {
                self.authorization(&req.scope, extra_scope.as_deref()).await?
            };
            let mut rb = self.client_for(req).request(req.method.clone(), url.clone());
            for (name, value) in &req.headers {
                rb = rb.header(name, value);
            }
            if let Some(a) = &authorization {
                rb = rb.header(AUTHORIZATION, a);
            }
            if let Some(body) = stream.take() {
                rb = rb.body(body);
            } else if let Some(body) = &req.body {
                rb = rb.body(body.clone());
            }
            let resp = rb.send().await.map_err(|e| self.transport_error(&url, e));
            if resp.is_ok() && first.take().is_some() {
                self.contacted.store(true, Ordering::SeqCst);
            }
            let resp = resp?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && req.registry_auth() {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                if let (Some(challenge), false, false) = (challenge, retried_auth, streamed) {
                    // A scope the registry names (`delete`, say) is asked for
                    // beside the request's own.
                    let named = auth::challenge_scope(&challenge).filter(|s| !req.scope.iter().any(|r| r.token_scope() == *s));
                    self.learn(challenge);
                    retried_auth = true;
                    if let (Some(used), None) = (&authorization, &named) {
                        self.forget_token(&req.scope, extra_scope.as_deref(), used).await;
                    }
                    extra_scope = named;
                    continue;
                }
                return Err(self.unauthorized(resp).await);
            }
            if status.is_redirection() && (req.method == Method::GET || req.method == Method::HEAD) {
                return self.follow_redirects(req, &url, resp, extra_scope.as_deref()).await;
            }
            if !status.is_success() {
                return Err(self.status_error(&req.method, &url, resp).await);
            }
            return Ok(resp);
        }
    }

    /// The first request of a call to the registry goes alone: requests
    /// that start before it is answered wait for that answer, so that they
    /// find its connection (HTTP/2 over TLS carries them all on it) and
    /// its challenge (one `401` per registry and call, not one per image),
    /// instead of each opening a connection and meeting a challenge of its
    /// own, which at WAN latency costs connections, TLS handshakes and
    /// round trips. Only where there is something to share: over TLS or
    /// with credentials (an anonymous plain-HTTP registry has neither).
    /// The guard returned is held until the answer comes; a first request
    /// that fails lets the next one try. Bounded by the first request's own
    /// bound (its answer deadline or progress rule).
    async fn first_contact(&self, req: &Request) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if !self.prime || !req.registry_auth() || self.contacted.load(Ordering::SeqCst) {
            return None;
        }
        let guard = self.first.lock().await;
        (!self.contacted.load(Ordering::SeqCst)).then_some(guard)
    }

    /// Follows a redirect chain. Credentials go only to the origin they
    /// belong to: the registry's Authorization only to the registry's
    /// origin, a web API's Authorization header only to the API's origin.
    async fn follow_redirects(
        &self,
        req: &Request,
        from: &Url,
        mut resp: reqwest::Response,
        extra: Option<&str>,
    ) -> Result<reqwest::Response, Error> {
        let mut url = from.clone();
        for _ in 0..MAX_REDIRECTS {
            let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Err(self.status_error(&req.method, &url, resp).await);
            };
            url = url
                .join(location)
                .map_err(|e| Error::new(ErrorKind::Protocol(format!("bad redirect from {}: {e}", redact_url(url.as_str())))))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Error::new(ErrorKind::Protocol(format!(
                    "{} redirected to a {} URL",
                    self.registry,
                    crate::error::untrusted_text(url.scheme(), 20)
                ))));
            }
            if req.kind == RequestKind::Pinned && url.origin() != self.base.origin() {
                return Err(Error::new(ErrorKind::Redirected {
                    origin: self.origin(),
                    url: crate::error::untrusted_text(&redact_url(url.as_str()), 200),
                }));
            }
            let same_origin = if req.kind == RequestKind::WebApi {
                url.origin() == from.origin()
            } else {
                url.origin() == self.base.origin()
            };
            let mut rb = self.client_for(req).request(req.method.clone(), url.clone());
            for (name, value) in &req.headers {
                if *name == AUTHORIZATION && !same_origin {
                    continue;
                }
                rb = rb.header(name, value);
            }
            if same_origin && req.registry_auth() {
                if let Some(a) = self.authorization(&req.scope, extra).await? {
                    rb = rb.header(AUTHORIZATION, a);
                }
            }
            resp = rb.send().await.map_err(|e| self.transport_error(&url, e))?;
            if resp.status().is_redirection() {
                continue;
            }
            if !resp.status().is_success() {
                return Err(self.status_error(&req.method, &url, resp).await);
            }
            return Ok(resp);
        }
        Err(Error::new(ErrorKind::Protocol(format!(
            "too many redirects from {}",
            redact_url(from.as_str())
        ))))
    }

    async fn unauthorized(&self, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        let body = read_capped(resp).await;
        let who = match &self.credential {
            Some(c) => format!("the credentials of user '{}' were refused", c.username),
            None => "anonymous access was refused and no credentials are configured for it".to_string(),
        };
        let e = Error::registry("", "", status, &body, None);
        let detail = match e.kind() {
            ErrorKind::Registry { errors, .. } if !errors.is_empty() => {
                format!(
                    "{who} ({})",
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
            _ => format!("{who} (HTTP {status})"),
        };
        Error::new(ErrorKind::Unauthorized {
            registry: self.registry.clone(),
            detail,
        })
    }

    async fn status_error(&self, method: &Method, url: &Url, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry::parse_retry_after);
        let body = if *method == Method::HEAD {
            String::new()
        } else {
            read_capped(resp).await
        };
        Error::registry(method_name(method), url.as_str(), status, &body, retry_after)
    }

    pub(crate) fn transport_error(&self, url: &Url, e: reqwest::Error) -> Error {
        let url = redact_url(url.as_str());
        if e.is_timeout() {
            return Error::new(ErrorKind::Timeout {
                url,
                secs: READ_TIMEOUT.as_secs(),
            });
        }
        let detail = error_chain(&e);
        // TLS trouble does not go away by trying again: say what to change.
        let hint = if detail.contains("certificate") {
            Some(format!(
                "trust the registry's CA with ca_cert for {}, or turn tls_verify off",
                self.registry
            ))
        } else if detail.contains("InvalidContentType") || detail.contains("corrupt message") {
            Some(format!(
                "{} does not speak TLS; set plain_http for it if that is intended",
                self.registry
            ))
        } else {
            None
        };
        match hint {
            Some(hint) => Error::new(ErrorKind::Tls {
                registry: self.registry.clone(),
                detail: format!("{url}: {detail} ({hint})"),
            }),
            None => Error::new(ErrorKind::Connection { url, detail }),
        }
    }
}

/// Reads a whole body of at most `limit` bytes: `Err(None)` when it is
/// larger, `Err(Some(e))` when the connection fails.
pub(crate) async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Bytes, Option<reqwest::Error>> {
    use futures_util::StreamExt;
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(None);
    }
    let mut body = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(Some)?);
        if body.len() > limit {
            return Err(None);
        }
    }
    Ok(body.freeze())
}

/// A reqwest error with its causes, which carry the useful part ("connection
/// refused", "invalid peer certificate: UnknownIssuer").
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    // reqwest's own text repeats the URL; ours is already in the message.
    parts
        .into_iter()
        .map(|p| match p.find(" for url (") {
            Some(i) => p[..i].to_string(),
            None => p,
        })
        .collect::<Vec<_>>()
        .join(": ")
}

fn scope_key(scope: &[Scope]) -> String {
    let mut parts: Vec<String> = scope.iter().map(Scope::token_scope).collect();
    parts.sort();
    parts.join(" ")
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

async fn read_capped(resp: reqwest::Response) -> String {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        out.extend_from_slice(&chunk);
        if out.len() >= MAX_ERROR_BODY {
            out.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
