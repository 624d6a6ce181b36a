# Sourced: what makes this machine look like a Zuul node to ansible-playbook.
# A Zuul node is reached over ssh as a non-root user with passwordless sudo
# and subordinate ids (rootless podman). The Zuul harness (tests/zuul) and
# the conformance suite (tests/conformance) both use these functions, each
# with its own user:
#
#   node_user_ensure USER           create USER (key login only, passwordless
#                                   sudo, subordinate uids/gids); idempotent
#   node_user_remove USER HOMEPFX   stop what USER still runs (by pid), delete
#                                   USER, its home and its sudoers entry;
#                                   refuses a home outside HOMEPFX
#   node_authorize USER PUBKEY      let PUBKEY log in as USER
#   node_container_dirs USER        the user's container configuration
#                                   directories, as on a node image
#   node_sshd_config DIR HOST PORT USER
#                                   write DIR/sshd_config and a host key
#                                   (DIR/host_ed25519) for an sshd on HOST:PORT
#                                   that lets only USER in, by key
#
# Every function works on the user it is given and on nothing else.

node_home() { getent passwd "$1" | cut -d: -f6; }

node_user_ensure() { # USER
  local user=$1
  if ! id "$user" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$user"
  fi
  # Password field '*': no password, not locked (sshd refuses locked users).
  usermod -p '*' "$user"
  printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" >"/etc/sudoers.d/$user"
  chmod 0440 "/etc/sudoers.d/$user"
  # Rootless podman needs subordinate ids; useradd gives them on Debian 12
  # but not everywhere: add a free range when the user has none.
  local f start
  for f in /etc/subuid /etc/subgid; do
    if ! grep -q "^$user:" "$f" 2>/dev/null; then
      start=$(awk -F: 'BEGIN {m = 100000} {if ($2 + $3 > m) m = $2 + $3} END {print m}' "$f" 2>/dev/null || echo 100000)
      echo "$user:$start:65536" >>"$f"
    fi
  done
}

node_authorize() { # USER PUBKEY
  local user=$1 home
  home=$(node_home "$user")
  install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
  install -m 0600 -o "$user" -g "$user" "$2" "$home/.ssh/authorized_keys"
}

node_container_dirs() { # USER
  local user=$1 home
  home=$(node_home "$user")
  install -d -o "$user" -g "$user" "$home/.config" "$home/.config/containers" \
    "$home/.config/containers/registries.conf.d" "$home/.config/containers/certs.d"
}

node_sshd_config() { # DIR HOST PORT USER
  local dir=$1 host=$2 port=$3 user=$4
  mkdir -p /run/sshd "$dir"
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
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
}

# The processes USER still runs (a registry a job started, podman's pause
# process), as pids; each is then stopped by its pid.
node_user_pids() { # USER
  local uid
  uid=$(id -u "$1" 2>/dev/null) || return 0
  ps -e -o pid=,uid= | awk -v u="$uid" '$2 == u {print $1}'
}

node_user_remove() { # USER HOMEPREFIX
  local user=$1 prefix=$2 home pid i
  id "$user" >/dev/null 2>&1 || return 0
  home=$(node_home "$user")
  case $home in "$prefix"*) ;; *) echo "node_user_remove: $user's home $home is not under $prefix" >&2; return 1 ;; esac
  for pid in $(node_user_pids "$user"); do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    [ -z "$(node_user_pids "$user")" ] && break
    sleep 0.1
  done
  for pid in $(node_user_pids "$user"); do kill -KILL "$pid" 2>/dev/null || true; done
  # Rootless storage holds files owned by subordinate ids: userdel -r
  # removes them as root.
  userdel -r "$user" 2>/dev/null || userdel "$user"
  rm -rf "$home"
  rm -f "/etc/sudoers.d/$user"
  sed -i "/^$user:/d" /etc/subuid /etc/subgid
}
