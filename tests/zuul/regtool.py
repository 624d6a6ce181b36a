#!/usr/bin/python3
"""Small registry client for the Zuul harness (standard library only).

  regtool.py push HOST:PORT/REPO:TAG   push a new, unique one-layer image; print its digest
  regtool.py digest HOST:PORT/REPO:TAG print the tag's manifest digest, or "absent"
  regtool.py tags HOST:PORT/REPO       print the repository's tags, one a line

Credentials come from REG_USER and REG_PASS, the CA from REG_CA. Basic and
bearer-token authentication (distribution with htpasswd, zuul-registry).
"""
import base64
import gzip
import hashlib
import io
import json
import os
import re
import ssl
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


class Client:
    def __init__(self, host):
        self.host = host
        self.user = os.environ.get("REG_USER")
        self.password = os.environ.get("REG_PASS")
        ctx = ssl.create_default_context(cafile=os.environ.get("REG_CA") or None)
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
        self.auth = None
        self.tokens = {}

    def _basic(self):
        raw = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _authenticate(self, challenge):
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            self.auth = self._basic()
            return
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", "")}
        if fields.get("scope"):
            query["scope"] = fields["scope"]
        url = fields["realm"] + "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url)
        if self.user:
            req.add_header("Authorization", self._basic())
        with self.opener.open(req, timeout=30) as resp:
            body = json.load(resp)
        self.auth = "Bearer " + (body.get("token") or body.get("access_token"))

    def request(self, method, path, data=None, headers=None, absolute=False):
        url = path if absolute else f"https://{self.host}{path}"
        for attempt in range(3):
            req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if self.auth:
                req.add_header("Authorization", self.auth)
            try:
                resp = self.opener.open(req, timeout=60)
                return resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as err:
                body = err.read()
                if err.code == 401 and attempt < 2 and err.headers.get("WWW-Authenticate"):
                    self._authenticate(err.headers["WWW-Authenticate"])
                    continue
                return err.code, err.headers, body
        raise RuntimeError("authentication failed")


def split_ref(ref):
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    return host, repo, tag


def push_blob(client, repo, blob):
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    status, headers, _ = client.request("POST", f"/v2/{repo}/blobs/uploads/", data=b"")
    if status != 202:
        raise SystemExit(f"blob upload start: HTTP {status}")
    location = headers["Location"]
    if location.startswith("/"):
        location = f"https://{client.host}{location}"
    sep = "&" if "?" in location else "?"
    status, _, body = client.request(
        "PUT", f"{location}{sep}digest={digest}", data=blob,
        headers={"Content-Type": "application/octet-stream"}, absolute=True)
    if status not in (201, 204):
        raise SystemExit(f"blob upload: HTTP {status} {body[:200]!r}")
    return digest, len(blob)


def push(ref):
    host, repo, tag = split_ref(ref)
    client = Client(host)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        content = f"{ref} {time.time_ns()} {os.urandom(8).hex()}\n".encode()
        info = tarfile.TarInfo("stamp")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer_tar = tar_bytes.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        # Old enough for any age-based cleanup.
        "created": "2020-01-01T00:00:00Z",
        "config": {"Labels": {"org.example.harness": ref}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    layer_digest, layer_size = push_blob(client, repo, layer)
    config_digest, config_size = push_blob(client, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }).encode()
    status, _, body = client.request(
        "PUT", f"/v2/{repo}/manifests/{tag}", data=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    if status not in (201, 200):
        raise SystemExit(f"manifest put: HTTP {status} {body[:200]!r}")
    print("sha256:" + hashlib.sha256(manifest).hexdigest())


def digest(ref):
    host, repo, tag = split_ref(ref)
    client = Client(host)
    status, headers, body = client.request(
        "GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    if status == 404:
        print("absent")
    elif status == 200:
        print("sha256:" + hashlib.sha256(body).hexdigest())
    else:
        raise SystemExit(f"manifest get {ref}: HTTP {status}")


def tags(ref):
    host, _, repo = ref.partition("/")
    client = Client(host)
    status, _, body = client.request("GET", f"/v2/{repo}/tags/list")
    if status == 404:
        return
    if status != 200:
        raise SystemExit(f"tags list {ref}: HTTP {status}")
    for tag in sorted(json.loads(body).get("tags") or []):
        print(tag)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("push", "digest", "tags"):
        raise SystemExit(__doc__)
    {"push": push, "digest": digest, "tags": tags}[sys.argv[1]](sys.argv[2])
