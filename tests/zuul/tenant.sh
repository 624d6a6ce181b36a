# Sourced by tests/zuul/run.sh: the tenant is the one docs/migration-guide.rst
# shows. Its untrusted projects are read from the guide's tenant code block
# (tenant.py), with the guide's connection replaced by the harness's git
# connection and the demo project appended: imagegate/imagegate (this
# repository) and zuul/zuul-jobs, a stand-in that defines a job of every
# name imagegate's zuul.d defines (read from there), each of whose playbooks
# fails loudly. With the guide's shadow setting right, imagegate's
# definitions replace the stand-in's; with it wrong, the tenant has
# configuration errors or the stand-in's jobs run, and the harness fails.

IMAGEGATE_PROJECT=imagegate/imagegate
ZUUL_JOBS_PROJECT=zuul/zuul-jobs
STANDIN_MESSAGE="zuul-jobs stand-in ran: shadowing is broken"
# A zuul-jobs job imagegate does not define: it must stay in the tenant.
STANDIN_KEPT_JOB=zuul-jobs-stand-in-kept

tenant_py() { "$VENV/bin/python" "$ROOT/tests/zuul/tenant.py" "$@"; }

make_standin_repo() { # after the imagegate repository
  local repo=$RUN/git/$ZUUL_JOBS_PROJECT
  git_repo "$ZUUL_JOBS_PROJECT"
  mkdir -p "$repo/zuul.d" "$repo/playbooks"
  tenant_py standin "$RUN/git/$IMAGEGATE_PROJECT/zuul.d" "$STANDIN_KEPT_JOB" >"$repo/zuul.d/jobs.yaml"
  cat >"$repo/playbooks/stand-in.yaml" <<EOF
---
- name: A zuul-jobs stand-in job
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail loudly
      ansible.builtin.fail:
        msg: "$STANDIN_MESSAGE"
EOF
  git_commit "$ZUUL_JOBS_PROJECT" "zuul-jobs stand-in: every job name imagegate defines"
}

write_tenant() { # main.yaml, from the guide as committed (HEAD)
  tenant_py tenant "$RUN/git/$IMAGEGATE_PROJECT/docs/migration-guide.rst" "$TENANT" git zuul-config \
    "$IMAGEGATE_PROJECT" "$ZUUL_JOBS_PROJECT" -- demo >"$RUN/main.yaml"
}

# The projects whose definitions a job of the tenant has, from zuul-web.
job_sources() { # JOB
  api "tenant/$TENANT/job/$1" | python3 -c 'import json,sys
print(" ".join(sorted({v["source_context"]["project"] for v in json.load(sys.stdin)})))' 2>&1
}

# Every job imagegate defines has imagegate's definitions only, and the
# zuul-jobs job imagegate does not define is still there.
check_shadowing() {
  local job bad=()
  for job in $(tenant_py jobs "$RUN/git/$IMAGEGATE_PROJECT/zuul.d"); do
    [ "$(job_sources "$job")" = "$IMAGEGATE_PROJECT" ] || bad+=("$job: $(job_sources "$job")")
  done
  check_eq "every job of imagegate's zuul.d comes from $IMAGEGATE_PROJECT only (the guide's tenant)" "${bad[*]}" ""
  check_eq "$ZUUL_JOBS_PROJECT's other jobs stay" "$(job_sources "$STANDIN_KEPT_JOB")" "$ZUUL_JOBS_PROJECT"
}

check_standin_never_ran() {
  local hits
  hits=$(grep -rlF -- "$STANDIN_MESSAGE" "$RUN/build-logs" "$RUN/logs/executor.log" 2>/dev/null || true)
  check_eq "no zuul-jobs stand-in playbook ran" "$(echo "$hits" | sed "s|$RUN/||" | tr '\n' ' ' | sed 's/ $//')" ""
}
