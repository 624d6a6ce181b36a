#!/usr/bin/env bash
# Processor benchmark: where a cold mirror's processor time goes. On a
# machine where the registries run beside the client, their work bounds the
# mirror as much as the client's own; this shows each process's share.
#
#   registry_mirror (all images in one call) and the `skopeo copy --all`
#   loop, each into a freshly started distribution registry, both
#   registries serving TLS (a CA made for the run), RUNS trials alternating
#   the contenders. Per run: wall time, the client's user and system time,
#   and the processor time of the source and the destination registry
#   (from /proc/<pid>/stat, before and after the run).
#
#   bash bench/cpu.sh [IMAGES] [RUNS]      (defaults 16, 3)
#   MIRROR_LAYERS=16,8 bash bench/cpu.sh    the images' layer sizes in MiB
#                                           (default 2,1)
#   BINARIES="/tmp/old/registry_mirror" bash bench/cpu.sh
#                                           more registry_mirror builds
#                                           side by side (a change's before
#                                           and after), named by their path
#   BENCH_RESULTS=/tmp/x bash bench/cpu.sh 2 1   a trial run, kept out of
#                                           bench/results
#
# Writes the table (medians), after the machine's facts, to
# $BENCH_RESULTS/cpu-<date>.txt (default bench/results, committed).
source "$(dirname "$0")/lib.sh"

IMAGES=${1:-16}
RUNS=${2:-3}
MIRROR_LAYERS=${MIRROR_LAYERS:-2,1}
BINARIES=${BINARIES:-}
LATENCY_MS=0
bench_begin "$ROOT/.work/bench-cpu" "MIRROR_LAYERS=$MIRROR_LAYERS${BINARIES:+ BINARIES=\"$BINARIES\"} $0 $*"
TICK=$(getconf CLK_TCK)

echo "==> making $IMAGES synthetic images (layers of $MIRROR_LAYERS MiB)"
python3 bench/make_layout.py "$W/layout" --images "$IMAGES" --layers "$MIRROR_LAYERS" --tag-prefix m
start_registry "$W/src" tls; SRC=$REG SRC_PID=$REG_PID
for n in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --dest-cert-dir "$TLS_CERT_DIR" "oci:$W/layout:m$n" "docker://$SRC/up/m$n:v1"
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
# run_one NAME CLIENT: a cold mirror into a fresh registry by CLIENT (the
# path of a registry_mirror, or skopeo); $W/NAME.cpu holds "wall user
# system source_registry destination_registry" in seconds.
run_one() {
  local name=$1 client=$2
  start_registry "$W/dst-$name" tls
  local dst=$REG pid=$REG_PID s0 d0
  if [ "$client" = skopeo ]; then
    cat >"$W/$name.sh" <<SH
for n in \$(seq 0 $((IMAGES - 1))); do
  skopeo copy --all --quiet --src-cert-dir $TLS_CERT_DIR --dest-cert-dir $TLS_CERT_DIR \\
    docker://$SRC/up/m\$n:v1 docker://$dst/mirror/m\$n:v1
done
SH
  else
    python3 - "$SRC" "$dst" "$IMAGES" "$TLS_CA" >"$W/$name.json" <<'PY'
import json, sys
s, d, n, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
print(json.dumps({"images": [{"src": f"{s}/up/m{i}:v1", "dest": f"{d}/mirror/m{i}"} for i in range(n)],
                  "registries": {s: {"ca_cert": ca}, d: {"ca_cert": ca}}}))
PY
    printf 'exec %q %q\n' "$client" "$W/$name.json" >"$W/$name.sh"
  fi
  # Earlier runs' writes are flushed first: their writeback must not land
  # on this run's processes.
  sync
  s0=$(ticks "$SRC_PID") d0=$(ticks "$pid")
  /usr/bin/time -f '%e %U %S' -o "$W/$name.time" bash "$W/$name.sh" >"$W/$name.out" 2>"$W/$name.err" ||
    { echo "$name failed:"; tail -5 "$W/$name.err"; exit 1; }
  [ "$client" = skopeo ] || grep -q '"failed":false' "$W/$name.out" || { echo "$name failed:"; head -c 600 "$W/$name.out"; exit 1; }
  echo "$(cat "$W/$name.time") $(echo "($(ticks "$SRC_PID") - $s0) / $TICK" | bc -l) $(echo "($(ticks "$pid") - $d0) / $TICK" | bc -l)" >"$W/$name.cpu"
  stop_registry "$pid"
  rm -rf "$W/dst-$name"
}

contenders=("$ROOT/binaries/$(uname -m)/registry_mirror")
for b in $BINARIES; do contenders+=("$b"); done
contenders+=(skopeo)
for t in $(seq 1 "$RUNS"); do
  echo "==> trial $t of $RUNS: $IMAGES images, cold"
  order=("${contenders[@]}")
  if ! ((t % 2)); then mapfile -t order < <(printf '%s\n' "${contenders[@]}" | tac); fi
  for c in "${order[@]}"; do
    key=$(echo "$c" | tr -c 'A-Za-z0-9\n' '_')
    if [ "$c" = skopeo ]; then key=skopeo; fi
    run_one "${key}_$t" "$c"
  done
done

write_report cpu "$W" "$RUNS" "$IMAGES" "$MIRROR_LAYERS" "${contenders[@]}" <<'PY'
import re, statistics, sys
w, runs, images, layers, contenders = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
print(f"processor benchmark: cold mirror of {images} images (layers of {layers} MiB), TLS, loopback; "
      f"{runs} trials (medians); seconds")
cols = ["wall", "user", "system", "source reg.", "dest. reg.", "all procs"]
print(f"{'client':<44}" + "".join(f"{c:>12}" for c in cols))
med = {}
for c in contenders:
    key = "skopeo" if c == "skopeo" else re.sub(r"[^A-Za-z0-9]", "_", c)
    rows = []
    for t in range(1, runs + 1):
        with open(f"{w}/{key}_{t}.cpu") as f:
            v = [float(x) for x in f.read().split()]
        rows.append(v + [sum(v[1:])])
    med[c] = [statistics.median(r[i] for r in rows) for i in range(6)]
    name = "skopeo copy --all loop" if c == "skopeo" else c
    print(f"{name[-44:]:<44}" + "".join(f"{x:>12.2f}" for x in med[c]))
ours = contenders[0]
print(f"registry_mirror / skopeo loop: wall {med[ours][0] / med['skopeo'][0]:.2f}, "
      f"processor time of all processes {med[ours][5] / med['skopeo'][5]:.2f}")
PY
