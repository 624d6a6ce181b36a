//! Removing one tag without touching the other tags of its image, by the
//! method the registry supports, and finding stale tags by age.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::Method;
use serde::Serialize;

use crate::client::RegistryClient;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::log;
use crate::manifest::{Manifest, Parsed, OCI_MANIFEST};
use crate::reference::is_valid_tag;
use crate::secret::Secret;

/// The OCI empty config blob (`{}`), referenced by throw-away manifests.
const EMPTY_CONFIG: &[u8] = b"{}";
const EMPTY_CONFIG_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Web API pages asked for at once.
const WEB_PAGE: usize = 100;
/// Web API pages followed at most (a million tags at [`WEB_PAGE`] a page).
const MAX_WEB_PAGES: usize = 10_000;

/// The entries of a web API page (`tags` for Quay, `results` for Docker
/// Hub); a page longer than the [`WEB_PAGE`] asked for is refused, so what
/// is kept over every page stays bounded by the pages followed.
fn web_page_entries<'a>(registry: &str, api: &str, answer: &'a serde_json::Value, key: &str) -> Result<&'a [serde_json::Value], Error> {
    let entries = answer[key].as_array().map(Vec::as_slice).unwrap_or_default();
    if entries.len() > WEB_PAGE {
        return Err(web_paging(
            registry,
            &format!("{api} sent {} tags on a page of {WEB_PAGE} asked for", entries.len()),
        ));
    }
    Ok(entries)
}

fn web_paging(registry: &str, detail: &str) -> Error {
    Error::new(ErrorKind::Pagination {
        registry: registry.to_string(),
        detail: detail.to_string(),
    })
}

/// How to remove a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoveMethod {
    /// Pick by registry and fall back: quay, dockerhub, oci, overwrite.
    Auto,
    /// `DELETE /v2/<name>/manifests/<tag>`.
    Oci,
    /// Quay's `DELETE /api/v1/repository/<repo>/tag/<tag>` with an API token.
    Quay,
    /// Docker Hub's `DELETE /v2/repositories/<repo>/tags/<tag>/` after a login.
    Dockerhub,
    /// Push a unique throw-away manifest over the tag, then delete that
    /// manifest by digest; other tags of the old image stay.
    Overwrite,
}

/// Where a registry's web API is and how to authenticate to it.
#[derive(Clone, Debug, Default)]
pub struct WebApi {
    /// Which web API the registry has (zuul-jobs' `type`).
    pub kind: WebApiKind,
    /// Base URL of the API (`https://quay.io`, `https://hub.docker.com`).
    pub api_url: Option<String>,
    /// Quay OAuth token.
    pub api_token: Option<Secret>,
    /// Docker Hub login.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// Which web API a registry has, as zuul-jobs' `type` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebApiKind {
    /// No `type`: quay.io has Quay's API, docker.io Docker Hub's, any other
    /// host none.
    #[default]
    ByHost,
    /// `quay`: Quay's API (quay.io, or a Quay installation of its own).
    Quay,
    /// `docker` or `dockerhub`: Docker Hub's API.
    DockerHub,
    /// Any other `type`: no web API, the registry API only.
    NoWebApi,
}

impl WebApiKind {
    /// The kind zuul-jobs' `type` names (unset: by host).
    pub fn from_type(kind: Option<&str>) -> Self {
        match kind {
            None => Self::ByHost,
            Some("quay") => Self::Quay,
            Some("docker" | "dockerhub") => Self::DockerHub,
            Some(_) => Self::NoWebApi,
        }
    }
}

impl WebApi {
    fn is_quay(&self, registry: &str) -> bool {
        self.kind == WebApiKind::Quay || (self.kind == WebApiKind::ByHost && registry == "quay.io")
    }
    fn is_dockerhub(&self, registry: &str) -> bool {
        self.kind == WebApiKind::DockerHub || (self.kind == WebApiKind::ByHost && registry == "docker.io")
    }
    fn quay_base(&self, registry: &str) -> String {
        self.api_url
            .clone()
            .unwrap_or_else(|| format!("https://{registry}"))
            .trim_end_matches('/')
            .to_string()
    }
    fn hub_base(&self) -> String {
        self.api_url
            .clone()
            .unwrap_or_else(|| "https://hub.docker.com".into())
            .trim_end_matches('/')
            .to_string()
    }
}

/// Remembers per registry what was learned: whether delete by digest works,
/// and Docker Hub login tokens.
#[derive(Default)]
pub struct TagRemover {
    deletes_by_digest: Mutex<HashMap<String, bool>>,
    hub_tokens: tokio::sync::Mutex<HashMap<String, Secret>>,
}

/// What a removal did.
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    pub tag: String,
    /// The digest the tag pointed at, if it existed.
    pub before: Option<String>,
    /// The method that removed it; `None` if the tag was absent.
    pub method: Option<RemoveMethod>,
}

/// The methods to try, in order: `auto` is the registry's web API where
/// one is set up, then the OCI tag delete, then overwrite-and-delete.
fn candidates(method: RemoveMethod, web: &WebApi, registry: &str) -> Vec<RemoveMethod> {
    if method != RemoveMethod::Auto {
        return vec![method];
    }
    let mut c = Vec::new();
    if web.is_quay(registry) && web.api_token.is_some() {
        c.push(RemoveMethod::Quay);
    }
    if web.is_dockerhub(registry) && web.password.is_some() {
        c.push(RemoveMethod::Dockerhub);
    }
    c.extend([RemoveMethod::Oci, RemoveMethod::Overwrite]);
    c
}

impl TagRemover {
    /// Removes `tag` from `repo`. An absent tag is no error (and no change).
    /// In check mode only reads happen and the method that would be tried
    /// first is reported.
    pub async fn remove(
        &self,
        client: &RegistryClient,
        repo: &str,
        tag: &str,
        method: RemoveMethod,
        web: &WebApi,
        check_mode: bool,
    ) -> Result<Removal, Error> {
        let before = client.manifest_digest(repo, tag).await?;
        let Some(before) = before else {
            return Ok(Removal {
                tag: tag.to_string(),
                before: None,
                method: None,
            });
        };
        let registry = client.registry().to_string();
        let candidates = candidates(method, web, &registry);
        let name = format!("{registry}/{repo}:{tag}");
        if check_mode {
            return self.predict(client, repo, &name, &candidates, method).await.map(|m| Removal {
                tag: tag.to_string(),
                before: Some(before.to_string()),
                method: Some(m),
            });
        }
        let mut refusals = Vec::new();
        for m in candidates {
            let attempt = match m {
                RemoveMethod::Oci => client.delete_tag_oci(repo, tag).await,
                RemoveMethod::Quay => self.quay_delete(client, repo, tag, web).await,
                RemoveMethod::Dockerhub => self.hub_delete(client, repo, tag, web).await,
                RemoveMethod::Overwrite => self.overwrite(client, repo, tag).await,
                RemoveMethod::Auto => unreachable!("auto expands to methods"),
            };
            match attempt {
                Ok(()) => {
                    log::info(&format!("{name}: removed ({m:?})"));
                    return Ok(Removal {
                        tag: tag.to_string(),
                        before: Some(before.to_string()),
                        method: Some(m),
                    });
                }
                Err(e) if method == RemoveMethod::Auto && !e.is_temporary() => {
                    log::info(&format!("{name}: {m:?} removal refused: {e}"));
                    refusals.push(format!("{}: {e}", format!("{m:?}").to_lowercase()));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(ErrorKind::Protocol(format!(
            "cannot remove tag {name}: every method was refused ({})",
            refusals.join("; ")
        ))))
    }

    /// Check mode: the method that would remove the tag, found with probes
    /// that write nothing.
    async fn predict(
        &self,
        client: &RegistryClient,
        repo: &str,
        name: &str,
        candidates: &[RemoveMethod],
        method: RemoveMethod,
    ) -> Result<RemoveMethod, Error> {
        for m in candidates {
            let works = match m {
                RemoveMethod::Quay | RemoveMethod::Dockerhub => true,
                RemoveMethod::Oci => self.oci_probe(client, repo).await?,
                RemoveMethod::Overwrite => self.digest_delete_probe(client, repo).await?,
                RemoveMethod::Auto => false,
            };
            if works || method != RemoveMethod::Auto {
                return Ok(*m);
            }
        }
        Err(Error::new(ErrorKind::Protocol(format!(
            "cannot remove tag {name}: {} supports no removal method",
            client.registry()
        ))))
    }

    async fn quay_delete(&self, client: &RegistryClient, repo: &str, tag: &str, web: &WebApi) -> Result<(), Error> {
        let token = web
            .api_token
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Credentials("the quay method needs an API token (api_token)".into())))?;
        let url = format!("{}/api/v1/repository/{repo}/tag/{tag}", web.quay_base(client.registry()));
        client
            .web_json(Method::DELETE, &url, Some(&format!("Bearer {}", token.expose())), None)
            .await
            .map(|_| ())
    }

    async fn hub_token(&self, client: &RegistryClient, web: &WebApi) -> Result<Secret, Error> {
        let base = web.hub_base();
        let mut tokens = self.hub_tokens.lock().await;
        if let Some(t) = tokens.get(&base) {
            return Ok(t.clone());
        }
        let (Some(user), Some(pass)) = (&web.username, &web.password) else {
            return Err(Error::new(ErrorKind::Credentials(
                "the dockerhub method needs a username and password".into(),
            )));
        };
        let answer = client
            .web_json(
                Method::POST,
                &format!("{base}/v2/users/login/"),
                None,
                Some(serde_json::json!({"username": user, "password": pass.expose()})),
            )
            .await
            .map_err(|e| match e.status() {
                Some(401 | 403) => Error::new(ErrorKind::Unauthorized {
                    registry: base.clone(),
                    detail: format!("Docker Hub refused the login of user '{user}'"),
                }),
                _ => e,
            })?;
        let token = answer["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::new(ErrorKind::Protocol(format!("{base} login answer holds no token"))))?;
        let token = Secret::new(token);
        tokens.insert(base, token.clone());
        Ok(token)
    }

    async fn hub_delete(&self, client: &RegistryClient, repo: &str, tag: &str, web: &WebApi) -> Result<(), Error> {
        let token = self.hub_token(client, web).await?;
        let url = format!("{}/v2/repositories/{repo}/tags/{tag}/", web.hub_base());
        client
            .web_json(Method::DELETE, &url, Some(&format!("Bearer {}", token.expose())), None)
            .await
            .map(|_| ())
    }

    /// Pushes a unique manifest (the empty config, no layers, a random
    /// annotation) under `tag` and returns it.
    async fn push_throwaway(&self, client: &RegistryClient, repo: &str, tag: &str) -> Result<Manifest, Error> {
        let config = client.put_blob_bytes(repo, Bytes::from_static(EMPTY_CONFIG)).await?;
        let nonce = format!(
            "{:?}-{}",
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default(),
            std::process::id()
        );
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": EMPTY_CONFIG_TYPE, "digest": config.as_str(), "size": EMPTY_CONFIG.len()},
            "layers": [],
            "annotations": {"org.imagegate.throwaway": nonce},
        });
        let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| Error::new(ErrorKind::Protocol(e.to_string())))?);
        let m = Manifest::from_bytes("throw-away manifest", bytes, Some(OCI_MANIFEST))?;
        client.put_manifest(repo, tag, &m).await?;
        Ok(m)
    }

    /// Whether this registry deletes manifests by digest. First without
    /// writing anything: deleting an unknown digest must be answered
    /// `MANIFEST_UNKNOWN` (zuul-registry answers a bare 404, distribution
    /// with deletion off 405). Then for real, on a throw-away manifest under
    /// a temporary tag, which must be gone afterwards.
    async fn probe_delete(&self, client: &RegistryClient, repo: &str) -> Result<bool, Error> {
        let key = client.registry().to_string();
        if let Some(known) = self.deletes_by_digest.lock().expect("probe cache").get(&key) {
            return Ok(*known);
        }
        let supported = self.digest_delete_probe(client, repo).await? && {
            let temp = format!(
                "imagegate-probe-{}",
                &Digest::of(format!("{:?}", SystemTime::now()).as_bytes()).as_str()[7..19]
            );
            let m = self.push_throwaway(client, repo, &temp).await?;
            client.delete_manifest(repo, &m.digest).await.is_ok() && client.manifest_digest(repo, &temp).await?.is_none()
        };
        self.deletes_by_digest.lock().expect("probe cache").insert(key, supported);
        Ok(supported)
    }

    /// Whether deleting an unknown digest is answered as a registry that
    /// deletes would (`MANIFEST_UNKNOWN`). Writes nothing.
    async fn digest_delete_probe(&self, client: &RegistryClient, repo: &str) -> Result<bool, Error> {
        let unknown = Digest::of(format!("imagegate probe {:?}", SystemTime::now()).as_bytes());
        match client.delete_manifest(repo, &unknown).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_temporary() => Err(e),
            Err(e) => Ok(crate::quirks::deletes_answered_as_supported(&e)),
        }
    }

    /// Whether the OCI tag delete is implemented: deleting an unknown tag
    /// must be answered `MANIFEST_UNKNOWN` (distribution 2.8 answers
    /// `DIGEST_INVALID`, zuul-registry a bare 404). Writes nothing.
    async fn oci_probe(&self, client: &RegistryClient, repo: &str) -> Result<bool, Error> {
        let unknown = format!(
            "imagegate-absent-{}",
            &Digest::of(format!("{:?}", SystemTime::now()).as_bytes()).as_str()[7..19]
        );
        match client.delete_tag_oci(repo, &unknown).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_temporary() => Err(e),
            Err(e) => Ok(crate::quirks::deletes_answered_as_supported(&e)),
        }
    }

    async fn overwrite(&self, client: &RegistryClient, repo: &str, tag: &str) -> Result<(), Error> {
        if !self.probe_delete(client, repo).await? {
            return Err(Error::new(ErrorKind::Protocol(format!(
                "{} does not delete manifests by digest, so a tag cannot be overwritten and dropped safely",
                client.registry()
            ))));
        }
        let m = self.push_throwaway(client, repo, tag).await?;
        client.delete_manifest(repo, &m.digest).await
    }
}

/// A tag with its age, as the registry (or the image) tells it.
#[derive(Debug, Clone, Serialize)]
pub struct TagAge {
    pub tag: String,
    pub age_seconds: u64,
    /// `quay`, `dockerhub` (web API timestamps) or `created` (image config).
    pub source: &'static str,
}

impl TagRemover {
    /// Tags of `repo` matching `pattern`, with their ages: from Quay's or
    /// Docker Hub's web API where one is set up, else from each image's
    /// `created`. A Docker Hub login is shared with the removals that follow.
    pub async fn tag_ages(&self, client: &RegistryClient, repo: &str, pattern: &regex::Regex, web: &WebApi) -> Result<Vec<TagAge>, Error> {
        let registry = client.registry();
        if web.is_quay(registry) && web.api_token.is_some() {
            return quay_tag_ages(client, repo, pattern, web).await;
        }
        if web.is_dockerhub(registry) && web.password.is_some() {
            let token = self.hub_token(client, web).await?;
            return hub_tag_ages(client, repo, pattern, web, &token).await;
        }
        let mut out = Vec::new();
        for tag in client.list_tags(repo).await?.tags {
            if !pattern.is_match(&tag) {
                continue;
            }
            let created = image_created(client, repo, &tag).await?;
            out.push(TagAge {
                tag,
                age_seconds: age_of(created),
                source: "created",
            });
        }
        Ok(out)
    }
}

/// Seconds from `ts` (unix seconds) to now; none for a time to come.
fn age_of(ts: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    (now - ts).max(0) as u64
}

/// Tag ages from Quay's API (`start_ts`), page by page, bounded.
async fn quay_tag_ages(client: &RegistryClient, repo: &str, pattern: &regex::Regex, web: &WebApi) -> Result<Vec<TagAge>, Error> {
    let registry = client.registry();
    let token = format!("Bearer {}", web.api_token.as_ref().map(Secret::expose).unwrap_or_default());
    let mut out = Vec::new();
    let mut previous: Option<Vec<String>> = None;
    for page in 1..=MAX_WEB_PAGES {
        let url = format!(
            "{}/api/v1/repository/{repo}/tag/?onlyActiveTags=true&limit={WEB_PAGE}&page={page}",
            web.quay_base(registry)
        );
        let answer = client.web_json(Method::GET, &url, Some(&token), None).await?;
        let entries = web_page_entries(registry, "Quay", &answer, "tags")?;
        let names: Vec<String> = entries.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect();
        if !names.is_empty() && previous.as_ref() == Some(&names) {
            return Err(web_paging(registry, "Quay sent the same page twice (a pagination loop)"));
        }
        previous = Some(names);
        for t in entries {
            if let (Some(name), Some(ts)) = (t["name"].as_str().filter(|n| is_valid_tag(n)), t["start_ts"].as_i64()) {
                if pattern.is_match(name) {
                    out.push(TagAge {
                        tag: name.to_string(),
                        age_seconds: age_of(ts),
                        source: "quay",
                    });
                }
            }
        }
        if answer["has_additional"].as_bool() != Some(true) {
            return Ok(out);
        }
    }
    Err(web_paging(registry, &format!("Quay has more than {MAX_WEB_PAGES} pages of tags")))
}

/// Tag ages from Docker Hub's API (`last_updated`), following its `next`
/// pages on its own origin only, bounded.
async fn hub_tag_ages(
    client: &RegistryClient,
    repo: &str,
    pattern: &regex::Regex,
    web: &WebApi,
    token: &Secret,
) -> Result<Vec<TagAge>, Error> {
    let registry = client.registry();
    let auth = format!("Bearer {}", token.expose());
    let base = web.hub_base();
    let origin = url::Url::parse(&base).map(|u| u.origin());
    let mut url = format!("{base}/v2/repositories/{repo}/tags/?page_size={WEB_PAGE}");
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for _ in 0..MAX_WEB_PAGES {
        if !seen.insert(url.clone()) {
            return Err(web_paging(registry, "Docker Hub named the same page twice (a pagination loop)"));
        }
        let answer = client.web_json(Method::GET, &url, Some(&auth), None).await?;
        for t in web_page_entries(registry, "Docker Hub", &answer, "results")? {
            if let (Some(name), Some(ts)) = (
                t["name"].as_str().filter(|n| is_valid_tag(n)),
                t["last_updated"].as_str().and_then(parse_rfc3339),
            ) {
                if pattern.is_match(name) {
                    out.push(TagAge {
                        tag: name.to_string(),
                        age_seconds: age_of(ts),
                        source: "dockerhub",
                    });
                }
            }
        }
        match answer["next"].as_str() {
            Some(next) if !next.is_empty() => {
                // The API token goes with the next page, so the page must be
                // on the API's own origin.
                if url::Url::parse(next).map(|u| u.origin()).ok() != origin.clone().ok() {
                    return Err(web_paging(
                        registry,
                        &format!(
                            "Docker Hub named a next page off its origin ({}); refused",
                            crate::error::untrusted_text(&crate::error::redact_url(next), 200)
                        ),
                    ));
                }
                url = next.to_string();
            }
            _ => return Ok(out),
        }
    }
    Err(web_paging(
        registry,
        &format!("Docker Hub has more than {MAX_WEB_PAGES} pages of tags"),
    ))
}

/// The `created` time (unix seconds) of the image a tag points at; for an
/// index, of its first image.
async fn image_created(client: &RegistryClient, repo: &str, tag: &str) -> Result<i64, Error> {
    let mut m = client.get_manifest(repo, tag).await?;
    let name = format!("{}/{repo}:{tag}", client.registry());
    if let Parsed::Index { manifests } = m.parse(&name)? {
        let first = manifests.first().ok_or_else(|| {
            Error::new(ErrorKind::InvalidManifest {
                reference: name.clone(),
                reason: "an empty index".into(),
            })
        })?;
        m = client.get_manifest(repo, &first.digest).await?;
    }
    let Parsed::Image { config, .. } = m.parse(&name)? else {
        return Err(Error::new(ErrorKind::InvalidManifest {
            reference: name,
            reason: "an index inside an index".into(),
        }));
    };
    let bytes = client.get_blob_bytes(repo, &config.digest, 4 * 1024 * 1024).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    value["created"].as_str().and_then(parse_rfc3339).ok_or_else(|| {
        Error::new(ErrorKind::InvalidManifest {
            reference: name,
            reason: "the image config has no 'created' time, so its age is unknown".into(),
        })
    })
}

/// Parses an RFC 3339 time (`2024-05-01T12:00:00.123Z`, `...+02:00`) to
/// unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, da): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (c, sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60))
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.split(':');
    let (h, mi, se): (i64, i64, i64) = (c.next()?.parse().ok()?, c.next()?.parse().ok()?, c.next()?.parse().ok()?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Seconds as a short human string.
pub fn human_age(secs: u64) -> String {
    let d = Duration::from_secs(secs);
    match secs {
        s if s >= 86_400 => format!("{:.1} days", d.as_secs_f64() / 86_400.0),
        s if s >= 3600 => format!("{:.1} hours", d.as_secs_f64() / 3600.0),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_rfc3339("2024-05-01T12:30:15.123456789Z"), Some(1_714_566_615));
        assert_eq!(parse_rfc3339("2024-05-01T14:30:15+02:00"), Some(1_714_566_615));
        assert_eq!(parse_rfc3339("2024-05-01T10:30:15-02:00"), Some(1_714_566_615));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn auto_guesses_web_apis_by_host() {
        let w = WebApi::default();
        assert!(w.is_quay("quay.io") && !w.is_quay("example.com"));
        assert!(w.is_dockerhub("docker.io"));
        let w = WebApi {
            kind: WebApiKind::from_type(Some("quay")),
            ..Default::default()
        };
        assert!(w.is_quay("registry.example.com") && !w.is_dockerhub("docker.io"));
        assert_eq!(w.quay_base("registry.example.com"), "https://registry.example.com");
        let w = WebApi {
            kind: WebApiKind::from_type(Some("dockerhub")),
            ..Default::default()
        };
        assert!(w.is_dockerhub("registry.example.com"));
        let w = WebApi {
            kind: WebApiKind::from_type(Some("generic")),
            ..Default::default()
        };
        assert!(!w.is_quay("quay.io") && !w.is_dockerhub("docker.io"), "another type: no web API");
    }
}
