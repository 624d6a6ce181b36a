//! Reading an OCI image layout directory (what `podman push oci:` and
//! `buildah push oci:` write): `oci-layout`, `index.json`, `blobs/sha256/`.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::manifest::Manifest;

/// The annotation naming an image in a layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// A layout manifest larger than this is refused, as registries do.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

pub struct OciLayout {
    root: PathBuf,
    index: serde_json::Value,
}

impl OciLayout {
    pub fn open(root: &Path) -> Result<Self, Error> {
        let bad = |reason: String| {
            Error::new(ErrorKind::InvalidManifest {
                reference: root.display().to_string(),
                reason,
            })
        };
        if !root.join("oci-layout").is_file() {
            return Err(bad("not an OCI image layout (no oci-layout file)".into()));
        }
        let text = std::fs::read(root.join("index.json")).map_err(|e| Error::io(root.join("index.json").display(), e))?;
        let index = serde_json::from_slice(&text).map_err(|e| bad(format!("index.json is not JSON: {e}")))?;
        Ok(Self {
            root: root.to_path_buf(),
            index,
        })
    }

    /// The names (`ref.name` annotations) of the images in the layout.
    pub fn names(&self) -> Vec<String> {
        self.entries()
            .filter_map(|e| e["annotations"][REF_NAME].as_str().map(str::to_string))
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = &serde_json::Value> {
        self.index["manifests"].as_array().into_iter().flatten()
    }

    /// The top manifest of the image named `name`, or of the only image if
    /// no name is given.
    pub fn resolve(&self, name: Option<&str>) -> Result<Manifest, Error> {
        let entries: Vec<&serde_json::Value> = self.entries().collect();
        let entry = match name {
            Some(n) => entries.iter().find(|e| e["annotations"][REF_NAME].as_str() == Some(n)).copied(),
            None if entries.len() == 1 => entries.first().copied(),
            None => {
                return Err(Error::new(ErrorKind::NotFound {
                    reference: self.root.display().to_string(),
                    detail: Some(format!(
                        "the layout holds {} images; name one of: {}",
                        entries.len(),
                        self.names().join(", ")
                    )),
                }))
            }
        };
        let entry = entry.ok_or_else(|| {
            Error::new(ErrorKind::NotFound {
                reference: format!("{}:{}", self.root.display(), name.unwrap_or_default()),
                detail: Some(format!("the layout names: {}", self.names().join(", "))),
            })
        })?;
        let digest = entry["digest"].as_str().unwrap_or_default();
        self.manifest(digest, entry["mediaType"].as_str())
    }

    /// A manifest stored in the layout, checked against its digest.
    pub fn manifest(&self, digest: &str, media_type: Option<&str>) -> Result<Manifest, Error> {
        let path = self.blob_path(digest)?;
        let size = std::fs::metadata(&path).map_err(|e| Error::io(path.display(), e))?.len();
        if size > MAX_MANIFEST {
            return Err(Error::new(ErrorKind::InvalidManifest {
                reference: digest.to_string(),
                reason: format!("{size} bytes is too large for a manifest"),
            }));
        }
        let bytes = Bytes::from(std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?);
        let m = Manifest::from_bytes(&format!("{}@{digest}", self.root.display()), bytes, media_type)?;
        if m.digest.as_str() != digest {
            return Err(Error::new(ErrorKind::DigestMismatch {
                what: format!("manifest {}", path.display()),
                expected: digest.to_string(),
                actual: m.digest.to_string(),
            }));
        }
        Ok(m)
    }

    /// Where a blob lives (`blobs/sha256/<hex>`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        let d = Digest::parse(digest)?;
        Ok(self.root.join("blobs/sha256").join(&d.as_str()[7..]))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}
