//! Fixture images, built offline with buildah from the busybox-static
//! binary: `single-<n>` (one platform, distinct content per n) and `multi`
//! (an index for linux/amd64 and linux/arm64). They are built once into an
//! OCI image layout under `target/` and shared by every test process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo_root;
use crate::tools::run;

/// How many distinct single-platform images the fixture holds.
pub const SINGLE_COUNT: usize = 10;
/// Bump to rebuild fixtures when their recipe changes.
const RECIPE: &str = "v3";

pub struct Fixtures {
    layout: PathBuf,
}

impl Fixtures {
    /// Builds the fixtures if they are not built yet (safe to call from many
    /// test processes at once: a file lock serialises the build).
    pub fn get() -> Self {
        let base = std::env::var_os("IMAGEGATE_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/imagegate-fixtures"));
        std::fs::create_dir_all(&base).expect("fixture dir");
        let lock = File::create(base.join(".lock")).expect("lock file");
        lock.lock().expect("lock fixtures");
        let layout = base.join(format!("layout-{RECIPE}"));
        let done = base.join(format!("done-{RECIPE}"));
        if !done.exists() {
            let _ = std::fs::remove_dir_all(&layout);
            build(&base, &layout);
            std::fs::write(&done, "").expect("marker");
        }
        drop(lock);
        Self { layout }
    }

    /// `oci:<layout>:single-<n>`
    pub fn single(&self, n: usize) -> String {
        assert!(n < SINGLE_COUNT);
        format!("oci:{}:single-{n}", self.layout.display())
    }

    /// `oci:<layout>:fresh`: an image whose `created` time is its build
    /// time (the others say 1970), for age-based cleanup.
    pub fn fresh(&self) -> String {
        format!("oci:{}:fresh", self.layout.display())
    }

    /// `oci:<layout>:multi`
    pub fn multi(&self) -> String {
        format!("oci:{}:multi", self.layout.display())
    }
}

fn buildah(root: &Path) -> Command {
    let mut c = Command::new("buildah");
    c.arg("--root")
        .arg(root.join("storage"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args(["--storage-driver", "vfs"]);
    c
}

fn build(base: &Path, layout: &Path) {
    let ctx = base.join("context");
    std::fs::create_dir_all(&ctx).expect("context");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox-static is not installed (apt-get install busybox-static)");
    std::fs::copy(busybox, ctx.join("busybox")).expect("copy busybox");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nARG VARIANT=0\nCOPY busybox /bin/busybox\nCOPY variant /etc/variant\nLABEL org.opencontainers.image.title=imagegate-fixture\nCMD [\"/bin/busybox\", \"sh\"]\n",
    )
    .expect("containerfile");
    for n in 0..SINGLE_COUNT {
        std::fs::write(ctx.join("variant"), format!("imagegate fixture {n}\n")).expect("variant");
        let name = format!("localhost/imagegate-fixture:single-{n}");
        run(buildah(base)
            .args(["build", "--isolation", "chroot", "--quiet", "--timestamp", "0", "--layers", "-f"])
            .arg(ctx.join("Containerfile"))
            .args(["-t", &name])
            .arg(&ctx));
        run(buildah(base)
            .arg("push")
            .arg("--quiet")
            .arg(&name)
            .arg(format!("oci:{}:single-{n}", layout.display())));
    }
    std::fs::write(ctx.join("variant"), "imagegate fixture fresh\n").expect("variant");
    let fresh = "localhost/imagegate-fixture:fresh";
    run(buildah(base)
        .args(["build", "--isolation", "chroot", "--quiet", "--layers", "-f"])
        .arg(ctx.join("Containerfile"))
        .args(["-t", fresh])
        .arg(&ctx));
    run(buildah(base)
        .arg("push")
        .arg("--quiet")
        .arg(fresh)
        .arg(format!("oci:{}:fresh", layout.display())));
    std::fs::write(ctx.join("variant"), "imagegate fixture multi\n").expect("variant");
    let list = "localhost/imagegate-fixture:multi";
    let _ = buildah(base).args(["manifest", "rm", list]).output();
    run(buildah(base)
        .args([
            "build",
            "--isolation",
            "chroot",
            "--quiet",
            "--timestamp",
            "0",
            "--platform",
            "linux/amd64,linux/arm64",
            "--manifest",
            list,
            "-f",
        ])
        .arg(ctx.join("Containerfile"))
        .arg(&ctx));
    run(buildah(base)
        .args(["manifest", "push", "--all", "--quiet", list])
        .arg(format!("oci:{}:multi", layout.display())));
}

/// Writes an OCI image layout at `dir` holding one image, `oci:<dir>:big`,
/// whose one layer is `bytes` pseudo-random bytes (`seed` picks which): a
/// large blob that no compression shrinks, for transfers over slow or
/// broken links. Registries and skopeo take a layer's bytes as they are.
pub fn big_image(dir: &Path, bytes: usize, seed: u64) -> String {
    use sha2::{Digest as _, Sha256};
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout dir");
    let put = |data: &[u8]| -> (String, usize) {
        let hex = hex::encode(Sha256::digest(data));
        std::fs::write(blobs.join(&hex), data).expect("blob");
        (format!("sha256:{hex}"), data.len())
    };
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut layer = Vec::with_capacity(bytes + 8);
    while layer.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        layer.extend_from_slice(&x.to_le_bytes());
    }
    layer.truncate(bytes);
    let (layer_digest, layer_size) = put(&layer);
    drop(layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "big"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    format!("oci:{}:big", dir.display())
}
