//! A fault-injecting HTTP proxy to put in front of a real registry. It
//! answers a share of requests itself with 500/502/503 or 429 with
//! `Retry-After`, cuts a share of response bodies in the middle, and can
//! flip one byte of every blob it serves. For slow links it paces blob
//! bodies in both directions to a byte rate, cuts the first blob downloads
//! at half their bytes, and can ignore `Range` as a server without range
//! support would.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Share of requests answered with 500, 502 or 503.
    pub error_rate: f64,
    /// Share answered with 429 and `Retry-After`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// Share of GET responses whose body is cut after half its length.
    pub cut_rate: f64,
    /// Flip one byte in every blob body served.
    pub flip_blobs: bool,
    /// Answer blob GETs with a redirect to a second listener (another
    /// origin, like object storage) that serves the bytes and records
    /// whether the client sent it an Authorization header.
    pub redirect_blobs: bool,
    /// Answer the first this-many manifest PUTs with 429 and `Retry-After`.
    pub limit_manifest_puts: u64,
    /// Page tag lists as the distribution spec describes (`n`, `last`,
    /// `Link: <...>; rel="next"`), for upstreams that always answer whole.
    pub paginate_tags: bool,
    /// Delay every request by this long (a network round trip, for benchmarks).
    pub delay_ms: u64,
    /// Answer this manifest PUT (counted from 0) with 403 `DENIED`, a
    /// failure that is not retried.
    pub deny_manifest_put: Option<u64>,
    /// Pace blob bodies, downloads and uploads alike, to this many bytes a
    /// second (0: as fast as they come), as a thin link would.
    pub blob_rate: u64,
    /// Cut this many blob downloads of at least 1 MiB (the first ones, full
    /// or ranged) after half of their bytes.
    pub cut_blob_gets: u64,
    /// Stop this many blob downloads of at least 1 MiB (the first ones,
    /// after those cut) after half of their bytes and send nothing more on
    /// them, holding the connection open: a stalled source.
    pub stall_blob_gets: u64,
    /// Forward blob downloads without their `Range` header, so the whole
    /// blob comes back with 200 (a server without range support).
    pub ignore_range: bool,
    /// Answer this upload `PATCH` of at least 1 MiB (counted from 0) with
    /// 503 without passing it on: the registry keeps the chunks before it.
    pub refuse_patch: Option<u64>,
    /// Pass this upload `PATCH` of at least 1 MiB (counted from 0) on with
    /// only the first half of its body, then break the connection, as a
    /// dropped link does.
    pub cut_patch: Option<u64>,
    pub seed: u64,
}

impl FaultConfig {
    /// Every kind of fault but byte flips, `rate` in all, in equal parts.
    pub fn mixed(rate: f64) -> Self {
        Self {
            error_rate: rate / 3.0,
            rate_limit_rate: rate / 3.0,
            retry_after_secs: 1,
            cut_rate: rate / 3.0,
            flip_blobs: false,
            redirect_blobs: false,
            limit_manifest_puts: 0,
            paginate_tags: false,
            delay_ms: 0,
            deny_manifest_put: None,
            blob_rate: 0,
            cut_blob_gets: 0,
            ignore_range: false,
            stall_blob_gets: 0,
            refuse_patch: None,
            cut_patch: None,
            seed: 7,
        }
    }
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub rate_limited: AtomicU64,
    pub cuts: AtomicU64,
    pub flips: AtomicU64,
    /// Requests the "storage" listener served, and how many of them carried
    /// an Authorization header (which must never happen).
    pub storage_requests: AtomicU64,
    pub storage_with_auth: AtomicU64,
    pub manifest_puts: AtomicU64,
    /// Body bytes the client sent (uploads) and received (downloads),
    /// through the main listener.
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    /// Blob downloads of at least 1 MiB seen, and the body bytes of every
    /// blob download.
    pub blob_gets: AtomicU64,
    pub blob_bytes_down: AtomicU64,
    /// Upload `PATCH`es of at least 1 MiB seen.
    pub patches: AtomicU64,
}

impl Counters {
    /// Requests and body bytes so far, as JSON (what `GET /_proxy/stats`
    /// answers, for benchmarks that report requests made and bytes moved).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests.load(Relaxed),
            "bytes_up": self.bytes_up.load(Relaxed),
            "bytes_down": self.bytes_down.load(Relaxed),
        })
    }
}

/// The proxy's own path: never a registry path (those start with /v2/),
/// never counted, delayed or faulted.
pub const STATS_PATH: &str = "/_proxy/stats";

struct State {
    upstream: String,
    upstream_authority: String,
    own_authority: String,
    client: reqwest::Client,
    config: FaultConfig,
    rng: Mutex<u64>,
    counters: Arc<Counters>,
    storage_authority: String,
    /// Upstream path and Authorization by redirect id.
    redirects: Mutex<std::collections::HashMap<String, (String, Option<hyper::header::HeaderValue>)>>,
}

pub struct FaultProxy {
    /// `127.0.0.1:<port>` of the proxy.
    pub host: String,
    pub counters: Arc<Counters>,
    _background: crate::server::Background,
}

impl FaultProxy {
    /// Starts a proxy for `upstream` (`http://127.0.0.1:<port>`).
    pub fn start(upstream: &str, config: FaultConfig) -> Self {
        Self::start_with_ca(upstream, None, config)
    }

    /// Starts a proxy in front of `reg` (over https, trusting its CA, when
    /// it serves TLS) injecting the faults that `faults` sets on a default
    /// (fault-free) configuration.
    pub fn before(reg: &crate::TestRegistry, faults: impl FnOnce(&mut FaultConfig)) -> Self {
        let mut config = FaultConfig::default();
        faults(&mut config);
        let scheme = if reg.ca_cert.is_some() { "https" } else { "http" };
        Self::start_with_ca(&format!("{scheme}://{}", reg.host), reg.ca_cert.as_deref(), config)
    }

    /// Starts a proxy for `upstream`, trusting `ca` (PEM) for an https upstream.
    pub fn start_with_ca(upstream: &str, ca: Option<&std::path::Path>, config: FaultConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let host = listener.local_addr().expect("addr").to_string();
        let storage = std::net::TcpListener::bind("127.0.0.1:0").expect("bind storage");
        storage.set_nonblocking(true).expect("nonblocking");
        let storage_authority = storage.local_addr().expect("addr").to_string();
        let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).expect("read CA");
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"));
        }
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            upstream_authority: upstream.split("://").nth(1).unwrap_or(upstream).trim_end_matches('/').to_string(),
            own_authority: host.clone(),
            client: client.build().expect("client"),
            storage_authority,
            redirects: Mutex::default(),
            rng: Mutex::new(config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            config,
            counters: counters.clone(),
        });
        // Listener 0 is the object storage blob GETs are redirected to.
        let background = crate::server::Background::accept(vec![storage, listener], move |index, stream| {
            if index == 0 {
                spawn_connection(stream, state.clone(), serve_storage);
            } else {
                spawn_connection(stream, state.clone(), handle);
            }
        });
        Self {
            host,
            counters,
            _background: background,
        }
    }

    pub fn faults(&self) -> u64 {
        self.counters.errors.load(Relaxed) + self.counters.rate_limited.load(Relaxed) + self.counters.cuts.load(Relaxed)
    }
}

fn roll(state: &State) -> f64 {
    let mut x = state.rng.lock().expect("rng");
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    (*x >> 11) as f64 / (1u64 << 53) as f64
}

fn full(status: u16, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())).map_err(|e| match e {}).boxed())
        .expect("response")
}

/// A 429 with the configured `Retry-After`, in the registry's error shape.
fn rate_limited(state: &State) -> Response<Body> {
    state.counters.rate_limited.fetch_add(1, Relaxed);
    let mut resp = full(
        429,
        "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected rate limit\"}]}",
    );
    resp.headers_mut()
        .insert("retry-after", state.config.retry_after_secs.to_string().parse().expect("header"));
    resp
}

/// Serves HTTP/1.1 on an accepted connection, in a task of its own, each
/// request answered by `answer` with the proxy's state.
fn spawn_connection<F, Fut>(stream: tokio::net::TcpStream, state: Arc<State>, answer: F)
where
    F: Fn(Arc<State>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| answer(state.clone(), req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .await;
    });
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.method() == hyper::Method::GET && req.uri().path() == STATS_PATH {
        let body = state.counters.to_json().to_string();
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
            .expect("response"));
    }
    let n = state.counters.requests.fetch_add(1, Relaxed);
    let c = &state.config;
    if c.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(c.delay_ms)).await;
    }
    let r = roll(&state);
    if r < c.error_rate {
        state.counters.errors.fetch_add(1, Relaxed);
        let (status, text) = [
            (500, "injected internal error"),
            (502, "injected bad gateway"),
            (503, "injected unavailable"),
        ][(n % 3) as usize];
        return Ok(full(status, text));
    }
    if r < c.error_rate + c.rate_limit_rate {
        return Ok(rate_limited(&state));
    }
    if c.redirect_blobs && req.method() == hyper::Method::GET && req.uri().path().contains("/blobs/sha256:") {
        let id = format!("r{n}");
        let path = req.uri().path().to_string();
        let auth = req.headers().get("authorization").cloned();
        state.redirects.lock().expect("redirects").insert(id.clone(), (path, auth));
        let mut resp = full(307, "");
        resp.headers_mut().insert(
            "location",
            format!("http://{}/storage/{id}", state.storage_authority).parse().expect("header"),
        );
        return Ok(resp);
    }
    if req.method() == hyper::Method::PUT && req.uri().path().contains("/manifests/") {
        let seen = state.counters.manifest_puts.fetch_add(1, Relaxed);
        if c.deny_manifest_put == Some(seen) {
            return Ok(full(403, "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"injected denial\"}]}"));
        }
        if seen < c.limit_manifest_puts {
            return Ok(rate_limited(&state));
        }
    }
    // The request body's byte after which it is cut (a cut PATCH).
    let mut body_cut_at = None;
    let length: u64 = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if req.method() == hyper::Method::PATCH && req.uri().path().contains("/blobs/uploads/") && length >= 1024 * 1024 {
        let seen = state.counters.patches.fetch_add(1, Relaxed);
        if c.refuse_patch == Some(seen) {
            state.counters.errors.fetch_add(1, Relaxed);
            return Ok(full(503, "injected unavailable"));
        }
        body_cut_at = (c.cut_patch == Some(seen)).then_some(length / 2);
    }
    if c.paginate_tags && req.method() == hyper::Method::GET && req.uri().path().ends_with("/tags/list") {
        return Ok(paginate(&state, &req).await);
    }
    let cut = r < c.error_rate + c.rate_limit_rate + c.cut_rate;
    Ok(forward(&state, req, cut, body_cut_at).await.unwrap_or_else(|e| {
        let _ = e;
        full(502, "proxy could not reach upstream")
    }))
}

/// One page of the upstream's (whole) tag list.
async fn paginate(state: &State, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut rb = state.client.get(format!("{}{path}", state.upstream));
    if let Some(a) = req.headers().get("authorization") {
        rb = rb.header("authorization", a);
    }
    let Ok(upstream) = rb.send().await else {
        return full(502, "proxy could not reach upstream");
    };
    let Some(body) = upstream
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return full(502, "upstream tag list is not JSON");
    };
    let mut tags = crate::registry::sorted_strings(&body["tags"]);
    if let Some(last) = query.get("last") {
        tags.retain(|t| t > last);
    }
    let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
    let more = tags.len() > n;
    tags.truncate(n);
    let page = serde_json::json!({"name": body["name"], "tags": tags});
    let mut resp = Response::builder().status(200).header("content-type", "application/json");
    if more {
        let last = tags.last().cloned().unwrap_or_default();
        resp = resp.header("link", format!("<{path}?n={n}&last={last}>; rel=\"next\""));
    }
    resp.body(Full::new(Bytes::from(page.to_string())).map_err(|e| match e {}).boxed())
        .expect("response")
}

/// The "object storage" side of a redirect: serves the blob it was sent for.
async fn serve_storage(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    state.counters.storage_requests.fetch_add(1, Relaxed);
    if req.headers().contains_key("authorization") {
        state.counters.storage_with_auth.fetch_add(1, Relaxed);
    }
    let id = req.uri().path().trim_start_matches("/storage/").to_string();
    let Some((path, auth)) = state.redirects.lock().expect("redirects").get(&id).cloned() else {
        return Ok(full(404, "unknown redirect"));
    };
    let mut rb = state.client.get(format!("{}{path}", state.upstream));
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    let Ok(upstream) = rb.send().await else {
        return Ok(full(502, "storage could not reach upstream"));
    };
    let status = upstream.status().as_u16();
    let stream = upstream.bytes_stream().map(|c| {
        c.map(Frame::data)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    });
    Ok(Response::builder()
        .status(status)
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("response"))
}

async fn forward(state: &State, req: Request<Incoming>, cut: bool, body_cut_at: Option<u64>) -> Result<Response<Body>, reqwest::Error> {
    let method = req.method().clone();
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let is_blob_get = method == hyper::Method::GET && path.contains("/blobs/sha256:");
    let is_upload = path.contains("/blobs/uploads/");
    let mut rb = state.client.request(method.clone(), format!("{}{path}", state.upstream));
    for (name, value) in req.headers() {
        if name == "host" || name == "connection" || (name == "range" && is_blob_get && state.config.ignore_range) {
            continue;
        }
        rb = rb.header(name, value);
    }
    let up = state.counters.clone();
    let mut passed = 0u64;
    let body_stream = req
        .into_body()
        .into_data_stream()
        .map(move |chunk| -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
            let chunk = chunk.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            if let Some(at) = body_cut_at {
                if passed + chunk.len() as u64 > at {
                    return Err("injected connection cut".into());
                }
            }
            passed += chunk.len() as u64;
            up.bytes_up.fetch_add(chunk.len() as u64, Relaxed);
            Ok(chunk)
        });
    if method != hyper::Method::GET && method != hyper::Method::HEAD {
        let rate = if is_upload { state.config.blob_rate } else { 0 };
        rb = rb.body(reqwest::Body::wrap_stream(paced(body_stream, rate)));
    }
    let upstream = rb.send().await?;
    let status = upstream.status().as_u16();
    let mut builder = Response::builder().status(status);
    let mut length = None;
    for (name, value) in upstream.headers() {
        if name == "connection" || name == "transfer-encoding" {
            continue;
        }
        if name == "content-length" {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        }
        // Keep the client talking to us: rewrite the upstream's own address.
        let v = match value.to_str() {
            Ok(s) if (name == "location" || name == "www-authenticate") && s.contains(&state.upstream_authority) => {
                s.replace(&state.upstream_authority, &state.own_authority).parse().expect("header")
            }
            _ => value.clone(),
        };
        builder = builder.header(name, v);
    }
    let flip = state.config.flip_blobs && is_blob_get && status == 200;
    let blob_body = is_blob_get && (status == 200 || status == 206);
    let big = length.is_some_and(|l| l >= 1024 * 1024);
    let nth_big = (blob_body && big).then(|| state.counters.blob_gets.fetch_add(1, Relaxed));
    let cut_blob = nth_big.is_some_and(|n| n < state.config.cut_blob_gets);
    let stall_blob =
        nth_big.is_some_and(|n| n >= state.config.cut_blob_gets && n < state.config.cut_blob_gets + state.config.stall_blob_gets);
    let stall_at = length.filter(|_| stall_blob).map(|l| l / 2);
    let cut_at = match ((cut && method == hyper::Method::GET && status == 200) || cut_blob, length) {
        (true, Some(len)) if len > 1 => Some(len / 2),
        _ => None,
    };
    if cut_at.is_some() {
        state.counters.cuts.fetch_add(1, Relaxed);
    }
    if flip {
        state.counters.flips.fetch_add(1, Relaxed);
    }
    let counters_sent = Arc::new(AtomicU64::new(0));
    let flipped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let down = state.counters.clone();
    let rate = if blob_body { state.config.blob_rate } else { 0 };
    let stream = paced(upstream.bytes_stream(), rate).map(move |chunk| -> Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
        let chunk = chunk.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
        let sent = counters_sent.fetch_add(chunk.len() as u64, Relaxed);
        down.bytes_down.fetch_add(chunk.len() as u64, Relaxed);
        if blob_body {
            down.blob_bytes_down.fetch_add(chunk.len() as u64, Relaxed);
        }
        let mut chunk = chunk;
        if let Some(at) = cut_at {
            if sent + chunk.len() as u64 > at {
                return Err("injected connection cut".into());
            }
        }
        if flip && !chunk.is_empty() && !flipped.swap(true, Relaxed) {
            let mut v = chunk.to_vec();
            let i = v.len() / 2;
            v[i] ^= 0x01;
            chunk = Bytes::from(v);
        }
        Ok(Frame::data(chunk))
    });
    let Some(at) = stall_at else {
        return Ok(builder.body(BodyExt::boxed(StreamBody::new(stream))).expect("response"));
    };
    let mut passed = 0u64;
    let stalled = stream
        .take_while(move |frame| {
            let go_on = passed < at;
            if let Ok(f) = frame {
                passed += f.data_ref().map_or(0, |d| d.len() as u64);
            }
            std::future::ready(go_on)
        })
        .chain(futures_util::stream::pending());
    Ok(builder.body(BodyExt::boxed(StreamBody::new(stalled))).expect("response"))
}

/// `inner` with its bytes let through at `rate` bytes a second (in slices of
/// at most 16 KiB, each sent when the rate allows it); 0 passes it as it is.
fn paced<S, E>(inner: S, rate: u64) -> impl futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    const SLICE: usize = 16 * 1024;
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    inner
        .flat_map(move |chunk| {
            let slices: Vec<Result<Bytes, E>> = match chunk {
                Ok(c) if rate > 0 => (0..c.len())
                    .step_by(SLICE)
                    .map(|at| Ok(c.slice(at..(at + SLICE).min(c.len()))))
                    .collect(),
                other => vec![other],
            };
            futures_util::stream::iter(slices)
        })
        .then(move |slice| {
            if let (Ok(b), true) = (&slice, rate > 0) {
                sent += b.len() as u64;
            }
            let due = start + std::time::Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            async move {
                if rate > 0 {
                    tokio::time::sleep_until(due).await;
                }
                slice
            }
        })
}
