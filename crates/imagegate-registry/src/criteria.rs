//! Promotion criteria: before a set of images moves, named Zuul jobs must
//! have succeeded for exactly the digests about to move, as a Zuul builds
//! API (`<api>/builds?job_name=..&project=..&ref=..`) reports.
//!
//! A build counts for an image when it returned an artifact whose metadata
//! has `type: imagegate_stage` and maps the image to the digest
//! (`metadata.images: {<registry/repository>: <digest>}`); the jobs that
//! test a stage record it with `zuul_return`. Only the metadata the API
//! returns inline is read: an artifact's `url` is never fetched.
//!
//! The API is untrusted input. Its requests go through their own
//! [`Transport`] (the engine's one retry loop and answer deadline), pinned
//! to the API's origin: no Authorization header of any kind, registry
//! credentials never (they live in other transports), and a redirect to
//! another origin is refused. Each answer is read to at most
//! [`MAX_ANSWER`] bytes, at most [`MAX_PAGES`] pages per job, and the whole
//! check ends after [`DEFAULT_DEADLINE`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::digest::Digest;
use crate::error::{redact_url, untrusted_text, Error, ErrorKind};
use crate::stats::Stats;
use crate::transport::{read_limited, RegistryConfig, Request, Transport, TransportOptions};

/// The artifact type that ties a build to the images it tested.
pub const STAGE_ARTIFACT: &str = "imagegate_stage";
/// Builds asked for per page (what `promote-set.yaml` asked for in one
/// query before the check moved into the module).
const PAGE: usize = 500;
/// Pages read per job at most: the newest 2000 builds of a job cover weeks
/// of a busy promotion pipeline; a build older than that tested a stage long
/// replaced.
pub const MAX_PAGES: usize = 4;
/// One page read at most this far: 500 builds with their artifacts take a
/// few MiB; more is not a builds list.
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The whole check (every job, every page, retries included) ends after this
/// long: a promotion must not hang on a Zuul that answers slowly forever.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

/// What must have succeeded, and where to ask.
#[derive(Debug, Clone)]
pub struct ZuulCriteria {
    /// The tenant's API root, `https://zuul.example.com/api/tenant/<t>`.
    pub api: Url,
    pub project: Option<String>,
    pub git_ref: Option<String>,
    pub jobs: Vec<String>,
    /// The pipelines whose builds count ([`build_origin`]); empty: only
    /// builds with no change attached (post-merge, periodic, tag events).
    pub pipelines: Vec<String>,
    /// Extra CA certificates (PEM) for the API's TLS.
    pub ca_cert: Option<PathBuf>,
    pub tls_verify: bool,
    /// The whole check ends after this long.
    pub deadline: Duration,
}

impl ZuulCriteria {
    /// Checks an API root given as text: an `http` or `https` URL with a
    /// host, without credentials, query or fragment. The reason is for a
    /// person.
    pub fn parse_api(text: &str) -> Result<Url, &'static str> {
        let url = Url::parse(text.trim()).map_err(|_| "not a URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL");
        }
        match url.host_str() {
            Some(h) if !h.is_empty() => {}
            _ => return Err("has no host"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials (the builds API is read without any)");
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must be the tenant's API root (https://zuul.example.com/api/tenant/<tenant>), without a query");
        }
        Ok(url)
    }
}

/// One image about to move, and the digest it would move to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    /// `registry/repository`, as the jobs record it.
    pub image: String,
    pub digest: Digest,
}

/// A job that succeeded for an image.
#[derive(Debug, Clone, Serialize)]
pub struct Met {
    pub job: String,
    pub image: String,
    pub digest: String,
    /// The build's `uuid`, if the API gave one.
    pub build: Option<String>,
    /// The pipeline it ran in, and its change (none: it ran merged code).
    pub pipeline: Option<String>,
    pub change: Option<String>,
}

/// A job that did not succeed for an image: `results` lists the results of
/// its builds for that image (none: the job never ran for it).
#[derive(Debug, Clone, Serialize)]
pub struct Unmet {
    pub job: String,
    pub image: String,
    pub digest: String,
    pub results: Vec<String>,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.results.is_empty() {
            write!(f, "{} missing for {}@{}", self.job, self.image, self.digest)
        } else {
            write!(
                f,
                "{} failed ({}) for {}@{}",
                self.job,
                self.results.join(", "),
                self.image,
                self.digest
            )
        }
    }
}

/// The answer for every job and image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub met: Vec<Met>,
    pub unmet: Vec<Unmet>,
    /// Builds read from the API, over every job and page.
    pub builds_read: usize,
}

/// Checks every job of `criteria` for every candidate. `Ok` holds the
/// verdict, met or not; `Err` is an API that could not be asked or answered
/// with something other than builds (no promotion should follow either).
pub async fn check(criteria: &ZuulCriteria, candidates: &[Candidate], options: &TransportOptions, stats: &Stats) -> Result<Verdict, Error> {
    let api = ZuulApi::new(criteria, options)?;
    let mut wanted: Vec<Candidate> = candidates.to_vec();
    wanted.sort();
    wanted.dedup();
    let what = redact_url(criteria.api.as_str());
    match tokio::time::timeout(criteria.deadline, api.verdict(criteria, &wanted, stats)).await {
        Ok(v) => v,
        Err(_) => Err(Error::new(ErrorKind::Timeout {
            url: format!("the promotion criteria from {what}"),
            secs: criteria.deadline.as_secs(),
        })),
    }
}

struct ZuulApi {
    transport: Transport,
    api: Url,
}

impl ZuulApi {
    fn new(criteria: &ZuulCriteria, options: &TransportOptions) -> Result<Self, Error> {
        let api = &criteria.api;
        let host = match (api.host_str(), api.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(Error::new(ErrorKind::Protocol(format!(
                    "the Zuul API URL {} has no host",
                    redact_url(api.as_str())
                ))))
            }
        };
        let config = RegistryConfig {
            plain_http: api.scheme() == "http",
            tls_verify: criteria.tls_verify,
            ca_cert: criteria.ca_cert.clone(),
            // Never any: registry credentials stay with the registries.
            credential: None,
        };
        let transport = Transport::new(&host, &config, options)?;
        Ok(Self {
            transport,
            api: api.clone(),
        })
    }

    /// The builds URL for one page of one job.
    fn builds_url(&self, criteria: &ZuulCriteria, job: &str, skip: usize) -> Url {
        let mut url = self.api.clone();
        let path = format!("{}/builds", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(None);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("job_name", job);
            if let Some(p) = &criteria.project {
                q.append_pair("project", p);
            }
            if let Some(r) = &criteria.git_ref {
                q.append_pair("ref", r);
            }
            q.append_pair("limit", &PAGE.to_string());
            if skip > 0 {
                q.append_pair("skip", &skip.to_string());
            }
        }
        url
    }

    /// One page of builds: a JSON list, read whole within the answer
    /// deadline and the size bound, retried as the transport retries.
    async fn page(&self, url: &Url, stats: &Stats) -> Result<Vec<Value>, Error> {
        let req = Request::pinned(Method::GET, url.as_str()).header(ACCEPT, "application/json");
        let what = format!("GET {}", redact_url(url.as_str()));
        let bytes = self
            .transport
            .retrying(&what, stats, || {
                self.transport.limits().answer(&what, async {
                    let resp = self.transport.send_once(&req, None).await?;
                    let from = resp.url().clone();
                    read_limited(resp, MAX_ANSWER).await.map_err(|e| match e {
                        Some(e) => self.transport.transport_error(&from, e),
                        None => Error::new(ErrorKind::Protocol(format!(
                            "{what}: answer larger than {MAX_ANSWER} bytes; not a list of builds"
                        ))),
                    })
                })
            })
            .await
            .map_err(|e| self.tls_hint(e))?;
        // Parsed with a bound on what is kept, not only on what is read: a
        // page of tiny values within the byte cap is refused while parsed.
        match crate::bounded::from_slice(&bytes, crate::bounded::DEFAULT_BUDGET) {
            Ok(Value::Array(builds)) => Ok(builds),
            Ok(_) => Err(Error::new(ErrorKind::Protocol(format!(
                "{what} answered with something other than a list of builds"
            )))),
            Err(e @ crate::bounded::BoundedError::TooLarge { .. }) => {
                Err(Error::new(ErrorKind::Protocol(format!("{what}: not a list of builds: {e}"))))
            }
            Err(e) => Err(Error::new(ErrorKind::Protocol(format!(
                "{what} answered with something other than JSON: {e}"
            )))),
        }
    }

    /// A TLS failure named for the API, with the API's own settings as the
    /// fix (the transport's hint speaks of a registry).
    fn tls_hint(&self, e: Error) -> Error {
        match e.kind() {
            ErrorKind::Tls { detail, .. } => {
                let detail = detail.split(" (trust the registry's CA").next().unwrap_or(detail);
                Error::new(ErrorKind::Tls {
                    registry: format!("the Zuul API {}", self.api.origin().ascii_serialization()),
                    detail: format!("{detail} (trust the API's CA with its ca_cert, or turn its tls_verify off)"),
                })
            }
            _ => e,
        }
    }

    async fn verdict(&self, criteria: &ZuulCriteria, wanted: &[Candidate], stats: &Stats) -> Result<Verdict, Error> {
        let mut verdict = Verdict::default();
        for job in &criteria.jobs {
            // image@digest -> the successful build that counts, or the results seen.
            let mut success: BTreeMap<usize, Origin> = BTreeMap::new();
            let mut results: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            let mut skip = 0;
            for _ in 0..MAX_PAGES {
                let builds = self.page(&self.builds_url(criteria, job, skip), stats).await?;
                verdict.builds_read += builds.len();
                for build in &builds {
                    if !build_matches(build, job, criteria) {
                        continue;
                    }
                    let mut result = match &build["result"] {
                        Value::String(r) => untrusted_text(r, 40),
                        _ => "unfinished".to_string(),
                    };
                    let origin = build_origin(build, criteria);
                    if let (Err(why), "SUCCESS") = (&origin, result.as_str()) {
                        result = format!("SUCCESS not counted: {why}");
                    }
                    for i in tested(build, wanted) {
                        if let (Ok(origin), "SUCCESS") = (&origin, result.as_str()) {
                            success.entry(i).or_insert_with(|| origin.clone());
                        } else {
                            let seen = results.entry(i).or_default();
                            if !seen.contains(&result) {
                                seen.push(result.clone());
                            }
                        }
                    }
                }
                if success.len() == wanted.len() || builds.len() < PAGE {
                    break;
                }
                skip += builds.len();
            }
            for (i, c) in wanted.iter().enumerate() {
                match success.remove(&i) {
                    Some(origin) => verdict.met.push(Met {
                        job: job.clone(),
                        image: c.image.clone(),
                        digest: c.digest.to_string(),
                        build: origin.build,
                        pipeline: origin.pipeline,
                        change: origin.change,
                    }),
                    None => verdict.unmet.push(Unmet {
                        job: job.clone(),
                        image: c.image.clone(),
                        digest: c.digest.to_string(),
                        results: results.remove(&i).unwrap_or_default(),
                    }),
                }
            }
        }
        Ok(verdict)
    }
}

/// Whether a build the API returned is one of `job`'s within the filters
/// asked for: an API that ignores a filter must not make another job's (or
/// project's, or ref's) build count. A field the build lacks passes, as it
/// does in zuul-web's own filtering; newer Zuul nests `project` and `ref`
/// under `ref`.
fn build_matches(build: &Value, job: &str, criteria: &ZuulCriteria) -> bool {
    let field = |name: &str| match build.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => build.get("ref").and_then(|r| r.get(name)).and_then(Value::as_str),
    };
    let agrees = |name: &str, want: Option<&str>| match (want, field(name)) {
        (Some(want), Some(have)) => want == have,
        _ => true,
    };
    agrees("job_name", Some(job)) && agrees("project", criteria.project.as_deref()) && agrees("ref", criteria.git_ref.as_deref())
}

/// Where a build that may count ran: its uuid, pipeline and change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    build: Option<String>,
    pipeline: Option<String>,
    change: Option<String>,
}

/// Whether a build ran reviewed code, so that its success may count. A
/// build of an unmerged change in a pre-review pipeline (check) ran that
/// change's own job definitions: it could `zuul_return` any artifact and
/// succeed. So, with `criteria.pipelines` given, only builds of those
/// pipelines count (the operator names the post-review ones it trusts, such
/// as gate, promote or periodic); without it, only builds with no change
/// attached (post-merge, periodic, tag events). Zuul 14 gives the change as
/// `ref.change` (null without one), older Zuul as `change`; a build that
/// says neither is not known to be reviewed and does not count.
fn build_origin(build: &Value, criteria: &ZuulCriteria) -> Result<Origin, String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(untrusted_text(s, 80)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let pipeline = text(&build["pipeline"]);
    let change_field = build.get("change").or_else(|| build.get("ref").and_then(|r| r.get("change")));
    let change = change_field.and_then(text);
    let origin = Origin {
        build: build["uuid"].as_str().map(|u| untrusted_text(u, 80)),
        pipeline: pipeline.clone(),
        change: change.clone(),
    };
    let place = pipeline.as_deref().unwrap_or("an unnamed pipeline");
    if !criteria.pipelines.is_empty() {
        return match &pipeline {
            Some(p) if criteria.pipelines.contains(p) => Ok(origin),
            _ => Err(format!("it ran in {place}, not one of the pipelines the criteria trust")),
        };
    }
    match (change_field, change) {
        (Some(Value::Null), _) => Ok(origin),
        (Some(_), Some(c)) => Err(format!(
            "it ran change {c} in {place} before review (name the post-review pipelines to trust in criteria.pipelines)"
        )),
        _ => Err("the API does not say whether it ran a change".to_string()),
    }
}

/// The indexes of the candidates a build's stage artifacts map to their
/// digest.
fn tested(build: &Value, wanted: &[Candidate]) -> Vec<usize> {
    let Some(artifacts) = build["artifacts"].as_array() else {
        return Vec::new();
    };
    let stages: Vec<&serde_json::Map<String, Value>> = artifacts
        .iter()
        .filter(|a| a["metadata"]["type"] == STAGE_ARTIFACT)
        .filter_map(|a| a["metadata"]["images"].as_object())
        .collect();
    wanted
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            stages
                .iter()
                .any(|images| images.get(&c.image).and_then(Value::as_str) == Some(c.digest.as_str()))
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn criteria() -> ZuulCriteria {
        ZuulCriteria {
            api: Url::parse("https://zuul.example/api/tenant/rdo/").unwrap(),
            project: Some("rdo/promotion".into()),
            git_ref: Some("refs/heads/master".into()),
            jobs: vec!["ovb".into()],
            pipelines: vec![],
            ca_cert: None,
            tls_verify: true,
            deadline: DEFAULT_DEADLINE,
        }
    }

    #[test]
    fn api_roots() {
        assert!(ZuulCriteria::parse_api("https://zuul.example/api/tenant/rdo").is_ok());
        for bad in [
            "ftp://zuul.example/api",
            "https://u:p@zuul.example/api",
            "https://zuul.example/api/tenant/rdo/builds?job_name=x",
            "zuul.example/api",
        ] {
            assert!(ZuulCriteria::parse_api(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_builds_query_carries_the_filters() {
        let c = criteria();
        let api = ZuulApi::new(&c, &TransportOptions::default()).unwrap();
        assert_eq!(
            api.builds_url(&c, "tripleo ci", 500).as_str(),
            "https://zuul.example/api/tenant/rdo/builds?job_name=tripleo+ci&project=rdo%2Fpromotion&ref=refs%2Fheads%2Fmaster&limit=500&skip=500"
        );
    }

    #[test]
    fn only_a_stage_artifact_with_the_digest_counts() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let other = format!("sha256:{}", "b".repeat(64));
        let wanted = vec![
            Candidate {
                image: "r/a".into(),
                digest: d.clone(),
            },
            Candidate {
                image: "r/b".into(),
                digest: d.clone(),
            },
        ];
        let build = json!({"artifacts": [
            {"metadata": {"type": "imagegate_stage", "images": {"r/a": d.as_str(), "r/b": other}}},
            {"metadata": {"type": "container_image", "images": {"r/b": d.as_str()}}},
        ]});
        assert_eq!(tested(&build, &wanted), vec![0]);
        assert!(tested(&json!({"artifacts": "no"}), &wanted).is_empty());
    }

    #[test]
    fn a_build_of_another_job_project_or_ref_does_not_count() {
        let c = criteria();
        assert!(build_matches(&json!({"job_name": "ovb"}), "ovb", &c));
        assert!(!build_matches(&json!({"job_name": "standalone"}), "ovb", &c));
        assert!(!build_matches(&json!({"job_name": "ovb", "project": "other"}), "ovb", &c));
        assert!(build_matches(
            &json!({"job_name": "ovb", "ref": {"project": "rdo/promotion", "ref": "refs/heads/master"}}),
            "ovb",
            &c
        ));
        assert!(!build_matches(&json!({"job_name": "ovb", "ref": "refs/heads/stable"}), "ovb", &c));
    }

    #[test]
    fn only_builds_of_reviewed_code_count() {
        let post = json!({"uuid": "u1", "pipeline": "post", "ref": {"change": null, "ref": "refs/heads/main"}});
        let check = json!({"uuid": "u2", "pipeline": "check", "ref": {"change": 42, "ref": "refs/changes/42/1"}});
        let gate = json!({"uuid": "u3", "pipeline": "gate", "change": "43"});
        let silent = json!({"uuid": "u4", "pipeline": "post"});
        let none = ZuulCriteria {
            project: None,
            git_ref: None,
            ..criteria()
        };
        assert_eq!(build_origin(&post, &none).unwrap().pipeline.as_deref(), Some("post"));
        let why = build_origin(&check, &none).unwrap_err();
        assert!(why.contains("change 42 in check before review"), "{why}");
        assert!(build_origin(&gate, &none).is_err(), "a change's build needs its pipeline named");
        assert!(build_origin(&silent, &none).is_err(), "a build that says nothing of a change");
        let trusted = ZuulCriteria {
            pipelines: vec!["gate".into(), "post".into()],
            ..none.clone()
        };
        assert_eq!(build_origin(&gate, &trusted).unwrap().change.as_deref(), Some("43"));
        assert!(build_origin(&post, &trusted).is_ok());
        let why = build_origin(&check, &trusted).unwrap_err();
        assert!(why.contains("ran in check, not one of the pipelines"), "{why}");
    }

    #[test]
    fn unmet_criteria_read_as_the_playbook_wrote_them() {
        let mut u = Unmet {
            job: "ovb".into(),
            image: "r/a".into(),
            digest: "sha256:x".into(),
            results: vec![],
        };
        assert_eq!(u.to_string(), "ovb missing for r/a@sha256:x");
        u.results = vec!["FAILURE".into(), "unfinished".into()];
        assert_eq!(u.to_string(), "ovb failed (FAILURE, unfinished) for r/a@sha256:x");
    }
}
