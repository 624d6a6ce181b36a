# Shared by the benchmarks, sourced first (`source "$(dirname "$0")/lib.sh"`,
# from anywhere: it moves to the repository root and sets ROOT):
# registries on loopback, optional delaying proxies, timing and the result
# file. A benchmark then sets its parameters (LATENCY_MS among them) and
# calls bench_begin, which sets the machine up.
# Results go to bench/results (committed: docs/benchmarks.md quotes only
# what a file there shows); BENCH_RESULTS elsewhere for a trial run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH_RESULTS=${BENCH_RESULTS:-bench/results}
# Registries and proxies are stopped on every exit path, by their pids.
source tools/servers.sh

# bench_begin WORK_DIR COMMAND: once the parameters are set, the machine
# set up (tools/setup.sh, tools/env.sh, /usr/bin/time), an empty work dir
# W, the results dir, the delaying proxy built when LATENCY_MS asks for one,
# and COMMAND (the benchmark as called, for the result's head) in
# BENCH_COMMAND.
bench_begin() {
  W=$1 BENCH_COMMAND=$2
  bash tools/setup.sh
  source tools/env.sh
  command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
  if [ "$LATENCY_MS" != 0 ]; then
    cargo build --quiet --release -p imagegate-testkit --bin imagegate-faultproxy
  fi
  RELAY_MS=${RELAY_MS:-0}
  RELAY_RATE=${RELAY_RATE:-0}
  rm -rf "$W"
  mkdir -p "$W" "$BENCH_RESULTS"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REG_PID=""
# make_tls: a CA and a certificate for 127.0.0.1 under $W/tls, once; sets
# TLS_CA (the CA file, for imagegate's ca_cert) and TLS_CERT_DIR (a
# directory holding only it, for skopeo's --src-cert-dir/--dest-cert-dir).
make_tls() {
  local d="$W/tls"
  TLS_CA="$d/ca.crt" TLS_CERT_DIR="$d/certs.d"
  [ -s "$d/server.crt" ] && return 0
  mkdir -p "$TLS_CERT_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=imagegate bench CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$d/ext.cnf"
  openssl x509 -req -days 2 -CAcreateserial -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -out "$d/server.crt" -extfile "$d/ext.cnf" 2>/dev/null
  cp "$d/ca.crt" "$TLS_CERT_DIR/ca.crt"
}
start_registry() { # dir [tls] -> sets REG (host:port) and REG_PID; with tls, HTTPS (see make_tls)
  local dir=$1 port tls=""
  port=$(free_port)
  mkdir -p "$dir"
  if [ "${2:-}" = tls ]; then
    make_tls
    tls=$(printf ', tls: {certificate: %s, key: %s}' "$W/tls/server.crt" "$W/tls/server.key")
  fi
  printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s/data}}\nhttp: {addr: 127.0.0.1:%s%s}\n' "$dir" "$port" "$tls" >"$dir/config.yml"
  server_start "$dir/log" docker-registry serve "$dir/config.yml"
  REG_PID=$SERVER_PID
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  REG="127.0.0.1:$port"
}
# via VAR HOST:PORT: sets VAR to the address to use for the registry: itself,
# a proxy delaying every request (LATENCY_MS), or a relay delaying every byte
# (RELAY_MS each way, RELAY_RATE bytes a second each way if set, both 0
# unless set before bench_begin; TLS passes
# through it end to end). Not a subshell, so cleanup knows its pid. Proxies
# count requests and body bytes (imagegate-faultproxy's /_proxy/stats),
# relays round trips (connections and turns) and bytes (imagegate-relay's
# counters), which measure records beside the time.
PROXIES=()
PROXY_PID=""
declare -A PROXY_OF_PID=()
via() {
  if [ "$RELAY_MS" != 0 ]; then
    local out="$W/relay.$2"
    server_start "$out" target/release/imagegate-relay "$2" --delay-ms "$RELAY_MS" --rate-bytes "$RELAY_RATE"
    PROXY_PID=$SERVER_PID
    for _ in $(seq 100); do [ "$(wc -l <"$out")" -ge 2 ] && break; sleep 0.05; done
    printf -v "$1" '%s' "$(head -1 "$out")"
    PROXIES+=("$(sed -n 2p "$out")")
    PROXY_OF_PID[$PROXY_PID]=$(sed -n 2p "$out")
    return
  fi
  if [ "$LATENCY_MS" = 0 ]; then printf -v "$1" '%s' "$2"; PROXY_PID=""; return; fi
  local out="$W/proxy.$2"
  server_start "$out" target/release/imagegate-faultproxy "http://$2" --delay-ms "$LATENCY_MS"
  PROXY_PID=$SERVER_PID
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.05; done
  printf -v "$1" '%s' "$(head -1 "$out")"
  PROXIES+=("${!1}")
  PROXY_OF_PID[$PROXY_PID]=${!1}
}
# stop_registry PID [PROXY_PID]: the registry, and the proxy in front of it
# (whose counters then leave the totals).
stop_registry() {
  server_stop "$1"
  [ -n "${2:-}" ] || return 0
  local p keep=()
  server_stop "$2"
  for p in "${PROXIES[@]}"; do [ "$p" = "${PROXY_OF_PID[$2]}" ] || keep+=("$p"); done
  PROXIES=("${keep[@]}")
}

# proxy_totals: "requests bytes" summed over the running proxies (bytes
# both ways), or "0 0" without proxies.
proxy_totals() {
  local p req=0 bytes=0 json r u d
  for p in "${PROXIES[@]}"; do
    json=$(curl -sf --max-time 5 "http://$p/_proxy/stats") || continue
    read -r r u d < <(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j.get("requests", j.get("round_trips")), j["bytes_up"], j["bytes_down"])' "$json")
    req=$((req + r))
    bytes=$((bytes + u + d))
  done
  echo "$req $bytes"
}

# measure NAME CMD...: (after a sync) wall seconds, peak RSS (KiB), and with proxies the
# requests made and body bytes moved, of CMD into $W/NAME.m
measure() {
  local name=$1; shift
  local t0 t1 before after
  # Earlier runs' writes are flushed first, so that their writeback does not
  # land in this run (trials drifted slower one after another without it).
  sync
  before=$(proxy_totals)
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$W/$name.rss" "$@" >"$W/$name.out" 2>"$W/$name.err" || { echo "$name failed:"; tail -5 "$W/$name.err"; exit 1; }
  t1=$(date +%s.%N)
  after=$(proxy_totals)
  echo "$(echo "$t1 - $t0" | bc) $(tail -1 "$W/$name.rss") $(python3 -c 'import sys; b=sys.argv[1].split(); a=sys.argv[2].split(); print(int(a[0])-int(b[0]), int(a[1])-int(b[1]))' "$before" "$after")" >"$W/$name.m"
}

# trials N FIRST SECOND: the order of trial N (1-based) of two contenders,
# alternating, so neither always runs on a warmer machine.
trials_order() {
  if (($1 % 2)); then echo "$2 $3"; else echo "$3 $2"; fi
}
# machine_facts: the machine and tools a result was measured with, as
# "key: value" lines for the head of a result file.
machine_facts() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: $BENCH_COMMAND"
  echo "imagegate commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "skopeo: $(skopeo --version 2>/dev/null | head -1)"
  echo "docker-registry: $(docker-registry --version 2>/dev/null | head -1)"
  echo "rustc: $(rustc --version 2>/dev/null)"
  echo "python: $(python3 --version 2>&1)"
  echo "latency added per request: ${LATENCY_MS} ms"
  [ "$RELAY_MS" = 0 ] || echo "byte-level relay: every byte ${RELAY_MS} ms late each way (round trips $((2 * RELAY_MS)) ms), rate cap $RELAY_RATE bytes/s each way (0: none)"
}

# with_concurrency: the module arguments (JSON) on stdin, printed with
# "concurrency": CONCURRENCY added when that is set.
with_concurrency() {
  python3 -c 'import json, sys
args = json.load(sys.stdin)
if sys.argv[1]:
    args["concurrency"] = int(sys.argv[1])
print(json.dumps(args))' "${CONCURRENCY:-}"
}

# write_report NAME ARG... (a Python script on stdin): the machine's facts,
# a blank line and what the script prints (with ARG... as its arguments and
# bench/report.py importable) to $BENCH_RESULTS/NAME-<date>.txt, named by
# OUT; what the script prints shows here too.
write_report() {
  local name=$1
  shift
  OUT="$BENCH_RESULTS/$name-$(date +%Y%m%d-%H%M%S).txt"
  machine_facts >"$OUT"
  echo >>"$OUT"
  PYTHONPATH="bench${PYTHONPATH:+:$PYTHONPATH}" python3 - "$@" | tee -a "$OUT"
}

# trials PREFIX FIRST SECOND [BEFORE] [AFTER]: RUNS trials of two
# contenders, the functions PREFIX<FIRST> and PREFIX<SECOND> called with
# the trial's number in the order trials_order gives, each trial announced
# as "==> [BEFORE ]trial T of RUNS[AFTER]" (AFTER as given, ": ..." say).
trials() {
  local t who
  for t in $(seq 1 "$RUNS"); do
    echo "==> ${4:+$4 }trial $t of $RUNS${5:-}"
    for who in $(trials_order "$t" "$2" "$3"); do "$1$who" "$t"; done
  done
}

# big_layer_pair SRC MODULE IG_ROW SK_ROW IG_DIR SK_DIR [tls]: SRC/bench/big:v1
# mirrored into a fresh registry (in IG_DIR) by the registry_mirror binary
# MODULE, measured as IG_ROW, and into another (in SK_DIR) by `skopeo copy
# --all`, measured as SK_ROW; with tls over TLS (make_tls's CA), else plain
# HTTP. Each registry is stopped after its run; both rows are added to ROWS.
big_layer_pair() {
  local src=$1 module=$2 entry dst pid
  local -a flags
  if [ "${7:-}" = tls ]; then
    entry="{'ca_cert':'$TLS_CA'}" flags=(--src-cert-dir "$TLS_CERT_DIR" --dest-cert-dir "$TLS_CERT_DIR")
  else
    entry="{'plain_http':True}" flags=(--src-tls-verify=false --dest-tls-verify=false)
  fi
  start_registry "$5" "${7:-}"; dst=$REG; pid=$REG_PID
  python3 -c "import json,sys; print(json.dumps({'images':[{'src':'$src/bench/big:v1','dest':'$dst/mirror/big'}],'registries':{'$src':$entry,'$dst':$entry}}))" >"$W/big.json"
  measure "$3" "$module" "$W/big.json"
  stop_registry "$pid"
  start_registry "$6" "${7:-}"; dst=$REG; pid=$REG_PID
  measure "$4" skopeo copy --all --quiet "${flags[@]}" "docker://$src/bench/big:v1" "docker://$dst/mirror/big:v1"
  stop_registry "$pid"
  ROWS+=("$3" "$4")
}
