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
#   plugins/modules: the module binaries (static musl if the target is
#                    available, else glibc)
#   .work/collections/ansible_collections/imagegate/containers -> this checkout
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

DEBS=(docker.io sudo docker-registry buildah podman busybox-static skopeo openssl apache2-utils ca-certificates musl-tools python3-venv openssh-server time)
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

# The module binaries (needs only Rust; see the script).
bash tools/build-modules.sh

mkdir -p .work/collections/ansible_collections/imagegate
ln -sfn "$ROOT" .work/collections/ansible_collections/imagegate/containers
