//! The HTTP client of one registry, and the CAs it trusts: the system store,
//! the module's `ca_cert`, and the per-registry directories where podman,
//! buildah and skopeo (`/etc/containers/certs.d/<host:port>/`) and docker
//! (`/etc/docker/certs.d/<host:port>/`) users already keep a registry's CA:
//! every `*.crt` file there is a CA certificate, as those tools read them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Where container tools keep per-registry CA certificates.
pub const CERT_DIRS: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];
/// A CA file larger than this is no CA bundle (and is not read).
const MAX_CA_FILE: u64 = 1024 * 1024;

/// The `*.crt` files of the certificate directories for `host` (`host:port`
/// as the registry is addressed), in a stable order.
pub fn cert_dir_files(dirs: &[&str], host: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(Path::new(dir).join(host)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// Builds the clients of one registry: TLS roots, no automatic redirects, a
/// connect timeout. The first, for small answers, speaks HTTP/2 where a TLS
/// server offers it and has a read timeout. The second, for blob bodies,
/// speaks only HTTP/1.1 (see `Transport::bulk`) and has no timer of its
/// own: the client's read timeout also runs while a request body is still
/// going out, so it cut off every upload slower than it, however steadily
/// it moved. Blob transfers are bounded by their progress instead
/// (`limits::Limits::transfer`). The CA files are read once, for both.
pub(super) fn build_clients(
    registry: &str,
    host: &str,
    ca_cert: Option<&Path>,
    tls_verify: bool,
    connect: Duration,
    read: Duration,
) -> Result<(reqwest::Client, reqwest::Client), Error> {
    let tls_err = |detail: String| {
        Error::new(ErrorKind::Tls {
            registry: registry.to_string(),
            detail,
        })
    };
    let mut roots = Vec::new();
    let mut files: Vec<PathBuf> = ca_cert.map(Path::to_path_buf).into_iter().collect();
    files.extend(cert_dir_files(CERT_DIRS, host));
    for path in files {
        let meta = std::fs::metadata(&path).map_err(|e| tls_err(format!("cannot read CA file {}: {e}", path.display())))?;
        if !meta.is_file() || meta.len() > MAX_CA_FILE {
            return Err(tls_err(format!("{} is not a CA file", path.display())));
        }
        let pem = std::fs::read(&path).map_err(|e| tls_err(format!("cannot read CA file {}: {e}", path.display())))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| tls_err(format!("{} is not a PEM CA bundle: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(tls_err(format!("{} holds no PEM certificate", path.display())));
        }
        roots.extend(certs);
    }
    let build = |bulk: bool| {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_native_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect)
            .user_agent(concat!("imagegate/", env!("CARGO_PKG_VERSION")));
        for cert in &roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        if bulk {
            builder = builder.http1_only();
        } else {
            builder = builder.read_timeout(read);
        }
        if !tls_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder.build().map_err(|e| tls_err(e.to_string()))
    };
    Ok((build(false)?, build(true)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_crt_files_per_host() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = root.path().join("b");
        std::fs::create_dir_all(a.join("reg.example:5000")).unwrap();
        std::fs::create_dir_all(b.join("reg.example:5000")).unwrap();
        std::fs::write(a.join("reg.example:5000/ca.crt"), "x").unwrap();
        std::fs::write(a.join("reg.example:5000/client.cert"), "x").unwrap();
        std::fs::write(a.join("reg.example:5000/client.key"), "x").unwrap();
        std::fs::write(b.join("reg.example:5000/extra.crt"), "x").unwrap();
        let dirs = [a.to_str().unwrap(), b.to_str().unwrap()];
        let found = cert_dir_files(&dirs, "reg.example:5000");
        assert_eq!(found, vec![a.join("reg.example:5000/ca.crt"), b.join("reg.example:5000/extra.crt")]);
        assert!(cert_dir_files(&dirs, "other:5000").is_empty());
    }
}
