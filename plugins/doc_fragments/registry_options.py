# Copyright imagegate developers. Apache-2.0.
"""The options every module that talks to registries shares (container_push,
container_retag, registry_mirror), documented once. In the code they are
declared once too: the ``registry_module_args!`` macro of
crates/imagegate-modules/src/registries.rs, which appends them to each of
those modules' ``Args``. crates/imagegate-modules/tests/documented_options.rs
checks that the two agree."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  registries:
    description:
      - Settings per registry, keyed by C(host[:port]) or by a name that the task refers to (I(registry) of
        M(imagegate.containers.container_push), I(images[].registry) of M(imagegate.containers.container_retag),
        I(images[].dest_registry) of M(imagegate.containers.registry_mirror)).
      - The zuul-jobs C(container_registry_credentials) dictionary can be passed unchanged.
      - Each entry takes the keys below. Other keys of an entry are ignored, as zuul-jobs ignores them, each with a
        warning naming it (so that a misspelt C(passwd) is seen).
    type: dict
    default: {}
    suboptions:
      username:
        description: Username.
        type: str
      password:
        description: Password or token.
        type: str
      plain_http:
        description: Speak plain HTTP to this registry.
        type: bool
        default: false
      tls_verify:
        description: Verify the registry's TLS certificate.
        type: bool
        default: true
      ca_cert:
        description:
          - A PEM file of CA certificates trusted for this registry, besides the system store and the C(*.crt) files
            under C(/etc/containers/certs.d/<host:port>/) and C(/etc/docker/certs.d/<host:port>/) (where podman and
            docker users keep a registry's CA).
        type: path
      repository:
        description:
          - A regular expression searched for in the whole destination repository name, registry included
            (C(quay.io/org/app)), as zuul-jobs' C(regex_search) does; Docker Hub repositories may also match in
            their short forms (C(org/app)). A repository that does not match is refused before anything is written.
          - The dialect is Rust's C(regex) crate, the same as Python's C(re) for the usual patterns; lookaround and
            backreferences are not supported.
        type: str
      api_token:
        description:
          - Registry web API token.
          - M(imagegate.containers.container_retag) uses it, with C(type) and C(api_url), to reach the registry's web
            API (tag removal, see its I(method); tag ages for its I(cleanup)); the other modules accept it for zuul-jobs
            compatibility.
        type: str
      type:
        description:
          - Registry type (C(quay), C(docker), ...), accepted for zuul-jobs compatibility.
          - M(imagegate.containers.container_retag) takes C(quay) or C(docker) to select the registry's web API
            (see its I(method)).
        type: str
      api_url:
        description:
          - Registry web API URL, accepted for zuul-jobs compatibility.
          - M(imagegate.containers.container_retag) reaches the web API there (see its I(method)).
        type: str
  auth_file:
    description:
      - Read credentials from this auth file only, instead of the default ones (those docker, podman and skopeo
        write; see M(imagegate.containers.registry_mirror)).
    type: path
  retries:
    description:
      - How often a failed request is retried (0-20).
      - Failed requests (connection errors, resets, 408, 429, 500, 502, 503, 504) are retried with exponential
        backoff and jitter (see I(retry_delay)); C(Retry-After) is honoured.
    type: int
    default: 5
  retry_delay:
    description: Seconds before the first retry (0-60); doubled for each further one (with jitter), at most 15 s.
    type: float
    default: 0.5
  timeout:
    description:
      - Seconds within which each small answer of a registry (a manifest, a token, a page of tags, a web API call) must
        arrive whole (0.1-3600); a registry that takes longer is retried, then the task fails naming it.
      - Blob bodies have no deadline; they must keep moving instead (at least 64 KiB in every 30 s).
    type: float
    default: 30
    version_added: 0.2.0
  upload_chunk_size:
    description:
      - Upload blobs in chunks of this many bytes (C(PATCH) requests, 1024 bytes to 1 GiB) instead of one C(PUT).
      - Without it a blob goes in one request, and in chunks only if the registry answers 413.
      - A chunked upload that fails after the registry acknowledged some chunks continues from there where the
        registry still holds them (asked with C(GET) on the upload), so over an unreliable link a chunk size of
        some MiB costs at most one chunk per failure instead of the whole blob.
      - M(imagegate.containers.container_retag) uploads only the small throw-away config of tag removal.
    type: int
"""
