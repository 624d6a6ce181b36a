# Sourced by tests/zuul/run.sh: scenario 7, the docker-image jobs, gate to
# promote. A private Docker engine (dockerd, as root, as the test kit runs
# it: no bridge, no iptables, vfs storage, its own data root, exec root and
# socket) whose socket belongs to the group DOCKER_GROUP, which the user of
# the harness-docker node is in (tests/zuul/setup.sh, nodes.sh); the jobs
# reach it through DOCKER_HOST in container_build_extra_env, which the
# docker-image roles pass to docker.
#
# Round 1: demo-upload-docker-aV (a child of upload-docker-image, on the
# harness-docker node) builds demo/dockerV with docker and pushes only
# post_latest, with docker_credentials as a Zuul secret (pass-to-parent).
# Round 2: demo-promote-docker-aV (a child of promote-docker-image,
# nodeless) moves latest to it and removes post_latest.

DOCKER_GROUP=imagegate-harness-docker
DOCKER_DIR=""
declare -A DOCKER_BUILT

docker_answers() {
  DOCKER_HOST=unix://$DOCKER_DIR/docker.sock docker version >/dev/null 2>&1 && return 0
  dead dockerd && return 2
  return 1
}

# Starts the engine; it is stopped with the stack (by its process id), and
# remove_docker_dir removes its directory afterwards.
start_docker() {
  getent group "$DOCKER_GROUP" >/dev/null || { echo "group $DOCKER_GROUP is missing: run tests/zuul/setup.sh"; return 1; }
  # Under /tmp, not the checkout: the node user must reach the socket, and
  # a unix socket path has at most 107 bytes. Mode 0711: the socket's own
  # mode and group decide who may use it.
  DOCKER_DIR=$(mktemp -d /tmp/igz-docker.XXXXXX)
  chmod 0711 "$DOCKER_DIR"
  start dockerd dockerd --data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/exec" \
    -H "unix://$DOCKER_DIR/docker.sock" --pidfile "$DOCKER_DIR/docker.pid" -G "$DOCKER_GROUP" \
    --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs
  local rc=0
  poll 60 0.25 docker_answers || rc=$?
  if [ "$rc" = 1 ]; then
    echo "dockerd did not answer on $DOCKER_DIR/docker.sock; its log:"
    tail -40 "$RUN/logs/dockerd.log"
  fi
  return "$rc"
}

# After stop_stack stopped dockerd: its network namespaces are unmounted,
# then the directory goes, unless something under it is still mounted.
remove_docker_dir() {
  local m
  [ -n "$DOCKER_DIR" ] && [ -d "$DOCKER_DIR" ] || return 0
  for m in "$DOCKER_DIR"/exec/netns/*; do
    if [ -e "$m" ]; then umount "$m" 2>/dev/null || true; fi
  done
  if grep -qF " $DOCKER_DIR/" /proc/mounts; then
    note "left $DOCKER_DIR: still mounted under it: $(grep -F " $DOCKER_DIR/" /proc/mounts | cut -d' ' -f2 | tr '\n' ' ')"
  else
    rm -rf "$DOCKER_DIR"
  fi
}

# The demo project's docker jobs under Ansible V, as a zuul-jobs user writes
# them (docker_images, docker_registry, docker_credentials as a secret).
demo_docker_upload_job() { # V
  local v=$1
  cat <<EOF
$(job_head "demo-upload-docker-a$v" upload-docker-image "$v" docker_credentials demo-docker-credentials harness-docker)
    vars:
      docker_registry: $DIST
      docker_images:
        - context: image
          repository: demo/docker$v
          dockerfile: Containerfile
          tags: [latest]
      upload_docker_image_registry_options:
        ca_cert: "{{ ansible_user_dir }}/{{ zuul.project.src_dir }}/harness-ca.pem"
      # The harness's engine, not a system service.
      container_build_extra_env:
        DOCKER_HOST: unix://$DOCKER_DIR/docker.sock

EOF
}

demo_docker_promote_job() { # V
  local v=$1
  cat <<EOF
$(job_head "demo-promote-docker-a$v" promote-docker-image "$v" docker_credentials demo-docker-credentials)
    vars:
      docker_registry: $DIST
      docker_images:
        - context: image
          repository: demo/docker$v
          tags: [latest]
      promote_docker_image_registry_options:
        ca_cert: $RUN/ca/ca.pem

EOF
}

check_docker_upload() { # V (after round 1)
  local v=$1 repo=$DIST/demo/docker$1
  DOCKER_BUILT[$v]=$(built_digest "demo-upload-docker-a$v" "$repo:latest")
  check_eq "upload-docker-image (Ansible $v) pushed the post_ tag only" "$(regtool tags "$repo" | tr '\n' ' ')" "post_latest "
  check_eq "docker$v:post_latest has the digest docker built on the node" \
    "$(regtool digest "$repo:post_latest")" "${DOCKER_BUILT[$v]:-no digest in the job output}"
}

check_docker_promote() { # V (after round 2)
  local v=$1 repo=$DIST/demo/docker$1
  check_eq "promote-docker-image (Ansible $v) moved latest to the uploaded image and removed post_latest" \
    "$(regtool tags "$repo" | tr '\n' ' ')|$(regtool digest "$repo:latest")" "latest |${DOCKER_BUILT[$v]:-no digest in round 1}"
}
