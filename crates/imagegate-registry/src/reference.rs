//! Image references: `[registry[:port]/]repository[:tag][@digest]`, with the
//! Docker normalisation rules (`busybox` is `docker.io/library/busybox`).

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};

/// The registry name Docker uses when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves the Docker Hub registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

fn path_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // One component: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'.
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$").expect("static regex")
    })
}

fn tag_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static regex"))
}

fn host_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
            .expect("static regex")
    })
}

/// Whether `tag` is a valid tag name.
pub fn is_valid_tag(tag: &str) -> bool {
    tag_re().is_match(tag)
}

/// Checks a registry name (`host[:port]`) and normalises Docker Hub aliases.
pub fn normalize_registry(input: &str) -> Result<String, Error> {
    let host = input.trim_end_matches('/');
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host);
    if !host_re().is_match(host) {
        return Err(Error::new(ErrorKind::InvalidReference {
            input: input.to_string(),
            reason: "not a registry host name (expected host or host:port)",
        }));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    })
}

/// A parsed image reference. `registry` is normalised (`docker.io` for Docker
/// Hub) and `repository` includes `library/` for official Docker Hub images.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference. Neither tag nor digest is required; see
    /// [`Reference::tag_or_digest`].
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = |reason: &'static str| {
            Error::new(ErrorKind::InvalidReference {
                input: input.to_string(),
                reason,
            })
        };
        if input.is_empty() {
            return Err(bad("the reference is empty"));
        }
        if input.contains("://") {
            return Err(bad("a reference has no scheme (drop 'docker://' or 'https://')"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|_| bad("the digest after '@' is not sha256:<64 hex>"))?),
            ),
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if !is_valid_tag(tag) {
                return Err(bad(
                    "the tag must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
                ));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[') => (
                normalize_registry(first).map_err(|_| bad("the registry part is not a valid host[:port]"))?,
                path.to_string(),
            ),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if path.is_empty() {
            return Err(bad("the repository name is empty"));
        }
        if !path_re().is_match(&path) {
            return Err(bad(
                "the repository must be lowercase letters, digits and separators ('.', '_', '-', '/')",
            ));
        }
        if path.len() > 255 {
            return Err(bad("the repository name is longer than 255 characters"));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Parses a repository without tag or digest (`registry/name`).
    pub fn parse_repository(input: &str) -> Result<Self, Error> {
        let r = Self::parse(input)?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(Error::new(ErrorKind::InvalidReference {
                input: input.to_string(),
                reason: "expected a repository without tag or digest",
            }));
        }
        Ok(r)
    }

    /// The digest if there is one, else the tag, else `latest`.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// `registry/repository`.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The `host[:port]` that serves the registry API for `registry`.
    pub fn api_host(registry: &str) -> &str {
        if registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_normalisation() {
        let r = p("busybox");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", None)
        );
        assert_eq!(r.tag_or_digest(), "latest");
        assert_eq!(p("zuul/zuul-executor:9").repository, "zuul/zuul-executor");
        assert_eq!(p("docker.io/zuul/zuul:9").to_string(), "docker.io/zuul/zuul:9");
        assert_eq!(p("index.docker.io/busybox").to_string(), "docker.io/library/busybox");
        assert_eq!(Reference::api_host("docker.io"), "registry-1.docker.io");
    }

    #[test]
    fn hosts_ports_tags_digests() {
        let r = p("127.0.0.1:5000/a/b/c:v1.2");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "a/b/c", Some("v1.2"))
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = p(&format!("quay.io/x/y:t@{d}"));
        assert_eq!(r.digest.as_ref().unwrap().as_str(), d);
        assert_eq!(r.tag_or_digest(), d);
        let r = p("localhost/app");
        assert_eq!(r.registry, "localhost");
        let r = p("localhost:5000/app:latest");
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(p("[::1]:5000/app").registry, "[::1]:5000");
        assert_eq!(p("reg.example.com/app").with_tag("x").to_string(), "reg.example.com/app:x");
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "UPPER/case",
            "docker://quay.io/a",
            "quay.io/a:",
            "quay.io/a:-x",
            "quay.io/a@sha256:123",
            "quay.io/",
            "quay.io/a//b",
            "quay.io/a b",
            "bad_host:99999999/a",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should fail");
        }
        let e = Reference::parse("quay.io/Foo").unwrap_err().to_string();
        assert!(e.contains("quay.io/Foo") && e.contains("lowercase"), "{e}");
        assert!(Reference::parse_repository("quay.io/a:b").is_err());
    }
}
