#!/usr/bin/env python3
"""Writes an OCI image layout of synthetic images for the benchmarks.

make_layout.py DIR --images N --layers 4,2,1 [--shared 8] [--tag-prefix img]
Sizes are MiB of random (incompressible) data per layer; --shared adds one
base layer common to every image. Layers are gzip'd tars (level 1)."""
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


def layer(root, name, mib):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = mib * 1024 * 1024
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
    a = ap.parse_args()
    os.makedirs(os.path.join(a.dir, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(a.dir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    shared = layer(a.dir, "base", a.shared) if a.shared else None
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    for n in range(a.images):
        layers = [shared] if shared else []
        layers += [layer(a.dir, f"data{i}", int(m)) for i, m in enumerate(a.layers.split(",")) if m]
        config = {
            "architecture": "amd64",
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
        index["manifests"].append({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdigest,
            "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": f"{a.tag_prefix}{n}"},
        })
    with open(os.path.join(a.dir, "index.json"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    main()
