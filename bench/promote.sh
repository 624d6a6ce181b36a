#!/usr/bin/env bash
# Promotion benchmark: container_retag promoting IMAGES images (change tag to
# final tag, one call) side by side with the zuul-jobs method, `skopeo copy
# --all` from the change tag to the final tag once per image and tag, in one
# run against the same registry. RUNS trials of each, alternating which goes
# first; every trial promotes to a final tag of its own, so each starts from
# the same state. Then both again on the first trial's tags (already
# promoted: nothing to move).
#
#   bash bench/promote.sh [IMAGES] [RUNS]     (defaults 30 and 3)
#   LATENCY_MS=20 bash bench/promote.sh       every request delayed 20 ms by
#                                             a proxy that also counts the
#                                             requests and bytes of each run
#   CONCURRENCY=32 bash bench/promote.sh      container_retag's concurrency
#                                             (default: the module's)
#   BENCH_RESULTS=/tmp/x bash bench/promote.sh 2 1   a trial run, kept out of
#                                             bench/results
#
# Writes the table (medians over the trials), after the machine's facts, to
# $BENCH_RESULTS/promote-<date>.txt (default bench/results, committed).
source "$(dirname "$0")/lib.sh"

IMAGES=${1:-30}
RUNS=${2:-3}
LATENCY_MS=${LATENCY_MS:-0}
CONCURRENCY=${CONCURRENCY:-}
bench_begin "$ROOT/.work/bench-promote" "${CONCURRENCY:+CONCURRENCY=$CONCURRENCY }$0 $*"

echo "==> making $IMAGES synthetic images (2 MiB shared base + 2, 1 MiB layers)"
python3 bench/make_layout.py "$W/layout" --images "$IMAGES" --layers 2,1 --shared 2
start_registry "$W/reg"; DIRECT=$REG
for n in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "oci:$W/layout:img$n" "docker://$DIRECT/team/img$n:change_1234_latest"
done
via R "$DIRECT"

args_json() { # FINAL_TAG -> container_retag's arguments
  python3 - "$R" "$IMAGES" "$1" <<'PY' | with_concurrency
import json, sys
r, n, final = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(json.dumps({
  "images": [{"repository": f"{r}/team/img{i}", "src_tag": "change_1234_latest", "tags": [final]} for i in range(n)],
  "registries": {r: {"plain_http": True}},
}))
PY
}
skopeo_script() { # FINAL_TAG -> the zuul-jobs method, as a script
  cat <<SH
for n in \$(seq 0 $((IMAGES - 1))); do
  skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false \\
    docker://$R/team/img\$n:change_1234_latest docker://$R/team/img\$n:$1
done
SH
}
run_imagegate() { # TRIAL
  args_json "final-ig-$1" >"$W/args-$1.json"
  measure "imagegate_$1" "$ROOT/binaries/$(uname -m)/container_retag" "$W/args-$1.json"
}
run_skopeo() { # TRIAL
  skopeo_script "final-sk-$1" >"$W/skopeo-$1.sh"
  measure "skopeo_$1" bash "$W/skopeo-$1.sh"
}

trials run_ imagegate skopeo "" ": $IMAGES images, container_retag (one call) and skopeo copy --all per image"
echo "==> again, already promoted"
measure imagegate_again "$ROOT/binaries/$(uname -m)/container_retag" "$W/args-1.json"
measure skopeo_again bash "$W/skopeo-1.sh"

write_report promote "$W" "$IMAGES" "$LATENCY_MS" "$RUNS" "$CONCURRENCY" <<'PY'
import sys
from report import Results
w, images, latency, runs, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = Results(w, runs)
print(f"promotion benchmark: {images} images, one final tag each; {runs} trials (medians); {latency} ms added per request")
print(f"container_retag concurrency: {conc or 'default'}")
r.table(["imagegate", "skopeo", "imagegate_again", "skopeo_again"], latency)
print(f"imagegate / zuul-jobs method: {r.ratio('imagegate', 'skopeo'):.3f} "
      f"(targets: 0.1 on loopback, 0.05 with 20 ms per request); "
      f"already promoted: {r.ratio('imagegate_again', 'skopeo_again'):.3f}")
PY
