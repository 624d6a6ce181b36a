# Sourced by tests/zuul/run.sh: the demo project's Zuul configuration, the
# rounds (one commit to the demo project each) and the scenarios with their
# assertions. Every scenario runs under each Ansible version in VERSIONS:
# the demo project has one job per version (name suffix -a9, -a11, with
# `ansible-version:`), each on repositories of its own.

VERSIONS=(9 11)
# Scenario 6: the images of a stage (a set), per version: stageV-* are
# promoted, negV-* are not (their criteria name a missing and a failed job).
STAGE_IMAGES=(api db web)
STAGE_FROM=ci-testing
STAGE_TO=current

regtool() { REG_USER=$REG_USER REG_PASS=$REG_PASS REG_CA=$RUN/certs/ca.pem python3 "$ROOT/tests/zuul/regtool.py" "$@"; }

stage_repos() { # SET V: the repositories of one stage set, one a line
  local i
  for i in "${STAGE_IMAGES[@]}"; do echo "$DIST/demo/$1$2-$i"; done
}

yaml_list() { # ITEMS...: a flow-style YAML list
  local IFS=,
  echo "[$*]"
}

# The demo project's secrets: the registry credentials, encrypted with the
# project's key, as a zuul-jobs user writes them.
demo_secrets() {
  local key=$RUN/demo.pub enc ca=$RUN/ca/ca.pem
  api "tenant/$TENANT/key/demo.pub" >"$key"
  enc=$(SECRET_PLAINTEXT=$REG_PASS "$VENV/bin/python" "$ROOT/tests/zuul/encrypt.py" "$key" | sed 's/^/          /;1s/^ *//')
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
  [ -z "${FINAL:-}" ] || cat <<EOF
      "$FINAL":
        username: $REG_USER
        password: $enc

- secret:
    name: demo-intermediate-registry
    data:
      host: 127.0.0.1
      port: $ZREG_PORT
      username: $REG_USER
      password: $(printf '%s\n' "$enc" | sed 's/^  //')
EOF
  # The docker-image jobs take the credentials of docker_registry alone.
  cat <<EOF

- secret:
    name: demo-docker-credentials
    data:
      username: $REG_USER
      password: $enc
EOF
  # promote-container-stage takes its registries (credentials and CA) as
  # one variable, promote_set_registries: a secret of that shape.
  cat <<EOF

- secret:
    name: demo-stage-registries
    data:
      "$DIST":
        username: $REG_USER
        password: $enc
        ca_cert: $ca

EOF
}

# The stage "test" job's playbook: reads the digest of every image at the
# stage tag from the registry, records them as an imagegate_stage artifact
# (as docs/promotion-pipelines.rst tells test jobs to), and fails if asked
# to (a broken test run that still recorded what it tested).
demo_stage_files() {
  mkdir -p "$RUN/git/demo/playbooks"
  cat >"$RUN/git/demo/playbooks/stage-test.yaml" <<'EOF'
---
- name: Test a stage and record the images it tested
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the digest of each image at the stage tag
      ansible.builtin.uri:
        url: "https://{{ zj_image.split('/', 1)[0] }}/v2/{{ zj_image.split('/', 1)[1] }}/manifests/{{ stage_test_tag }}"
        method: HEAD
        headers:
          Accept: >-
            application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json,
            application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json
        url_username: "{{ container_registry_credentials[zj_image.split('/', 1)[0]].username }}"
        url_password: "{{ container_registry_credentials[zj_image.split('/', 1)[0]].password }}"
        force_basic_auth: true
        ca_path: "{{ stage_test_ca }}"
      loop: "{{ stage_test_images }}"
      loop_control:
        loop_var: zj_image
      register: stage_test_heads
      no_log: true

    - name: Record the images this job tested
      ansible.legacy.zuul_return:
        data:
          zuul:
            artifacts:
              - name: tested {{ stage_test_tag }}
                url: job-output.txt
                metadata:
                  type: imagegate_stage
                  images: "{{ dict(stage_test_heads.results | map(attribute='zj_image') | zip(stage_test_heads.results | map(attribute='docker_content_digest'))) }}"

    - name: Say what was tested
      ansible.builtin.debug:
        msg: "tested {{ zj_head.zj_image }}@{{ zj_head.docker_content_digest }}"
      loop: "{{ stage_test_heads.results }}"
      loop_control:
        loop_var: zj_head
        label: "{{ zj_head.zj_image }}"

    - name: Fail as a broken test run does
      when: stage_test_fail | default(false) | bool
      ansible.builtin.fail:
        msg: the stage failed its tests (on purpose)
EOF
}

# job_head NAME PARENT V VAR SECRET [NODESET]: the start of a job
# definition, up to its other attributes: NAME runs PARENT under Ansible V
# (on NODESET if given), with the secret SECRET passed to the parent as VAR.
job_head() {
  cat <<EOF
- job:
    name: $1
    parent: $2
    ansible-version: $3${6:+
    nodeset: $6}
    secrets:
      - name: $4
        secret: $5
        pass-to-parent: true
EOF
}

# stage_test_run IMAGE...: the part of a job definition that runs
# playbooks/stage-test.yaml on the $STAGE_FROM stage of the images, up to
# its vars (which it starts).
stage_test_run() {
  cat <<EOF
    run: playbooks/stage-test.yaml
    secrets:
      - name: container_registry_credentials
        secret: demo-registry-credentials
    vars:
      stage_test_tag: $STAGE_FROM
      stage_test_ca: $RUN/ca/ca.pem
      stage_test_images: $(yaml_list "$@")
EOF
}

# demo_nodeless_jobs V: the nodeless jobs of the demo project under Ansible V.
demo_nodeless_jobs() {
  local v=$1 ca=$RUN/ca/ca.pem
  cat <<EOF
$(job_head "demo-promote-a$v" promote-container-image "$v" container_registry_credentials demo-registry-credentials)
    vars:
      container_images:
        - repository: $DIST/demo/app$v
          registry: $DIST
          tags: [latest, "1.0"]
      promote_container_image_registries:
        "$DIST": {ca_cert: $ca}

$(job_head "demo-remove-stale-a$v" remove-registry-tag "$v" container_registry_credentials demo-registry-credentials)
    vars:
      remove_registry_tag_repository: $DIST/demo/stale$v
      remove_registry_tag_age: 0
      remove_registry_tag_registries:
        "$DIST": {ca_cert: $ca}

$(job_head "demo-mirror-a$v" mirror-container-images "$v" container_registry_credentials demo-registry-credentials)
    vars:
      mirror_container_images_images:
        - src_repository: $DIST/demo/mirror-src$v
          src_tag: "2.0"
          dest_repository: $ZREG/demo/mirrored$v
          dest_tag: "2.0"
      mirror_container_images_registries:
        "$DIST": {ca_cert: $ca}
        "$ZREG": {ca_cert: $ca}

- job:
    name: demo-stage-test-a$v
    ansible-version: $v
    description: Tests the $STAGE_FROM stage of the stage$v and neg$v sets; records the digests it tested.
$(stage_test_run $(stage_repos stage "$v") $(stage_repos neg "$v"))

EOF
}

# A test run of the neg sets that recorded what it tested, then failed.
demo_stage_broken_job() {
  local v images=()
  for v in "${VERSIONS[@]}"; do images+=($(stage_repos neg "$v")); done
  cat <<EOF
- job:
    name: demo-stage-broken
    description: A test run of the neg sets' $STAGE_FROM stage that records what it tested, then fails.
$(stage_test_run "${images[@]}")
      stage_test_fail: true

EOF
}

# The jobs of each round, "job" or "job:RESULT" (SUCCESS if not given).
# EVERY_ROUND jobs run in every round (scenario 3 needs them), FIRST_ROUND
# jobs only when .zuul.d/demo.yaml is added, PROMOTE_ROUND jobs only when
# .zuul.d/promote.yaml is added.
EVERY_ROUND=()
FIRST_ROUND=()
PROMOTE_ROUND=()
plan_rounds() {
  local v j
  for v in "${VERSIONS[@]}"; do
    EVERY_ROUND+=("demo-promote-a$v")
    FIRST_ROUND+=("demo-remove-stale-a$v" "demo-mirror-a$v" "demo-stage-test-a$v")
    if [ -n "$NODE_SCENARIO" ]; then
      for j in "${NODE_JOBS[@]}"; do FIRST_ROUND+=("$j-a$v"); done
      FIRST_ROUND+=("demo-upload-docker-a$v")
      PROMOTE_ROUND+=("demo-promote-docker-a$v")
    fi
    PROMOTE_ROUND+=("demo-promote-stage-a$v" "demo-promote-stage-unmet-a$v:FAILURE")
    [ -z "${FINAL:-}" ] || PROMOTE_ROUND+=("demo-promote-intermediate-a$v")
  done
  FIRST_ROUND+=("demo-stage-broken:FAILURE")
}

# project_stanza MATCHER JOB[:RESULT]...: the post pipeline's jobs, each
# with MATCHER (a files or irrelevant-files line) unless MATCHER is empty.
project_stanza() {
  local matcher=$1 j
  shift
  printf -- '- project:\n    post:\n      jobs:\n'
  for j in "$@"; do
    if [ -n "$matcher" ]; then
      printf '        - %s:\n            %s\n' "${j%%:*}" "$matcher"
    else
      printf '        - %s\n' "${j%%:*}"
    fi
  done
}

# The demo project's .zuul.d/demo.yaml, as a zuul-jobs user writes child jobs:
# the registry credentials are a Zuul secret encrypted with the project's
# key, passed to the parent job's playbooks (pass-to-parent).
write_demo_config() {
  local v
  plan_rounds
  demo_stage_files
  [ -z "$NODE_SCENARIO" ] || demo_node_files
  mkdir -p "$RUN/git/demo/.zuul.d"
  {
    demo_secrets
    for v in "${VERSIONS[@]}"; do
      demo_nodeless_jobs "$v"
      [ -z "$NODE_SCENARIO" ] || demo_node_jobs "$v"
      [ -z "$NODE_SCENARIO" ] || demo_docker_upload_job "$v"
    done
    demo_stage_broken_job
    # Later rounds commit rounds/<label> or .zuul.d/promote.yaml: there,
    # only the EVERY_ROUND jobs run again.
    project_stanza "" "${EVERY_ROUND[@]}"
    echo
    project_stanza "irrelevant-files: ['^rounds/', '^\\.zuul\\.d/promote\\.yaml\$']" "${FIRST_ROUND[@]}"
  } >"$RUN/git/demo/.zuul.d/demo.yaml"
}

# The promotion round's .zuul.d/promote.yaml: scenario 6's stage promotions
# (criteria read from this Zuul's builds API) and scenario 5b's promotion
# through the intermediate registry.
write_promote_config() {
  local v
  {
    for v in "${VERSIONS[@]}"; do
      promote_stage_job "demo-promote-stage-a$v" "$v" stage "demo-stage-test-a$v"
      # Criteria naming a job that never ran and one that failed, besides
      # the one that passed: nothing may move.
      promote_stage_job "demo-promote-stage-unmet-a$v" "$v" neg "demo-stage-test-a$v" demo-stage-never-ran demo-stage-broken
      [ -z "${FINAL:-}" ] || intermediate_jobs "$v"
      [ -z "$NODE_SCENARIO" ] || demo_docker_promote_job "$v"
    done
    project_stanza "files: ['^\\.zuul\\.d/promote\\.yaml\$']" "${PROMOTE_ROUND[@]}"
  } >"$RUN/git/demo/.zuul.d/promote.yaml"
}

promote_stage_job() { # NAME V SET CRITERIA_JOB...
  local name=$1 v=$2 set=$3
  shift 3
  cat <<EOF
$(job_head "$name" promote-container-stage "$v" promote_set_registries demo-stage-registries)
    vars:
      promote_set_images: $(yaml_list $(stage_repos "$set" "$v"))
      promote_set_from: $STAGE_FROM
      promote_set_to: $STAGE_TO
      promote_set_criteria:
        api: $WEB/api/tenant/$TENANT
        project: demo
        ref: refs/heads/master
        jobs: $(yaml_list "$@")

EOF
}

# Seeds what the EVERY_ROUND and FIRST_ROUND jobs work on; records the
# expected digests.
declare -A EXPECT
seed_round() {
  local v
  for v in "${VERSIONS[@]}"; do
    EXPECT[app$v-latest]=$(regtool push "$DIST/demo/app$v:post_latest")
    EXPECT[app$v-1.0]=$(regtool push "$DIST/demo/app$v:post_1.0")
    regtool push "$DIST/demo/stale$v:post_old" >/dev/null
    regtool push "$DIST/demo/stale$v:change_42_latest" >/dev/null
    EXPECT[stale$v-keep]=$(regtool push "$DIST/demo/stale$v:keep")
    EXPECT[mirror$v]=$(regtool push "$DIST/demo/mirror-src$v:2.0")
  done
}

# Scenario 6's stages: every image has a candidate under STAGE_FROM and an
# older image under STAGE_TO.
seed_stages() {
  local v repo
  for v in "${VERSIONS[@]}"; do
    for repo in $(stage_repos stage "$v") $(stage_repos neg "$v"); do
      EXPECT[$repo-from]=$(regtool push "$repo:$STAGE_FROM")
      EXPECT[$repo-to]=$(regtool push "$repo:$STAGE_TO")
    done
  done
}

# buildset_done: 0 once the post buildset of NEWREV has a result
# (BUILDSET_RESULT); 2 if Zuul broke or never enqueued it; 1 meanwhile.
buildset_done() {
  local state
  state=$(api "tenant/$TENANT/buildsets?project=demo&newrev=$NEWREV" 2>/dev/null |
    python3 -c 'import json,sys; b=json.load(sys.stdin); print(b[0]["result"] or "running" if b else "none")' 2>/dev/null || echo none)
  case $state in
    none | running | "") ;;
    *) BUILDSET_RESULT=$state; return 0 ;;
  esac
  dead scheduler web executor && return 2
  POLLS=$((POLLS + 1))
  if [ "$state" = none ] && ((SECONDS - ROUND_T0 > 90)); then
    check_config_errors || return 2
    echo "no buildset for demo $NEWREV after 90 s; scheduler log (events):"
    grep -E "ref-updated|TriggerEvent|enqueue|Reconfigur|ERROR" "$RUN/logs/scheduler.log" | tail -30
    return 2
  fi
  if ((POLLS % 10 == 0)); then check_config_errors || return 2; fi
  return 1
}

# trigger_and_wait LABEL [--no-commit]: commits to the demo project
# (ref-updated) and waits until the post buildset for that commit completes.
# Sets NEWREV, BUILDSET_RESULT and ROUND_BUILDS ("job result uuid" lines).
trigger_and_wait() {
  local label=$1 rc=0
  if [ "${2:-}" != --no-commit ]; then
    mkdir -p "$RUN/git/demo/rounds"
    echo "$label" >"$RUN/git/demo/rounds/$label"
    git_commit demo "Round $label"
  fi
  NEWREV=$(head_of demo)
  ROUND=$label
  ROUND_T0=$SECONDS
  POLLS=0
  note "round $label: demo at ${NEWREV:0:12}, waiting for its post buildset"
  poll 420 1 buildset_done || rc=$?
  case $rc in
    0) note "round $label: buildset $BUILDSET_RESULT after $((SECONDS - ROUND_T0)) s" ;;
    1) echo "buildset for $NEWREV did not finish in 7 min; status:"; api "tenant/$TENANT/status" | head -c 3000; return 1 ;;
    *) return 1 ;;
  esac
  ROUND_BUILDS=$(api "tenant/$TENANT/builds?project=demo&newrev=$NEWREV&limit=200" |
    python3 -c 'import json,sys
for b in json.load(sys.stdin):
    print(b["job_name"], b["result"], b["uuid"])')
}

build_field() { # JOB FIELD(2 result, 3 uuid): of the last round's build of JOB
  awk -v j="$1" -v f="$2" '$1 == j {print $f; exit}' <<<"$ROUND_BUILDS"
}

job_output() { # JOB: path of the job-output.txt of the last round's build
  echo "$RUN/build-logs/$(build_field "$1" 3)/job-output.txt"
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
    # The copy was taken in the base job's post-run, before the job ended:
    # what the executor logged about the build's end follows.
    echo "----- $1 in the executor's log -----"
    grep -F "[build: $(build_field "$1" 3)]" "$RUN/logs/executor.log" |
      grep -E "ERROR|WARNING|[Rr]esult|[Pp]laybook|fatal" | tail -30 | cut -c1-400
  else
    # No post-run kept logs (e.g. an unreachable node): the executor's log.
    echo "(no job-output.txt kept; the executor's log of the build:)"
    grep -F "[build: $(build_field "$1" 3)]" "$RUN/logs/executor.log" | grep -E "Ansible output|ERROR|result" | tail -40 | cut -c1-400
  fi
  echo "----- end of $1 -----"
}

check_build() { # JOB [EXPECTED_RESULT]: the builds API reports it
  local want=${2:-SUCCESS} got
  got=$(build_field "$1" 2)
  if [ "$got" = "$want" ]; then
    pass "$ROUND: builds API: $1 $got"
  else
    fail "$ROUND: builds API: $1 is ${got:-missing}, expected $want"
    show_job_output "$1"
  fi
}

check_builds() { # JOB[:RESULT]...
  local j
  for j in "$@"; do
    if [[ $j == *:* ]]; then check_build "${j%%:*}" "${j#*:}"; else check_build "$j"; fi
  done
}

check_eq() { # WHAT GOT WANT
  if [ "$2" = "$3" ]; then pass "$ROUND: $1"; else fail "$ROUND: $1: got '$2', expected '$3'"; fi
}

check_output_has() { # JOB WHAT FIXED_STRING
  if grep -qF -- "$3" "$(job_output "$1")" 2>/dev/null; then
    pass "$ROUND: $1: $2"
  else
    fail "$ROUND: $1: $2: '$3' is not in its output"
    show_job_output "$1"
  fi
}

check_output_lacks() { # JOB WHAT FIXED_STRING
  local out
  out=$(job_output "$1")
  if [ ! -f "$out" ]; then
    fail "$ROUND: $1: $2: no job-output.txt kept"
  elif grep -qF -- "$3" "$out"; then
    fail "$ROUND: $1: $2: '$3' is in its output"
  else
    pass "$ROUND: $1: $2"
  fi
}

check_promote() { # V: scenario 1's promotion (every round)
  local v=$1
  check_eq "app$v:latest is the promoted post_latest" "$(regtool digest "$DIST/demo/app$v:latest")" "${EXPECT[app$v-latest]}"
  check_eq "app$v:1.0 is the promoted post_1.0" "$(regtool digest "$DIST/demo/app$v:1.0")" "${EXPECT[app$v-1.0]}"
  check_eq "app$v post_ tags removed after promotion" "$(regtool tags "$DIST/demo/app$v" | grep -c '^post_' || true)" 0
}

check_stale_and_mirror() { # V: scenario 1's cleanup and mirror (first round)
  local v=$1
  check_eq "stale$v: stale post_/change_ tags removed, others kept" "$(regtool tags "$DIST/demo/stale$v" | tr '\n' ' ')" "keep "
  check_eq "stale$v:keep untouched" "$(regtool digest "$DIST/demo/stale$v:keep")" "${EXPECT[stale$v-keep]}"
  check_eq "mirror (Ansible $v) to zuul-registry keeps the digest" "$(regtool digest "$ZREG/demo/mirrored$v:2.0")" "${EXPECT[mirror$v]}"
}

# Scenario 6, first round: the test jobs' imagegate_stage artifacts, as
# zuul-web's builds API returns them, map each image to its candidate.
check_stage_artifact() { # JOB REPO...
  local job=$1 got want
  shift
  got=$(api "tenant/$TENANT/builds?uuid=$(build_field "$job" 3)" | python3 -c 'import json,sys
for a in json.load(sys.stdin)[0]["artifacts"]:
    m = a.get("metadata") or {}
    if m.get("type") == "imagegate_stage":
        for image, digest in sorted(m["images"].items()):
            print(image, digest)' 2>&1) || got="no build of $job in the builds API: $got"
  want=$(for r in "$@"; do echo "$r ${EXPECT[$r-from]}"; done | sort)
  check_eq "$job recorded an imagegate_stage artifact with the $# candidates' digests" "$got" "$want"
}

# Scenario 6, promotion round: the criteria met move the stage (keeping
# previous-<stage>); criteria naming a missing and a failed job move nothing
# and the job says which job is missing or failed for which image.
check_stage_promotion() { # V
  local v=$1 repo record
  for repo in $(stage_repos stage "$v"); do
    check_eq "${repo#*/}:$STAGE_TO is the tested $STAGE_FROM digest" "$(regtool digest "$repo:$STAGE_TO")" "${EXPECT[$repo-from]}"
    check_eq "${repo#*/}:previous-$STAGE_TO is the former $STAGE_TO" "$(regtool digest "$repo:previous-$STAGE_TO")" "${EXPECT[$repo-to]}"
  done
  check_output_has "demo-promote-stage-a$v" "the criteria were met" "1 jobs succeeded for all ${#STAGE_IMAGES[@]} images"
  record=$RUN/build-logs/$(build_field "demo-promote-stage-a$v" 3)/promotion-record.json
  check_eq "demo-promote-stage-a$v kept its promotion record in its logs, with every tested digest" \
    "$(for repo in $(stage_repos stage "$v"); do grep -cF "${EXPECT[$repo-from]}" "$record" 2>/dev/null | sed 's/^[1-9][0-9]*$/yes/'; done | sort -u)" yes
  for repo in $(stage_repos neg "$v"); do
    check_eq "${repo#*/}: nothing moved (unmet criteria)" \
      "$(regtool tags "$repo" | tr '\n' ' ')|$(regtool digest "$repo:$STAGE_TO")|$(regtool digest "$repo:$STAGE_FROM")" \
      "$STAGE_FROM $STAGE_TO |${EXPECT[$repo-to]}|${EXPECT[$repo-from]}"
    check_output_has "demo-promote-stage-unmet-a$v" "names the job that never ran for ${repo#*/}" \
      "demo-stage-never-ran missing for $repo@${EXPECT[$repo-from]}"
    check_output_has "demo-promote-stage-unmet-a$v" "names the failed job for ${repo#*/}" \
      "demo-stage-broken failed (FAILURE) for $repo@${EXPECT[$repo-from]}"
  done
  check_output_has "demo-promote-stage-unmet-a$v" "says nothing moved" "nothing moved; criteria not met"
  check_output_lacks "demo-promote-stage-unmet-a$v" "does not count the job that passed as missing" "demo-stage-test-a$v missing"
  check_output_lacks "demo-promote-stage-unmet-a$v" "does not count the job that passed as failed" "demo-stage-test-a$v failed"
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

# Scenario 3 needs job playbooks that call roles by their short name (Zuul
# puts the playbook's repository first on the role path) and the
# modules_version action; a commit without them cannot show a role change.
role_change_supported() {
  [ -f "$RUN/git/$IMAGEGATE_PROJECT/plugins/action/modules_version.py" ] &&
    ! grep -q "name: imagegate.containers.promote_container_image" "$RUN/git/$IMAGEGATE_PROJECT/playbooks/container-image/promote.yaml"
}

# Scenario 3, part 1: a role change committed to the imagegate repository (a
# debug task with a random marker in promote_container_image), not
# installed, before the promotion round; its EVERY_ROUND jobs must show it.
commit_role_change() {
  ROLE_MARKER=""
  if ! role_change_supported; then
    skip "role-change, version-bump: this commit's job playbooks call roles by collection name and it has no modules_version check: the installed roles run, so a role change in the repository cannot show"
    return 0
  fi
  ROLE_MARKER="imagegate-harness-marker-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  python3 - "$RUN/git/$IMAGEGATE_PROJECT/roles/promote_container_image/tasks/main.yaml" "$ROLE_MARKER" <<'EOF'
import sys
path, marker = sys.argv[1], sys.argv[2]
text = open(path).read()
task = f"- name: Harness marker\n  ansible.builtin.debug:\n    msg: {marker}\n\n"
open(path, "w").write(text.replace("---\n", "---\n" + task, 1))
EOF
  git_commit "$IMAGEGATE_PROJECT" "Role change: a marker task"
}

check_role_change() { # V
  [ -n "$ROLE_MARKER" ] || return 0
  check_output_has "demo-promote-a$1" "the role change committed to the repository ran without reinstalling the collection" "$ROLE_MARKER"
}

# Scenario 3, part 2: a galaxy.yml version bump in the repository makes the
# roles' modules_version check fail, naming the version.
scenario_version_bump() {
  local v out
  role_change_supported || return 0
  sed -i 's/^version: .*/version: 99.0.0/' "$RUN/git/$IMAGEGATE_PROJECT/galaxy.yml"
  git_commit "$IMAGEGATE_PROJECT" "galaxy.yml: version 99.0.0"
  seed_round
  trigger_and_wait version-bump
  for v in "${VERSIONS[@]}"; do
    check_build "demo-promote-a$v" FAILURE
    out=$(job_output "demo-promote-a$v")
    if grep -q "99.0.0" "$out" 2>/dev/null && grep -qi "modules_version\|installed" "$out"; then
      pass "$ROUND: modules_version (Ansible $v) fails naming the repository's version (99.0.0) and the installed one"
    else
      fail "$ROUND: no modules_version failure naming 99.0.0 in demo-promote-a$v's output"
      show_job_output "demo-promote-a$v"
    fi
  done
  # Back to the committed version.
  git -C "$RUN/git/$IMAGEGATE_PROJECT" revert --no-edit HEAD >/dev/null
}

run_scenarios() {
  local v
  log "round 1: scenarios 1, 2, ${NODE_SCENARIO:+4, 5, }6 (tests)${NODE_SCENARIO:+, 7 (docker upload)} under Ansible ${VERSIONS[*]}"
  write_demo_config
  seed_round
  seed_stages
  # The commit that adds .zuul.d/demo.yaml is itself a ref-updated event.
  git_commit demo "Zuul configuration: imagegate child jobs"
  trigger_and_wait first --no-commit
  check_builds "${EVERY_ROUND[@]}" "${FIRST_ROUND[@]}"
  for v in "${VERSIONS[@]}"; do
    check_promote "$v"
    check_stale_and_mirror "$v"
    check_stage_artifact "demo-stage-test-a$v" $(stage_repos stage "$v") $(stage_repos neg "$v")
    if [ -n "$NODE_SCENARIO" ]; then
      check_node_upload "$v"
      check_buildset "$v"
      check_docker_upload "$v"
      [ -z "${FINAL:-}" ] || check_intermediate_artifact "$v"
    fi
  done
  check_stage_artifact demo-stage-broken $(for v in "${VERSIONS[@]}"; do stage_repos neg "$v"; done)
  check_no_secret
  check_standin_never_ran

  log "round 2: scenarios 6 (stage promotion), ${FINAL:+5b (intermediate registry), }${NODE_SCENARIO:+7 (docker promotion), }3 (a role change)"
  commit_role_change
  write_promote_config
  seed_round
  git_commit demo "Promote the stages${FINAL:+ and through the intermediate registry}"
  trigger_and_wait promote --no-commit
  check_builds "${EVERY_ROUND[@]}" "${PROMOTE_ROUND[@]}"
  for v in "${VERSIONS[@]}"; do
    check_promote "$v"
    check_role_change "$v"
    check_stage_promotion "$v"
    [ -z "${FINAL:-}" ] || check_intermediate "$v"
    [ -z "$NODE_SCENARIO" ] || check_docker_promote "$v"
  done
  check_no_secret
  check_standin_never_ran

  log "round 3: scenario 3 (a galaxy.yml version bump)"
  scenario_version_bump
  check_no_secret
  check_standin_never_ran
}
