//! A small fake of the two registry web APIs that cannot run here: Quay's
//! tag API and Docker Hub's. It follows their documented requests and
//! answers (paths, methods, `Authorization: Bearer`, JSON shapes, status
//! codes) and keeps tags in memory; tests seed it and read what it was asked.
//! It is the one fake in the test suite: everything else is a real registry.
//! [`FakeWebApi::flood_tag_pages`] makes it misbehave on purpose: every tag
//! page then holds the given number of tiny entries, far more than asked.
//!
//! Quay (docs.quay.io, API v1):
//!   GET    /api/v1/repository/{ns}/{repo}/tag/?onlyActiveTags=true&limit=N&page=P
//!          -> {"tags": [{"name", "manifest_digest", "start_ts"}], "page": P, "has_additional": bool}
//!   DELETE /api/v1/repository/{ns}/{repo}/tag/{tag}  -> 204
//!   Authorization: Bearer <OAuth token>; 401 without a valid one, 404 for an unknown tag.
//! Docker Hub (docs.docker.com, Hub API v2):
//!   POST   /v2/users/login/  {"username", "password"} -> {"token"} | 401 {"detail": ...}
//!   GET    /v2/repositories/{ns}/{repo}/tags/?page_size=N&page=P
//!          -> {"count", "next", "previous", "results": [{"name", "last_updated"}]}
//!   DELETE /v2/repositories/{ns}/{repo}/tags/{tag}/  -> 204
//!   Authorization: Bearer <token from the login>.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::server::{Body, Server};

#[derive(Default)]
pub struct WebState {
    /// repository (`ns/repo`) -> tag -> unix time it was pushed.
    pub tags: BTreeMap<String, BTreeMap<String, i64>>,
    /// Every request: `METHOD path` (with query), in order.
    pub requests: Vec<String>,
    /// `DELETE`d tags as `repo:tag`.
    pub deleted: Vec<String>,
}

pub struct FakeWebApi {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub state: Arc<Mutex<WebState>>,
    pub quay_token: String,
    pub hub_user: String,
    pub hub_password: String,
    hub_token: String,
    flood: Arc<AtomicUsize>,
    _server: Server,
}

struct Shared {
    state: Arc<Mutex<WebState>>,
    /// Known once the server listens.
    url: Arc<Mutex<String>>,
    quay_token: String,
    hub_user: String,
    hub_password: String,
    hub_token: String,
    /// Entries every tag page holds when non-zero (a hostile API).
    flood: Arc<AtomicUsize>,
}

impl FakeWebApi {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(WebState::default()));
        let url_slot: Arc<Mutex<String>> = Arc::default();
        let shared = Arc::new(Shared {
            state: state.clone(),
            url: url_slot.clone(),
            quay_token: format!("quay-{}", crate::random_hex(12)),
            hub_user: "hubuser".into(),
            hub_password: format!("hub-{}", crate::random_hex(12)),
            hub_token: format!("jwt-{}", crate::random_hex(16)),
            flood: Arc::default(),
        });
        let flood = shared.flood.clone();
        let (quay_token, hub_user, hub_password, hub_token) = (
            shared.quay_token.clone(),
            shared.hub_user.clone(),
            shared.hub_password.clone(),
            shared.hub_token.clone(),
        );
        let server = Server::start(move |req| handle(shared.clone(), req));
        let url = format!("http://{}", server.addr);
        *url_slot.lock().unwrap() = url.clone();
        Self {
            url,
            state,
            quay_token,
            hub_user,
            hub_password,
            hub_token,
            flood,
            _server: server,
        }
    }

    /// From now on every Quay and Docker Hub tag page holds `entries` tiny
    /// tags (`{"name":"a",...}`), whatever page size was asked for: what a
    /// broken or hostile API could send. 0 goes back to the documented pages.
    pub fn flood_tag_pages(&self, entries: usize) {
        self.flood.store(entries, Ordering::SeqCst);
    }

    /// Seeds a tag pushed at `time` (unix seconds).
    pub fn add_tag(&self, repo: &str, tag: &str, time: i64) {
        self.state
            .lock()
            .unwrap()
            .tags
            .entry(repo.to_string())
            .or_default()
            .insert(tag.to_string(), time);
    }

    pub fn deleted(&self) -> Vec<String> {
        self.state.lock().unwrap().deleted.clone()
    }

    pub fn hub_token(&self) -> &str {
        &self.hub_token
    }
}

fn json(status: u16, v: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .expect("response")
}

fn empty(status: u16) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()).boxed())
        .expect("response")
}

/// A JSON page of `entries` copies of `entry` between `head` and `tail`.
fn flooded(entries: usize, head: &str, entry: &str, tail: &str) -> Response<Body> {
    let mut body = String::with_capacity(head.len() + entries * (entry.len() + 1) + tail.len());
    body.push_str(head);
    for n in 0..entries {
        if n > 0 {
            body.push(',');
        }
        body.push_str(entry);
    }
    body.push_str(tail);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("response")
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rfc3339(t: i64) -> String {
    // Civil from days (Howard Hinnant), enough for a fake.
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// One page of a repository's tags, as both web APIs page them.
struct TagPage<'a> {
    /// Which page (1-based).
    page: usize,
    /// How many tags a page holds.
    size: usize,
    /// How many tags the repository has.
    total: usize,
    /// The page's tags, with their times.
    tags: Vec<(&'a String, &'a i64)>,
}

/// The page of `tags` the query asks for: its `page` (1 if not given) of
/// its `size_key` tags each (`default_size` if not given).
fn tag_page<'a>(tags: Option<&'a BTreeMap<String, i64>>, q: &BTreeMap<String, String>, size_key: &str, default_size: usize) -> TagPage<'a> {
    let size: usize = q.get(size_key).and_then(|v| v.parse().ok()).unwrap_or(default_size);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let all: Vec<(&String, &i64)> = tags.map(|t| t.iter().collect()).unwrap_or_default();
    TagPage {
        page,
        size,
        total: all.len(),
        tags: all.into_iter().skip((page - 1) * size).take(size).collect(),
    }
}

/// The web API a request is for.
#[derive(Clone, Copy)]
enum Api {
    Quay,
    Hub,
}

/// The API's answer to a GET of the tags of `repo` (`tags`): the page the
/// query asks for (Docker Hub's with the URL of the next), or a flood of
/// tiny entries in the API's page shape when one is set.
fn tag_list(s: &Shared, api: Api, repo: &str, tags: Option<&BTreeMap<String, i64>>, q: &BTreeMap<String, String>) -> Response<Body> {
    // The flood page (head, entry, tail) and the page size option.
    let (flood_page, size_key, default_size) = match api {
        Api::Quay => (
            [
                "{\"tags\":[",
                "{\"name\":\"a\",\"start_ts\":1}",
                "],\"page\":1,\"has_additional\":false}",
            ],
            "limit",
            50,
        ),
        Api::Hub => (
            [
                "{\"count\":1,\"next\":null,\"previous\":null,\"results\":[",
                "{\"name\":\"a\",\"last_updated\":\"2020-01-01T00:00:00.000000Z\"}",
                "]}",
            ],
            "page_size",
            10,
        ),
    };
    let flood = s.flood.load(Ordering::SeqCst);
    if flood > 0 {
        let [head, entry, tail] = flood_page;
        return flooded(flood, head, entry, tail);
    }
    let p = tag_page(tags, q, size_key, default_size);
    let more = p.total > p.page * p.size;
    match api {
        Api::Quay => {
            let chunk: Vec<serde_json::Value> = p
                .tags
                .iter()
                .map(|(name, ts)| serde_json::json!({"name": name, "start_ts": ts, "manifest_digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000", "reversion": false}))
                .collect();
            json(200, serde_json::json!({"tags": chunk, "page": p.page, "has_additional": more}))
        }
        Api::Hub => {
            let results: Vec<serde_json::Value> = p
                .tags
                .iter()
                .map(|(name, ts)| serde_json::json!({"name": name, "last_updated": rfc3339(**ts), "tag_status": "active"}))
                .collect();
            let next = more.then(|| {
                format!(
                    "{}/v2/repositories/{repo}/tags/?page_size={}&page={}",
                    s.url.lock().unwrap(),
                    p.size,
                    p.page + 1
                )
            });
            json(
                200,
                serde_json::json!({"count": p.total, "next": next, "previous": null, "results": results}),
            )
        }
    }
}

/// A DELETE of `repo:tag`: removed (and recorded) with 204, or 404 with
/// `not_found` when there is no such tag.
fn delete_tag(st: &mut WebState, repo: &str, tag: &str, not_found: serde_json::Value) -> Response<Body> {
    match st.tags.get_mut(repo).and_then(|t| t.remove(tag)) {
        Some(_) => {
            st.deleted.push(format!("{repo}:{tag}"));
            empty(204)
        }
        None => json(404, not_found),
    }
}

async fn handle(s: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    answer(s, req).await.unwrap_or_else(|e| match e {})
}

async fn answer(s: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let auth = crate::server::header_text(&req, "authorization");
    s.state.lock().unwrap().requests.push(format!("{method} {}", req.uri()));
    let q = query(&req);

    if let Some(rest) = path.strip_prefix("/api/v1/repository/") {
        if auth != format!("Bearer {}", s.quay_token) {
            return Ok(json(
                401,
                serde_json::json!({"error": "invalid_token", "error_description": "Requires authentication"}),
            ));
        }
        let (repo, tag) = match rest.split_once("/tag/") {
            Some(v) => v,
            None => return Ok(json(404, serde_json::json!({"error_message": "Not Found"}))),
        };
        let mut st = s.state.lock().unwrap();
        return Ok(match (method, tag) {
            (Method::GET, "") => tag_list(&s, Api::Quay, repo, st.tags.get(repo), &q),
            (Method::DELETE, tag) => delete_tag(&mut st, repo, tag, serde_json::json!({"error_message": "Not Found"})),
            _ => json(405, serde_json::json!({"error_message": "Method Not Allowed"})),
        });
    }

    if path == "/v2/users/login/" || path == "/v2/users/login" {
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let creds: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if creds["username"] == s.hub_user.as_str() && creds["password"] == s.hub_password.as_str() {
            return Ok(json(200, serde_json::json!({"token": s.hub_token})));
        }
        return Ok(json(401, serde_json::json!({"detail": "Incorrect authentication credentials"})));
    }

    if let Some(rest) = path.strip_prefix("/v2/repositories/") {
        if auth != format!("Bearer {}", s.hub_token) {
            return Ok(json(
                401,
                serde_json::json!({"detail": "Authentication credentials were not provided."}),
            ));
        }
        let (repo, tag) = match rest.split_once("/tags/") {
            Some((r, t)) => (r, t.trim_end_matches('/')),
            None => return Ok(json(404, serde_json::json!({"message": "object not found", "errinfo": {}}))),
        };
        let mut st = s.state.lock().unwrap();
        return Ok(match (method, tag) {
            (Method::GET, "") => tag_list(&s, Api::Hub, repo, st.tags.get(repo), &q),
            (Method::DELETE, tag) => delete_tag(&mut st, repo, tag, serde_json::json!({"message": "tag not found", "errinfo": {}})),
            _ => json(405, serde_json::json!({"detail": "Method not allowed"})),
        });
    }
    Ok(json(404, serde_json::json!({"detail": "Not found."})))
}

/// A stand-in for the Zuul web API's `GET /api/tenant/<t>/builds` endpoint
/// (used where a test needs builds no job here could produce): answers with
/// the builds it was given, filtered as zuul-web filters them by the
/// `job_name`, `project`, `ref` and `result` query parameters (a build
/// without the field passes), and records the queries and the
/// Authorization headers it was sent. [`ZuulBuildsApi::misbehaving`] makes
/// it answer as a broken or hostile API would.
pub struct ZuulBuildsApi {
    /// `http://127.0.0.1:<port>/api/tenant/<tenant>`
    pub base: String,
    pub queries: Arc<Mutex<Vec<String>>>,
    /// The Authorization header of every request (empty if none).
    pub authorizations: Arc<Mutex<Vec<String>>>,
    /// With [`ZuulBuildsApi::start_tls`], the CA that signed its certificate.
    pub ca_cert: Option<std::path::PathBuf>,
    _server: Server,
    _dir: Option<tempfile::TempDir>,
}

/// How a misbehaving builds API answers every request.
#[derive(Clone, Debug)]
pub enum ZuulMisbehaviour {
    /// A JSON list of this many bytes (a build repeated), streamed without
    /// a Content-Length.
    HugeBody(usize),
    /// A JSON list of about this many bytes of empty objects (`[{},{},...]`):
    /// within the answer's byte cap, millions of values once parsed.
    DenseBody(usize),
    /// Nothing for this long, then the builds.
    Slow(std::time::Duration),
    /// `302 Found` to this URL.
    RedirectTo(String),
}

impl ZuulBuildsApi {
    pub fn start(tenant: &str, builds: serde_json::Value) -> Self {
        Self::serve(tenant, builds, None, false)
    }

    /// Speaks HTTPS with a certificate for 127.0.0.1 signed by a CA made for
    /// it ([`ZuulBuildsApi::ca_cert`]).
    pub fn start_tls(tenant: &str, builds: serde_json::Value) -> Self {
        Self::serve(tenant, builds, None, true)
    }

    pub fn misbehaving(tenant: &str, builds: serde_json::Value, how: ZuulMisbehaviour) -> Self {
        Self::serve(tenant, builds, Some(how), false)
    }

    fn serve(tenant: &str, builds: serde_json::Value, how: Option<ZuulMisbehaviour>, tls: bool) -> Self {
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let authorizations: Arc<Mutex<Vec<String>>> = Arc::default();
        let (q, a) = (queries.clone(), authorizations.clone());
        let handler = move |req: Request<Incoming>| {
            q.lock().unwrap().push(req.uri().to_string());
            a.lock().unwrap().push(crate::server::header_text(&req, "authorization"));
            let answer = if req.uri().path().ends_with("/builds") {
                json(200, filter_builds(&builds, req.uri().query().unwrap_or("")))
            } else {
                json(404, serde_json::json!({}))
            };
            let how = how.clone();
            async move {
                match how {
                    None => answer,
                    Some(ZuulMisbehaviour::Slow(d)) => {
                        tokio::time::sleep(d).await;
                        answer
                    }
                    Some(ZuulMisbehaviour::RedirectTo(url)) => Response::builder()
                        .status(302)
                        .header("location", url)
                        .body(Full::new(Bytes::new()).boxed())
                        .expect("response"),
                    Some(ZuulMisbehaviour::HugeBody(size)) => huge_builds(size),
                    Some(ZuulMisbehaviour::DenseBody(size)) => {
                        let mut body = "{},".repeat(size / 3);
                        body.pop();
                        Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(format!("[{body}]"))).boxed())
                            .expect("response")
                    }
                }
            }
        };
        let (server, dir, ca_cert) = Server::start_maybe_tls(handler, tls, "imagegate-webapi-");
        let scheme = if tls { "https" } else { "http" };
        Self {
            base: format!("{scheme}://{}/api/tenant/{tenant}", server.addr),
            queries,
            authorizations,
            ca_cert,
            _server: server,
            _dir: dir,
        }
    }
}

/// A streamed JSON list of about `size` bytes of one build repeated.
fn huge_builds(size: usize) -> Response<Body> {
    use futures_util::StreamExt;
    // Chunks of a thousand builds each (about 60 KiB).
    let build: &[u8] = br#"{"job_name": "ovb", "result": "SUCCESS", "artifacts": []},"#;
    let n = size / (build.len() * 1000) + 1;
    let build = Bytes::from(build.repeat(1000));
    let chunks = futures_util::stream::iter(std::iter::once(Bytes::from_static(b"[")))
        .chain(futures_util::stream::iter(std::iter::repeat_n(build, n)))
        .chain(futures_util::stream::iter(std::iter::once(Bytes::from_static(b"{}]"))))
        .map(|b| Ok::<_, Infallible>(hyper::body::Frame::data(b)));
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(http_body_util::StreamBody::new(chunks)))
        .expect("response")
}

/// The builds that match every filter of a builds query.
fn filter_builds(builds: &serde_json::Value, query: &str) -> serde_json::Value {
    let filters: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| ["job_name", "project", "ref", "result"].contains(k))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    let Some(all) = builds.as_array() else {
        return builds.clone();
    };
    let kept: Vec<serde_json::Value> = all
        .iter()
        .filter(|b| {
            filters.iter().all(|(k, v)| {
                // Newer zuul-web nests project and ref under `ref`.
                let field = match b.get(k.as_str()) {
                    Some(f) if f.is_string() => Some(f),
                    _ => b.pointer(&format!("/ref/{k}")),
                };
                field.and_then(|f| f.as_str()).is_none_or(|f| f == v)
            })
        })
        .cloned()
        .collect();
    serde_json::Value::Array(kept)
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&v[i + 1..i + 3], 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
