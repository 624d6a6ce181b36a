#!/usr/bin/env bash
# Role benchmark: what ansible-playbook adds to a module, and the roles side
# by side with the zuul-jobs way, in one run against distribution registries
# on loopback (plain HTTP), RUNS trials alternating the contenders.
#
#   promote_container_image (tag method) for IMAGES images x 2 tags, through
#   ansible-playbook; container_retag on the same inputs the role computes,
#   as the one task of a play and as the bare binary; the zuul-jobs method
#   as zuul-jobs runs it (through ansible-playbook, a `skopeo copy --all`
#   task per image and tag) and as a bare shell loop of the same copies.
#   Each trial promotes tags of its own, set up before it (not timed), so
#   every trial starts alike.
#
#   mirror_container_images for MIRROR images (two layers each) through
#   ansible-playbook; registry_mirror on the same inputs, as the one task of
#   a play and as the bare binary; and the raw `skopeo copy --all` loop;
#   each into a freshly started registry. The mirror registries serve TLS
#   (a certificate of a CA made for the run), the promotion's plain HTTP.
#
#   bash bench/roles.sh [IMAGES] [MIRROR] [RUNS]   (defaults 40, 16, 3)
#   BENCH_RESULTS=/tmp/x bash bench/roles.sh 4 4 1 a trial run, kept out of
#                                                  bench/results
#
# Writes the table (medians), after the machine's facts, to
# $BENCH_RESULTS/roles-<date>.txt (default bench/results, committed).
source "$(dirname "$0")/lib.sh"

IMAGES=${1:-40}
MIRROR=${2:-16}
# The mirrored images' layer sizes in MiB (MIRROR_LAYERS=16,8: larger images).
MIRROR_LAYERS=${MIRROR_LAYERS:-2,1}
RUNS=${3:-3}
LATENCY_MS=0
bench_begin "$ROOT/.work/bench-roles" "MIRROR_LAYERS=${MIRROR_LAYERS:-2,1} $0 $*"
RETAG="$ROOT/binaries/$(uname -m)/container_retag"
MIRROR_MODULE="$ROOT/binaries/$(uname -m)/registry_mirror"

echo "==> making $IMAGES synthetic images (2 MiB shared base + 2, 1 MiB layers) and $MIRROR to mirror (layers of $MIRROR_LAYERS MiB)"
python3 bench/make_layout.py "$W/layout" --images "$IMAGES" --layers 2,1 --shared 2
python3 bench/make_layout.py "$W/mlayout" --images "$MIRROR" --layers "$MIRROR_LAYERS" --tag-prefix m
start_registry "$W/reg"; R=$REG
for n in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "oci:$W/layout:img$n" "docker://$R/team/img$n:built"
done
# The mirror part runs over TLS (as the issue that set its target measured
# it): a source and fresh destinations with a certificate of a bench CA.
start_registry "$W/mreg" tls; MR=$REG
for n in $(seq 0 $((MIRROR - 1))); do
  skopeo copy --quiet --dest-cert-dir "$TLS_CERT_DIR" "oci:$W/mlayout:m$n" "docker://$MR/up/m$n:v1"
done

# --- promotion ---------------------------------------------------------
# set_up_promotion KEY: change tags change_1234_KEY-latest and
# change_1234_KEY-1.0 of every image (copies of :built), made with one
# container_retag call, untimed.
set_up_promotion() {
  python3 - "$R" "$IMAGES" "$1" >"$W/setup-$1.json" <<'PY'
import json, sys
r, n, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(json.dumps({
  "images": [{"repository": f"{r}/team/img{i}", "src_tag": "built",
              "tags": [f"change_1234_{key}-latest", f"change_1234_{key}-1.0"]} for i in range(n)],
  "registries": {r: {"plain_http": True}},
}))
PY
  "$RETAG" "$W/setup-$1.json" >/dev/null 2>&1
}
container_images() { # KEY -> the role's container_images, as JSON
  python3 -c 'import json,sys; r,n,k=sys.argv[1],int(sys.argv[2]),sys.argv[3]; print(json.dumps([{"repository": f"{r}/team/img{i}", "tags": [f"{k}-latest", f"{k}-1.0"]} for i in range(n)]))' "$R" "$IMAGES" "$1"
}
cat >"$W/promote.yaml" <<'YAML'
- name: Promote (the promote_container_image role, tag method)
  hosts: localhost
  gather_facts: false
  roles:
    - imagegate.containers.promote_container_image
YAML
run_promote_role() { # TRIAL
  set_up_promotion "r$1"
  python3 - "$(container_images "r$1")" "$R" >"$W/vars-r$1.json" <<'PY'
import json, sys
print(json.dumps({"container_images": json.loads(sys.argv[1]), "zuul": {"change": "1234", "pipeline": "promote"},
                  "promote_container_image_registries": {sys.argv[2]: {"plain_http": True}}}))
PY
  measure "promote_role_$1" ansible-playbook -i localhost, -c local -e "@$W/vars-r$1.json" "$W/promote.yaml"
}
run_promote_module() { # TRIAL: the items the role computes, to the module
  set_up_promotion "m$1"
  python3 - "$R" "$IMAGES" "m$1" >"$W/module-m$1.json" <<'PY'
import json, sys
r, n, k = sys.argv[1], int(sys.argv[2]), sys.argv[3]
items = [{"repository": f"{r}/team/img{i}", "src_tag": f"change_1234_{k}-{t}", "tags": [f"{k}-{t}"],
          "remove_tags": [f"change_1234_{k}-{t}"], "registry": r} for i in range(n) for t in ["latest", "1.0"]]
print(json.dumps({"images": items, "method": "auto", "registries": {r: {"plain_http": True}}}))
PY
  measure "promote_module_$1" "$RETAG" "$W/module-m$1.json"
}
run_promote_skopeo() { # TRIAL
  set_up_promotion "s$1"
  cat >"$W/skopeo-s$1.sh" <<SH
for n in \$(seq 0 $((IMAGES - 1))); do
  for t in latest 1.0; do
    skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false \\
      docker://$R/team/img\$n:change_1234_s$1-\$t docker://$R/team/img\$n:s$1-\$t
  done
done
SH
  measure "promote_skopeo_$1" bash "$W/skopeo-s$1.sh"
}
# The zuul-jobs way as its promote-container-image role runs it: through
# ansible-playbook, an included task file per image looping over its tags,
# one `skopeo copy --all` command task per tag (zuul-jobs also logs in and
# out per image and removes each change tag with more tasks; left out here,
# which only makes this peer faster).
cat >"$W/zj-promote.yaml" <<'YAML'
- name: Promote the zuul-jobs way (a task per image and tag)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Promote image
      loop: "{{ container_images }}"
      loop_control:
        loop_var: zj_image
      ansible.builtin.include_tasks: zj-promote-image.yaml
YAML
cat >"$W/zj-promote-image.yaml" <<'YAML'
- name: Create the final image tag
  loop: "{{ zj_image.tags }}"
  loop_control:
    loop_var: zj_image_tag
  ansible.builtin.command: >-
    skopeo --insecure-policy copy --all --quiet --src-tls-verify=false --dest-tls-verify=false
    docker://{{ zj_image.repository }}:change_1234_{{ zj_image_tag }} docker://{{ zj_image.repository }}:{{ zj_image_tag }}
  changed_when: true
YAML
run_promote_zjtasks() { # TRIAL
  set_up_promotion "z$1"
  python3 - "$(container_images "z$1")" >"$W/zvars-$1.json" <<'PY'
import json, sys
print(json.dumps({"container_images": json.loads(sys.argv[1])}))
PY
  measure "promote_zuul_jobs_tasks_$1" ansible-playbook -i localhost, -c local -e "@$W/zvars-$1.json" "$W/zj-promote.yaml"
}
# The module as the one task of a play: what the role costs beyond it.
cat >"$W/promote-task.yaml" <<'YAML'
- name: Promote (container_retag as the one task)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Promote the images
      imagegate.containers.container_retag:
        images: "{{ module_args.images }}"
        method: "{{ module_args.method }}"
        registries: "{{ module_args.registries }}"
YAML
run_promote_task() { # TRIAL
  set_up_promotion "t$1"
  python3 - "$R" "$IMAGES" "t$1" >"$W/task-t$1.json" <<'PY'
import json, sys
r, n, k = sys.argv[1], int(sys.argv[2]), sys.argv[3]
items = [{"repository": f"{r}/team/img{i}", "src_tag": f"change_1234_{k}-{t}", "tags": [f"{k}-{t}"],
          "remove_tags": [f"change_1234_{k}-{t}"], "registry": r} for i in range(n) for t in ["latest", "1.0"]]
print(json.dumps({"module_args": {"images": items, "method": "auto", "registries": {r: {"plain_http": True}}}}))
PY
  measure "promote_module_task_$1" ansible-playbook -i localhost, -c local -e "@$W/task-t$1.json" "$W/promote-task.yaml"
}
# What ansible-playbook costs by itself: a play of no tasks.
cat >"$W/empty.yaml" <<'YAML'
- name: Nothing (ansible-playbook's own cost)
  hosts: localhost
  gather_facts: false
  tasks: []
YAML
run_promote_empty() { # TRIAL
  measure "ansible_playbook_alone_$1" ansible-playbook -i localhost, -c local "$W/empty.yaml"
}
for t in $(seq 1 "$RUNS"); do
  echo "==> promotion, trial $t of $RUNS: $IMAGES images x 2 tags"
  if ((t % 2)); then order="role module task skopeo zjtasks empty"; else order="empty zjtasks skopeo task module role"; fi
  for who in $order; do "run_promote_$who" "$t"; done
done
# The role's run must have promoted and removed the change tags.
python3 - "$W/promote_role_1.out" <<'PY'
import sys
out = open(sys.argv[1]).read()
assert "changed=1" in out and "failed=0" in out, out[-2000:]
PY

# --- mirror --------------------------------------------------------------
cat >"$W/mirror.yaml" <<'YAML'
- name: Mirror (the mirror_container_images role)
  hosts: localhost
  gather_facts: false
  roles:
    - imagegate.containers.mirror_container_images
YAML
mirror_images() { # DEST -> the images list
  python3 -c 'import json,sys; s,d,n=sys.argv[1],sys.argv[2],int(sys.argv[3]); print(json.dumps([{"src": f"{s}/up/m{i}:v1", "dest": f"{d}/mirror/m{i}"} for i in range(n)]))' "$MR" "$1" "$MIRROR"
}
run_mirror_role() { # TRIAL
  start_registry "$W/mr$1" tls; local P=$REG_PID D=$REG
  python3 - "$(mirror_images "$D")" "$MR" "$D" "$TLS_CA" >"$W/mvars-$1.json" <<'PY'
import json, sys
print(json.dumps({"mirror_container_images_images": json.loads(sys.argv[1]),
                  "mirror_container_images_registries": {sys.argv[2]: {"ca_cert": sys.argv[4]}, sys.argv[3]: {"ca_cert": sys.argv[4]}}}))
PY
  measure "mirror_role_$1" ansible-playbook -i localhost, -c local -e "@$W/mvars-$1.json" "$W/mirror.yaml"
  stop_registry "$P"
}
run_mirror_module() { # TRIAL
  start_registry "$W/mm$1" tls; local P=$REG_PID D=$REG
  python3 - "$(mirror_images "$D")" "$MR" "$D" "$TLS_CA" >"$W/margs-$1.json" <<'PY'
import json, sys
print(json.dumps({"images": json.loads(sys.argv[1]), "registries": {sys.argv[2]: {"ca_cert": sys.argv[4]}, sys.argv[3]: {"ca_cert": sys.argv[4]}}}))
PY
  measure "mirror_module_$1" "$MIRROR_MODULE" "$W/margs-$1.json"
  stop_registry "$P"
}
cat >"$W/mirror-task.yaml" <<'YAML'
- name: Mirror (registry_mirror as the one task)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Mirror container images
      imagegate.containers.registry_mirror:
        images: "{{ module_args.images }}"
        registries: "{{ module_args.registries }}"
YAML
run_mirror_task() { # TRIAL
  start_registry "$W/mt$1" tls; local P=$REG_PID D=$REG
  python3 - "$(mirror_images "$D")" "$MR" "$D" "$TLS_CA" >"$W/mtask-$1.json" <<'PY'
import json, sys
print(json.dumps({"module_args": {"images": json.loads(sys.argv[1]),
                                  "registries": {sys.argv[2]: {"ca_cert": sys.argv[4]}, sys.argv[3]: {"ca_cert": sys.argv[4]}}}}))
PY
  measure "mirror_module_task_$1" ansible-playbook -i localhost, -c local -e "@$W/mtask-$1.json" "$W/mirror-task.yaml"
  stop_registry "$P"
}
run_mirror_skopeo() { # TRIAL
  start_registry "$W/ms$1" tls; local P=$REG_PID D=$REG
  cat >"$W/mskopeo-$1.sh" <<SH
for n in \$(seq 0 $((MIRROR - 1))); do
  skopeo copy --all --quiet --src-cert-dir $TLS_CERT_DIR --dest-cert-dir $TLS_CERT_DIR docker://$MR/up/m\$n:v1 docker://$D/mirror/m\$n:v1
done
SH
  measure "mirror_skopeo_$1" bash "$W/mskopeo-$1.sh"
  stop_registry "$P"
}
for t in $(seq 1 "$RUNS"); do
  echo "==> mirror, trial $t of $RUNS: $MIRROR images, cold"
  if ((t % 2)); then order="role module task skopeo"; else order="skopeo task module role"; fi
  for who in $order; do "run_mirror_$who" "$t"; done
done

OUT="$BENCH_RESULTS/roles-$(date +%Y%m%d-%H%M%S).txt"
machine_facts >"$OUT"
echo "ansible-core: $(ansible-playbook --version | head -1)" >>"$OUT"
echo >>"$OUT"
python3 - "$W" "$IMAGES" "$MIRROR" "$RUNS" <<'PY' | tee -a "$OUT"
import sys
sys.path.insert(0, "bench")
from report import Results
w, images, mirror, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
r = Results(w, runs)
print(f"role benchmark: promotion of {images} images x 2 tags (plain HTTP), cold mirror of {mirror} two-layer images (TLS); "
      f"loopback; {runs} trials (medians)")
r.table(["ansible_playbook_alone", "promote_role", "promote_module_task", "promote_module", "promote_zuul_jobs_tasks",
         "promote_skopeo", "mirror_role", "mirror_module_task", "mirror_module", "mirror_skopeo"], 0)
alone = r.median("ansible_playbook_alone")[0]
for role in ["promote", "mirror"]:
    print(f"{role}: role / module as one task of a play {r.ratio(f'{role}_role', f'{role}_module_task'):.2f} (target 1.3), "
          f"role / module binary alone {r.ratio(f'{role}_role', f'{role}_module'):.2f}")
print(f"promote: role / zuul-jobs method as zuul-jobs runs it (a task per image and tag) "
      f"{r.ratio('promote_role', 'promote_zuul_jobs_tasks'):.3f} (target 0.1), "
      f"role / bare skopeo loop {r.ratio('promote_role', 'promote_skopeo'):.3f}")
print(f"mirror: role / skopeo loop {r.ratio('mirror_role', 'mirror_skopeo'):.3f} (target 0.6)")
for role in ["promote", "mirror"]:
    own = r.median(f"{role}_role")[0] - r.median(f"{role}_module")[0] - alone
    print(f"{role}: the role's tasks beyond the module and ansible-playbook's own {alone:.2f} s: {own:.2f} s")
PY
