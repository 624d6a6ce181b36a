# Background servers (registries, proxies) for the tools and benchmarks,
# stopped on every exit path: a normal end, a failing command under set -e,
# an explicit exit, and SIGTERM, SIGINT or SIGHUP. Sourced, not run:
#
#   source tools/servers.sh          installs the traps (EXIT, TERM, INT, HUP)
#   server_start LOG CMD [ARG...]    starts CMD in the background, output to
#                                    LOG; sets SERVER_PID
#   server_stop PID                  stops one of them now
#   servers_stop                     stops them all (the traps call it)
#
# Each server is stopped by its own process id, recorded in SERVER_PIDS of
# the script's own shell: never by name, never a process this script did not
# start. server_start refuses to run in a subshell (`$(...)`, a pipeline),
# where the pid it records would be lost when the subshell ends; that is how
# tools/demo.sh used to leave its registries running.
#
# A script that needs its own exit trap defines servers_extra_cleanup; it is
# called after the servers are stopped.

SERVER_PIDS=()
SERVER_PID=""
# Seconds a server gets to exit after SIGTERM before it is sent SIGKILL.
SERVERS_STOP_GRACE=${SERVERS_STOP_GRACE:-5}

# True while PID runs (a zombie, dead but not yet reaped, does not count).
_server_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

server_start() { # LOG CMD [ARG...]
  if [ "${BASHPID:-$$}" != "$$" ]; then
    echo "server_start: called in a subshell; the server's pid would be lost (start it in the script's own shell)" >&2
    return 1
  fi
  local log=$1
  shift
  # Background jobs of a non-interactive shell ignore SIGINT; restore the
  # default so that a server also ends on ^C sent to the process group.
  (trap - INT QUIT; exec "$@") >"$log" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
}

server_stop() { # PID
  local pid=$1 i keep=()
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < SERVERS_STOP_GRACE * 10; i++)); do
    _server_running "$pid" || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for i in "${SERVER_PIDS[@]}"; do [ "$i" = "$pid" ] || keep+=("$i"); done
  SERVER_PIDS=("${keep[@]}")
}

servers_stop() {
  local pid
  # Ask them all first, so they stop in parallel, then wait for each.
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do server_stop "$pid"; done
}

_servers_on_exit() {
  local rc=$?
  trap - EXIT
  servers_stop
  if declare -F servers_extra_cleanup >/dev/null; then servers_extra_cleanup || true; fi
  exit "$rc"
}

_servers_on_signal() { # SIG
  trap - EXIT "$1"
  servers_stop
  if declare -F servers_extra_cleanup >/dev/null; then servers_extra_cleanup || true; fi
  # Die of the same signal, so the caller sees how the script ended.
  kill -s "$1" "$$"
}

trap _servers_on_exit EXIT
trap '_servers_on_signal TERM' TERM
trap '_servers_on_signal INT' INT
trap '_servers_on_signal HUP' HUP
