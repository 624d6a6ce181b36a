#!/usr/bin/env bash
# The imagegate command beside skopeo, each into a freshly started
# distribution registry, RUNS trials alternating which goes first:
#   1. `imagegate copy` of one multi-platform image (an index of PLATFORMS,
#      each image with layers of its own: LAYERS MiB) against
#      `skopeo copy --all`;
#   2. `imagegate mirror -f` of SMALL small images (one KiB-sized layer
#      each, a repository each) against `skopeo sync --all` of the same
#      list, and imagegate once more with a tenth of them: peak memory at
#      both sizes says whether memory stays flat as the list grows.
#
#   bash bench/cli.sh [SMALL] [RUNS]        (defaults 1000, 3)
#   PLATFORMS=amd64,arm64,ppc64le LAYERS=8,4 bash bench/cli.sh
#   LATENCY_MS=20 bash bench/cli.sh         every request delayed 20 ms by a
#                                           proxy that counts requests
#   BENCH_RESULTS=/tmp/x bash bench/cli.sh 50 1   a trial run
#
# Prints a table (medians over the trials) and the ratios; writes them,
# after the machine's facts, to $BENCH_RESULTS/cli-<date>.txt.
source "$(dirname "$0")/lib.sh"

SMALL=${1:-1000}
RUNS=${2:-3}
PLATFORMS=${PLATFORMS:-amd64,arm64,ppc64le}
LAYERS=${LAYERS:-8,4}
LATENCY_MS=${LATENCY_MS:-0}
bench_begin "$ROOT/.work/bench-cli" "PLATFORMS=$PLATFORMS LAYERS=$LAYERS $0 $*"
IMAGEGATE="${CARGO_TARGET_DIR:-target}/release/imagegate"
PUSH="$ROOT/binaries/$(uname -m)/container_push"

echo "==> making the images: one index of $PLATFORMS (layers $LAYERS MiB), $SMALL small ones"
python3 bench/make_layout.py "$W/multi" --images 1 --layers "$LAYERS" --platforms "$PLATFORMS" --tag-prefix multi
python3 bench/make_layout.py "$W/small" --images "$SMALL" --layers 4 --kib --tag-prefix s
start_registry "$W/src"; SRC_DIRECT=$REG
skopeo copy --all --quiet --dest-tls-verify=false "oci:$W/multi:multi0" "docker://$SRC_DIRECT/bench/multi:v1"
echo "==> pushing the $SMALL small images (container_push, one call each)"
for n in $(seq 0 $((SMALL - 1))); do
  printf '{"layout":"%s","name":"s%s","repository":"%s/bench/s%s","tags":["v1"],"registries":{"%s":{"plain_http":true}}}' \
    "$W/small" "$n" "$SRC_DIRECT" "$n" "$SRC_DIRECT" >"$W/push.json"
  "$PUSH" "$W/push.json" >/dev/null 2>&1 || { echo "container_push of s$n failed"; exit 1; }
done
via SRC "$SRC_DIRECT"

# mirror_file DEST COUNT: registry_mirror's options for the first COUNT
# small images, as `imagegate mirror -f` reads them.
mirror_file() {
  python3 - "$SRC" "$1" "$2" <<'PY'
import json, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(json.dumps({
    "images": [{"src": f"{src}/bench/s{i}:v1", "dest": f"{dst}/mirror/s{i}"} for i in range(n)],
    "registries": {src: {"plain_http": True}, dst: {"plain_http": True}},
}))
PY
}
# sync_file COUNT: the same images as `skopeo sync --src yaml` reads them.
sync_file() {
  echo "$SRC:"
  echo "  tls-verify: false"
  echo "  images:"
  for n in $(seq 0 $(($1 - 1))); do echo "    bench/s$n: [v1]"; done
}
PLAIN=(--plain-http "$SRC")

run_copy_imagegate() { # TRIAL
  start_registry "$W/ci$1"; via D "$REG"; local stop=("$REG_PID" "$PROXY_PID")
  measure "imagegate_copy_$1" "$IMAGEGATE" --quiet "${PLAIN[@]}" --plain-http "$D" copy "$SRC/bench/multi:v1" "$D/mirror/multi:v1"
  stop_registry "${stop[@]}"
}
run_copy_skopeo() { # TRIAL
  start_registry "$W/cs$1"; via D "$REG"; local stop=("$REG_PID" "$PROXY_PID")
  measure "skopeo_copy_$1" skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false \
    "docker://$SRC/bench/multi:v1" "docker://$D/mirror/multi:v1"
  stop_registry "${stop[@]}"
}
trials run_copy_ imagegate skopeo copy ": imagegate copy and skopeo copy --all of one index"

run_mirror_imagegate() { # TRIAL
  start_registry "$W/mi$1"; via D "$REG"; local stop=("$REG_PID" "$PROXY_PID")
  mirror_file "$D" "$SMALL" >"$W/mirror-$1.json"
  measure "imagegate_mirror_$1" "$IMAGEGATE" --quiet mirror -f "$W/mirror-$1.json"
  stop_registry "${stop[@]}"
}
run_mirror_skopeo() { # TRIAL
  start_registry "$W/ms$1"; via D "$REG"; local stop=("$REG_PID" "$PROXY_PID")
  sync_file "$SMALL" >"$W/sync-$1.yaml"
  measure "skopeo_sync_$1" skopeo sync --all --src yaml --dest docker --dest-tls-verify=false "$W/sync-$1.yaml" "$D/mirror"
  stop_registry "${stop[@]}"
}
trials run_mirror_ imagegate skopeo mirror ": imagegate mirror -f and skopeo sync of $SMALL images"

TENTH=$(((SMALL + 9) / 10))
echo "==> imagegate mirror -f of $TENTH images (memory at a tenth of the list)"
start_registry "$W/tenth"; via D "$REG"; STOP=("$REG_PID" "$PROXY_PID")
mirror_file "$D" "$TENTH" >"$W/tenth.json"
measure imagegate_mirror_tenth "$IMAGEGATE" --quiet mirror -f "$W/tenth.json"
stop_registry "${STOP[@]}"

write_report cli "$W" "$SMALL" "$TENTH" "$LATENCY_MS" "$RUNS" "$PLATFORMS" "$LAYERS" <<'PY'
import sys
from report import Results
w, small, tenth, latency, runs, platforms, layers = sys.argv[1:]
r = Results(w, int(runs))
print(f"imagegate command benchmark: copy of one index ({platforms}; layers {layers} MiB each), "
      f"mirror -f of {small} small images; {runs} trials (medians); {latency} ms added per request")
r.table(["imagegate_copy", "skopeo_copy", "imagegate_mirror", "skopeo_sync", "imagegate_mirror_tenth"], int(latency))
print(f"copy: imagegate / skopeo copy --all {r.ratio('imagegate_copy', 'skopeo_copy'):.3f} (target: at most 1)")
print(f"mirror: imagegate / skopeo sync {r.ratio('imagegate_mirror', 'skopeo_sync'):.3f} (target: at most 1)")
print(f"memory: imagegate peak {r.median('imagegate_mirror_tenth')[1]:.1f} MiB for {tenth} images, "
      f"{r.median('imagegate_mirror')[1]:.1f} MiB for {small}; skopeo sync {r.median('skopeo_sync')[1]:.1f} MiB")
PY
