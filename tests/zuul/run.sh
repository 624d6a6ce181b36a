#!/usr/bin/env bash
# Runs imagegate's Zuul jobs in a real Zuul 14 on loopback (see README).
#
#   bash tests/zuul/run.sh            set up, start the stack, run every scenario
#   ZUUL_HARNESS_SKIP_SETUP=1 ...     skip tools/setup.sh and tests/zuul/setup.sh
#   ZUUL_HARNESS_KEEP=1 ...           keep .work/zuul-run (logs) after success
#
# Exits nonzero if any scenario fails, after printing the failing job's
# output. Everything it starts is stopped, by process id, on every exit path.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
RUN=$ROOT/.work/zuul-run
VENV=$ROOT/.work/zuul-venv
# The real path: bubblewrap mounts ansible_root itself, not the target of a
# symlink (a worktree may link .work/zuul-ansible to another checkout's).
ZUUL_ANSIBLE=$(readlink -f "$ROOT/.work/zuul-ansible")
TENANT=imagegate
# Zuul and its Ansible see only what a real executor sees: the collection
# installed in /usr/share/ansible/collections. The ANSIBLE_* variables that
# tools/env.sh exports (tools/test.sh sources it) would point them at this
# checkout instead, and outside bubblewrap's view when it lies under /tmp.
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS ANSIBLE_HOME ANSIBLE_PYTHON_INTERPRETER \
  ANSIBLE_LIBRARY ANSIBLE_ROLES_PATH ANSIBLE_LOCALHOST_WARNING ANSIBLE_INVENTORY_UNPARSED_WARNING
# Scenarios 4, 5 and 5b (static nodes over sshd) run unless ZUUL_HARNESS_NODES=0.
NODE_SCENARIO=${ZUUL_HARNESS_NODES:-1}
[ "$NODE_SCENARIO" = 0 ] && NODE_SCENARIO=""
source "$ROOT/tests/zuul/stack.sh"
source "$ROOT/tests/zuul/scenarios.sh"
source "$ROOT/tests/zuul/nodes.sh"
source "$ROOT/tests/zuul/tenant.sh"
source "$ROOT/tests/zuul/docker.sh"

T0=$SECONDS
if [ -z "${ZUUL_HARNESS_SKIP_SETUP:-}" ]; then
  log "setup (tools/setup.sh, tests/zuul/setup.sh)"
  bash tools/setup.sh
  bash tests/zuul/setup.sh
fi
[ "$(id -u)" = 0 ] || { echo "run.sh runs as root (PostgreSQL as postgres, sshd, /usr/share/ansible)"; exit 1; }

FAILURES=()
fail() { FAILURES+=("$*"); printf '\033[31mFAIL\033[0m %s\n' "$*"; }
SKIPS=()
skip() { SKIPS+=("$*"); printf '\033[33mSKIP\033[0m %s\n' "$*"; }
pass() { printf '\033[32mok\033[0m   %s\n' "$*"; }

finish() {
  local rc=$?
  trap - EXIT INT TERM
  log "stopping everything this run started"
  stop_stack
  remove_docker_dir
  cleanup_node_user
  [ -n "${JOB_DIR:-}" ] && rm -rf "$JOB_DIR"
  for f in "${SKIPS[@]}"; do echo "  skipped: $f"; done
  if [ "$rc" = 0 ] && ((${#FAILURES[@]} == 0)); then
    log "all scenarios passed in $((SECONDS - T0)) s"
    [ -n "${ZUUL_HARNESS_KEEP:-}" ] || rm -rf "$RUN/registry"
  else
    log "FAILED (${#FAILURES[@]} failures, exit $rc) after $((SECONDS - T0)) s; logs in $RUN/logs and $RUN/build-logs"
    for f in "${FAILURES[@]}"; do echo "  - $f"; done
    [ "$rc" = 0 ] && rc=1
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A previous run's servers are stopped by that run; its files go.
rm -rf "$RUN"
mkdir -p "$RUN/logs"

log "starting ZooKeeper (TLS), PostgreSQL, registries"
make_certs
start_zookeeper
start_postgres
start_registries
note "distribution (TLS, htpasswd) $DIST, zuul-registry $ZREG"

log "installing the collection into /usr/share/ansible/collections"
install_collection

log "git repositories: zuul-config, $IMAGEGATE_PROJECT (HEAD $(git rev-parse --short HEAD)), $ZUUL_JOBS_PROJECT (stand-in), demo"
if [ -n "$NODE_SCENARIO" ]; then
  start_node
  start_docker
fi
make_repos
write_zuul_conf

log "starting zuul-scheduler, zuul-web, zuul-executor${NODE_SCENARIO:+, zuul-launcher}"
start_zuul
note "tenant $TENANT loaded after $((SECONDS - T0)) s; web $WEB"
ROUND=tenant
check_shadowing

run_scenarios
