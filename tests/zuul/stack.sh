# Sourced by tests/zuul/run.sh: starts a real Zuul on loopback and stops
# exactly the processes it started. Needs ROOT, RUN, VENV and ZUUL_ANSIBLE.
#
# Every server is started in the background of this shell (never inside a
# command substitution) and recorded by name and process id in STARTED;
# stop_stack stops them in reverse order, each by its own process id.

STARTED=()
log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CMD...: runs CMD in the background, output to logs/NAME.log.
start() {
  local name=$1
  shift
  "$@" </dev/null >>"$RUN/logs/$name.log" 2>&1 &
  STARTED+=("$name:$!")
}

pid_of() {
  local entry
  for entry in "${STARTED[@]}"; do
    [ "${entry%%:*}" = "$1" ] && { echo "${entry##*:}"; return; }
  done
}

alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# poll SECONDS INTERVAL CMD...: runs CMD every INTERVAL seconds until it
# returns 0 (done: poll returns 0) or 2 or more (it gave up and said why:
# poll returns that), for at most SECONDS seconds (then poll returns 1).
# CMD returns 1 to be asked again.
poll() {
  local limit=$1 interval=$2 t=$SECONDS rc
  shift 2
  while :; do
    "$@" && return 0 || rc=$?
    ((rc >= 2)) && return "$rc"
    ((SECONDS - t >= limit)) && return 1
    sleep "$interval"
  done
}

# dead NAME...: 0 (and its log's tail) if one of the named servers exited.
dead() {
  local c
  for c in "$@"; do
    alive "$c" || { echo "$c exited; its log:"; tail -40 "$RUN/logs/$c.log"; return 0; }
  done
  return 1
}

port_open() { # NAME HOST PORT
  (exec 3<>"/dev/tcp/$2/$3") 2>/dev/null && return 0
  dead "$1" && return 2
  return 1
}

wait_port() { # NAME HOST PORT [SECONDS]
  local rc=0
  poll "${4:-60}" 0.1 port_open "$1" "$2" "$3" || rc=$?
  if [ "$rc" = 1 ]; then
    echo "$1 did not listen on $2:$3; its log:"
    tail -40 "$RUN/logs/$1.log"
  fi
  return "$rc"
}

stop_stack() {
  local i entry name pid n
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    entry=${STARTED[i]}
    name=${entry%%:*}
    pid=${entry##*:}
    kill -0 "$pid" 2>/dev/null || continue
    # PostgreSQL: SIGINT is its fast shutdown. Others stop on SIGTERM.
    if [ "$name" = postgres ]; then kill -INT "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
    # zuul-scheduler can hang stopping its git watcher: 15 s, then SIGKILL
    # (its state lives in this run's ZooKeeper, which goes anyway).
    local grace=300
    case $name in scheduler | launcher) grace=150 ;; esac
    for ((n = 0; n < grace; n++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      note "$name ($pid) still runs $((grace / 10)) s after SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  STARTED=()
}

make_certs() {
  local d=$RUN/certs
  mkdir -p "$d" "$RUN/ca"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=imagegate-zuul-harness-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.4' \
    'extendedKeyUsage=serverAuth,clientAuth' 'basicConstraints=CA:FALSE' \
    'keyUsage=critical,digitalSignature,keyEncipherment' >"$d/ext.cnf"
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
  cat "$d/server.key" "$d/server.pem" >"$d/keystore.pem"
  chmod 0644 "$d/server.key" # PostgreSQL-free: only this harness reads it
  # The CA the jobs use lies in the executor's untrusted_ro_paths.
  cp "$d/ca.pem" "$RUN/ca/ca.pem"
}

start_zookeeper() {
  local dir=$RUN/zk jars=()
  mkdir -p "$dir/data"
  ZK_PORT=$(free_port)
  cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
dataDir=$dir/data
secureClientPort=$ZK_PORT
secureClientPortAddress=127.0.0.1
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=$RUN/certs/keystore.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$RUN/certs/ca.pem
ssl.trustStore.type=PEM
ssl.clientAuth=need
admin.enableServer=false
4lw.commands.whitelist=
EOF
  for j in zookeeper netty-codec netty-resolver netty-transport-native-unix-common slf4j-simple; do
    jars+=("/usr/share/java/$j.jar")
  done
  local cp
  cp=$(IFS=:; echo "$dir:${jars[*]}")
  start zookeeper java -Xmx256m -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
  wait_port zookeeper 127.0.0.1 "$ZK_PORT" 60
}

start_postgres() {
  local bin dir=$RUN/pg
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_PORT=$(free_port)
  install -d -o postgres -g postgres "$dir" "$dir/sock"
  setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$RUN/logs/initdb.log" 2>&1
  start postgres setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/postgres" -D "$dir/data" -c listen_addresses=127.0.0.1 -p "$PG_PORT" \
    -c unix_socket_directories="$dir/sock" -c fsync=off -c full_page_writes=off
  wait_port postgres 127.0.0.1 "$PG_PORT" 60
  # pg_isready exits 2 while the server starts: poll sees 1 until it is ready.
  poll 10 0.1 sh -c '"$0" -q -h 127.0.0.1 -p "$1" || exit 1' "$bin/pg_isready" "$PG_PORT" || true
  "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE USER zuul" -c "CREATE DATABASE zuul OWNER zuul" >/dev/null
}

start_registries() {
  local dir=$RUN/registry
  mkdir -p "$dir/dist" "$dir/zuul"
  REG_USER=harness
  REG_PASS=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  DIST_PORT=$(free_port)
  ZREG_PORT=$(free_port)
  DIST=127.0.0.1:$DIST_PORT
  ZREG=127.0.0.1:$ZREG_PORT
  htpasswd -Bbn "$REG_USER" "$REG_PASS" >"$dir/dist/htpasswd" 2>/dev/null
  cat >"$dir/dist/config.yml" <<EOF
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/dist/data}
  delete: {enabled: true}
http:
  addr: $DIST
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  tls: {certificate: $RUN/certs/server.pem, key: $RUN/certs/server.key}
auth:
  htpasswd: {realm: imagegate-harness, path: $dir/dist/htpasswd}
EOF
  chmod 0600 "$dir/dist/config.yml"
  start registry-dist docker-registry serve "$dir/dist/config.yml"
  if [ -n "${NODE_SCENARIO:-}" ] && [ "${ZUUL_HARNESS_INTERMEDIATE:-0}" = 1 ]; then
    # The final registry of the intermediate-registry promotion: its
    # repositories have no port (127.0.0.4/demo/inter), since the buildset
    # registry keeps images under <buildset registry>/<repository>, where a
    # host:port would not be a valid path.
    FINAL=127.0.0.4
    mkdir -p "$dir/final"
    sed -e "s|$dir/dist/data|$dir/final/data|" -e "s|addr: $DIST|addr: $FINAL:443|" "$dir/dist/config.yml" >"$dir/final/config.yml"
    chmod 0600 "$dir/final/config.yml"
    start registry-final docker-registry serve "$dir/final/config.yml"
  fi
  (umask 077 && cat >"$dir/zuul/registry.yaml" <<EOF
registry:
  address: '127.0.0.1'
  port: $ZREG_PORT
  public-url: 'https://$ZREG'
  tls-cert: '$RUN/certs/server.pem'
  tls-key: '$RUN/certs/server.key'
  secret: '$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')'
  users:
    - name: '$REG_USER'
      pass: '$REG_PASS'
      access: write
  storage:
    driver: filesystem
    root: '$dir/zuul/data'
EOF
  )
  start registry-zuul "$ROOT/.venv/bin/zuul-registry" -c "$dir/zuul/registry.yaml" serve
  wait_port registry-dist 127.0.0.1 "$DIST_PORT" 30
  wait_port registry-zuul 127.0.0.1 "$ZREG_PORT" 60
  [ -z "${FINAL:-}" ] || wait_port registry-final "$FINAL" 443 30
}

# A git repository the git driver serves: RUN/git/NAME, branch master.
git_repo() {
  local repo=$RUN/git/$1
  mkdir -p "$repo"
  git -C "$repo" init -q -b master
  git -C "$repo" config user.name "Zuul harness"
  git -C "$repo" config user.email harness@example.org
}

git_commit() { # NAME MESSAGE: commits everything, prints nothing
  git -C "$RUN/git/$1" add -A
  git -C "$RUN/git/$1" commit -q --allow-empty -m "$2"
}

head_of() { git -C "$RUN/git/$1" rev-parse HEAD; }

make_repos() {
  # The config project.
  git_repo zuul-config
  cp -a "$ROOT/tests/zuul/config-project/." "$RUN/git/zuul-config/"
  if [ -n "${NODE_SCENARIO:-}" ]; then
    write_nodes_config >"$RUN/git/zuul-config/zuul.d-nodes.yaml"
    mkdir -p "$RUN/git/zuul-config/zuul.d"
    mv "$RUN/git/zuul-config/zuul.d-nodes.yaml" "$RUN/git/zuul-config/zuul.d/nodes.yaml"
    mv "$RUN/git/zuul-config/zuul.yaml" "$RUN/git/zuul-config/zuul.d/base.yaml"
  fi
  git_commit zuul-config "Harness tenant configuration"
  # This repository as committed (HEAD), as an untrusted project, and the
  # zuul-jobs stand-in it must shadow (tenant.sh).
  git_repo "$IMAGEGATE_PROJECT"
  git -C "$ROOT" archive HEAD | tar -x -C "$RUN/git/$IMAGEGATE_PROJECT"
  git_commit "$IMAGEGATE_PROJECT" "imagegate at $(git -C "$ROOT" rev-parse --short HEAD)"
  make_standin_repo
  # The demo project: its Zuul configuration comes once the tenant's key exists.
  git_repo demo
  printf 'A project that gates its images with imagegate jobs.\n' >"$RUN/git/demo/README"
  git_commit demo "Demo project"
}

install_collection() {
  local out=$RUN/galaxy
  mkdir -p "$out"
  "$ROOT/.venv/bin/ansible-galaxy" collection build --force --output-path "$out" "$ROOT" >/dev/null
  "$ROOT/.venv/bin/ansible-galaxy" collection install --force -p /usr/share/ansible/collections \
    "$out"/imagegate-containers-*.tar.gz >"$RUN/logs/galaxy-install.log" 2>&1
}

write_zuul_conf() {
  WEB_PORT=$(free_port)
  FINGER_PORT=$(free_port)
  WEB=http://127.0.0.1:$WEB_PORT
  mkdir -p "$RUN"/{scheduler,merger-git,executor/state,executor/git,launcher,build-logs,ssh,sock}
  # Ansible's ssh control sockets live under the job directory, and a unix
  # socket path has at most 107 bytes: a short job directory, not under RUN.
  JOB_DIR=$(mktemp -d /tmp/igz.XXXXXX)
  [ -f "$RUN/ssh/executor_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$RUN/ssh/executor_key"
  # The tenant of docs/migration-guide.rst (tenant.sh).
  write_tenant
  cat >"$RUN/site-variables.yaml" <<EOF
zuul_site_logs_dir: $RUN/build-logs
EOF
  (umask 077 && cat >"$RUN/zuul.conf" <<EOF
[zookeeper]
hosts=127.0.0.1:$ZK_PORT
tls_cert=$RUN/certs/server.pem
tls_key=$RUN/certs/server.key
tls_ca=$RUN/certs/ca.pem
session_timeout=40

[keystore]
password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

[database]
dburi=postgresql://zuul@127.0.0.1:$PG_PORT/zuul

[scheduler]
tenant_config=$RUN/main.yaml
state_dir=$RUN/scheduler
command_socket=$RUN/sock/scheduler

[merger]
git_dir=$RUN/merger-git
git_user_email=zuul@example.org
git_user_name=Zuul
command_socket=$RUN/sock/merger

[executor]
state_dir=$RUN/executor/state
git_dir=$RUN/executor/git
job_dir=$JOB_DIR
private_key_file=$RUN/ssh/executor_key
default_username=zuul
ansible_root=$ZUUL_ANSIBLE
manage_ansible=false
finger_port=$FINGER_PORT
variables=$RUN/site-variables.yaml
trusted_ro_paths=$RUN/ca
untrusted_ro_paths=$RUN/ca
trusted_rw_paths=$RUN/build-logs
command_socket=$RUN/sock/executor
load_multiplier=100
min_avail_mem=1
min_avail_hdd=1

[web]
listen_address=127.0.0.1
port=$WEB_PORT
root=$WEB/
command_socket=$RUN/sock/web

[launcher]
command_socket=$RUN/sock/launcher
temp_dir=$RUN/launcher

[connection git]
driver=git
baseurl=file://$RUN/git
poll_delay=2

[connection static]
driver=static
EOF
  )
}

start_zuul() {
  local z=$VENV/bin
  start scheduler "$z/zuul-scheduler" -c "$RUN/zuul.conf" -f -d
  start web "$z/zuul-web" -c "$RUN/zuul.conf" -f -d
  start executor "$VENV/bin/python" "$ROOT/tests/zuul/zuul_executor_loopback.py" -c "$RUN/zuul.conf" -f -d
  if [ -n "${NODE_SCENARIO:-}" ]; then
    start launcher "$z/zuul-launcher" -c "$RUN/zuul.conf" -f -d
  fi
  wait_port web 127.0.0.1 "$WEB_PORT" 120
  wait_tenant
}

api() { curl -fsS --max-time 20 "$WEB/api/$1"; }

tenant_loaded() {
  dead scheduler web executor && return 2
  api tenants 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if any(t["name"]=="imagegate" for t in json.load(sys.stdin)) else 1)' 2>/dev/null
}

wait_tenant() {
  local rc=0
  poll 120 0.5 tenant_loaded || rc=$?
  case $rc in
    0) check_config_errors ;;
    1) echo "the tenant never loaded; scheduler log:"; tail -60 "$RUN/logs/scheduler.log"; return 1 ;;
    *) return "$rc" ;;
  esac
}

# The tenant's configuration errors (none expected), from zuul-web.
check_config_errors() {
  local errors
  errors=$(api "tenant/$TENANT/config-errors" | python3 -c 'import json,sys
for e in json.load(sys.stdin):
    c = e.get("source_context") or {}
    print("%s:%s: %s" % (c.get("project"), c.get("path"), e.get("short_error") or e.get("error")))')
  if [ -n "$errors" ]; then
    echo "the tenant has configuration errors:"
    echo "$errors"
    return 1
  fi
}
