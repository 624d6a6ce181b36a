#!/usr/bin/env bash
# WAN benchmark: every registry behind imagegate-relay, a TCP relay that
# delivers every byte RELAY_MS late each way (round trips of 2 x RELAY_MS,
# TCP and TLS handshakes included; TLS end to end, HTTP/2 where offered),
# side by side with skopeo in one run, RUNS trials alternating which goes
# first, medians reported with the relay's round trips (connections plus
# the times a connection turned from an answer to a new request) and bytes:
#   - promotion of PROMOTE_IMAGES images to a final tag: container_retag (one
#     call) and the zuul-jobs method (`skopeo copy --all` per image and tag);
#   - cold mirror of MIRROR_IMAGES two-layer images into a fresh registry:
#     registry_mirror (one call) and `skopeo copy --all` per image;
#   - once each, one BIG_MIB MiB layer pulled over the relay capped at
#     BIG_RATE_MBIT Mbit/s each way: time against the link's own time
#     (bytes / bandwidth) and peak RSS (BIG_MIB 0: skip).
#
#   bash bench/wan.sh [RUNS] [BIG_MIB]     (defaults 3 and 1024)
#   RELAY_MS=10 BIG_RATE_MBIT=100 PROMOTE_IMAGES=30 MIRROR_IMAGES=12
#   BENCH_RESULTS=/tmp/x bash bench/wan.sh 1 0   a trial run, kept out of
#                                                bench/results
#
# Writes the tables after the machine's facts to
# $BENCH_RESULTS/wan-<date>.txt (default bench/results, committed).
source "$(dirname "$0")/lib.sh"

RUNS=${1:-3}
BIG_MIB=${2:-1024}
export RELAY_MS=${RELAY_MS:-10}
BIG_RATE_MBIT=${BIG_RATE_MBIT:-100}
PROMOTE_IMAGES=${PROMOTE_IMAGES:-30}
MIRROR_IMAGES=${MIRROR_IMAGES:-12}
LATENCY_MS=0
export BENCH_COUNTED="round trips"
bench_begin "$ROOT/.work/bench-wan" "RELAY_MS=$RELAY_MS BIG_RATE_MBIT=$BIG_RATE_MBIT PROMOTE_IMAGES=$PROMOTE_IMAGES MIRROR_IMAGES=$MIRROR_IMAGES $0 $*"
cargo build --quiet --release -p imagegate-testkit --bin imagegate-relay
RETAG="$ROOT/binaries/$(uname -m)/container_retag"
MIRROR="$ROOT/binaries/$(uname -m)/registry_mirror"
make_tls
CERTS=(--src-cert-dir "$TLS_CERT_DIR" --dest-cert-dir "$TLS_CERT_DIR")

seed() { # LAYOUT PREFIX COUNT REGISTRY REPO TAG
  local n
  for n in $(seq 0 $(($3 - 1))); do
    skopeo copy --quiet --dest-cert-dir "$TLS_CERT_DIR" "oci:$1:$2$n" "docker://$4/$5$n:$6"
  done
}

echo "==> promotion: $PROMOTE_IMAGES images (2 MiB shared base + 2, 1 MiB layers) behind the relay"
python3 bench/make_layout.py "$W/playout" --images "$PROMOTE_IMAGES" --layers 2,1 --shared 2
start_registry "$W/preg" tls
seed "$W/playout" img "$PROMOTE_IMAGES" "$REG" team/img change_1234_latest
via PR "$REG"
promote_ig() { # TRIAL
  python3 - "$PR" "$PROMOTE_IMAGES" "final-ig-$1" "$TLS_CA" >"$W/promote-$1.json" <<'PY'
import json, sys
r, n, final, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
print(json.dumps({
    "images": [{"repository": f"{r}/team/img{i}", "src_tag": "change_1234_latest", "tags": [final]} for i in range(n)],
    "registries": {r: {"ca_cert": ca}},
}))
PY
  measure "promote_imagegate_$1" "$RETAG" "$W/promote-$1.json"
}
promote_sk() { # TRIAL
  {
    echo "for n in \$(seq 0 $((PROMOTE_IMAGES - 1))); do"
    echo "  skopeo copy --all --quiet ${CERTS[*]} docker://$PR/team/img\$n:change_1234_latest docker://$PR/team/img\$n:final-sk-$1"
    echo "done"
  } >"$W/promote-sk-$1.sh"
  measure "promote_skopeo_$1" bash "$W/promote-sk-$1.sh"
}
trials promote_ ig sk promotion

echo "==> cold mirror: $MIRROR_IMAGES images (own layers of 2 and 1 MiB), source and destination behind relays"
python3 bench/make_layout.py "$W/mlayout" --images "$MIRROR_IMAGES" --layers 2,1
start_registry "$W/msrc" tls
seed "$W/mlayout" img "$MIRROR_IMAGES" "$REG" bench/img v1
via MS "$REG"
mirror_ig() { # TRIAL
  start_registry "$W/mig$1" tls; local P=$REG_PID; via D "$REG"; local RP=$PROXY_PID
  python3 - "$MS" "$D" "$MIRROR_IMAGES" "$TLS_CA" >"$W/mirror-$1.json" <<'PY'
import json, sys
src, dst, n, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
print(json.dumps({
    "images": [{"src": f"{src}/bench/img{i}:v1", "dest": f"{dst}/mirror/img{i}"} for i in range(n)],
    "registries": {src: {"ca_cert": ca}, dst: {"ca_cert": ca}},
}))
PY
  measure "mirror_imagegate_$1" "$MIRROR" "$W/mirror-$1.json"
  stop_registry "$P" "$RP"
}
mirror_sk() { # TRIAL
  start_registry "$W/msk$1" tls; local P=$REG_PID; via D "$REG"; local RP=$PROXY_PID
  {
    echo "for n in \$(seq 0 $((MIRROR_IMAGES - 1))); do"
    echo "  skopeo copy --all --quiet ${CERTS[*]} docker://$MS/bench/img\$n:v1 docker://$D/mirror/img\$n:v1"
    echo "done"
  } >"$W/mirror-sk-$1.sh"
  measure "mirror_skopeo_$1" bash "$W/mirror-sk-$1.sh"
  stop_registry "$P" "$RP"
}
trials mirror_ ig sk "cold mirror"

ROWS=(promote_imagegate promote_skopeo mirror_imagegate mirror_skopeo)
BIG_BYTES=0
if [ "$BIG_MIB" != 0 ]; then
  echo "==> one ${BIG_MIB} MiB layer pulled over the relay capped at ${BIG_RATE_MBIT} Mbit/s each way"
  python3 bench/make_layout.py "$W/big" --images 1 --layers "$BIG_MIB" --tag-prefix big
  start_registry "$W/bsrc" tls
  skopeo copy --quiet --dest-cert-dir "$TLS_CERT_DIR" "oci:$W/big:big0" "docker://$REG/bench/big:v1"
  RELAY_RATE=$((BIG_RATE_MBIT * 1000000 / 8)) via BS "$REG"
  BIG_BYTES=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum(l["size"] for l in m["layers"]) + m["config"]["size"])' \
    <(skopeo inspect --raw --cert-dir "$TLS_CERT_DIR" "docker://$BS/bench/big:v1"))
  big_layer_pair "$BS" "$MIRROR" big_imagegate big_skopeo "$W/big-ig" "$W/big-sk" tls
fi

write_report wan "$W" "$RUNS" "$RELAY_MS" "$PROMOTE_IMAGES" "$MIRROR_IMAGES" "$BIG_MIB" "$BIG_RATE_MBIT" "$BIG_BYTES" "${ROWS[@]}" <<'PY'
import sys
from report import Results
w, runs, relay, promote, mirror, big, mbit, big_bytes, *rows = sys.argv[1:]
r = Results(w, int(runs))
print(f"WAN benchmark: every byte {relay} ms late each way through a TCP relay (round trips {2 * int(relay)} ms), "
      f"TLS end to end; {runs} trials (medians); round trips and bytes counted by the relays")
r.table(rows, 2 * int(relay))
pi, ps = r.median("promote_imagegate"), r.median("promote_skopeo")
mi, ms = r.median("mirror_imagegate"), r.median("mirror_skopeo")
print(f"promotion of {promote} images: imagegate / zuul-jobs method {pi[0] / ps[0]:.3f} (target 0.03); "
      f"round trips {pi[2]:.0f} ({pi[2] / int(promote):.2f} per image) where skopeo {ps[2]:.0f}")
print(f"cold mirror of {mirror} images: imagegate / skopeo copy per image {mi[0] / ms[0]:.3f} (target 0.08); "
      f"round trips {mi[2]:.0f} ({mi[2] / int(mirror):.2f} per image) where skopeo {ms[2]:.0f}")
if "big_imagegate" in rows:
    link = int(big_bytes) * 8 / (int(mbit) * 1e6)
    bi, bs = r.median("big_imagegate"), r.median("big_skopeo")
    print(f"{big} MiB layer at {mbit} Mbit/s (link time {link:.1f} s): imagegate {bi[0]:.1f} s = {bi[0] / link:.2f}x the link "
          f"(target 1.1x), peak {bi[1]:.1f} MiB (target under 32 MiB); skopeo {bs[0]:.1f} s = {bs[0] / link:.2f}x, peak {bs[1]:.1f} MiB")
PY
echo "wrote $OUT"
