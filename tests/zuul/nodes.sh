# Sourced by tests/zuul/run.sh: scenario 4, a static node. sshd listens on
# 127.0.0.2; Zuul logs in as NODE_USER, a non-root user with passwordless
# sudo (created by tests/zuul/setup.sh), with the executor's key.
NODE_USER=imagegate-node
NODE_HOST=127.0.0.2

start_node() {
  local dir=$RUN/node home
  mkdir -p "$dir" /run/sshd
  id "$NODE_USER" >/dev/null 2>&1 || { echo "user $NODE_USER is missing: run tests/zuul/setup.sh"; return 1; }
  NODE_PORT=$(free_port)
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  # The executor's key exists once write_zuul_conf ran; create it here.
  mkdir -p "$RUN/ssh"
  [ -f "$RUN/ssh/executor_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$RUN/ssh/executor_key"
  home=$(getent passwd "$NODE_USER" | cut -d: -f6)
  # The node's own workspace starts empty on every run.
  find "$home" -mindepth 1 -maxdepth 1 ! -name '.ssh' -exec rm -rf {} +
  install -d -m 0700 -o "$NODE_USER" -g "$NODE_USER" "$home/.ssh"
  install -m 0600 -o "$NODE_USER" -g "$NODE_USER" "$RUN/ssh/executor_key.pub" "$home/.ssh/authorized_keys"
  cat >"$dir/sshd_config" <<EOF
ListenAddress $NODE_HOST:$NODE_PORT
HostKey $dir/host_ed25519
PidFile none
AllowUsers $NODE_USER
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes yes
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  start sshd /usr/sbin/sshd -D -e -f "$dir/sshd_config"
  wait_port sshd "$NODE_HOST" "$NODE_PORT" 30
  NODE_HOST_KEY=$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")
}

cleanup_node_user() { :; }

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
        connection-port: $NODE_PORT
        username: $NODE_USER
        python-path: /usr/bin/python3
    nodes:
      - name: "$NODE_HOST"
        label: harness-debian
        host-key: "$NODE_HOST_KEY"

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
}
