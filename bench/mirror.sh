#!/usr/bin/env bash
# Mirror benchmark: imagegate's registry_mirror side by side with skopeo
# (`skopeo copy --all` once per image, as the zuul-jobs mirror role does, and
# `skopeo sync`), each into a freshly wiped distribution registry, in one run.
# Then the memory of each while a 1 GiB layer streams through.
#
#   bash bench/mirror.sh [IMAGES] [BIG_MIB]     (defaults: 20 images, 1024 MiB)
#   LATENCY_MS=20 bash bench/mirror.sh          every registry request delayed
#                                               20 ms by a proxy, as over a WAN
#
#   BENCH_RESULTS=/tmp/x bash bench/mirror.sh 2 8   a trial run, kept out of
#                                               bench/results
#
# Prints a table and the ratios; writes them, after the machine's facts
# (cores, CPU, memory, kernel, tool versions), to
# $BENCH_RESULTS/mirror-<date>.txt (default bench/results, committed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
source tools/env.sh
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }

IMAGES=${1:-20}
BIG_MIB=${2:-1024}
LATENCY_MS=${LATENCY_MS:-0}
if [ "$LATENCY_MS" != 0 ]; then
  cargo build --quiet --release -p imagegate-testkit --bin imagegate-faultproxy
fi
W="$ROOT/.work/bench"
BENCH_COMMAND="$0 $*"
source bench/lib.sh

echo "==> making $IMAGES synthetic images (8 MiB shared base + 4, 2, 1 MiB layers)"
python3 bench/make_layout.py "$W/layout" --images "$IMAGES" --layers 4,2,1 --shared 8
start_registry "$W/src"; SRC_DIRECT=$REG
for n in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "oci:$W/layout:img$n" "docker://$SRC_DIRECT/bench/img$n:v1"
done
via SRC "$SRC_DIRECT"

images_json() { # dest -> module args
  python3 - "$SRC" "$1" "$IMAGES" <<'PY'
import json, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(json.dumps({
  "images": [{"src": f"{src}/bench/img{i}:v1", "dest": f"{dst}/mirror/img{i}"} for i in range(n)],
  "registries": {src: {"plain_http": True}, dst: {"plain_http": True}},
}))
PY
}
MODULE="$ROOT/plugins/modules/registry_mirror"

echo "==> imagegate registry_mirror, cold"
start_registry "$W/d1"; via D "$REG"; P=$REG_PID
images_json "$D" >"$W/args.json"
measure imagegate_cold "$MODULE" "$W/args.json"
measure imagegate_warm "$MODULE" "$W/args.json"
stop_registry "$P"

echo "==> skopeo copy --all, one call per image, cold"
start_registry "$W/d2"; via D "$REG"; P=$REG_PID
cat >"$W/skopeo-each.sh" <<SH
for n in \$(seq 0 $((IMAGES - 1))); do
  skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false docker://$SRC/bench/img\$n:v1 docker://$D/mirror/img\$n:v1
done
SH
measure skopeo_copy_cold bash "$W/skopeo-each.sh"
measure skopeo_copy_warm bash "$W/skopeo-each.sh"
stop_registry "$P"

echo "==> skopeo sync, cold"
start_registry "$W/d3"; via D "$REG"; P=$REG_PID
{
  echo "$SRC:"
  echo "  tls-verify: false"
  echo "  images:"
  for n in $(seq 0 $((IMAGES - 1))); do echo "    bench/img$n: [v1]"; done
} >"$W/sync.yaml"
measure skopeo_sync_cold skopeo sync --all --src yaml --dest docker --dest-tls-verify=false "$W/sync.yaml" "$D/mirror"
stop_registry "$P"

echo "==> one image with a ${BIG_MIB} MiB layer: peak memory while it streams"
python3 bench/make_layout.py "$W/big" --images 1 --layers "$BIG_MIB" --tag-prefix big
skopeo copy --quiet --dest-tls-verify=false "oci:$W/big:big0" "docker://$SRC_DIRECT/bench/big:v1"
SRC=$SRC_DIRECT
start_registry "$W/d4"; D=$REG; P=$REG_PID
python3 -c "import json,sys; print(json.dumps({'images':[{'src':'$SRC/bench/big:v1','dest':'$D/mirror/big'}],'registries':{'$SRC':{'plain_http':True},'$D':{'plain_http':True}}}))" >"$W/big.json"
measure imagegate_big "$MODULE" "$W/big.json"
stop_registry "$P"
start_registry "$W/d5"; D=$REG; P=$REG_PID
measure skopeo_big skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false "docker://$SRC/bench/big:v1" "docker://$D/mirror/big:v1"
stop_registry "$P"

OUT="$BENCH_RESULTS/mirror-$(date +%Y%m%d-%H%M%S).txt"
machine_facts >"$OUT"
echo >>"$OUT"
python3 - "$W" "$IMAGES" "$BIG_MIB" "$LATENCY_MS" <<'PY' | tee -a "$OUT"
import sys, os
w, images, big, latency = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def m(name):
    t, rss = open(os.path.join(w, name + ".m")).read().split()
    return float(t), int(rss) / 1024
rows = ["imagegate_cold", "skopeo_copy_cold", "skopeo_sync_cold", "imagegate_warm", "skopeo_copy_warm", "imagegate_big", "skopeo_big"]
print(f"mirror benchmark: {images} images (8 MiB shared + 7 MiB own each), one {big} MiB layer; {os.cpu_count()} cores; {latency} ms added per request")
print(f"{'run':<20}{'seconds':>10}{'peak MiB':>12}")
for r in rows:
    t, rss = m(r)
    print(f"{r:<20}{t:>10.2f}{rss:>12.1f}")
ic, sc, ss = m("imagegate_cold")[0], m("skopeo_copy_cold")[0], m("skopeo_sync_cold")[0]
iw, sw = m("imagegate_warm")[0], m("skopeo_copy_warm")[0]
print(f"cold: imagegate is {sc/ic:.1f}x faster than skopeo copy per image, {ss/ic:.1f}x faster than skopeo sync (target: 2x)")
print(f"warm: imagegate is {sw/iw:.1f}x faster than skopeo copy per image")
print(f"{big} MiB layer: imagegate peak {m('imagegate_big')[1]:.1f} MiB (target: under 64 MiB), skopeo {m('skopeo_big')[1]:.1f} MiB")
PY
