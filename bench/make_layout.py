#!/usr/bin/env python3
"""Writes an OCI image layout of synthetic images for the benchmarks.

make_layout.py DIR --images N --layers 4,2,1 [--shared 8] [--tag-prefix img]
                  [--kib] [--platforms amd64,arm64]
Sizes are MiB (KiB with --kib) of random (incompressible) data per layer;
--shared adds one base layer common to every image. Layers are gzip'd tars
(level 1). With --platforms each image is an index of one image per
platform, each with layers of its own."""
import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile


def blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return "sha256:" + digest, len(data)


def layer(root, name, mib, unit=1024 * 1024):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = mib * unit
        info.mtime = 0
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    raw_bytes = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(raw_bytes).hexdigest()
    gz = gzip.compress(raw_bytes, compresslevel=1, mtime=0)
    digest, size = blob(root, gz)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}, diff_id


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--layers", default="4,2,1")
    ap.add_argument("--shared", type=int, default=0)
    ap.add_argument("--tag-prefix", default="img")
    ap.add_argument("--kib", action="store_true")
    ap.add_argument("--platforms", default="")
    a = ap.parse_args()
    unit = 1024 if a.kib else 1024 * 1024
    os.makedirs(os.path.join(a.dir, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(a.dir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    shared = layer(a.dir, "base", a.shared, unit) if a.shared else None
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
    for n in range(a.images):
        ref = {"org.opencontainers.image.ref.name": f"{a.tag_prefix}{n}"}
        if not a.platforms:
            index["manifests"].append(dict(image(a, n, "amd64", shared, unit), annotations=ref))
            continue
        images = [image(a, n, arch, shared, unit) for arch in a.platforms.split(",")]
        digest, size = blob(a.dir, json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": images}).encode())
        index["manifests"].append({"mediaType": INDEX, "digest": digest, "size": size, "annotations": ref})
    with open(os.path.join(a.dir, "index.json"), "w") as f:
        json.dump(index, f)


INDEX = "application/vnd.oci.image.index.v1+json"


def image(a, n, arch, shared, unit):
    """Image n for arch: its layers, config and manifest written; its descriptor."""
    layers = [shared] if shared else []
    layers += [layer(a.dir, f"data{i}", int(m), unit) for i, m in enumerate(a.layers.split(",")) if m]
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"bench": str(n)}},
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
    }
    cdigest, csize = blob(a.dir, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": [l for l, _ in layers],
    }
    mdigest, msize = blob(a.dir, json.dumps(manifest).encode())
    described = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize}
    if a.platforms:
        described["platform"] = {"architecture": arch, "os": "linux"}
    return described


if __name__ == "__main__":
    main()
