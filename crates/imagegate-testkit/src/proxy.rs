//! A fault-injecting HTTP proxy to put in front of a real registry. It
//! answers a share of requests itself with 500/502/503 or 429 with
//! `Retry-After`, cuts a share of response bodies in the middle, and can
//! flip one byte of every blob it serves.

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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy for `upstream` (`http://127.0.0.1:<port>`).
    pub fn start(upstream: &str, config: FaultConfig) -> Self {
        Self::start_with_ca(upstream, None, config)
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
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let storage = tokio::net::TcpListener::from_std(storage).expect("storage listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = storage.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let state = state.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| serve_storage(state.clone(), req));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let state = state.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Self {
            host,
            counters,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn faults(&self) -> u64 {
        self.counters.errors.load(Relaxed) + self.counters.rate_limited.load(Relaxed) + self.counters.cuts.load(Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
    if c.paginate_tags && req.method() == hyper::Method::GET && req.uri().path().ends_with("/tags/list") {
        return Ok(paginate(&state, &req).await);
    }
    let cut = r < c.error_rate + c.rate_limit_rate + c.cut_rate;
    Ok(forward(&state, req, cut).await.unwrap_or_else(|e| {
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
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    tags.sort();
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

async fn forward(state: &State, req: Request<Incoming>, cut: bool) -> Result<Response<Body>, reqwest::Error> {
    let method = req.method().clone();
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let is_blob_get = method == hyper::Method::GET && path.contains("/blobs/sha256:");
    let mut rb = state.client.request(method.clone(), format!("{}{path}", state.upstream));
    for (name, value) in req.headers() {
        if name != "host" && name != "connection" {
            rb = rb.header(name, value);
        }
    }
    let up = state.counters.clone();
    let body_stream = req.into_body().into_data_stream().map(move |chunk| {
        if let Ok(c) = &chunk {
            up.bytes_up.fetch_add(c.len() as u64, Relaxed);
        }
        chunk
    });
    if method != hyper::Method::GET && method != hyper::Method::HEAD {
        rb = rb.body(reqwest::Body::wrap_stream(body_stream));
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
    let cut_at = match (cut && method == hyper::Method::GET && status == 200, length) {
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
    let stream = upstream
        .bytes_stream()
        .map(move |chunk| -> Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
            let chunk = chunk.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let sent = counters_sent.fetch_add(chunk.len() as u64, Relaxed);
            down.bytes_down.fetch_add(chunk.len() as u64, Relaxed);
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
    Ok(builder.body(BodyExt::boxed(StreamBody::new(stream))).expect("response"))
}
