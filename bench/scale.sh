#!/usr/bin/env bash
# Scale benchmark: registry_mirror with many images in one call and with
# one repository of many tags, time and peak RSS, beside a floor client
# (bench/floor.py: the same requests, the standard library, no checks) in
# the same run, against distribution registries on loopback (plain HTTP).
#
#   bash bench/scale.sh [IMAGE_COUNTS] [TAG_COUNTS]
#       (defaults "1000 10000" and "10000 100000"; quote lists)
#   BENCH_RESULTS=/tmp/x bash bench/scale.sh "50 100" "200 400"   a trial run
#
# For each image count N: N images of a 1 KiB layer are seeded by the floor
# client (the ingest floor: its time is reported); then the images are
# mirrored cold into a fresh registry by registry_mirror (one call,
# referrers off so the requests match the floor's) and by the floor client
# into another; then both again in check mode against the mirrored
# registry. For each tag count T: one repository with T tags on one
# manifest, mirrored in check mode (all_tags) by registry_mirror and by the
# floor client's tag check. Writes the table, after the machine's facts, to
# $BENCH_RESULTS/scale-<date>.txt (default bench/results, committed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
source tools/env.sh
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

IMAGE_COUNTS=${1:-1000 10000}
TAG_COUNTS=${2:-10000 100000}
LATENCY_MS=0
W="$ROOT/.work/bench-scale"
BENCH_COMMAND="$0 ${1:+\"$1\"} ${2:+\"$2\"}"
source bench/lib.sh
MODULE="$ROOT/plugins/modules/registry_mirror"
ROWS=()

module_args() { # SRC DST N CHECK -> registry_mirror's arguments
  python3 - "$@" <<'PY'
import json, sys
src, dst, n, check = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "check"
print(json.dumps({
  "images": [{"src": f"{src}/scale/img{i}:v1", "dest": f"{dst}/mirror/scale/img{i}"} for i in range(n)],
  "registries": {src: {"plain_http": True}, dst: {"plain_http": True}},
  "referrers": False,
  "_ansible_check_mode": check,
}))
PY
}

for n in $IMAGE_COUNTS; do
  echo "==> $n images: seeding (the ingest floor)"
  start_registry "$W/src$n"; SRC=$REG; SP=$REG_PID
  measure "ingest_floor_$n" python3 bench/floor.py seed "$SRC" "$n"
  start_registry "$W/ig$n"; IG=$REG; IP=$REG_PID
  start_registry "$W/fl$n"; FL=$REG; FP=$REG_PID
  module_args "$SRC" "$IG" "$n" cold >"$W/cold-$n.json"
  module_args "$SRC" "$IG" "$n" check >"$W/check-$n.json"
  echo "==> $n images: mirror cold, imagegate and the floor"
  measure "imagegate_cold_$n" "$MODULE" "$W/cold-$n.json"
  measure "floor_cold_$n" python3 bench/floor.py mirror "$SRC" "$FL" "$n"
  echo "==> $n images: check mode against the mirrored registry"
  measure "imagegate_check_$n" "$MODULE" "$W/check-$n.json"
  measure "floor_check_$n" python3 bench/floor.py mirror "$SRC" "$IG" "$n" --check
  ROWS+=("ingest_floor_$n" "imagegate_cold_$n" "floor_cold_$n" "imagegate_check_$n" "floor_check_$n")
  for p in "$FP" "$IP" "$SP"; do stop_registry "$p"; done
done

for t in $TAG_COUNTS; do
  echo "==> one repository with $t tags: seeding"
  start_registry "$W/tsrc$t"; SRC=$REG; SP=$REG_PID
  start_registry "$W/tdst$t"; DST=$REG; DP=$REG_PID
  python3 bench/floor.py seed "$SRC" 1 >/dev/null
  python3 bench/floor.py tags "$SRC" scale/img0 "$t" >/dev/null
  python3 -c "import json,sys; s,d=sys.argv[1],sys.argv[2]; print(json.dumps({'images':[{'src':f'{s}/scale/img0','dest':f'{d}/mirror/scale/img0','all_tags':True}],'registries':{s:{'plain_http':True},d:{'plain_http':True}},'referrers':False,'_ansible_check_mode':True}))" "$SRC" "$DST" >"$W/tags-$t.json"
  echo "==> $t tags: check mode, imagegate and the floor"
  measure "imagegate_tags_check_$t" "$MODULE" "$W/tags-$t.json"
  measure "floor_tags_check_$t" python3 bench/floor.py tag-check "$SRC" "$DST" scale/img0
  ROWS+=("imagegate_tags_check_$t" "floor_tags_check_$t")
  stop_registry "$DP"; stop_registry "$SP"
done

OUT="$BENCH_RESULTS/scale-$(date +%Y%m%d-%H%M%S).txt"
machine_facts >"$OUT"
echo >>"$OUT"
python3 - "$W" "$IMAGE_COUNTS" "$TAG_COUNTS" "${ROWS[@]}" <<'PY' | tee -a "$OUT"
import sys
sys.path.insert(0, "bench")
from report import Results
w, images, tags, rows = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4:]
r = Results(w, 1)
print(f"scale benchmark: images {' '.join(images)}, tags {' '.join(tags)}; loopback, plain HTTP; one run each")
r.table(rows, 0)
for n in images:
    for kind in ["cold", "check"]:
        print(f"{n} images {kind}: imagegate / floor {r.ratio(f'imagegate_{kind}_{n}', f'floor_{kind}_{n}'):.2f} "
              f"(target 1.5), peak {r.median(f'imagegate_{kind}_{n}')[1]:.1f} MiB (target under 64)")
    print(f"{n} images: cold mirror / ingest floor {r.ratio(f'imagegate_cold_{n}', f'ingest_floor_{n}'):.2f} (target 1.5)")
for t in tags:
    print(f"{t} tags check: imagegate / floor {r.ratio(f'imagegate_tags_check_{t}', f'floor_tags_check_{t}'):.2f} "
          f"(target 1.5), peak {r.median(f'imagegate_tags_check_{t}')[1]:.1f} MiB (target under 64)")
PY
