#!/usr/bin/env bash
# Promotion benchmark: container_retag promoting IMAGES images (change tag to
# final tag, one task) side by side with the zuul-jobs method, `skopeo copy
# --all` from the change tag to the final tag once per image and tag, in one
# run against the same registry (each promotes to its own final tag, so both
# start from the same state).
#
#   bash bench/promote.sh [IMAGES]            (default 50)
#   LATENCY_MS=20 bash bench/promote.sh       every request delayed 20 ms
#   BENCH_RESULTS=/tmp/x bash bench/promote.sh 2   a trial run, kept out of
#                                             bench/results
#
# Writes the table, after the machine's facts, to
# $BENCH_RESULTS/promote-<date>.txt (default bench/results, committed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
source tools/env.sh
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

IMAGES=${1:-50}
LATENCY_MS=${LATENCY_MS:-0}
if [ "$LATENCY_MS" != 0 ]; then
  cargo build --quiet --release -p imagegate-testkit --bin imagegate-faultproxy
fi
W="$ROOT/.work/bench-promote"
BENCH_COMMAND="$0 $*"
source bench/lib.sh

echo "==> making $IMAGES synthetic images (2 MiB shared base + 2, 1 MiB layers)"
python3 bench/make_layout.py "$W/layout" --images "$IMAGES" --layers 2,1 --shared 2
start_registry "$W/reg"; DIRECT=$REG
for n in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "oci:$W/layout:img$n" "docker://$DIRECT/team/img$n:change_1234_latest"
done
via R "$DIRECT"

python3 - "$R" "$IMAGES" >"$W/args.json" <<'PY'
import json, sys
r, n = sys.argv[1], int(sys.argv[2])
print(json.dumps({
  "images": [{"repository": f"{r}/team/img{i}", "src_tag": "change_1234_latest", "tags": ["latest-imagegate"]} for i in range(n)],
  "registries": {r: {"plain_http": True}},
}))
PY
echo "==> imagegate container_retag, one call for $IMAGES images"
measure imagegate "$ROOT/plugins/modules/container_retag" "$W/args.json"
measure imagegate_again "$ROOT/plugins/modules/container_retag" "$W/args.json"

cat >"$W/skopeo.sh" <<SH
for n in \$(seq 0 $((IMAGES - 1))); do
  skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false \\
    docker://$R/team/img\$n:change_1234_latest docker://$R/team/img\$n:latest-skopeo
done
SH
echo "==> skopeo copy --all per image and tag (the zuul-jobs method)"
measure skopeo bash "$W/skopeo.sh"
measure skopeo_again bash "$W/skopeo.sh"

OUT="$BENCH_RESULTS/promote-$(date +%Y%m%d-%H%M%S).txt"
machine_facts >"$OUT"
echo >>"$OUT"
python3 - "$W" "$IMAGES" "$LATENCY_MS" <<'PY' | tee -a "$OUT"
import os, sys
w, images, latency = sys.argv[1], sys.argv[2], sys.argv[3]
def m(name):
    t, rss = open(os.path.join(w, name + ".m")).read().split()
    return float(t), int(rss) / 1024
print(f"promotion benchmark: {images} images, one final tag each; {os.cpu_count()} cores; {latency} ms added per request")
print(f"{'run':<18}{'seconds':>10}{'peak MiB':>12}")
for r in ["imagegate", "skopeo", "imagegate_again", "skopeo_again"]:
    t, rss = m(r)
    print(f"{r:<18}{t:>10.2f}{rss:>12.1f}")
print(f"imagegate is {m('skopeo')[0] / m('imagegate')[0]:.1f}x faster than skopeo copy per tag (target: 10x); "
      f"again (already promoted): {m('skopeo_again')[0] / m('imagegate_again')[0]:.1f}x")
PY
