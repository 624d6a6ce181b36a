#!/usr/bin/env python3
"""The simplest client for the scale benchmark (bench/scale.sh): plain HTTP
(or HTTPS trusting the CA file FLOOR_CA names) to distribution registries,
the standard library only, a pool of threads
with one kept-alive connection each. It makes the requests a mirror must
make and nothing else (no retries, no checks beyond status codes), so its
time is a floor for what imagegate does with the same registries.

  floor.py seed REG N [--workers W]       N images scale/imgI:v1, each a
                                          1 KiB layer of its own + config
  floor.py tags REG REPO N [--workers W]  N tags t0..t(N-1) of REPO, all on
                                          REPO:v1's manifest
  floor.py mirror SRC DST N [--check]     what registry_mirror does for N
                                          images: GET the source manifest,
                                          HEAD the destination tag; cold:
                                          per blob (HEAD if over 16 KiB),
                                          GET, POST, PUT; then PUT the
                                          manifest
  floor.py tag-check SRC DST REPO         all tags of one repository,
                                          check mode: list the tags (pages
                                          of 1000), GET each source
                                          manifest, HEAD each destination tag
Prints one line: what it did and how many requests it made.
"""
import argparse
import hashlib
import http.client
import json
import os
import ssl
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = ", ".join([MANIFEST, "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])

local = threading.local()
count_lock = threading.Lock()
requests = 0


def conn(host):
    pool = getattr(local, "pool", None)
    if pool is None:
        pool = local.pool = {}
    if host not in pool:
        ca = os.environ.get("FLOOR_CA")
        if ca:
            pool[host] = http.client.HTTPSConnection(host, timeout=60, context=ssl.create_default_context(cafile=ca))
        else:
            pool[host] = http.client.HTTPConnection(host, timeout=60)
    return pool[host]


def call(host, method, path, body=None, headers=None, ok=(200, 201, 202, 204, 404)):
    global requests
    with count_lock:
        requests += 1
    c = conn(host)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if r.status not in ok:
        raise SystemExit(f"{method} {host}{path}: {r.status} {data[:200]!r}")
    return r, data


def push_blob(host, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r, _ = call(host, "POST", f"/v2/{repo}/blobs/uploads/", b"", {"Content-Length": "0"})
    loc = r.getheader("Location")
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    sep = "&" if "?" in loc else "?"
    call(host, "PUT", f"{loc}{sep}digest={digest}", data,
         {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
    return digest


def seed_one(reg, i):
    repo = f"scale/img{i}"
    layer = os.urandom(1024)
    ld = push_blob(reg, repo, layer)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
    cd = push_blob(reg, repo, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": {"mediaType": CONFIG, "digest": cd, "size": len(config)},
                           "layers": [{"mediaType": LAYER, "digest": ld, "size": len(layer)}]}).encode()
    call(reg, "PUT", f"/v2/{repo}/manifests/v1", manifest, {"Content-Type": MANIFEST})


def tag_all(reg, repo, n, workers):
    _, manifest = call(reg, "GET", f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST}, ok=(200,))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: call(reg, "PUT", f"/v2/{repo}/manifests/t{i}", manifest,
                                     {"Content-Type": MANIFEST}), range(n)))


def mirror_one(src, dst, i, check):
    repo = f"scale/img{i}"
    r, manifest = call(src, "GET", f"/v2/{repo}/manifests/v1", headers={"Accept": ACCEPT}, ok=(200,))
    now, _ = call(dst, "HEAD", f"/v2/mirror/{repo}/manifests/v1", headers={"Accept": ACCEPT})
    if check or now.status == 200:
        return
    m = json.loads(manifest)
    for d in [m["config"]] + m["layers"]:
        # Blobs above 16 KiB are looked for first, as imagegate does.
        if d["size"] > 16384:
            there, _ = call(dst, "HEAD", f"/v2/mirror/{repo}/blobs/{d['digest']}")
            if there.status == 200:
                continue
        _, data = call(src, "GET", f"/v2/{repo}/blobs/{d['digest']}", ok=(200,))
        push_blob(dst, f"mirror/{repo}", data)
    call(dst, "PUT", f"/v2/mirror/{repo}/manifests/v1", manifest,
         {"Content-Type": r.getheader("Content-Type")})


def list_tags(reg, repo):
    tags, path = [], f"/v2/{repo}/tags/list?n=1000"
    while path:
        r, data = call(reg, "GET", path, ok=(200,))
        tags += json.loads(data).get("tags") or []
        link = r.getheader("Link")
        path = link.split(";")[0].strip("<> ") if link else None
    return tags


def tag_check(src, dst, repo, workers):
    tags = list_tags(src, repo)

    def one(t):
        call(src, "GET", f"/v2/{repo}/manifests/{t}", headers={"Accept": ACCEPT}, ok=(200,))
        call(dst, "HEAD", f"/v2/mirror/{repo}/manifests/{t}", headers={"Accept": ACCEPT})
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, tags))
    return len(tags)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["seed", "tags", "mirror", "tag-check"])
    p.add_argument("args", nargs="+")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    if a.what == "seed":
        reg, n = a.args[0], int(a.args[1])
        with ThreadPoolExecutor(a.workers) as pool:
            list(pool.map(lambda i: seed_one(reg, i), range(n)))
        print(f"seeded {n} images; {requests} requests")
    elif a.what == "tags":
        reg, repo, n = a.args[0], a.args[1], int(a.args[2])
        tag_all(reg, repo, n, a.workers)
        print(f"tagged {repo} {n} times; {requests} requests")
    elif a.what == "mirror":
        src, dst, n = a.args[0], a.args[1], int(a.args[2])
        with ThreadPoolExecutor(a.workers) as pool:
            list(pool.map(lambda i: mirror_one(src, dst, i, a.check), range(n)))
        print(f"mirrored {n} images{' (check mode)' if a.check else ''}; {requests} requests")
    else:
        src, dst, repo = a.args
        n = tag_check(src, dst, repo, a.workers)
        print(f"checked {n} tags; {requests} requests")


if __name__ == "__main__":
    sys.exit(main())
