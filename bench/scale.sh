#!/usr/bin/env bash
# Scale benchmark: registry_mirror with many images in one call and with
# one repository of many tags, time and peak RSS, beside a floor client
# (bench/floor.py: the same requests, the standard library, no checks) in
# the same run, against distribution registries on loopback (plain HTTP, or
# TLS with TLS=1).
#
#   bash bench/scale.sh [IMAGE_COUNTS] [TAG_COUNTS] [RUNS]
#       (defaults "1000 10000", "10000 100000" and 3; quote lists; "" for
#       none of a kind)
#   BENCH_RESULTS=/tmp/x bash bench/scale.sh "50 100" "200 400" 1   a trial run
#   TLS=1 bash bench/scale.sh   every registry serves TLS (a CA made for the
#                               run), which both clients trust
#
# For each image count N: N images of a 1 KiB layer are seeded into a
# source registry. Then RUNS trials, each alternating which contender goes
# first: the ingest floor (the floor client pushing N such images into a
# fresh registry), the images mirrored cold into fresh registries by
# registry_mirror (one call, referrers off so the requests match the
# floor's) and by the floor client, then both again in check mode against
# the mirrored registries. For each tag count T: one repository with T tags
# on one manifest, mirrored in check mode (all_tags) by registry_mirror and
# by the floor client's tag check, RUNS trials. Figures are medians; the
# report ends with the cost per image and per tag at each size (linear
# growth keeps it flat). Writes the table, after the machine's facts, to
# $BENCH_RESULTS/scale-<date>.txt (default bench/results, committed).
source "$(dirname "$0")/lib.sh"

IMAGE_COUNTS=${1-1000 10000}
TAG_COUNTS=${2-10000 100000}
RUNS=${3:-3}
TLS=${TLS:-0}
[ "$TLS" = 0 ] || TLS="TLS=1 "
LATENCY_MS=0
bench_begin "$ROOT/.work/bench-scale" "${TLS#0}$0 ${1:+\"$1\"} ${2:+\"$2\"} ${3:-}"
MODULE="$ROOT/binaries/$(uname -m)/registry_mirror"
ROWS=()
# registry DIR: start_registry, over TLS with TLS=1; ENTRY is then the
# module's registries entry for each registry (the floor client trusts the
# same CA through FLOOR_CA).
if [ "$TLS" != 0 ]; then
  registry() { start_registry "$1" tls; }
  make_tls
  export FLOOR_CA=$TLS_CA
  ENTRY="{\"ca_cert\": \"$TLS_CA\"}" TRANSPORT=TLS
else
  registry() { start_registry "$1"; }
  ENTRY='{"plain_http": true}' TRANSPORT="plain HTTP"
fi

module_args() { # SRC DST N CHECK -> registry_mirror's arguments
  python3 - "$@" "$ENTRY" <<'PY'
import json, sys
src, dst, n, check, entry = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "check", json.loads(sys.argv[5])
print(json.dumps({
  "images": [{"src": f"{src}/scale/img{i}:v1", "dest": f"{dst}/mirror/scale/img{i}"} for i in range(n)],
  "registries": {src: entry, dst: entry},
  "referrers": False,
  "_ansible_check_mode": check,
}))
PY
}

for n in $IMAGE_COUNTS; do
  echo "==> $n images: seeding the source"
  registry "$W/src$n"; SRC=$REG; SP=$REG_PID
  python3 bench/floor.py seed "$SRC" "$n" >/dev/null
  for t in $(seq 1 "$RUNS"); do
    registry "$W/in$n-$t"; IN=$REG; INP=$REG_PID
    registry "$W/ig$n-$t"; IG=$REG; IP=$REG_PID
    registry "$W/fl$n-$t"; FL=$REG; FP=$REG_PID
    module_args "$SRC" "$IG" "$n" cold >"$W/cold-$n-$t.json"
    module_args "$SRC" "$IG" "$n" check >"$W/check-$n-$t.json"
    order=$(trials_order "$t" imagegate floor)
    echo "==> $n images, trial $t of $RUNS ($order): the ingest floor, then cold, then check mode"
    if [ "${order%% *}" = floor ]; then measure "ingest_floor_${n}_$t" python3 bench/floor.py seed "$IN" "$n"; fi
    for who in $order; do
      case $who in
        imagegate) measure "imagegate_cold_${n}_$t" "$MODULE" "$W/cold-$n-$t.json" ;;
        floor) measure "floor_cold_${n}_$t" python3 bench/floor.py mirror "$SRC" "$FL" "$n" ;;
      esac
    done
    for who in $order; do
      case $who in
        imagegate) measure "imagegate_check_${n}_$t" "$MODULE" "$W/check-$n-$t.json" ;;
        floor) measure "floor_check_${n}_$t" python3 bench/floor.py mirror "$SRC" "$IG" "$n" --check ;;
      esac
    done
    if [ "${order%% *}" = imagegate ]; then measure "ingest_floor_${n}_$t" python3 bench/floor.py seed "$IN" "$n"; fi
    for p in "$FP" "$IP" "$INP"; do stop_registry "$p"; done
    rm -rf "$W/in$n-$t" "$W/ig$n-$t" "$W/fl$n-$t"
  done
  ROWS+=("ingest_floor_$n" "imagegate_cold_$n" "floor_cold_$n" "imagegate_check_$n" "floor_check_$n")
  stop_registry "$SP"
  rm -rf "$W/src$n"
done

for tc in $TAG_COUNTS; do
  echo "==> one repository with $tc tags: seeding"
  registry "$W/tsrc$tc"; SRC=$REG; SP=$REG_PID
  registry "$W/tdst$tc"; DST=$REG; DP=$REG_PID
  python3 bench/floor.py seed "$SRC" 1 >/dev/null
  python3 bench/floor.py tags "$SRC" scale/img0 "$tc" >/dev/null
  python3 -c "import json,sys; s,d,e=sys.argv[1],sys.argv[2],json.loads(sys.argv[3]); print(json.dumps({'images':[{'src':f'{s}/scale/img0','dest':f'{d}/mirror/scale/img0','all_tags':True}],'registries':{s:e,d:e},'referrers':False,'_ansible_check_mode':True}))" "$SRC" "$DST" "$ENTRY" >"$W/tags-$tc.json"
  for t in $(seq 1 "$RUNS"); do
    order=$(trials_order "$t" imagegate floor)
    echo "==> $tc tags, trial $t of $RUNS ($order): check mode"
    for who in $order; do
      case $who in
        imagegate) measure "imagegate_tags_check_${tc}_$t" "$MODULE" "$W/tags-$tc.json" ;;
        floor) measure "floor_tags_check_${tc}_$t" python3 bench/floor.py tag-check "$SRC" "$DST" scale/img0 ;;
      esac
    done
  done
  ROWS+=("imagegate_tags_check_$tc" "floor_tags_check_$tc")
  stop_registry "$DP"; stop_registry "$SP"
  rm -rf "$W/tsrc$tc" "$W/tdst$tc"
done

write_report scale "$W" "$IMAGE_COUNTS" "$TAG_COUNTS" "$RUNS" "$TRANSPORT" "${ROWS[@]}" <<'PY'
import sys
from report import Results
w, images, tags, runs, transport, rows = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4]), sys.argv[5], sys.argv[6:]
r = Results(w, runs)
print(f"scale benchmark: images {' '.join(images)}, tags {' '.join(tags)}; loopback, {transport}; medians of {runs} alternating trials")
r.table(rows, 0)
for n in images:
    for kind in ["cold", "check"]:
        print(f"{n} images {kind}: imagegate / floor {r.ratio(f'imagegate_{kind}_{n}', f'floor_{kind}_{n}'):.2f} "
              f"(target 1.5), peak {r.median(f'imagegate_{kind}_{n}')[1]:.1f} MiB (target under 64)")
    print(f"{n} images: cold mirror / ingest floor {r.ratio(f'imagegate_cold_{n}', f'ingest_floor_{n}'):.2f} (target 1.5)")
for t in tags:
    print(f"{t} tags check: imagegate / floor {r.ratio(f'imagegate_tags_check_{t}', f'floor_tags_check_{t}'):.2f} "
          f"(target 1.5), peak {r.median(f'imagegate_tags_check_{t}')[1]:.1f} MiB (target under 64)")
print("growth (linear keeps the cost per item flat):")
for kind in ["cold", "check"] if images else []:
    per = [(n, 1000 * r.median(f"imagegate_{kind}_{n}")[0] / int(n)) for n in images]
    print(f"  imagegate {kind}, ms per image: " + ", ".join(f"{c:.2f} at {n}" for n, c in per)
          + (f"; largest / smallest size {per[-1][1] / per[0][1]:.2f}" if len(per) > 1 else ""))
per = [(t, 1000 * r.median(f"imagegate_tags_check_{t}")[0] / int(t)) for t in tags]
if per:
    print("  imagegate tags check, ms per tag: " + ", ".join(f"{c:.2f} at {t}" for t, c in per)
          + (f"; largest / smallest size {per[-1][1] / per[0][1]:.2f}" if len(per) > 1 else ""))
PY
