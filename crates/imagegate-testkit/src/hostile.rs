//! A registry that misbehaves on purpose. It speaks enough of the
//! distribution API to serve one small image and to accept pushes, and each
//! [`Hostility`] switch makes it lie or stall the way a hostile or broken
//! registry would: pages and upload locations on other origins, pagination
//! loops, token realms that downgrade, trickled bodies, `Retry-After` of a
//! day, error bodies that echo the request's `Authorization`, and so on.
//! Every request it (and a [`Recorder`] standing for "another host") gets is
//! recorded with its Authorization header, so tests can assert where
//! credentials went.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};

use crate::server::{Body, Server};

/// How the registry asks for credentials.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    /// `Basic` with the registry's user and password.
    Basic,
    /// `Bearer realm=<realm>`; a realm of `None` is the registry's own
    /// `/token` endpoint, which wants Basic credentials.
    Bearer { realm: Option<String> },
}

/// What the registry does wrong. Everything off by default.
#[derive(Clone, Debug, Default)]
pub struct Hostility {
    pub auth: Auth,
    /// Tags in the repository's tag list (`v1` is the served image).
    pub extra_tags: Vec<String>,
    /// `Link: <this>; rel="next"` on every tag page.
    pub tags_next: Option<String>,
    /// `Location` of every upload the registry opens.
    pub upload_location: Option<String>,
    /// Send manifests one byte per this interval.
    pub trickle_manifests: Option<Duration>,
    /// Send blobs one byte per this interval.
    pub trickle_blobs: Option<Duration>,
    /// Answer manifest GETs and HEADs with 429 and this `Retry-After`.
    pub retry_after: Option<u64>,
    /// Answer upload POSTs with this status.
    pub upload_status: Option<u16>,
    /// Answer manifest GETs with 400 and an error body that quotes the
    /// request's Authorization header.
    pub echo_authorization: bool,
    /// `expires_in` of the tokens it hands out.
    pub token_expires_in: Option<i128>,
    /// Answers 201 to a manifest PUT by tag but keeps the manifest only
    /// under its digest: the tag is never served (eventually consistent
    /// storage, a broken proxy).
    pub forget_tag_puts: bool,
    /// Answers manifest GETs with this Content-Type and an HTML page (a
    /// captive portal or a login proxy).
    pub manifest_content_type: Option<String>,
    /// Answers the referrers API with an index of this many bytes of empty
    /// descriptors (`{"manifests":[{},{},...]}`): within the manifest size
    /// cap, over a million values once parsed.
    pub referrers_flood: usize,
    /// Adds this many one-to-three-character names to the tag list (all in
    /// one page): a flood that is small on the wire and large once parsed.
    pub tag_flood: usize,
    /// Serves `multi`, an OCI index of the `v1` image whose platform has
    /// this architecture (any text: control characters included).
    pub index_architecture: Option<String>,
    /// Manifest DELETEs need a token with the `delete` action, which the
    /// 401 challenge names in its `scope`.
    pub delete_needs_scope: bool,
    /// Web API (Quay shape): `has_additional: true` on every tag page.
    pub quay_pages_forever: bool,
    /// Web API (Docker Hub shape): `next` of every tag page; `{self}` in it
    /// stands for the registry's own `http://host:port`.
    pub hub_next: Option<String>,
    /// Web API GETs answered with a redirect here.
    pub api_redirect: Option<String>,
    /// Its own token endpoint answers after this long.
    pub token_delay: Option<Duration>,
    /// Also serve `hostile/app:v2`, another image that shares `v1`'s layer.
    pub second_image: bool,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Bytes>,
    manifests: HashMap<String, (String, Bytes)>,
    uploads: u64,
    /// Token requests being answered now, and the most at once.
    tokens_in_flight: u64,
    max_tokens_in_flight: u64,
}

struct Shared {
    hostility: Hostility,
    user: String,
    password: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    store: Mutex<Store>,
    own: Mutex<String>,
}

pub struct HostileRegistry {
    /// `127.0.0.1:<port>`
    pub host: String,
    pub user: String,
    pub password: String,
    /// The repository that holds the served image under tag `v1`.
    pub repository: &'static str,
    pub manifest_digest: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    shared: Arc<Shared>,
    _dir: Option<tempfile::TempDir>,
    /// The CA of its certificate, when it speaks TLS.
    pub ca_cert: Option<std::path::PathBuf>,
    _server: Server,
}

/// The OCI manifest type the served image uses.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI index type (`index_architecture`).
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

impl HostileRegistry {
    /// Starts a plain-HTTP hostile registry.
    pub fn start(hostility: Hostility) -> Self {
        Self::launch(hostility, false)
    }

    /// Starts a plain-HTTP hostile registry doing what `hostility` sets on
    /// the default (well-behaved) [`Hostility`].
    pub fn with(hostility: impl FnOnce(&mut Hostility)) -> Self {
        let mut h = Hostility::default();
        hostility(&mut h);
        Self::start(h)
    }

    /// Starts one that speaks TLS with a certificate for 127.0.0.1 signed by
    /// a CA made for it ([`HostileRegistry::ca_cert`]).
    pub fn start_tls(hostility: Hostility) -> Self {
        Self::launch(hostility, true)
    }

    fn launch(hostility: Hostility, tls: bool) -> Self {
        let user = "hostile-user".to_string();
        let password = format!("pw-{}", crate::random_hex(12));
        let layer = Bytes::from((0..4096u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let mut store = Store::default();
        let mut image = |tag: &str, os_version: &str| {
            let config = Bytes::from(format!(
                r#"{{"architecture":"amd64","os":"linux","os.version":"{os_version}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            ));
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
            });
            let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("manifest"));
            let digest = sha256(&manifest);
            store.blobs.insert(format!("hostile/app@{}", sha256(&config)), config);
            store.blobs.insert(format!("hostile/app@{}", sha256(&layer)), layer.clone());
            store
                .manifests
                .insert(format!("hostile/app:{tag}"), (OCI_MANIFEST.into(), manifest.clone()));
            store
                .manifests
                .insert(format!("hostile/app:{digest}"), (OCI_MANIFEST.into(), manifest));
            digest
        };
        let manifest_digest = image("v1", "1");
        if hostility.second_image {
            image("v2", "2");
        }
        if let Some(arch) = &hostility.index_architecture {
            let v1 = store.manifests["hostile/app:v1"].1.clone();
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": v1.len(),
                               "platform": {"architecture": arch, "os": "linux"}}],
            });
            let index = Bytes::from(serde_json::to_vec(&index).expect("index"));
            let digest = sha256(&index);
            for key in ["hostile/app:multi".to_string(), format!("hostile/app:{digest}")] {
                store.manifests.insert(key, (OCI_INDEX.into(), index.clone()));
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            hostility,
            user: user.clone(),
            password: password.clone(),
            seen: seen.clone(),
            store: Mutex::new(store),
            own: Mutex::new(String::new()),
        });
        let handler_shared = shared.clone();
        let handler = move |req: Request<Incoming>| handle(handler_shared.clone(), req);
        let (server, dir, ca_cert) = Server::start_maybe_tls(handler, tls, "imagegate-hostile-");
        let scheme = if tls { "https" } else { "http" };
        *shared.own.lock().unwrap() = format!("{scheme}://{}", server.addr);
        Self {
            host: server.addr.clone(),
            user,
            password,
            repository: "hostile/app",
            manifest_digest,
            seen,
            shared,
            _dir: dir,
            ca_cert,
            _server: server,
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests whose method is `method` and whose target contains `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method && s.target.contains(part)).count()
    }

    /// The most token requests it was answering at once.
    pub fn max_tokens_in_flight(&self) -> u64 {
        self.shared.store.lock().unwrap().max_tokens_in_flight
    }

    /// `base64(user:password)`, the form the password travels in.
    pub fn basic_value(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password))
    }
}

fn full(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(body.into()).boxed()).expect("response")
}

fn trickle(status: u16, headers: &[(&str, String)], body: Bytes, every: Duration) -> Response<Body> {
    let stream = futures_util::stream::unfold((body, 0usize), move |(body, i)| async move {
        if i >= body.len() {
            return None;
        }
        tokio::time::sleep(every).await;
        Some((Ok::<_, Infallible>(Frame::data(body.slice(i..i + 1))), (body, i + 1)))
    });
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(BodyExt::boxed(StreamBody::new(stream))).expect("response")
}

/// `None` when the request may go on, else the 401 to answer with.
fn refusal(shared: &Shared, req: &Request<Incoming>, delete: bool) -> Option<Response<Body>> {
    let given = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    match &shared.hostility.auth {
        Auth::None => None,
        Auth::Basic => {
            let want = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", shared.user, shared.password));
            (given != format!("Basic {want}")).then(|| full(401, &[("www-authenticate", r#"Basic realm="hostile""#.into())], "{}"))
        }
        Auth::Bearer { realm } => {
            let delete = delete && shared.hostility.delete_needs_scope;
            let ok = given.starts_with("Bearer tok-") && (!delete || given.contains("delete"));
            if ok {
                return None;
            }
            let realm = realm.clone().unwrap_or_else(|| format!("{}/token", shared.own.lock().unwrap()));
            let repo = req
                .uri()
                .path()
                .trim_start_matches("/v2/")
                .split("/manifests/")
                .next()
                .unwrap_or("");
            let scope = if delete {
                format!(r#",scope="repository:{repo}:delete""#)
            } else {
                String::new()
            };
            Some(full(
                401,
                &[("www-authenticate", format!(r#"Bearer realm="{realm}",service="hostile"{scope}"#))],
                "{}",
            ))
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let target = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let path = req.uri().path().to_string();
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    shared.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        target: target.clone(),
        authorization: authorization.clone(),
    });
    let h = &shared.hostility;

    // The registry's own token endpoint: Basic credentials in, a token out
    // that names the scopes asked for.
    if path == "/token" {
        let want = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", shared.user, shared.password));
        if authorization.as_deref() != Some(&format!("Basic {want}")) {
            return full(401, &[], r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#);
        }
        if let Some(delay) = h.token_delay {
            {
                let mut store = shared.store.lock().unwrap();
                store.tokens_in_flight += 1;
                store.max_tokens_in_flight = store.max_tokens_in_flight.max(store.tokens_in_flight);
            }
            tokio::time::sleep(delay).await;
            shared.store.lock().unwrap().tokens_in_flight -= 1;
        }
        let delete = if target.contains("delete") { "-delete" } else { "" };
        let token = format!("tok-{}{delete}", crate::random_hex(8));
        let expires = h.token_expires_in.unwrap_or(300);
        return full(200, &[], format!(r#"{{"token":"{token}","expires_in":{expires}}}"#));
    }
    // The web API shapes (Quay and Docker Hub tag pages).
    if path.starts_with("/api/v1/repository/") || path.starts_with("/v2/repositories/") {
        if let Some(to) = &h.api_redirect {
            return full(302, &[("location", to.clone())], "");
        }
        if path.starts_with("/api/v1/") {
            let more = h.quay_pages_forever;
            return full(
                200,
                &[],
                format!(r#"{{"tags":[{{"name":"change_1_x","start_ts":0}}],"page":1,"has_additional":{more}}}"#),
            );
        }
        let own = shared.own.lock().unwrap().clone();
        let next = h
            .hub_next
            .as_ref()
            .map(|n| format!("\"{}\"", n.replace("{self}", &own)))
            .unwrap_or_else(|| "null".into());
        return full(
            200,
            &[],
            format!(r#"{{"count":1,"next":{next},"results":[{{"name":"change_1_x","last_updated":"2020-01-01T00:00:00Z"}}]}}"#),
        );
    }
    if path == "/v2/users/login/" {
        return full(200, &[], r#"{"token":"hub-session-token"}"#);
    }

    let delete = method == Method::DELETE;
    if let Some(resp) = refusal(&shared, &req, delete) {
        return resp;
    }
    if path == "/v2/" {
        return full(200, &[], "{}");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return full(404, &[], "");
    };
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        let mut tags = vec!["v1".to_string()];
        if h.second_image {
            tags.push("v2".into());
        }
        tags.extend(h.extra_tags.iter().cloned());
        let mut body = serde_json::json!({"name": repo, "tags": tags}).to_string();
        if h.tag_flood > 0 {
            body.truncate(body.len() - 2); // the list's `]}`
            body.reserve(h.tag_flood * 6 + 2);
            const DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            for n in 0..h.tag_flood {
                let name = [n % 36, n / 36 % 36, n / 1296 % 36]
                    .iter()
                    .take(1 + n % 3)
                    .map(|&d| DIGITS[d] as char)
                    .collect::<String>();
                body.push_str(",\"");
                body.push_str(&name);
                body.push('"');
            }
            body.push_str("]}");
        }
        let headers: Vec<(&str, String)> = h.tags_next.iter().map(|n| ("link", format!(r#"<{n}>; rel="next""#))).collect();
        return full(200, &headers, body);
    }
    if h.referrers_flood > 0 && rest.contains("/referrers/") {
        let mut body = "{},".repeat(h.referrers_flood / 3);
        body.pop();
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{body}]}}"#);
        return full(200, &[("content-type", OCI_INDEX.to_string())], body);
    }
    if let Some((repo, reference)) = rest.split_once("/manifests/") {
        let key = format!("{repo}:{reference}");
        if let Some(secs) = h.retry_after {
            if method == Method::GET || method == Method::HEAD {
                return full(
                    429,
                    &[("retry-after", secs.to_string())],
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
                );
            }
        }
        if let (Some(kind), &Method::GET) = (&h.manifest_content_type, &method) {
            return full(
                200,
                &[("content-type", kind.clone())],
                "<html><body>Sign in to continue</body></html>",
            );
        }
        if h.echo_authorization && method == Method::GET {
            let echoed = authorization.unwrap_or_default();
            let body = format!(r#"{{"errors":[{{"code":"DENIED","message":"request had Authorization: {echoed}"}}]}}"#);
            return full(400, &[], body);
        }
        match method {
            Method::GET | Method::HEAD => {
                let found = shared.store.lock().unwrap().manifests.get(&key).cloned();
                let Some((media_type, bytes)) = found else {
                    return full(404, &[], r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#);
                };
                let headers = [
                    ("content-type", media_type),
                    ("docker-content-digest", sha256(&bytes)),
                    ("content-length", bytes.len().to_string()),
                ];
                if method == Method::HEAD {
                    return full(200, &headers, Bytes::new());
                }
                return match h.trickle_manifests {
                    Some(every) => trickle(200, &headers[..2], bytes, every),
                    None => full(200, &headers, bytes),
                };
            }
            Method::PUT => {
                let media_type = crate::server::header_text(&req, "content-type");
                let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let digest = sha256(&bytes);
                let mut store = shared.store.lock().unwrap();
                if !h.forget_tag_puts || reference.starts_with("sha256:") {
                    store.manifests.insert(key, (media_type.clone(), bytes.clone()));
                }
                store.manifests.insert(format!("{repo}:{digest}"), (media_type, bytes));
                return full(201, &[("docker-content-digest", digest)], "");
            }
            Method::DELETE => {
                let removed = shared.store.lock().unwrap().manifests.remove(&key);
                return match removed {
                    Some(_) => full(202, &[], ""),
                    None => full(404, &[], r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
                };
            }
            _ => return full(405, &[], ""),
        }
    }
    if let Some((blob_repo, digest)) = rest.split_once("/blobs/") {
        if let Some(repo) = rest.strip_suffix("/blobs/uploads/") {
            if let Some(status) = h.upload_status {
                return full(status, &[], r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#);
            }
            let id = {
                let mut store = shared.store.lock().unwrap();
                store.uploads += 1;
                store.uploads
            };
            let location = h
                .upload_location
                .clone()
                .unwrap_or_else(|| format!("/v2/{repo}/blobs/uploads/u{id}"));
            return full(202, &[("location", location)], "");
        }
        if rest.contains("/blobs/uploads/") {
            let want = target.split("digest=").nth(1).unwrap_or("").replace("%3A", ":");
            let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if sha256(&bytes) != want {
                return full(400, &[], r#"{"errors":[{"code":"DIGEST_INVALID","message":"digest invalid"}]}"#);
            }
            shared.store.lock().unwrap().blobs.insert(format!("{blob_repo}@{want}"), bytes);
            return full(201, &[("docker-content-digest", want)], "");
        }
        let found = shared.store.lock().unwrap().blobs.get(&format!("{blob_repo}@{digest}")).cloned();
        let Some(bytes) = found else {
            return full(404, &[], r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#);
        };
        let headers = [("content-length", bytes.len().to_string())];
        if method == Method::HEAD {
            return full(200, &headers, Bytes::new());
        }
        return match h.trickle_blobs {
            Some(every) => trickle(200, &[], bytes, every),
            None => full(200, &headers, bytes),
        };
    }
    full(404, &[], "")
}

/// "Another host": answers every request with 200 and a token-shaped JSON
/// body, and records what it was sent.
pub struct Recorder {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _server: Server,
}

impl Recorder {
    pub fn start() -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let s = seen.clone();
        let server = Server::start(move |req: Request<Incoming>| {
            s.lock().unwrap().push(Seen {
                method: req.method().to_string(),
                target: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                authorization: req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
            });
            async move { full(200, &[], r#"{"token":"tok-elsewhere","tags":[],"results":[],"next":null}"#) }
        });
        Self {
            url: format!("http://{}", server.addr),
            seen,
            _server: server,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests that carried any Authorization header.
    pub fn with_authorization(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.authorization.is_some()).collect()
    }
}
