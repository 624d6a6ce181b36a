#!/usr/bin/env bash
# Installs what imagegate needs on a Debian machine and builds the modules.
# Idempotent: a second run only rebuilds what changed.
#
#   Debian packages: registries, builders and skopeo for tests and benchmarks
#   .venv:           ansible-core, ansible-lint, zuul-registry (requirements.txt)
#   plugins/modules: the module binaries (static musl if the target is
#                    available, else glibc)
#   .work/collections/ansible_collections/imagegate/containers -> this checkout
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

DEBS=(docker-registry buildah podman busybox-static skopeo openssl apache2-utils ca-certificates musl-tools python3-venv)
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/ansible-playbook ] || ! cmp -s requirements.txt .venv/.requirements; then
  log "creating .venv (ansible-core, ansible-lint, zuul-registry)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/.requirements
fi

# Static musl binaries run on any x86_64 Linux node. rustup fetches the musl
# standard library from the Rust distribution server, which is not reachable
# from every machine; then the modules are built for glibc instead.
MUSL=x86_64-unknown-linux-musl
target_args=()
out=target/release
if rustup target list --installed 2>/dev/null | grep -qx "$MUSL" \
   || timeout 30 rustup target add "$MUSL" >/dev/null 2>&1; then
  target_args=(--target "$MUSL")
  out=target/$MUSL/release
fi
log "building the modules (${target_args[*]:-glibc})"
cargo build --quiet --release --locked -p imagegate-modules --bins "${target_args[@]}"
for bin in registry_mirror container_retag container_push container_build; do
  install -m 0755 "$out/$bin" "plugins/modules/$bin"
done

mkdir -p .work/collections/ansible_collections/imagegate
ln -sfn "$ROOT" .work/collections/ansible_collections/imagegate/containers
