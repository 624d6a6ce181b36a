#!/usr/bin/env bash
# Builds the module binaries into binaries/<arch>/ (or DEST/<arch>/), one
# static executable per module and node architecture: the one build step the
# collection needs. The action plugin picks each host's architecture.
#
#   bash tools/build-modules.sh [DEST]
#   IMAGEGATE_ARCHES="x86_64" bash tools/build-modules.sh   # only these
#
# Architectures: x86_64 and aarch64 by default. The build machine's own
# needs only Rust (cargo, and rustup for the musl target; no Docker, no
# Python, no Ansible). Another one also needs a C cross compiler for ring
# (rustls' cryptography): Debian's gcc-<arch>-linux-gnu and
# libc6-dev-<debian arch>-cross, which tools/setup.sh installs.
#
# rustup fetches the musl standard library from the Rust distribution
# server, which is not reachable from every machine; then the build
# machine's architecture is built for glibc instead (it needs a glibc at
# least as new as this machine's), and the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-binaries}
ARCHES=${IMAGEGATE_ARCHES:-x86_64 aarch64}
MODULES=(registry_mirror container_retag container_push container_build registries_conf)
native=$(uname -m)

has_target() {
  rustup target list --installed 2>/dev/null | grep -qx "$1" || timeout 60 rustup target add "$1" >/dev/null 2>&1
}

for arch in $ARCHES; do
  case $arch in
    x86_64|aarch64) ;;
    *) echo "build-modules.sh: no build recipe for $arch (x86_64 and aarch64 are built here)" >&2; exit 2 ;;
  esac
  target=$arch-unknown-linux-musl
  target_args=(--target "$target")
  out=target/$target/release
  envs=()
  if [ "$arch" = "$native" ]; then
    if ! has_target "$target"; then
      echo "the $target target could not be installed: building $arch for glibc" >&2
      target_args=()
      out=target/release
    fi
  else
    cc=$arch-linux-gnu-gcc
    if ! command -v "$cc" >/dev/null; then
      case $arch in
        aarch64) debs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
        *) debs="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;;
      esac
      echo "build-modules.sh: building for $arch needs the C cross compiler $cc (on Debian: apt-get install $debs), or leave $arch out with IMAGEGATE_ARCHES" >&2
      exit 2
    fi
    if ! has_target "$target"; then
      echo "build-modules.sh: rustup could not install the $target target" >&2
      exit 2
    fi
    upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
    envs=("CC_${target//-/_}=$cc" "CARGO_TARGET_${upper}_LINKER=$cc")
  fi
  printf '\033[1m==> building the modules for %s (%s)\033[0m\n' "$arch" "${target_args[*]:-glibc}"
  env "${envs[@]}" cargo build --quiet --release --locked -p imagegate-modules --bins "${target_args[@]}"
  mkdir -p "$DEST/$arch"
  for bin in "${MODULES[@]}"; do
    install -m 0755 "$out/$bin" "$DEST/$arch/$bin"
  done
done
# Earlier builds put the binaries into plugins/modules, where they would now
# would stand beside the documentation stubs: remove any left there.
for bin in "${MODULES[@]}"; do
  rm -f "plugins/modules/$bin"
done
