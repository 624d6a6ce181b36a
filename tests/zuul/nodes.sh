# Sourced by tests/zuul/run.sh: scenarios 4 and 5, static nodes. One sshd
# per node, on 127.0.0.2 and 127.0.0.3; Zuul logs in as a non-root user with
# passwordless sudo (created by tests/zuul/setup.sh) with the executor's key.
NODE_HOSTS=(127.0.0.2 127.0.0.3)
NODE_USERS=(imagegate-node imagegate-node2)
NODE_PORTS=()
NODE_KEYS=()

node_home() { getent passwd "$1" | cut -d: -f6; }

start_node() {
  local i
  mkdir -p /run/sshd "$RUN/ssh"
  [ -f "$RUN/ssh/executor_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$RUN/ssh/executor_key"
  for i in "${!NODE_HOSTS[@]}"; do
    start_one_node "$i"
  done
}

start_one_node() {
  local i=$1 host=${NODE_HOSTS[$1]} user=${NODE_USERS[$1]} dir=$RUN/node$1 home port
  mkdir -p "$dir"
  id "$user" >/dev/null 2>&1 || { echo "user $user is missing: run tests/zuul/setup.sh"; return 1; }
  port=$(free_port)
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  home=$(node_home "$user")
  case $home in /home/imagegate-node*) ;; *) echo "unexpected home $home for $user"; return 1 ;; esac
  stop_buildset_registry "$user"
  # The node's own workspace starts empty on every run.
  find "$home" -mindepth 1 -maxdepth 1 ! -name '.ssh' -exec rm -rf {} +
  install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
  install -m 0600 -o "$user" -g "$user" "$RUN/ssh/executor_key.pub" "$home/.ssh/authorized_keys"
  # As on a node image: the user's container configuration directories.
  install -d -o "$user" -g "$user" "$home/.config" "$home/.config/containers" \
    "$home/.config/containers/registries.conf.d" "$home/.config/containers/certs.d"
  cat >"$dir/sshd_config" <<EOF
ListenAddress $host:$port
HostKey $dir/host_ed25519
PidFile none
AllowUsers $user
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes yes
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  start "sshd$i" /usr/sbin/sshd -D -e -f "$dir/sshd_config"
  wait_port "sshd$i" "$host" "$port" 30
  NODE_PORTS[i]=$port
  NODE_KEYS[i]=$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")
}

# The buildset-registry job starts zuul-registry on its node and records its
# process id in ~/buildset_registry/registry.pid; on a real node it goes with
# the node. Here the harness stops it by that id, if it is that registry.
stop_buildset_registry() {
  local home pidfile pid
  home=$(node_home "$1")
  pidfile=$home/buildset_registry/registry.pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && grep -qF "$home/buildset_registry/registry.yaml" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cleanup_node_user() {
  local u
  [ -n "${NODE_SCENARIO:-}" ] || return 0
  for u in "${NODE_USERS[@]}"; do stop_buildset_registry "$u"; done
}

# Zuul 14 launcher objects for the static node, in the config project.
write_nodes_config() {
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
    images:
      - name: harness-debian
        python-path: /usr/bin/python3
    nodes:
      - name: "${NODE_HOSTS[0]}"
        label: harness-debian
        username: ${NODE_USERS[0]}
        connection-port: ${NODE_PORTS[0]}
        host-key: "${NODE_KEYS[0]}"
      - name: "${NODE_HOSTS[1]}"
        label: harness-debian
        username: ${NODE_USERS[1]}
        connection-port: ${NODE_PORTS[1]}
        host-key: "${NODE_KEYS[1]}"

- nodeset:
    name: harness-debian
    nodes:
      - name: node
        label: harness-debian
EOF
}

# The demo project's image and its upload job on the static node.
demo_node_jobs() {
  mkdir -p "$RUN/git/demo/image"
  cp "$(command -v busybox)" "$RUN/git/demo/image/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "sh"]\n' >"$RUN/git/demo/image/Containerfile"
  # The registry's CA (public) travels with the repository to the node.
  cp "$RUN/ca/ca.pem" "$RUN/git/demo/harness-ca.pem"
  cat <<EOF
- job:
    name: demo-upload
    parent: upload-container-image
    nodeset: harness-debian
    secrets:
      - name: container_registry_credentials
        secret: demo-registry-credentials
        pass-to-parent: true
    vars:
      container_images:
        - context: image
          repository: $DIST/demo/built
          registry: $DIST
          tags: [latest]
      upload_container_image_registries:
        "$DIST": {ca_cert: "{{ ansible_user_dir }}/{{ zuul.project.src_dir }}/harness-ca.pem"}
      build_container_image_builder_options:
        storage_driver: vfs
        isolation: chroot

EOF
}

check_node_upload() {
  local tags
  tags=$(regtool tags "$DIST/demo/built" | tr '\n' ' ')
  check_eq "upload on the static node pushed the post_ tag only" "$tags" "post_latest "
  # The digest the build reported on the node is the one in the registry.
  local built
  built=$(grep -o "built $DIST/demo/built:latest (sha256:[0-9a-f]*" "$(job_output demo-upload)" 2>/dev/null | grep -o "sha256:.*" | head -1)
  check_eq "post_latest has the digest built on the node" "$(regtool digest "$DIST/demo/built:post_latest")" "${built:-no digest in the job output}"
}

# Scenario 5: a buildset registry (zuul-registry on one node, paused), a
# build that pushes into it, and a consumer that pulls the image through it
# under its final name (docker.io/...), never reaching docker.io. The node is
# this machine: the container configuration goes to the node user's
# ~/.config/containers, not /etc, and the system trust store is left alone.
demo_buildset_jobs() {
  local bs_port use_vars
  bs_port=$(free_port)
  mkdir -p "$RUN/git/demo/playbooks"
  cat >"$RUN/git/demo/playbooks/consume.yaml" <<'EOF'
---
- name: Use the image built in this buildset
  hosts: all
  tasks:
    - name: Point podman at the buildset registry
      ansible.builtin.include_role:
        name: use_buildset_registry
    - name: Pull the image by its final name
      ansible.builtin.command: podman --storage-driver vfs pull docker.io/imagegate/harness-bs:latest
      changed_when: true
    # RepoDigests: every manifest digest the image was pulled by (.Digest
    # keeps the first one, that of the local build if it ran on this node).
    - name: Read its digests
      ansible.builtin.command: >-
        podman --storage-driver vfs image inspect --format {{ '{{.RepoDigests}}' }} docker.io/imagegate/harness-bs:latest
      register: consume_digest
      changed_when: false
    - name: Say what was consumed
      ansible.builtin.debug:
        msg: "consumed digests {{ consume_digest.stdout }}"
EOF
  use_vars='      use_buildset_registry_registries_conf: "{{ ansible_user_dir }}/.config/containers/registries.conf.d/50-imagegate-buildset-registry.conf"
      use_buildset_registry_certs_dir: "{{ ansible_user_dir }}/.config/containers/certs.d"
      use_buildset_registry_system_ca: false'
  # Scenario 5b (ZUUL_HARNESS_INTERMEDIATE=1): the buildset registry pushes
  # the buildset's images to the intermediate registry in its post-run.
  local INTERMEDIATE_BS_VARS="" INTERMEDIATE_BUILD_IMAGE=""
  if [ -n "${FINAL:-}" ]; then
    INTERMEDIATE_BS_VARS="      # The post-run pushes these to the intermediate registry.
      container_images:
        - repository: $FINAL/demo/inter
          tags: [latest]
      push_to_intermediate_registry_registries:
        \"127.0.0.1:$ZREG_PORT\": {ca_cert: \"{{ ansible_user_dir }}/{{ zuul.project.src_dir }}/harness-ca.pem\"}
    secrets:
      - name: intermediate_registry
        secret: demo-intermediate-registry
        pass-to-parent: true"
    INTERMEDIATE_BUILD_IMAGE="        - context: image
          repository: $FINAL/demo/inter
          tags: [latest]"
  fi
  cat <<EOF
- job:
    name: demo-buildset-registry
    parent: buildset-registry
    nodeset: harness-debian
    vars:
      run_buildset_registry_address: "{{ ansible_host }}"
      run_buildset_registry_port: $bs_port
      run_buildset_registry_venv: $ROOT/.work/node-registry-venv
${INTERMEDIATE_BS_VARS}

- job:
    name: demo-build-bs
    parent: build-container-image
    nodeset: harness-debian
    dependencies: [demo-buildset-registry]
    vars:
      container_images:
        - context: image
          repository: docker.io/imagegate/harness-bs
          tags: [latest]
${INTERMEDIATE_BUILD_IMAGE}
      build_container_image_builder_options:
        storage_driver: vfs
        isolation: chroot
$use_vars

- job:
    name: demo-consume-bs
    nodeset: harness-debian
    dependencies: [demo-buildset-registry, demo-build-bs]
    roles:
      - zuul: imagegate
    run: playbooks/consume.yaml
    vars:
$use_vars

EOF
}

check_buildset() {
  local built consumed
  built=$(grep -o "built docker.io/imagegate/harness-bs:latest (sha256:[0-9a-f]*" "$(job_output demo-build-bs)" 2>/dev/null | grep -o "sha256:.*" | head -1)
  consumed=$(grep -o "consumed digests .*" "$(job_output demo-consume-bs)" 2>/dev/null | head -1)
  if [ -n "$built" ] && [[ $consumed == *"docker.io/imagegate/harness-bs@$built"* ]]; then
    pass "$ROUND: the consumer pulled, by its final name through the buildset registry, the image built in the buildset ($built)"
  else
    fail "$ROUND: the consumer did not pull the built image ${built:-(no digest in demo-build-bs)}: ${consumed:-nothing consumed}"
  fi
}

# Scenario 5, intermediate registry: the buildset registry's post-run pushed
# $FINAL/demo/inter to the intermediate registry (zuul-registry) as
# <build>_latest and returned it as an artifact; a nodeless promote job with
# promote_container_image_method: intermediate-registry finds that build in
# the builds API and copies the image to its final name, digest preserved.
scenario_intermediate() {
  ROUND=intermediate
  local built query
  built=$(grep -o "built $FINAL/demo/inter:latest (sha256:[0-9a-f]*" "$(job_output demo-build-bs)" 2>/dev/null | grep -o "sha256:.*" | head -1)
  check_eq "the buildset registry build returned the image as an artifact" \
    "$(api "tenant/$TENANT/builds?project=demo&job_name=demo-buildset-registry&limit=1" |
      python3 -c 'import json,sys; b=json.load(sys.stdin); print(",".join(a["name"] for a in b[0]["artifacts"] if (a.get("metadata") or {}).get("type") == "container_image"))')" \
    "$FINAL/demo/inter:latest"
  query="project=demo&pipeline=post&job_name=demo-buildset-registry&result=SUCCESS&limit=1"
  cat >"$RUN/git/demo/.zuul.d/intermediate.yaml" <<EOF
- job:
    name: demo-promote-intermediate
    parent: promote-container-image
    secrets:
      - name: container_registry_credentials
        secret: demo-registry-credentials
        pass-to-parent: true
    vars:
      promote_container_image_method: intermediate-registry
      promote_container_image_api: $WEB/api/tenant/$TENANT
      # The git driver has no changes: find the build by job, not by change.
      promote_container_image_query: "$query"
      container_images:
        - repository: $FINAL/demo/inter
          registry: $FINAL
          tags: [latest]
      promote_container_image_registries:
        "$FINAL": {ca_cert: $RUN/ca/ca.pem}
        "$ZREG": {ca_cert: $RUN/ca/ca.pem}

- project:
    post:
      jobs:
        - demo-promote-intermediate
EOF
  # demo-promote-a11 runs in every round: give it its tags.
  seed_round
  git_commit demo "Promote through the intermediate registry"
  trigger_and_wait intermediate --no-commit
  check_build demo-promote-intermediate
  check_build demo-promote-a11
  check_eq "$FINAL/demo/inter:latest is the image built in the buildset" \
    "$(regtool digest "$FINAL/demo/inter:latest")" "${built:-no digest in demo-build-bs}"
}
