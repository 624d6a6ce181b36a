#!/usr/bin/env bash
# Installs what is needed and starts two local registries on 127.0.0.1.
# 1. Mirror: seeds the first with images built here with buildah (a single-
#    platform image and an amd64+arm64 index) and mirrors them to the second
#    through imagegate.containers.registry_mirror (check mode, real, again).
# 2. Gate cycle: with the roles the Zuul jobs run, builds a sample image
#    (check), uploads it under its change tags (gate), promotes it (final
#    tags moved, change tags removed) and mirrors the release to the second
#    registry, printing a summary of digests and what happened at each step.
#
# IMAGEGATE_SKIP_SETUP=1 skips tools/setup.sh (already run); DEMO_DIR moves
# the work directory (default .work/demo), which is wiped first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${IMAGEGATE_SKIP_SETUP:-}" ] || bash tools/setup.sh
source tools/env.sh

DEMO=${DEMO_DIR:-"$ROOT/.work/demo"}
# A directory someone named is wiped only if an earlier demo made it.
if [ -n "${DEMO_DIR:-}" ] && [ ! -e "$DEMO/.imagegate-demo" ] && [ -n "$(ls -A "$DEMO" 2>/dev/null)" ]; then
  echo "demo: $DEMO is not empty and not a demo directory; refusing to wipe it" >&2
  exit 1
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
touch "$DEMO/.imagegate-demo"
# The registries are stopped on every exit path, by their process ids.
source tools/servers.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_registry() { # NAME -> sets REG (host:port); not in $(...): its pid must be kept here
  local name=$1 port
  port=$(free_port)
  mkdir -p "$DEMO/$name"
  cat >"$DEMO/$name/config.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $DEMO/$name/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YAML
  server_start "$DEMO/$name/log" docker-registry serve "$DEMO/$name/config.yml"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  REG="127.0.0.1:$port"
}

start_registry source
SRC=$REG
start_registry mirror
DST=$REG
echo "==> registries: $SRC (images are gated there), $DST (the mirror)"

echo "==> 1/2 mirror: images built with buildah, mirrored with registry_mirror"
BUILDAH=(buildah --root "$DEMO/storage" --runroot "$DEMO/run" --storage-driver vfs)
mkdir -p "$DEMO/context"
cp "$(command -v busybox)" "$DEMO/context/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "sh"]\n' >"$DEMO/context/Containerfile"
"${BUILDAH[@]}" build --quiet --isolation chroot --layers -t localhost/demo/busybox:1.0 "$DEMO/context" >/dev/null
"${BUILDAH[@]}" push --quiet --tls-verify=false localhost/demo/busybox:1.0 "docker://$SRC/demo/busybox:1.0"
"${BUILDAH[@]}" build --quiet --isolation chroot --platform linux/amd64,linux/arm64 \
  --manifest localhost/demo/multi:1.0 "$DEMO/context" >/dev/null
"${BUILDAH[@]}" manifest push --quiet --all --tls-verify=false localhost/demo/multi:1.0 "docker://$SRC/demo/multi:1.0"
ansible-playbook -i localhost, -c local playbooks/demo/mirror.yaml \
  -e "demo_source=$SRC" -e "demo_mirror=$DST"

echo "==> 2/2 gate cycle: build (check), upload under the change tag (gate), promote, remove the change tag, mirror"
mkdir -p "$DEMO/src/app"
cp "$(command -v busybox)" "$DEMO/src/app/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nLABEL org.example.demo=gate-cycle\nCMD ["/bin/busybox", "sh"]\n' >"$DEMO/src/app/Containerfile"
ansible-playbook -i localhost, -c local playbooks/demo/gate-cycle.yaml \
  -e "demo_work=$DEMO" -e "demo_registry=$SRC" -e "demo_mirror=$DST"

echo "==> the same engine from a shell (docs/cli.rst): what the mirror holds"
"${CARGO_TARGET_DIR:-target}/release/imagegate" --plain-http "$DST" inspect "$DST/mirror/multi:stable"
