#!/usr/bin/env bash
# Installs what imagegate needs on a Debian machine and builds the modules.
# Idempotent: a second run only rebuilds what changed.
#
#   Debian packages: registries, builders and skopeo for tests and benchmarks
#   .venv:           ansible-core, ansible-lint, zuul-registry (requirements.txt)
#   .work/ansible-*: one venv per ansible-core that the playbook tests and
#                    ansible-lint run under: 2.16 and 2.18 (what Zuul 14
#                    runs jobs with) and the newest release
#                    (tools/ansible-cores.txt), each with ansible-lint
#   .work/node-registry-venv: zuul-registry for buildset registries that
#                    non-root node users start (from /usr/bin/python3)
#   binaries/<arch>: the module binaries for x86_64 and aarch64 (static
#                    musl; tools/build-modules.sh)
#   aarch64 under qemu: Debian's qemu-user-static registered with the
#                    kernel (binfmt_misc) so that aarch64 executables run
#                    here, and .work/arm64-busybox, an aarch64 shell whose
#                    uname -m says aarch64: the tests' aarch64 host
#   .work/collections/ansible_collections/imagegate/containers -> this checkout
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

DEBS=(docker.io sudo docker-registry buildah podman busybox-static skopeo openssl apache2-utils ca-certificates musl-tools python3-venv openssh-server time curl bsdutils
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static pass golang-docker-credential-helpers)
source "$ROOT/tools/debs.sh"
ensure_debs "${DEBS[@]}"

if [ ! -x .venv/bin/ansible-playbook ] || ! cmp -s requirements.txt .venv/.requirements; then
  log "creating .venv (ansible-core, ansible-lint, zuul-registry)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/.requirements
fi

# One venv per ansible-core the playbook tests run under. The newest cores
# need a newer Python than Debian 12's 3.11: the first python3.13 or
# python3.12 found (pyenv's included) is used for them.
newer_python() {
  local c
  for c in python3.13 python3.12 /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3 \
           "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}
# Each also holds ansible-lint (the version requirements.txt pins), so that
# tools/test.sh lints under every supported core: a newer core's lint does
# not see what an older core's Jinja refuses.
LINT=$(grep -E '^ansible-lint==' requirements.txt)
while read -r name version python; do
  case "$name" in ''|'#'*) continue ;; esac
  dir=.work/ansible-$name
  if ! { [ -x "$dir/bin/ansible-playbook" ] && [ "$(cat "$dir/.version" 2>/dev/null)" = "$version" ]; }; then
    interpreter=python3
    if [ "$python" = newer ]; then
      interpreter=$(newer_python) || { echo "ansible-core $version needs Python >= 3.12; none found" >&2; exit 1; }
    fi
    log "creating $dir (ansible-core $version, $("$interpreter" -V))"
    rm -rf "$dir"
    "$interpreter" -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "ansible-core==$version"
    echo "$version" > "$dir/.version"
  fi
  if [ "$(cat "$dir/.lint" 2>/dev/null)" != "$LINT" ]; then
    log "installing $LINT into $dir (ansible-core $version kept)"
    "$dir/bin/pip" install -q --disable-pip-version-check "$LINT" "ansible-core==$version"
    echo "$LINT" > "$dir/.lint"
  fi
done < tools/ansible-cores.txt

# zuul-registry for a buildset registry that a non-root node user starts
# (the conformance suite's and the Zuul harness's nodes), in a venv made
# from /usr/bin/python3: the node user cannot run .venv's Python when it
# lives under /root (pyenv).
if [ ! -x .work/node-registry-venv/bin/zuul-registry ]; then
  log "creating .work/node-registry-venv (zuul-registry for the nodes)"
  /usr/bin/python3 -m venv .work/node-registry-venv
  .work/node-registry-venv/bin/pip install -q --disable-pip-version-check zuul-registry==1.3.0
fi

# The module binaries (the build machine's architecture needs only Rust;
# aarch64 also the cross compiler installed above; see the script).
bash tools/build-modules.sh

# The imagegate command (docs/cli.rst), for this machine: target/release/imagegate.
log "building the imagegate command"
cargo build --quiet --release --locked -p imagegate-cli

# aarch64 executables run here through qemu-user-static once the kernel
# knows it as their interpreter (binfmt_misc; Debian registers it only
# under systemd). The F flag opens the interpreter now, so it works in any
# mount namespace. A machine that cannot register it fails here, since the
# aarch64 tests need it.
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  log "registering qemu-aarch64-static with binfmt_misc"
  [ -e /proc/sys/fs/binfmt_misc/register ] || $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  $sudo sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register'
fi
# An aarch64 busybox (Debian's busybox-static for arm64, fetched and checked
# by apt): the tests' aarch64 host runs its commands with it, under qemu.
if [ ! -x .work/arm64-busybox/bin/busybox ]; then
  log "fetching Debian's busybox-static for arm64"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -qq
  fi
  rm -rf .work/arm64-deb && mkdir -p .work/arm64-deb
  (cd .work/arm64-deb && apt-get download -qq busybox-static:arm64)
  rm -rf .work/arm64-busybox
  dpkg-deb -x .work/arm64-deb/busybox-static_*_arm64.deb .work/arm64-busybox
  rm -rf .work/arm64-deb
fi

mkdir -p .work/collections/ansible_collections/imagegate
ln -sfn "$ROOT" .work/collections/ansible_collections/imagegate/containers
