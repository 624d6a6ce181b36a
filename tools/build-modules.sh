#!/usr/bin/env bash
# Builds the module binaries into plugins/modules (or DEST), the one build
# step the collection needs. It needs only Rust: cargo, and rustup for the
# musl target (no Docker, no Python, no Ansible; tools/setup.sh, which also
# installs what the tests need, calls it).
#
#   bash tools/build-modules.sh [DEST]
#
# Static musl binaries run on any x86_64 Linux node. rustup fetches the musl
# standard library from the Rust distribution server, which is not reachable
# from every machine; then the modules are built for glibc instead (they need
# a glibc at least as new as this machine's), and the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-plugins/modules}
MUSL=x86_64-unknown-linux-musl
target_args=()
out=target/release
if rustup target list --installed 2>/dev/null | grep -qx "$MUSL" \
   || timeout 30 rustup target add "$MUSL" >/dev/null 2>&1; then
  target_args=(--target "$MUSL")
  out=target/$MUSL/release
else
  echo "the $MUSL target could not be installed: building for glibc" >&2
fi
printf '\033[1m==> building the modules (%s)\033[0m\n' "${target_args[*]:-glibc}"
cargo build --quiet --release --locked -p imagegate-modules --bins "${target_args[@]}"
mkdir -p "$DEST"
for bin in registry_mirror container_retag container_push container_build registries_conf; do
  install -m 0755 "$out/$bin" "$DEST/$bin"
done
