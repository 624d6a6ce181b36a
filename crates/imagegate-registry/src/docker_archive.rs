//! Turning the archive `docker save` writes into an OCI image layout, so
//! that a docker build is pushed by the engine like any other, without
//! buildx.
//!
//! Docker 20.10 writes the legacy archive: `manifest.json` (a list of
//! `{Config, RepoTags, Layers}`), the image config as `<id>.json`, and each
//! layer as an uncompressed `<dir>/layer.tar`. The archive is read as one
//! stream: every layer is gzip-compressed as it passes (deterministically:
//! no file name or time in the gzip header, a fixed level, so the same layer
//! always gives the same blob), hashed before and after compression, and
//! written to `blobs/sha256/`; its uncompressed digest must equal the
//! `rootfs.diff_ids` entry of the config, which proves the archive intact.
//! Docker 25 and later write an OCI layout inside the archive; its blobs are
//! taken as they are and checked against their names.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::manifest::OCI_MANIFEST;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Metadata files of an archive (manifest.json, configs) read at most this far.
const MAX_METADATA: u64 = 8 * 1024 * 1024;
/// gzip level for layers: zlib's default, a fair trade of time for size.
const GZIP_LEVEL: u32 = 6;

/// Values an archive's JSON entry may hold once parsed: a byte cap of
/// 8 MiB alone lets two million tiny values through.
const MAX_METADATA_VALUES: usize = 100_000;

/// One of the archive's JSON entries, parsed within [`MAX_METADATA_VALUES`].
fn json(bytes: &[u8], name: &str) -> Result<serde_json::Value, Error> {
    crate::bounded::from_slice(bytes, MAX_METADATA_VALUES)
        .map_err(|e| bad(format!("{} is not usable JSON: {e}", crate::error::untrusted_text(name, 100))))
}

fn bad(reason: String) -> Error {
    Error::new(ErrorKind::InvalidManifest {
        reference: "docker save archive".into(),
        reason,
    })
}

/// A writer that hashes and counts what passes.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn digest_of(hash: Sha256) -> Digest {
    Digest::parse(&format!("sha256:{}", hex::encode(hash.finalize()))).expect("a sha256 digest")
}

/// A blob written under `blobs/sha256/`.
#[derive(Clone, Debug)]
struct Blob {
    digest: Digest,
    size: u64,
}

/// Writes one layout: its blobs directory and, at the end, the index.
struct LayoutWriter {
    root: PathBuf,
    blobs: PathBuf,
}

impl LayoutWriter {
    fn new(root: &Path) -> Result<Self, Error> {
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(blobs.display(), e))?;
        Ok(Self {
            root: root.to_path_buf(),
            blobs,
        })
    }

    /// Streams `src` into a blob (gzip-compressed if `gzip`); returns the
    /// blob and the digest of the uncompressed bytes.
    fn stream(&self, src: &mut dyn Read, gzip: bool) -> Result<(Blob, Digest), Error> {
        let tmp = tempfile::NamedTempFile::new_in(&self.blobs).map_err(|e| Error::io(self.blobs.display(), e))?;
        let io = |e| Error::io(tmp.path().display(), e);
        let file = tmp.as_file().try_clone().map_err(io)?;
        let mut out = Hashing {
            inner: std::io::BufWriter::new(file),
            hash: Sha256::new(),
            len: 0,
        };
        let mut plain = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut pump = |w: &mut dyn Write| -> Result<(), Error> {
            loop {
                let n = src.read(&mut buf).map_err(|e| bad(format!("reading the archive: {e}")))?;
                if n == 0 {
                    return Ok(());
                }
                plain.update(&buf[..n]);
                w.write_all(&buf[..n]).map_err(io)?;
            }
        };
        if gzip {
            let mut gz = flate2::GzBuilder::new().write(&mut out, flate2::Compression::new(GZIP_LEVEL));
            pump(&mut gz)?;
            gz.finish().map_err(io)?;
        } else {
            pump(&mut out)?;
        }
        out.flush().map_err(io)?;
        let blob = Blob {
            digest: digest_of(out.hash),
            size: out.len,
        };
        let path = self.blobs.join(&blob.digest.as_str()[7..]);
        tmp.persist(&path).map_err(|e| Error::io(path.display(), e.error))?;
        Ok((blob, digest_of(plain)))
    }

    fn bytes(&self, bytes: &[u8]) -> Result<Blob, Error> {
        let digest = Digest::of(bytes);
        let path = self.blobs.join(&digest.as_str()[7..]);
        std::fs::write(&path, bytes).map_err(|e| Error::io(path.display(), e))?;
        Ok(Blob {
            digest,
            size: bytes.len() as u64,
        })
    }

    fn finish(&self, manifest: &Blob, ref_name: &str) -> Result<(), Error> {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": manifest.digest.as_str(),
                "size": manifest.size,
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }],
        });
        let write = |name: &str, text: String| {
            let p = self.root.join(name);
            std::fs::write(&p, text).map_err(|e| Error::io(p.display(), e))
        };
        write("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#.to_string())?;
        write("index.json", index.to_string())
    }
}

/// A path inside the archive, refused if it could leave the layout.
fn entry_name(path: &Path) -> Result<String, Error> {
    if path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(bad(format!("the archive holds an unsafe path {}", path.display())));
    }
    Ok(path.to_string_lossy().trim_start_matches("./").to_string())
}

fn read_small(entry: &mut dyn Read, name: &str) -> Result<Vec<u8>, Error> {
    let mut v = Vec::new();
    entry
        .take(MAX_METADATA + 1)
        .read_to_end(&mut v)
        .map_err(|e| bad(format!("reading {name}: {e}")))?;
    if v.len() as u64 > MAX_METADATA {
        return Err(bad(format!("{name} is larger than {MAX_METADATA} bytes")));
    }
    Ok(v)
}

/// Reads the archive of one image from `archive` and writes it as an OCI
/// image layout into `layout` (an empty or missing directory), its image
/// named `ref_name`. Returns the manifest's digest.
pub fn archive_to_layout(archive: impl Read, layout: &Path, ref_name: &str) -> Result<Digest, Error> {
    let out = LayoutWriter::new(layout)?;
    let Entries { layers, jsons, oci_index } = read_entries(archive, &out)?;
    if let Some(index) = oci_index {
        return oci_archive(&out, &index, ref_name);
    }
    let manifest_json = jsons.get("manifest.json").ok_or_else(|| bad("no manifest.json".into()))?;
    let images: Vec<serde_json::Value> = match json(manifest_json, "manifest.json")? {
        serde_json::Value::Array(images) => images,
        _ => return Err(bad("manifest.json is not a list of images".into())),
    };
    let [image] = images.as_slice() else {
        return Err(bad(format!("the archive holds {} images; save one", images.len())));
    };
    let config_name = image["Config"]
        .as_str()
        .ok_or_else(|| bad("manifest.json names no Config".into()))?;
    let config = jsons
        .get(config_name)
        .ok_or_else(|| bad(format!("the archive lacks {config_name}")))?;
    let config_value = json(config, config_name)?;
    let diff_ids: Vec<&str> = config_value["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    let layer_names: Vec<&str> = image["Layers"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    if layer_names.len() != diff_ids.len() {
        return Err(bad(format!(
            "{} layers but {} diff_ids in the config",
            layer_names.len(),
            diff_ids.len()
        )));
    }
    let mut descriptors = Vec::new();
    for (name, diff_id) in layer_names.iter().zip(&diff_ids) {
        let (blob, plain) = layers.get(*name).ok_or_else(|| bad(format!("the archive lacks {name}")))?;
        if plain.as_str() != *diff_id {
            return Err(Error::new(ErrorKind::DigestMismatch {
                what: format!("layer {name} of the docker archive"),
                expected: diff_id.to_string(),
                actual: plain.to_string(),
            }));
        }
        descriptors.push(serde_json::json!({"mediaType": OCI_LAYER_GZIP, "digest": blob.digest.as_str(), "size": blob.size}));
    }
    let config_blob = out.bytes(config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_blob.digest.as_str(), "size": config_blob.size},
        "layers": descriptors,
    });
    let manifest_blob = out.bytes(manifest.to_string().as_bytes())?;
    out.finish(&manifest_blob, ref_name)?;
    Ok(manifest_blob.digest)
}

/// What an archive holds, as read in one pass: its layers (written to the
/// layout compressed, by name, with their uncompressed digests), its small
/// JSON files, and the index of an OCI layout inside it.
struct Entries {
    layers: HashMap<String, (Blob, Digest)>,
    jsons: HashMap<String, Vec<u8>>,
    oci_index: Option<Vec<u8>>,
}

fn read_entries(archive: impl Read, out: &LayoutWriter) -> Result<Entries, Error> {
    let mut tar = tar::Archive::new(archive);
    let mut found = Entries {
        layers: HashMap::new(),
        jsons: HashMap::new(),
        oci_index: None,
    };
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry_name(&entry.path().map_err(|e| bad(e.to_string()))?)?;
        if name.ends_with("/layer.tar") {
            let blob = out.stream(&mut entry, true)?;
            found.layers.insert(name, blob);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            // An OCI layout inside the archive (docker 25+): kept as is.
            let (blob, _) = out.stream(&mut entry, false)?;
            if blob.digest.as_str()[7..] != *hex {
                return Err(bad(format!("the blob {name} does not match its name")));
            }
        } else if name == "index.json" {
            found.oci_index = Some(read_small(&mut entry, &name)?);
        } else if name.ends_with(".json") && !name.contains('/') {
            found.jsons.insert(name.clone(), read_small(&mut entry, &name)?);
        }
    }
    Ok(found)
}

/// An archive that already is an OCI layout: its one image is renamed.
fn oci_archive(out: &LayoutWriter, index: &[u8], ref_name: &str) -> Result<Digest, Error> {
    let index = json(index, "index.json")?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let [entry] = entries.as_slice() else {
        return Err(bad(format!("the archive's index holds {} images; save one", entries.len())));
    };
    let digest = Digest::parse(entry["digest"].as_str().unwrap_or_default())?;
    let path = out.blobs.join(&digest.as_str()[7..]);
    let size = std::fs::metadata(&path).map_err(|e| Error::io(path.display(), e))?.len();
    out.finish(
        &Blob {
            digest: digest.clone(),
            size,
        },
        ref_name,
    )?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy_archive(layer: &[u8], diff_id: &str) -> Vec<u8> {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#);
        let config_name = format!("{}.json", &Digest::of(config.as_bytes()).as_str()[7..]);
        let manifest = format!(r#"[{{"Config":"{config_name}","RepoTags":["x:latest"],"Layers":["abc/layer.tar"]}}]"#);
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("abc/layer.tar", layer),
            (config_name.as_str(), config.as_bytes()),
            ("manifest.json", manifest.as_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_legacy_archive_becomes_a_layout_with_gzip_layers() {
        let layer = vec![7u8; 100_000];
        let archive = legacy_archive(&layer, Digest::of(&layer).as_str());
        let dir = tempfile::tempdir().unwrap();
        let digest = archive_to_layout(archive.as_slice(), dir.path(), "latest").unwrap();
        let layout = crate::layout::OciLayout::open(dir.path()).unwrap();
        let m = layout.resolve(Some("latest")).unwrap();
        assert_eq!(m.digest, digest);
        let value: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        let gz_digest = value["layers"][0]["digest"].as_str().unwrap();
        let gz = std::fs::read(layout.blob_path(gz_digest).unwrap()).unwrap();
        assert!(gz.len() < 1000, "compressed");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, layer);
        // Deterministic: the same archive gives the same manifest.
        let again = tempfile::tempdir().unwrap();
        assert_eq!(archive_to_layout(archive.as_slice(), again.path(), "latest").unwrap(), digest);
    }

    #[test]
    fn a_json_entry_of_millions_of_tiny_values_is_refused() {
        // Within the 8 MiB entry cap, two million values once parsed.
        let dense = format!("[{}{{}}]", "{},".repeat(2_000_000));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(dense.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "manifest.json", dense.as_bytes()).unwrap();
        let archive = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = archive_to_layout(archive.as_slice(), dir.path(), "latest").unwrap_err();
        assert!(
            e.to_string()
                .contains("manifest.json is not usable JSON: it holds more than 100000"),
            "{e}"
        );
    }

    #[test]
    fn a_corrupt_layer_is_refused() {
        let archive = legacy_archive(b"the real layer", Digest::of(b"another layer").as_str());
        let dir = tempfile::tempdir().unwrap();
        let e = archive_to_layout(archive.as_slice(), dir.path(), "latest").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::DigestMismatch { .. }), "{e}");
    }
}
