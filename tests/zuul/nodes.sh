# Sourced by tests/zuul/run.sh: scenarios 4, 5 and 5b, static nodes. One
# sshd per node, each on a loopback address of its own; Zuul logs in as a
# non-root user with passwordless sudo (created by tests/zuul/setup.sh) with
# the executor's key.
#
# Four nodes: each Ansible version's buildset registry job holds a node while
# it is paused, and its build and consumer jobs need another. With both
# versions' chains at once, two nodes could deadlock (both registries paused,
# no node left to build on); four let the chains run side by side.
# A fifth, labelled harness-docker, is scenario 7's node with the harness's
# Docker engine (docker.sh): its user alone is in the engine socket's group,
# and its jobs take no node from the chains.
# (127.0.0.4 is the final registry of scenario 5b.)
NODE_HOSTS=(127.0.0.2 127.0.0.3 127.0.0.5 127.0.0.6 127.0.0.7)
NODE_USERS=(imagegate-node imagegate-node2 imagegate-node3 imagegate-node4 imagegate-node5)
NODE_LABELS=(harness-debian harness-debian harness-debian harness-debian harness-docker)
NODE_PORTS=()
NODE_KEYS=()

# node_home, node_authorize, node_container_dirs, node_sshd_config.
source "$ROOT/tools/node.sh"

start_node() {
  local i
  mkdir -p /run/sshd "$RUN/ssh"
  [ -f "$RUN/ssh/executor_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$RUN/ssh/executor_key"
  save_node_hosts
  for i in "${!NODE_HOSTS[@]}"; do
    start_one_node "$i"
  done
}

start_one_node() {
  local i=$1 host=${NODE_HOSTS[$1]} user=${NODE_USERS[$1]} dir=$RUN/node$1 home port
  mkdir -p "$dir"
  id "$user" >/dev/null 2>&1 || { echo "user $user is missing: run tests/zuul/setup.sh"; return 1; }
  port=$(free_port)
  home=$(node_home "$user")
  case $home in /home/imagegate-node*) ;; *) echo "unexpected home $home for $user"; return 1 ;; esac
  stop_buildset_registry "$user"
  # The node's own workspace starts empty on every run.
  find "$home" -mindepth 1 -maxdepth 1 ! -name '.ssh' -exec rm -rf {} +
  node_authorize "$user" "$RUN/ssh/executor_key.pub"
  # As on a node image: the user's container configuration directories.
  node_container_dirs "$user"
  node_sshd_config "$dir" "$host" "$port" "$user"
  start "sshd$i" /usr/sbin/sshd -D -e -f "$dir/sshd_config"
  wait_port "sshd$i" "$host" "$port" 30
  NODE_PORTS[i]=$port
  NODE_KEYS[i]=$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")
}

# The buildset registry jobs start zuul-registry on their node and record its
# process id in <dir>/registry.pid, one directory per Ansible version
# (~/buildset_registry_a9, ~/buildset_registry_a11: both chains may use the
# same node one after the other). On a real node the process goes with the
# node; here the harness stops it by that id, if it is that registry.
stop_buildset_registry() {
  local home pidfile pid
  home=$(node_home "$1")
  for pidfile in "$home"/buildset_registry*/registry.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && grep -qF "${pidfile%/registry.pid}/registry.yaml" "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

cleanup_node_user() {
  local u
  [ -n "${NODE_SCENARIO:-}" ] || return 0
  for u in "${NODE_USERS[@]}"; do stop_buildset_registry "$u"; done
  restore_node_hosts
}

# The nodes are this machine: use_buildset_registry writes the alias
# zuul-jobs.buildset-registry into its /etc/hosts (as on a real node, with
# sudo). The harness keeps the file as it found it and puts it back on exit.
save_node_hosts() {
  mkdir -p "$RUN/node-state"
  cp -p /etc/hosts "$RUN/node-state/hosts"
}
restore_node_hosts() {
  # /etc/hosts may be a bind mount: rewrite it in place, never replace it.
  [ -f "$RUN/node-state/hosts" ] && cat "$RUN/node-state/hosts" >/etc/hosts
  return 0
}

# Zuul 14 launcher objects for the static nodes, in the config project.
write_nodes_config() {
  local i
  cat <<EOF
- image:
    name: harness-debian
    type: cloud

- flavor:
    name: harness-small

- label:
    name: harness-debian
    image: harness-debian
    flavor: harness-small

- label:
    name: harness-docker
    image: harness-debian
    flavor: harness-small

- section:
    name: harness-static
    connection: static
    flavors:
      - name: harness-small

- provider:
    name: harness-static
    section: harness-static
    labels:
      - name: harness-debian
      - name: harness-docker
    images:
      - name: harness-debian
        python-path: /usr/bin/python3
    nodes:
EOF
  for i in "${!NODE_HOSTS[@]}"; do
    cat <<EOF
      - name: "${NODE_HOSTS[i]}"
        label: ${NODE_LABELS[i]}
        username: ${NODE_USERS[i]}
        connection-port: ${NODE_PORTS[i]}
        host-key: "${NODE_KEYS[i]}"
EOF
  done
  cat <<EOF

- nodeset:
    name: harness-debian
    nodes:
      - name: node
        label: harness-debian

- nodeset:
    name: harness-docker
    nodes:
      - name: node
        label: harness-docker

EOF
}

# Files of the demo project the node jobs use: the image to build, the
# registries' CA (public; it travels with the repository to the node) and
# the consumer's playbook.
demo_node_files() {
  mkdir -p "$RUN/git/demo/image" "$RUN/git/demo/playbooks"
  cp "$(command -v busybox)" "$RUN/git/demo/image/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "sh"]\n' >"$RUN/git/demo/image/Containerfile"
  cp "$RUN/ca/ca.pem" "$RUN/git/demo/harness-ca.pem"
  cat >"$RUN/git/demo/playbooks/consume.yaml" <<'EOF'
---
- name: Use the image built in this buildset
  hosts: all
  tasks:
    - name: Point podman at the buildset registry
      ansible.builtin.include_role:
        name: use_buildset_registry
    - name: Pull the image by its final name
      ansible.builtin.command: podman --storage-driver vfs pull {{ consume_image }}
      changed_when: true
    # RepoDigests: every manifest digest the image was pulled by (.Digest
    # keeps the first one, that of the local build if it ran on this node).
    - name: Read its digests
      ansible.builtin.command: >-
        podman --storage-driver vfs image inspect --format {{ '{{.RepoDigests}}' }} {{ consume_image }}
      register: consume_digest
      changed_when: false
    - name: Say what was consumed
      ansible.builtin.debug:
        msg: "consumed digests {{ consume_digest.stdout }}"
EOF
}

# demo_node_jobs V: the node jobs of the demo project under Ansible V.
# Scenario 4: upload-container-image on a static node. Scenario 5: a
# buildset registry (zuul-registry on one node, paused), a build that pushes
# into it, and a consumer that pulls the image through it under its final
# name (docker.io/imagegate/harness-bsV), never reaching docker.io. The node
# is this machine: the container configuration goes to the node user's
# ~/.config/containers, not /etc, and the system trust store is left alone.
# One /etc/hosts serves every node here, and the alias
# zuul-jobs.buildset-registry in it names one registry at a time (on real
# nodes each has its own): the buildset registry jobs share the config
# project's semaphore harness-buildset-alias, held while paused, so the
# chains never overlap. (A dependency of one chain on the other would pass
# the first registry's returned buildset_registry to the second, which would
# then use it instead of starting its own, as zuul-jobs' does.)
# Scenario 5b (FINAL set): the buildset registry's post-run also pushes
# $FINAL/demo/interV to the intermediate registry.
demo_node_jobs() {
  local v=$1 bs_port use_vars ca_on_node
  bs_port=$(free_port)
  ca_on_node='"{{ ansible_user_dir }}/{{ zuul.project.src_dir }}/harness-ca.pem"'
  use_vars='      use_buildset_registry_registries_conf: "{{ ansible_user_dir }}/.config/containers/registries.conf.d/50-imagegate-buildset-registry.conf"
      use_buildset_registry_certs_dir: "{{ ansible_user_dir }}/.config/containers/certs.d"
      use_buildset_registry_buildkitd_toml: "{{ ansible_user_dir }}/.config/buildkit/buildkitd.toml"
      use_buildset_registry_system_ca: false'
  local inter_bs_vars="" inter_image=""
  if [ -n "${FINAL:-}" ]; then
    inter_bs_vars="      # The post-run pushes these to the intermediate registry.
      container_images:
        - repository: $FINAL/demo/inter$v
          tags: [latest]
      push_to_intermediate_registry_registries:
        \"$ZREG\": {ca_cert: $ca_on_node}
    secrets:
      - name: intermediate_registry
        secret: demo-intermediate-registry
        pass-to-parent: true"
    inter_image="        - context: image
          repository: $FINAL/demo/inter$v
          tags: [latest]"
  fi
  cat <<EOF
$(job_head "demo-upload-a$v" upload-container-image "$v" container_registry_credentials demo-registry-credentials harness-debian)
    vars:
      container_images:
        - context: image
          repository: $DIST/demo/built$v
          registry: $DIST
          tags: [latest]
      upload_container_image_registries:
        "$DIST": {ca_cert: $ca_on_node}
      build_container_image_builder_options:
        storage_driver: vfs
        isolation: chroot

- job:
    name: demo-buildset-registry-a$v
    parent: buildset-registry
    ansible-version: $v
    nodeset: harness-debian
    semaphores: [harness-buildset-alias]
    vars:
      run_buildset_registry_dir: "{{ ansible_user_dir }}/buildset_registry_a$v"
      run_buildset_registry_address: "{{ ansible_host }}"
      run_buildset_registry_port: $bs_port
      run_buildset_registry_venv: $ROOT/.work/node-registry-venv
${inter_bs_vars}

- job:
    name: demo-build-bs-a$v
    parent: build-container-image
    ansible-version: $v
    nodeset: harness-debian
    dependencies: [demo-buildset-registry-a$v]
    vars:
      container_images:
        - context: image
          repository: docker.io/imagegate/harness-bs$v
          tags: [latest]
${inter_image}
      build_container_image_builder_options:
        storage_driver: vfs
        isolation: chroot
$use_vars

- job:
    name: demo-consume-bs-a$v
    ansible-version: $v
    nodeset: harness-debian
    dependencies: [demo-buildset-registry-a$v, demo-build-bs-a$v]
    roles:
      - zuul: $IMAGEGATE_PROJECT
    run: playbooks/consume.yaml
    vars:
      consume_image: docker.io/imagegate/harness-bs$v:latest
$use_vars

EOF
}

NODE_JOBS=(demo-upload demo-buildset-registry demo-build-bs demo-consume-bs)

# built_digest JOB REF: the digest JOB's build reported for REF in its output.
built_digest() {
  grep -o "built $2 (sha256:[0-9a-f]*" "$(job_output "$1")" 2>/dev/null | grep -o "sha256:.*" | head -1
}

check_node_upload() { # V
  local v=$1 built
  check_eq "upload on the static node (Ansible $v) pushed the post_ tag only" \
    "$(regtool tags "$DIST/demo/built$v" | tr '\n' ' ')" "post_latest "
  # The digest the build reported on the node is the one in the registry.
  built=$(built_digest "demo-upload-a$v" "$DIST/demo/built$v:latest")
  check_eq "built$v:post_latest has the digest built on the node" \
    "$(regtool digest "$DIST/demo/built$v:post_latest")" "${built:-no digest in the job output}"
}

check_buildset() { # V
  local v=$1 built consumed image=docker.io/imagegate/harness-bs$1
  built=$(built_digest "demo-build-bs-a$v" "$image:latest")
  consumed=$(grep -o "consumed digests .*" "$(job_output "demo-consume-bs-a$v")" 2>/dev/null | head -1)
  if [ -n "$built" ] && [[ $consumed == *"$image@$built"* ]]; then
    pass "$ROUND: the consumer (Ansible $v) pulled, by its final name through the buildset registry, the image built in the buildset ($built)"
  else
    fail "$ROUND: the consumer (Ansible $v) did not pull the built image ${built:-(no digest in demo-build-bs-a$v)}: ${consumed:-nothing consumed}"
  fi
}

# Scenario 5b, intermediate registry: the buildset registry's post-run
# pushed $FINAL/demo/interV to the intermediate registry (zuul-registry) as
# <build>_latest and returned it as an artifact; a nodeless promote job with
# promote_container_image_method: intermediate-registry finds that build in
# the builds API and copies the image to its final name, digest preserved.
check_intermediate_artifact() { # V (after the first round)
  local v=$1
  check_eq "the buildset registry build (Ansible $v) returned the image as an artifact" \
    "$(api "tenant/$TENANT/builds?project=demo&job_name=demo-buildset-registry-a$v&limit=1" |
      python3 -c 'import json,sys; b=json.load(sys.stdin); print(",".join(a["name"] for a in b[0]["artifacts"] if (a.get("metadata") or {}).get("type") == "container_image"))')" \
    "$FINAL/demo/inter$v:latest"
  INTER_BUILT[$v]=$(built_digest "demo-build-bs-a$v" "$FINAL/demo/inter$v:latest")
}

intermediate_jobs() { # V: the promote job, for the promotion round
  local v=$1
  cat <<EOF
$(job_head "demo-promote-intermediate-a$v" promote-container-image "$v" container_registry_credentials demo-registry-credentials)
    vars:
      promote_container_image_method: intermediate-registry
      promote_container_image_api: $WEB/api/tenant/$TENANT
      # The git driver has no changes: find the build by job, not by change.
      promote_container_image_query: "project=demo&pipeline=post&job_name=demo-buildset-registry-a$v&result=SUCCESS&limit=1"
      container_images:
        - repository: $FINAL/demo/inter$v
          registry: $FINAL
          tags: [latest]
      promote_container_image_registries:
        "$FINAL": {ca_cert: $RUN/ca/ca.pem}
        "$ZREG": {ca_cert: $RUN/ca/ca.pem}

EOF
}

declare -A INTER_BUILT
check_intermediate() { # V (after the promotion round)
  local v=$1
  check_build "demo-promote-intermediate-a$v"
  check_eq "$FINAL/demo/inter$v:latest is the image built in the buildset" \
    "$(regtool digest "$FINAL/demo/inter$v:latest")" "${INTER_BUILT[$v]:-no digest in demo-build-bs-a$v}"
}
