#!/usr/bin/env bash
# Installs what the Zuul harness needs, idempotently:
#   Debian packages: ZooKeeper, bubblewrap, PostgreSQL, sshd, sudo, docker.io
#   .work/zuul-venv:    zuul 14.3.0 and zuul-client, in a venv made from
#                       /usr/bin/python3 (visible inside bubblewrap)
#   .work/zuul-ansible: Ansible 9 and 11 installed by zuul-manage-ansible,
#                       reused by later runs
# Run tools/setup.sh first (it builds the module binaries and .venv).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

ZUUL_VERSION=14.3.0
ZUUL_CLIENT_VERSION=${ZUUL_CLIENT_VERSION:-}
DEBS=(zookeeper bubblewrap postgresql openssh-server sudo openssl git curl default-jre-headless docker-registry apache2-utils python3-venv podman buildah busybox-static uidmap docker.io)
source "$ROOT/tools/debs.sh"
ensure_debs "${DEBS[@]}"

VENV=.work/zuul-venv
if [ ! -x "$VENV/bin/zuul-scheduler" ] || [ "$(cat "$VENV/.zuul-version" 2>/dev/null)" != "$ZUUL_VERSION" ]; then
  log "creating $VENV (zuul $ZUUL_VERSION, zuul-client) from /usr/bin/python3"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "zuul==$ZUUL_VERSION" "zuul-client${ZUUL_CLIENT_VERSION:+==$ZUUL_CLIENT_VERSION}"
  echo "$ZUUL_VERSION" > "$VENV/.zuul-version"
fi

# The static node's login: a non-root user with passwordless sudo, key
# login only (password field '*': no password, not locked), with subordinate
# ids for rootless builds.
source "$ROOT/tools/node.sh"
for NODE_USER in imagegate-node imagegate-node2 imagegate-node3 imagegate-node4 imagegate-node5; do
  id "$NODE_USER" >/dev/null 2>&1 || log "creating the node user $NODE_USER (passwordless sudo)"
  node_user_ensure "$NODE_USER"
done
# The harness's private Docker engine (tests/zuul/docker.sh) gives its
# socket to this group; the docker node's user (imagegate-node5) is in it.
# No system daemon is reachable through the group.
DOCKER_GROUP=imagegate-harness-docker
getent group "$DOCKER_GROUP" >/dev/null || groupadd "$DOCKER_GROUP"
usermod -a -G "$DOCKER_GROUP" imagegate-node5

# .work/node-registry-venv (zuul-registry for the nodes) is made by tools/setup.sh.

ANSROOT=.work/zuul-ansible
if [ ! -f "$ANSROOT/.done-$ZUUL_VERSION" ]; then
  log "installing Zuul's Ansible versions into $ANSROOT (a few minutes, once)"
  rm -rf "$ANSROOT"
  mkdir -p "$ANSROOT"
  "$VENV/bin/zuul-manage-ansible" -r "$ROOT/$ANSROOT"
  touch "$ANSROOT/.done-$ZUUL_VERSION"
fi
log "Zuul harness prerequisites ready"
