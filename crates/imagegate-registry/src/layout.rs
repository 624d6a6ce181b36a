//! Reading an OCI image layout directory (what `podman push oci:` and
//! `buildah push oci:` write): `oci-layout`, `index.json`, `blobs/sha256/`.
//!
//! A layout is input from disk: a symlink in it could make a push read (and
//! upload) any file of the machine, and a FIFO or a device would block the
//! reader for ever. Every file of a layout is therefore resolved first and
//! must lie inside the layout, then opened without following a symlink and
//! without blocking, and the opened descriptor must be a regular file; only
//! then are its bytes read. See [`open_regular`].

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::manifest::{Manifest, Parsed};

/// The annotation naming an image in a layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// A layout manifest larger than this is refused, as registries do.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

pub struct OciLayout {
    root: PathBuf,
    /// `root` with every symlink resolved: what layout files must lie under.
    real_root: PathBuf,
    index: serde_json::Value,
}

/// Why a file is refused, or `None` for a regular file.
fn not_regular(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_block_device() || kind.is_char_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("not a regular file")
    }
}

fn unsafe_file(path: &Path, reason: impl Into<String>) -> Error {
    Error::new(ErrorKind::UnsafeFile {
        path: path.display().to_string(),
        reason: reason.into(),
    })
}

/// Opens `path` for reading only if it is a regular file: never through a
/// symlink in its last component (`O_NOFOLLOW`), without blocking on a FIFO
/// or a device (`O_NONBLOCK`), and checked with `fstat` on the opened
/// descriptor, so what is checked is what is read.
pub fn open_regular(path: &Path) -> Result<std::fs::File, Error> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => unsafe_file(path, "is a symbolic link"),
            _ => Error::io(path.display(), e),
        })?;
    let meta = file.metadata().map_err(|e| Error::io(path.display(), e))?;
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(unsafe_file(path, format!("is {what}, not a regular file")));
    }
    Ok(file)
}

impl OciLayout {
    pub fn open(root: &Path) -> Result<Self, Error> {
        let bad = |reason: String| {
            Error::new(ErrorKind::InvalidManifest {
                reference: root.display().to_string(),
                reason,
            })
        };
        let real_root = std::fs::canonicalize(root).map_err(|e| Error::io(root.display(), e))?;
        let mut layout = Self {
            root: root.to_path_buf(),
            real_root,
            index: serde_json::Value::Null,
        };
        match std::fs::symlink_metadata(root.join("oci-layout")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("not an OCI image layout (no oci-layout file)".into())),
            _ => drop(layout.open_file(&root.join("oci-layout"))?),
        }
        let text = layout.read_file(&root.join("index.json"), MAX_MANIFEST)?;
        layout.index = serde_json::from_slice(&text).map_err(|e| bad(format!("index.json is not JSON: {e}")))?;
        Ok(layout)
    }

    /// Resolves `path` (a file of this layout) and checks that it lies
    /// inside the layout; returns the resolved path, which holds no symlink.
    fn resolve_inside(&self, path: &Path) -> Result<PathBuf, Error> {
        let real = std::fs::canonicalize(path).map_err(|e| Error::io(path.display(), e))?;
        if !real.starts_with(&self.real_root) {
            return Err(unsafe_file(
                path,
                format!("leads outside the layout {} (to {})", self.root.display(), real.display()),
            ));
        }
        Ok(real)
    }

    /// Opens a file of the layout: inside it, and a regular file.
    fn open_file(&self, path: &Path) -> Result<std::fs::File, Error> {
        let real = self.resolve_inside(path)?;
        open_regular(&real).map_err(|e| match e.kind() {
            // Name the file as the layout names it, not its resolved path.
            ErrorKind::UnsafeFile { reason, .. } => unsafe_file(path, reason.clone()),
            _ => e,
        })
    }

    /// Reads a (small) file of the layout, refusing one larger than `max`.
    fn read_file(&self, path: &Path, max: u64) -> Result<Vec<u8>, Error> {
        let file = self.open_file(path)?;
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path.display(), e))?;
        if bytes.len() as u64 > max {
            return Err(Error::new(ErrorKind::InvalidManifest {
                reference: path.display().to_string(),
                reason: format!("larger than {max} bytes"),
            }));
        }
        Ok(bytes)
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
        let bytes = Bytes::from(self.read_file(&path, MAX_MANIFEST)?);
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

    /// The path to read the blob `digest` from, after checking that it lies
    /// inside the layout and is a regular file. The path returned holds no
    /// symlink; the reader opens it with [`open_regular`] again.
    pub fn checked_blob(&self, digest: &str) -> Result<PathBuf, Error> {
        let path = self.blob_path(digest)?;
        drop(self.open_file(&path)?);
        self.resolve_inside(&path)
    }

    /// Checks every file the image `manifest` needs from the layout (child
    /// manifests, configs, layers) before anything is read for a push, so a
    /// bad layout fails before the first upload. A blob that is missing is
    /// left to the push, which may find it in the registry already.
    pub fn check_files(&self, manifest: &Manifest) -> Result<(), Error> {
        let reference = format!("{}@{}", self.root.display(), manifest.digest);
        let present = |d: &str| -> Result<bool, Error> {
            let path = self.blob_path(d)?;
            Ok(std::fs::symlink_metadata(path).is_ok())
        };
        match manifest.parse(&reference)? {
            Parsed::Index { manifests } => {
                for child in manifests.iter().filter(|c| present(&c.digest).unwrap_or(true)) {
                    let m = self.manifest(&child.digest, Some(child.media_type.as_str()).filter(|t| !t.is_empty()))?;
                    self.check_files(&m)?;
                }
            }
            Parsed::Image { config, layers } => {
                for d in std::iter::once(&config).chain(layers.iter().filter(|l| !l.is_foreign())) {
                    if present(&d.digest)? {
                        self.checked_blob(&d.digest)?;
                    }
                }
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A layout of one image manifest (config and one layer); returns the
    /// layout and the layer's path.
    fn layout(dir: &Path) -> (PathBuf, PathBuf) {
        let root = dir.join("layout");
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let d = Digest::of(bytes);
            std::fs::write(blobs.join(&d.as_str()[7..]), bytes).unwrap();
            (d.to_string(), bytes.len())
        };
        let (config, config_len) = put(b"{}");
        let (layer, layer_len) = put(b"layer bytes");
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_len}],
        })
        .to_string();
        let (m, m_len) = put(manifest.as_bytes());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": crate::manifest::OCI_MANIFEST, "digest": m, "size": m_len}],
        });
        std::fs::write(root.join("index.json"), index.to_string()).unwrap();
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let layer_path = blobs.join(&layer[7..]);
        (root, layer_path)
    }

    /// Puts something at a blob's path (given the path and an outside file).
    type MakeFile = fn(&Path, &Path);

    fn check(root: &Path) -> Result<(), Error> {
        let l = OciLayout::open(root)?;
        let m = l.resolve(None)?;
        l.check_files(&m)
    }

    #[test]
    fn a_plain_layout_passes() {
        let dir = tempfile::tempdir().unwrap();
        let (root, _) = layout(dir.path());
        check(&root).unwrap();
    }

    #[test]
    fn files_leading_outside_or_not_regular_are_refused() {
        let cases: [(&str, MakeFile, &str); 4] = [
            ("symlink out", |p, outside| symlink(outside, p).unwrap(), "leads outside the layout"),
            (
                "fifo",
                |p, _| assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success()),
                "is a FIFO",
            ),
            ("directory", |p, _| std::fs::create_dir(p).unwrap(), "is a directory"),
            (
                "device",
                |p, _| {
                    // A character device inside the layout (mknod needs root;
                    // elsewhere a symlink to one, refused as leading outside).
                    let made = std::process::Command::new("mknod")
                        .arg(p)
                        .args(["c", "1", "3"])
                        .status()
                        .is_ok_and(|s| s.success());
                    if !made {
                        symlink("/dev/null", p).unwrap();
                    }
                },
                "is a device, not a regular file|leads outside the layout",
            ),
        ];
        for (what, make, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let outside = dir.path().join("outside");
            std::fs::write(&outside, "not the layout's").unwrap();
            let (root, layer) = layout(dir.path());
            std::fs::remove_file(&layer).unwrap();
            make(&layer, &outside);
            let e = check(&root).unwrap_err().to_string();
            assert!(
                e.contains(&layer.display().to_string()) && expected.split('|').any(|x| e.contains(x)),
                "{what}: {e}"
            );
            assert_eq!(std::fs::read_to_string(&outside).unwrap(), "not the layout's");
        }
    }

    #[test]
    fn index_and_marker_leading_outside_are_refused() {
        for name in ["index.json", "oci-layout"] {
            let dir = tempfile::tempdir().unwrap();
            let (root, _) = layout(dir.path());
            let outside = dir.path().join(name);
            std::fs::rename(root.join(name), &outside).unwrap();
            symlink(&outside, root.join(name)).unwrap();
            let e = OciLayout::open(&root).err().expect("refused").to_string();
            assert!(e.contains(name) && e.contains("leads outside the layout"), "{e}");
        }
    }

    #[test]
    fn open_regular_refuses_a_symlink_and_a_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(open_regular(&fifo).unwrap_err().to_string().contains("is a FIFO"));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("link");
        symlink(&file, &link).unwrap();
        assert!(open_regular(&link).unwrap_err().to_string().contains("is a symbolic link"));
        open_regular(&file).unwrap();
    }
}
