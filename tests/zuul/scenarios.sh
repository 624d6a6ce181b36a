# Sourced by tests/zuul/run.sh: the demo project's Zuul configuration, the
# triggers, and the scenarios with their assertions.

regtool() { REG_USER=$REG_USER REG_PASS=$REG_PASS REG_CA=$RUN/certs/ca.pem python3 "$ROOT/tests/zuul/regtool.py" "$@"; }

# The demo project's .zuul.d/demo.yaml, as a zuul-jobs user writes child jobs: the
# registry credentials are a Zuul secret encrypted with the project's key,
# passed to the parent job's playbooks (pass-to-parent).
write_demo_config() {
  local key=$RUN/demo.pub enc
  api "tenant/$TENANT/key/demo.pub" >"$key"
  enc=$(SECRET_PLAINTEXT=$REG_PASS "$VENV/bin/python" "$ROOT/tests/zuul/encrypt.py" "$key" | sed 's/^/          /;1s/^ *//')
  local ca=$RUN/ca/ca.pem
  mkdir -p "$RUN/git/demo/.zuul.d"
  {
    cat <<EOF
- secret:
    name: demo-registry-credentials
    data:
      "$DIST":
        username: $REG_USER
        password: $enc
      "$ZREG":
        username: $REG_USER
        password: $enc
EOF
    if [ -n "${FINAL:-}" ]; then
      local enc2
      enc2=$(printf '%s\n' "$enc" | sed 's/^  //')
      cat <<EOF
      "$FINAL":
        username: $REG_USER
        password: $enc

- secret:
    name: demo-intermediate-registry
    data:
      host: 127.0.0.1
      port: $ZREG_PORT
      username: $REG_USER
      password: $enc2
EOF
    fi
    echo
    for v in 9 11; do
      cat <<EOF
- job:
    name: demo-promote-a$v
    parent: promote-container-image
    ansible-version: $v
    secrets:
      - name: container_registry_credentials
        secret: demo-registry-credentials
        pass-to-parent: true
    vars:
      container_images:
        - repository: $DIST/demo/app$v
          registry: $DIST
          tags: [latest, "1.0"]
      promote_container_image_registries:
        "$DIST": {ca_cert: $ca}

- job:
    name: demo-remove-stale-a$v
    parent: remove-registry-tag
    ansible-version: $v
    secrets:
      - name: container_registry_credentials
        secret: demo-registry-credentials
        pass-to-parent: true
    vars:
      remove_registry_tag_repository: $DIST/demo/stale$v
      remove_registry_tag_age: 0
      remove_registry_tag_registries:
        "$DIST": {ca_cert: $ca}

EOF
    done
    cat <<EOF
- job:
    name: demo-mirror
    parent: mirror-container-images
    secrets:
      - name: container_registry_credentials
        secret: demo-registry-credentials
        pass-to-parent: true
    vars:
      mirror_container_images_images:
        - src_repository: $DIST/demo/mirror-src
          src_tag: "2.0"
          dest_repository: $ZREG/demo/mirrored
          dest_tag: "2.0"
      mirror_container_images_registries:
        "$DIST": {ca_cert: $ca}
        "$ZREG": {ca_cert: $ca}

EOF
    if [ -n "$NODE_SCENARIO" ]; then
      demo_node_jobs
      demo_buildset_jobs
    fi
    # Scenario 3's rounds commit only rounds/<label>: there, only
    # demo-promote-a11 runs.
    local jobs=(demo-promote-a9 demo-promote-a11 demo-remove-stale-a9 demo-remove-stale-a11 demo-mirror) j
    [ -n "$NODE_SCENARIO" ] && jobs+=(demo-upload demo-buildset-registry demo-build-bs demo-consume-bs)
    printf -- '- project:\n    post:\n      jobs:\n'
    for j in "${jobs[@]}"; do
      if [ "$j" = demo-promote-a11 ]; then
        printf '        - %s\n' "$j"
      else
        printf "        - %s:\n            irrelevant-files: ['^rounds/', '^\\.zuul\\.d/intermediate\\.yaml\$']\n" "$j"
      fi
    done
    true
  } >"$RUN/git/demo/.zuul.d/demo.yaml"
}

# Seeds what the jobs of one round work on; records the expected digests.
declare -A EXPECT
seed_round() {
  local v
  for v in 9 11; do
    EXPECT[app$v-latest]=$(regtool push "$DIST/demo/app$v:post_latest")
    EXPECT[app$v-1.0]=$(regtool push "$DIST/demo/app$v:post_1.0")
    regtool push "$DIST/demo/stale$v:post_old" >/dev/null
    regtool push "$DIST/demo/stale$v:change_42_latest" >/dev/null
    EXPECT[stale$v-keep]=$(regtool push "$DIST/demo/stale$v:keep")
  done
  EXPECT[mirror]=$(regtool push "$DIST/demo/mirror-src:2.0")
}

# trigger_and_wait LABEL: commits to the demo project (ref-updated) and
# waits until the post buildset for that commit completes. Sets NEWREV.
trigger_and_wait() {
  local label=$1 i
  if [ "${2:-}" != --no-commit ]; then
    mkdir -p "$RUN/git/demo/rounds"
    echo "$label" >"$RUN/git/demo/rounds/$label"
    git_commit demo "Round $label"
  fi
  NEWREV=$(head_of demo)
  note "round $label: demo at ${NEWREV:0:12}, waiting for its post buildset"
  local t=$SECONDS state
  for ((i = 0; i < 420; i++)); do
    state=$(api "tenant/$TENANT/buildsets?project=demo&newrev=$NEWREV" 2>/dev/null |
      python3 -c 'import json,sys; b=json.load(sys.stdin); print(b[0]["result"] or "running" if b else "none")' 2>/dev/null || echo none)
    case $state in
      none | running | "") ;;
      *) note "round $label: buildset $state after $((SECONDS - t)) s"; BUILDSET_RESULT=$state; return 0 ;;
    esac
    if [ "$state" != none ] && ((i % 10 == 9)); then
      check_config_errors || return 1
    fi
    if [ "$state" = none ] && ((SECONDS - t > 90)); then
      check_config_errors || return 1
      echo "no buildset for demo $NEWREV after 90 s; scheduler log (events):"
      grep -E "ref-updated|TriggerEvent|enqueue|Reconfigur|ERROR" "$RUN/logs/scheduler.log" | tail -30
      return 1
    fi
    for c in scheduler web executor; do
      alive "$c" || { echo "$c exited"; tail -40 "$RUN/logs/$c.log"; return 1; }
    done
    sleep 1
  done
  echo "buildset for $NEWREV did not finish in 7 min; status:"
  api "tenant/$TENANT/status" | head -c 3000
  return 1
}

# Builds of the last round: lines "job result uuid".
round_builds() {
  api "tenant/$TENANT/builds?project=demo&newrev=$NEWREV&limit=100" |
    python3 -c 'import json,sys
for b in json.load(sys.stdin):
    print(b["job_name"], b["result"], b["uuid"])'
}

build_uuid() { round_builds | awk -v j="$1" '$1 == j {print $3; exit}'; }

job_output() { # JOB: path of the job-output.txt of the last round's build
  local u
  u=$(build_uuid "$1")
  echo "$RUN/build-logs/$u/job-output.txt"
}

# Never prints the registry password, even if a job leaked it.
mask() { sed "s/$REG_PASS/********/g"; }

show_job_output() { _show_job_output "$@" | mask; }
_show_job_output() {
  local f
  f=$(job_output "$1")
  echo "----- $1 job-output.txt (last 80 lines) -----"
  if [ -f "$f" ]; then
    tail -80 "$f"
  else
    # No post-run kept logs (e.g. an unreachable node): the executor's log.
    echo "(no job-output.txt kept; the executor's log of the build:)"
    grep -F "[build: $(build_uuid "$1")]" "$RUN/logs/executor.log" | grep -E "Ansible output|ERROR|result" | tail -40 | cut -c1-400
  fi
  echo "----- end of $1 -----"
}

check_build() { # JOB [EXPECTED_RESULT]: the builds API reports it
  local want=${2:-SUCCESS} got
  got=$(round_builds | awk -v j="$1" '$1 == j {print $2; exit}')
  if [ "$got" = "$want" ]; then
    pass "$ROUND: builds API: $1 $got"
  else
    fail "$ROUND: builds API: $1 is ${got:-missing}, expected $want"
    show_job_output "$1"
  fi
}

check_eq() { # WHAT GOT WANT
  if [ "$2" = "$3" ]; then pass "$ROUND: $1"; else fail "$ROUND: $1: got '$2', expected '$3'"; fi
}

check_registries() {
  local v
  for v in 9 11; do
    check_eq "app$v:latest is the promoted post_latest" "$(regtool digest "$DIST/demo/app$v:latest")" "${EXPECT[app$v-latest]}"
    check_eq "app$v:1.0 is the promoted post_1.0" "$(regtool digest "$DIST/demo/app$v:1.0")" "${EXPECT[app$v-1.0]}"
    check_eq "app$v post_ tags removed after promotion" "$(regtool tags "$DIST/demo/app$v" | grep -c '^post_' || true)" 0
    check_eq "stale$v: stale post_/change_ tags removed, others kept" "$(regtool tags "$DIST/demo/stale$v" | tr '\n' ' ')" "keep "
    check_eq "stale$v:keep untouched" "$(regtool digest "$DIST/demo/stale$v:keep")" "${EXPECT[stale$v-keep]}"
  done
  check_eq "mirror to zuul-registry keeps the digest" "$(regtool digest "$ZREG/demo/mirrored:2.0")" "${EXPECT[mirror]}"
}

check_round_jobs() {
  local j
  for j in demo-promote-a9 demo-promote-a11 demo-remove-stale-a9 demo-remove-stale-a11 demo-mirror "$@"; do
    check_build "$j"
  done
}

# Scenario 2: the registry password appears in no job output and no log.
check_no_secret() {
  local hits
  hits=$(grep -rlF -- "$REG_PASS" "$RUN/build-logs" "$RUN/logs" 2>/dev/null || true)
  if [ -z "$hits" ]; then
    pass "$ROUND: the registry password is in no job-output.json/.txt and no Zuul log ($(find "$RUN/build-logs" -name job-output.json | wc -l) job-output.json files)"
  else
    fail "$ROUND: the registry password appears in: $(echo "$hits" | sed "s|$RUN/||" | tr '\n' ' ')"
  fi
  check_eq "job-output.json kept for every build" \
    "$(find "$RUN/build-logs" -name job-output.json | wc -l)" "$(find "$RUN/build-logs" -mindepth 1 -maxdepth 1 -type d | wc -l)"
}

# Scenario 3: Zuul runs the job's roles from the repository at the change
# under test; the installed collection only provides the modules.
scenario_role_change() {
  ROUND=role-change
  local marker
  marker="imagegate-harness-marker-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  if [ ! -f "$RUN/git/imagegate/plugins/action/modules_version.py" ] ||
    grep -q "name: imagegate.containers.promote_container_image" "$RUN/git/imagegate/playbooks/container-image/promote.yaml"; then
    skip "$ROUND, version-bump: this commit's job playbooks call roles by collection name and it has no modules_version check: the installed roles run, so a role change in the repository cannot show"
    return 0
  fi
  python3 - "$RUN/git/imagegate/roles/promote_container_image/tasks/main.yaml" "$marker" <<'EOF'
import sys
path, marker = sys.argv[1], sys.argv[2]
text = open(path).read()
task = f"- name: Harness marker\n  ansible.builtin.debug:\n    msg: {marker}\n\n"
open(path, "w").write(text.replace("---\n", "---\n" + task, 1))
EOF
  git_commit imagegate "Role change: a marker task"
  seed_round
  trigger_and_wait role-change
  check_build demo-promote-a11
  if grep -qF "$marker" "$(job_output demo-promote-a11)" 2>/dev/null; then
    pass "$ROUND: the role change committed to the repository ran without reinstalling the collection"
  else
    fail "$ROUND: the marker of the role change committed to the repository is not in demo-promote-a11's output (roles came from the installed collection)"
  fi

  ROUND=version-bump
  sed -i 's/^version: .*/version: 99.0.0/' "$RUN/git/imagegate/galaxy.yml"
  git_commit imagegate "galaxy.yml: version 99.0.0"
  seed_round
  trigger_and_wait version-bump
  check_build demo-promote-a11 FAILURE
  local out
  out=$(job_output demo-promote-a11)
  if grep -q "99.0.0" "$out" 2>/dev/null && grep -qi "modules_version\|installed" "$out"; then
    pass "$ROUND: modules_version fails naming the repository's version (99.0.0) and the installed one"
  else
    fail "$ROUND: no modules_version failure naming 99.0.0 in demo-promote-a11's output"
  fi
  # Back to the committed version for the later rounds.
  git -C "$RUN/git/imagegate" revert --no-edit HEAD >/dev/null
}

run_scenarios() {
  log "scenario 1+2: promote and stale-tag removal (Ansible 9 and 11), mirror, no secret in logs"
  write_demo_config
  seed_round
  ROUND=first
  # The commit that adds .zuul.d/demo.yaml is itself a ref-updated event.
  git_commit demo "Zuul configuration: imagegate child jobs"
  trigger_and_wait first --no-commit
  check_round_jobs ${NODE_SCENARIO:+demo-upload demo-buildset-registry demo-build-bs demo-consume-bs}
  check_registries
  if [ -n "$NODE_SCENARIO" ]; then
    check_node_upload
    check_buildset
    if [ -n "${FINAL:-}" ]; then
      log "scenario 5b: promotion through the intermediate registry"
      scenario_intermediate
    fi
  fi
  check_no_secret

  log "scenario 3: a role change in the repository, a galaxy.yml version bump"
  scenario_role_change
  ROUND=after-bump
  check_no_secret
}
