//! Manifests as exact bytes plus the few fields we read from them. Bytes are
//! never re-serialised on a copy: the digest is the sha256 of those bytes.

use bytes::Bytes;
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The `Accept` header for manifest requests: every type we can copy.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

/// Layer types that registries do not serve (Windows base layers): they are
/// referenced by URL and never copied.
const FOREIGN_LAYERS: [&str; 3] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

/// A manifest exactly as the registry served it.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Whether `spec` (`os/arch[/variant]`) names this platform. A spec
    /// without a variant matches every variant.
    pub fn matches(&self, spec: &str) -> bool {
        let mut parts = spec.split('/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        os == Some(self.os.as_str())
            && arch == Some(self.architecture.as_str())
            && (variant.is_none() || variant == self.variant.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Whether the blob is one registries do not hold.
    pub fn is_foreign(&self) -> bool {
        FOREIGN_LAYERS.contains(&self.media_type.as_str()) && !self.urls.is_empty()
    }
}

/// What a manifest references.
#[derive(Debug)]
pub enum Parsed {
    Image { config: Descriptor, layers: Vec<Descriptor> },
    Index { manifests: Vec<Descriptor> },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Wraps bytes served under `content_type`; the media type is the
    /// content type if it is a manifest type, else the `mediaType` field.
    pub fn from_bytes(reference: &str, bytes: Bytes, content_type: Option<&str>) -> Result<Self, Error> {
        let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        // An answer that says it is something else (an HTML page from a
        // captive portal or a login proxy) is refused before any parsing.
        // Generic types (`application/json`, `application/octet-stream`) and
        // no type at all leave the manifest's own mediaType to say.
        let generic = |c: &str| c.is_empty() || c == "application/json" || c == "application/octet-stream";
        if let Some(c) = ct.as_deref().filter(|c| !generic(c) && !is_manifest_type(c)) {
            return Err(Error::new(ErrorKind::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: crate::error::untrusted_text(c, 100),
            }));
        }
        let raw: Raw = serde_json::from_slice(&bytes).map_err(|e| invalid(reference, format!("not JSON: {e}")))?;
        let media_type = match ct {
            Some(c) if is_manifest_type(&c) => c,
            _ => match (&raw.media_type, &raw.manifests, &raw.config) {
                (Some(m), _, _) => m.clone(),
                (None, Some(_), _) => OCI_INDEX.to_string(),
                (None, None, Some(_)) => OCI_MANIFEST.to_string(),
                _ => {
                    return Err(Error::new(ErrorKind::UnsupportedMediaType {
                        reference: reference.to_string(),
                        media_type: ct.unwrap_or_else(|| "(none)".into()),
                    }))
                }
            },
        };
        if raw.schema_version == Some(1) || !is_manifest_type(&media_type) {
            return Err(Error::new(ErrorKind::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type,
            }));
        }
        Ok(Self {
            digest: Digest::of(&bytes),
            bytes,
            media_type,
        })
    }

    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_MANIFEST_LIST
    }

    /// The blobs or child manifests this manifest references.
    pub fn parse(&self, reference: &str) -> Result<Parsed, Error> {
        let raw: Raw = serde_json::from_slice(&self.bytes).map_err(|e| invalid(reference, format!("not JSON: {e}")))?;
        let check = |d: &Descriptor| Digest::parse(&d.digest).map(|_| ()).map_err(|e| invalid(reference, e.to_string()));
        if self.is_index() {
            let manifests = raw
                .manifests
                .ok_or_else(|| invalid(reference, "an index without 'manifests'".into()))?;
            manifests.iter().try_for_each(check)?;
            Ok(Parsed::Index { manifests })
        } else {
            let config = raw
                .config
                .ok_or_else(|| invalid(reference, "an image manifest without 'config'".into()))?;
            let layers = raw.layers.unwrap_or_default();
            check(&config)?;
            layers.iter().try_for_each(check)?;
            Ok(Parsed::Image { config, layers })
        }
    }

    /// An index holding only the children whose platform matches one of
    /// `platforms`. The result is a new manifest with a new digest; key order
    /// and other fields are kept.
    pub fn filter_platforms(&self, reference: &str, platforms: &[String]) -> Result<Self, Error> {
        let mut value: serde_json::Value = serde_json::from_slice(&self.bytes).map_err(|e| invalid(reference, e.to_string()))?;
        let list = value
            .get_mut("manifests")
            .and_then(|m| m.as_array_mut())
            .ok_or_else(|| invalid(reference, "an index without 'manifests'".into()))?;
        list.retain(|child| {
            child
                .get("platform")
                .and_then(|p| serde_json::from_value::<Platform>(p.clone()).ok())
                .is_some_and(|p| platforms.iter().any(|spec| p.matches(spec)))
        });
        if list.is_empty() {
            return Err(Error::new(ErrorKind::NotFound {
                reference: reference.to_string(),
                detail: Some(format!("no manifest in the index matches platforms {}", platforms.join(", "))),
            }));
        }
        let bytes = Bytes::from(serde_json::to_vec_pretty(&value).map_err(|e| invalid(reference, e.to_string()))?);
        Ok(Self {
            digest: Digest::of(&bytes),
            bytes,
            media_type: self.media_type.clone(),
        })
    }
}

pub fn is_manifest_type(t: &str) -> bool {
    matches!(t, DOCKER_MANIFEST | DOCKER_MANIFEST_LIST | OCI_MANIFEST | OCI_INDEX)
}

fn invalid(reference: &str, reason: String) -> Error {
    Error::new(ErrorKind::InvalidManifest {
        reference: reference.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn index() -> Manifest {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":20,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        Manifest::from_bytes("r", Bytes::from(body), Some("application/vnd.oci.image.index.v1+json")).unwrap()
    }

    #[test]
    fn media_type_and_digest_follow_the_bytes() {
        let m = index();
        assert!(m.is_index());
        assert_eq!(m.digest, Digest::of(&m.bytes));
        let Parsed::Index { manifests } = m.parse("r").unwrap() else {
            panic!()
        };
        assert_eq!(manifests.len(), 2);
        // No content type from the server: taken from the body.
        let m2 = Manifest::from_bytes("r", m.bytes.clone(), Some("application/octet-stream")).unwrap();
        assert_eq!(m2.media_type, OCI_INDEX);
    }

    #[test]
    fn filters_platforms() {
        let m = index();
        let f = m.filter_platforms("r", &["linux/arm64".into()]).unwrap();
        let Parsed::Index { manifests } = f.parse("r").unwrap() else {
            panic!()
        };
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].digest, D2);
        assert_ne!(f.digest, m.digest);
        // Deterministic, so repeated mirrors stay idempotent.
        assert_eq!(m.filter_platforms("r", &["linux/arm64".into()]).unwrap().digest, f.digest);
        assert!(m.filter_platforms("r", &["linux/arm64/v7".into()]).is_err());
        assert!(m.filter_platforms("r", &["windows/amd64".into()]).is_err());
    }

    #[test]
    fn rejects_schema1_and_garbage() {
        let s1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(Manifest::from_bytes("r", Bytes::from_static(s1), None).is_err());
        assert!(Manifest::from_bytes("r", Bytes::from_static(b"<html>"), None).is_err());
        let bad = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"nope","size":1}},"layers":[]}}"#);
        let m = Manifest::from_bytes("r", Bytes::from(bad), None).unwrap();
        assert!(m.parse("r").is_err());
        // A page that says it is not a manifest is refused by its type,
        // whatever its body; JSON or no type leaves mediaType to say.
        let ok = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"x","size":1}},"layers":[]}}"#);
        let e = Manifest::from_bytes("r", Bytes::from(ok.clone()), Some("text/html; charset=utf-8")).unwrap_err();
        assert!(e.to_string().contains("'text/html'"), "{e}");
        for kind in [None, Some("application/json"), Some(OCI_MANIFEST)] {
            assert!(Manifest::from_bytes("r", Bytes::from(ok.clone()), kind).is_ok(), "{kind:?}");
        }
    }
}
