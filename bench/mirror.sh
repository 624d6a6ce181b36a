#!/usr/bin/env bash
# Mirror benchmark: imagegate's registry_mirror (all images in one call, as
# the role does) side by side with `skopeo copy --all` once per image (as the
# zuul-jobs mirror role does), each into a freshly started distribution
# registry, RUNS trials alternating which goes first; then a warm run of
# each (everything already there), one `skopeo sync` for reference, and the
# peak memory of each while one BIG_MIB MiB layer streams (BIG_MIB 0: skip).
#
#   bash bench/mirror.sh [IMAGES] [BIG_MIB] [RUNS]   (defaults 12, 1024, 3)
#   LAYERS=4,2,1 SHARED=8 bash bench/mirror.sh       the images' own layers
#                                  and a base layer all share, in MiB
#                                  (defaults: two own layers of 2 and 1 MiB,
#                                  no shared base)
#   CONCURRENCY=8 bash bench/mirror.sh   registry_mirror's concurrency
#                                  (default: the module's)
#   LATENCY_MS=20 bash bench/mirror.sh   every registry request delayed 20 ms
#                                  by a proxy (as over a WAN) that also counts
#                                  each run's requests and bytes
#   BENCH_RESULTS=/tmp/x bash bench/mirror.sh 2 8 1  a trial run, kept out of
#                                  bench/results
#
# Prints a table (medians over the trials) and the ratios; writes them,
# after the machine's facts, to $BENCH_RESULTS/mirror-<date>.txt (default
# bench/results, committed).
source "$(dirname "$0")/lib.sh"

IMAGES=${1:-12}
BIG_MIB=${2:-1024}
RUNS=${3:-3}
LAYERS=${LAYERS:-2,1}
SHARED=${SHARED:-0}
LATENCY_MS=${LATENCY_MS:-0}
CONCURRENCY=${CONCURRENCY:-}
bench_begin "$ROOT/.work/bench" "LAYERS=$LAYERS SHARED=$SHARED ${CONCURRENCY:+CONCURRENCY=$CONCURRENCY }$0 $*"

echo "==> making $IMAGES synthetic images (own layers $LAYERS MiB, shared base $SHARED MiB)"
shared_arg=()
[ "$SHARED" = 0 ] || shared_arg=(--shared "$SHARED")
python3 bench/make_layout.py "$W/layout" --images "$IMAGES" --layers "$LAYERS" "${shared_arg[@]}"
start_registry "$W/src"; SRC_DIRECT=$REG
for n in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "oci:$W/layout:img$n" "docker://$SRC_DIRECT/bench/img$n:v1"
done
via SRC "$SRC_DIRECT"

images_json() { # dest -> module args
  python3 - "$SRC" "$1" "$IMAGES" <<'PY' | with_concurrency
import json, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(json.dumps({
  "images": [{"src": f"{src}/bench/img{i}:v1", "dest": f"{dst}/mirror/img{i}"} for i in range(n)],
  "registries": {src: {"plain_http": True}, dst: {"plain_http": True}},
}))
PY
}
skopeo_script() { # dest -> the zuul-jobs method, as a script
  cat <<SH
for n in \$(seq 0 $((IMAGES - 1))); do
  skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false docker://$SRC/bench/img\$n:v1 docker://$1/mirror/img\$n:v1
done
SH
}
MODULE="$ROOT/binaries/$(uname -m)/registry_mirror"

# Each trial into a registry of its own, stopped after it (the last trial's
# stays for the warm run).
run_imagegate() { # TRIAL
  start_registry "$W/ig$1"; via D "$REG"
  IG_STOP=("$REG_PID" "$PROXY_PID")
  images_json "$D" >"$W/args-$1.json"
  measure "imagegate_cold_$1" "$MODULE" "$W/args-$1.json"
  if [ "$1" = "$RUNS" ]; then
    measure imagegate_warm "$MODULE" "$W/args-$1.json"
  fi
  stop_registry "${IG_STOP[@]}"
}
run_skopeo() { # TRIAL
  start_registry "$W/sk$1"; via D "$REG"
  SK_STOP=("$REG_PID" "$PROXY_PID")
  skopeo_script "$D" >"$W/skopeo-$1.sh"
  measure "skopeo_copy_cold_$1" bash "$W/skopeo-$1.sh"
  if [ "$1" = "$RUNS" ]; then
    measure skopeo_copy_warm bash "$W/skopeo-$1.sh"
  fi
  stop_registry "${SK_STOP[@]}"
}
trials run_ imagegate skopeo "" ": registry_mirror (one call) and skopeo copy --all per image, cold"

echo "==> skopeo sync, cold (once, for reference)"
start_registry "$W/sync"; via D "$REG"; STOP=("$REG_PID" "$PROXY_PID")
{
  echo "$SRC:"
  echo "  tls-verify: false"
  echo "  images:"
  for n in $(seq 0 $((IMAGES - 1))); do echo "    bench/img$n: [v1]"; done
} >"$W/sync.yaml"
measure skopeo_sync_cold skopeo sync --all --src yaml --dest docker --dest-tls-verify=false "$W/sync.yaml" "$D/mirror"
stop_registry "${STOP[@]}"

ROWS=(imagegate_cold skopeo_copy_cold skopeo_sync_cold imagegate_warm skopeo_copy_warm)
if [ "$BIG_MIB" != 0 ]; then
  echo "==> one image with a ${BIG_MIB} MiB layer: peak memory while it streams (no proxy)"
  python3 bench/make_layout.py "$W/big" --images 1 --layers "$BIG_MIB" --tag-prefix big
  skopeo copy --quiet --dest-tls-verify=false "oci:$W/big:big0" "docker://$SRC_DIRECT/bench/big:v1"
  SRC=$SRC_DIRECT
  big_layer_pair "$SRC" "$MODULE" imagegate_big skopeo_big "$W/d4" "$W/d5"
fi

write_report mirror "$W" "$IMAGES" "$BIG_MIB" "$LATENCY_MS" "$RUNS" "$LAYERS" "$SHARED" "${CONCURRENCY:-default}" "${ROWS[@]}" <<'PY'
import sys
from report import Results
w, images, big, latency, runs, layers, shared, conc, *rows = sys.argv[1:]
r = Results(w, int(runs))
print(f"mirror benchmark: {images} images (own layers {layers} MiB, shared base {shared} MiB); "
      f"{runs} trials (medians); {latency} ms added per request; registry_mirror concurrency {conc}")
r.table(rows, int(latency))
print(f"cold: imagegate / skopeo copy per image {r.ratio('imagegate_cold', 'skopeo_copy_cold'):.3f} "
      f"(targets: 0.2 with 20 ms per request), / skopeo sync {r.ratio('imagegate_cold', 'skopeo_sync_cold'):.3f}")
print(f"warm: imagegate / skopeo copy per image {r.ratio('imagegate_warm', 'skopeo_copy_warm'):.3f}")
if "imagegate_big" in rows:
    print(f"{big} MiB layer: imagegate peak {r.median('imagegate_big')[1]:.1f} MiB (target: under 64 MiB), "
          f"skopeo {r.median('skopeo_big')[1]:.1f} MiB")
PY
