# Shared by the benchmarks (sourced): registries on loopback, optional
# delaying proxies, and timing. Expects W (work dir) and LATENCY_MS set.
rm -rf "$W"
mkdir -p "$W" bench/results
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REG_PID=""
start_registry() { # dir -> sets REG (host:port) and REG_PID
  local dir=$1 port
  port=$(free_port)
  mkdir -p "$dir"
  printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s/data}}\nhttp: {addr: 127.0.0.1:%s}\n' "$dir" "$port" >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  REG_PID=$!
  pids+=("$REG_PID")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  REG="127.0.0.1:$port"
}
# via VAR HOST:PORT: sets VAR to the address to use for the registry: itself,
# or a proxy delaying every request (not a subshell, so cleanup knows its pid).
via() {
  if [ "$LATENCY_MS" = 0 ]; then printf -v "$1" '%s' "$2"; return; fi
  local out="$W/proxy.$2"
  target/release/imagegate-faultproxy "http://$2" --delay-ms "$LATENCY_MS" >"$out" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.05; done
  printf -v "$1" '%s' "$(head -1 "$out")"
}
stop_registry() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# measure NAME CMD...: wall seconds and peak RSS (KiB) of CMD into $W/NAME.m
measure() {
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$W/$name.rss" "$@" >"$W/$name.out" 2>"$W/$name.err" || { echo "$name failed:"; tail -5 "$W/$name.err"; exit 1; }
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc) $(tail -1 "$W/$name.rss")" >"$W/$name.m"
}

