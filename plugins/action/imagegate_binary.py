# Copyright imagegate developers. Apache-2.0.
"""Shared action for the imagegate binary modules.

The modules are native executables. The collection carries one per node
architecture, in ``binaries/<arch>/<module>`` (plugins/modules holds only
their documentation). This action picks the executable for the host's
architecture and has Ansible run it as it runs any binary module:

- the architecture comes from the host's facts when they were gathered;
  otherwise it is asked once (``uname -m``, one command with the host's
  first imagegate task) and returned as the fact ``imagegate_architecture``,
  so the host's later tasks reuse it and cost nothing more;
- an architecture no executable exists for fails at once, naming the
  architecture, the ones the collection carries and how to build one;
- the chosen file's ELF machine must be that architecture, and the version
  built into it must be the collection's (a stale build fails clearly);
- if the executable then could not run at all (facts from another machine,
  say), the architecture is asked and the failure says what it is.

For a task of a role of this collection run from another checkout, it also
checks that the roles' version is the installed modules' version.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.imagegate.containers.plugins.action.modules_version import (
    BINARIES,
    COLLECTION_ROOT,
    binary_version,
    calling_role_mismatch,
    carried_binaries,
    collection_version,
)

display = Display()

FACT = "imagegate_architecture"
# What uname -m (or a fact) may call an architecture, and our name for it.
ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
# ELF e_machine values and the architecture names they are.
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "riscv64", 0x15: "ppc64le", 0x16: "s390x"}
RUST_TARGETS = {
    "x86_64": "x86_64-unknown-linux-musl",
    "aarch64": "aarch64-unknown-linux-musl",
    "riscv64": "riscv64gc-unknown-linux-musl",
    "ppc64le": "powerpc64le-unknown-linux-musl",
    "s390x": "s390x-unknown-linux-gnu",
}


def arch_name(value):
    """Our name of an architecture as uname -m or a fact gives it, or None."""
    text = str(value or "").strip().lower()
    if not text or len(text) > 32 or not all(c.isalnum() or c == "_" for c in text):
        return None
    return ALIASES.get(text, text)


def binary_machine(path):
    """The architecture of the ELF file at path, a description of an
    unknown machine, or None if it is not ELF."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    little = head[5] == 1
    machine = int.from_bytes(head[18:20], "little" if little else "big")
    return ELF_MACHINES.get(machine, f"ELF machine {machine:#x}")


def could_not_run(result):
    """Whether a failed result may be the binary not running at all rather
    than the module's own failure: no result of the module's (Ansible's
    "MODULE FAILURE"), or the shell's word that it could not execute it."""
    said = " ".join(str(result.get(k, "")) for k in ("module_stderr", "module_stdout", "msg"))
    return (
        str(result.get("msg", "")).startswith("MODULE FAILURE")
        or result.get("rc") in (126, 127)
        or "xec format error" in said
        or "cannot execute" in said
    )


def build_hint(arch):
    target = RUST_TARGETS.get(arch, f"<the Rust musl target for {arch}>")
    return (
        f"tools/build-modules.sh builds x86_64 and aarch64; for {arch}: rustup target add {target} && "
        f"cargo build --release --target {target} -p imagegate-modules --bins, then copy the five "
        f"executables from target/{target}/release/ into binaries/{arch}/ of the collection"
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        module = self._task.action
        short = module.split(".")[-1]
        # A role of this collection from elsewhere (a Zuul job's checkout)
        # must be of the installed modules' version: this is the check the
        # modules_version action makes, here for every module task of such a
        # role, so that a role need not spend a task of its own on it.
        stale = calling_role_mismatch(self._task)
        if stale:
            result.update(failed=True, msg=stale)
            return result
        if not carried_binaries():
            result.update(
                failed=True,
                msg=f"{module}: the module binaries are not built into the collection ({BINARIES} is empty): "
                "build them with tools/build-modules.sh, or install a collection built with it",
            )
            return result

        delegated = self._task.delegate_to
        host = delegated or task_vars.get("inventory_hostname", "this host")
        host_vars = task_vars
        if delegated:
            host_vars = (task_vars.get("ansible_delegated_vars") or {}).get(delegated, {})
        facts = host_vars.get("ansible_facts") or {}
        said = facts.get("architecture") or host_vars.get("ansible_architecture")
        source = "facts"
        if not said and facts.get(FACT):
            said, source = facts.get(FACT), "remembered"
        learned = None
        if said:
            arch = arch_name(said)
        else:
            arch = learned = self._ask_architecture()
            source = "asked"
            if arch is None:
                result.update(failed=True, msg=f"{module}: could not learn the architecture of {host} (uname -m)")
                return result

        binary = os.path.join(BINARIES, arch or "?", short)
        failure = self._check_binary(module, binary, arch, said, host)
        if failure:
            result.update(failed=True, msg=failure)
            return result

        display.vvv(f"{module}: {host} is {arch} ({source}): running binaries/{arch}/{short}", host=host)
        executed = self._run(short, os.path.dirname(binary), task_vars)
        if source != "asked" and executed.get("failed") and could_not_run(executed):
            actual = self._ask_architecture()
            if actual and actual != arch:
                result.update(
                    failed=True,
                    msg=f"{module} could not run on {host}: its facts say {said}, but uname -m says {actual}; "
                    "gather the facts again (a fact cache may hold another machine's)",
                )
                return result
        # Remembered for the host's next tasks (not for a delegated task,
        # whose facts Ansible would give to the inventory host).
        if learned and (not delegated or self._task.delegate_facts):
            executed.setdefault("ansible_facts", {})[FACT] = learned
        result.update(executed)
        return result

    def _ask_architecture(self):
        probe = self._low_level_execute_command("uname -m", sudoable=False)
        if probe.get("rc") != 0:
            return None
        lines = str(probe.get("stdout", "")).strip().splitlines()
        return arch_name(lines[-1]) if lines else None

    @staticmethod
    def _check_binary(module, binary, arch, said, host):
        """What is wrong with running binary on an arch host, or None."""
        if arch is None:
            return f"{module}: {host} gives its architecture as {str(said)[:40]!r}, which is not one"
        if not os.path.isfile(binary):
            have = ", ".join(carried_binaries())
            return (
                f"{module} has no executable for {arch}, the architecture of {host} (this collection carries "
                f"{have}). {build_hint(arch)}."
            )
        machine = binary_machine(binary)
        if machine != arch:
            return (
                f"{module}: binaries/{arch}/{os.path.basename(binary)} is not an {arch} executable "
                f"({machine or 'not ELF'}): the collection's binaries are mixed up. {build_hint(arch)}."
            )
        built = binary_version(binary)
        installed = collection_version(COLLECTION_ROOT)
        if installed and built != installed:
            return (
                f"{module}: binaries/{arch}/{os.path.basename(binary)} was built as version {built or 'unknown'}, "
                f"but the collection is {installed}: rebuild the binaries (tools/build-modules.sh)"
            )
        return None

    def _run(self, short, directory, task_vars):
        """Runs the executable in directory as Ansible runs a binary module
        (transfer, arguments file, environment, become, result), by adding
        the directory to the module search path for this one call."""
        loader = self._shared_loader_obj.module_loader
        loader.add_directory(directory)
        try:
            return self._execute_module(
                module_name=f"ansible.legacy.{short}", module_args=self._task.args, task_vars=task_vars
            )
        finally:
            real = os.path.realpath(directory)
            if real in loader._extra_dirs:
                loader._extra_dirs.remove(real)
                loader._clear_caches()
