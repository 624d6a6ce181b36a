# Copyright imagegate developers. Apache-2.0.
"""Shared action for the imagegate binary modules.

The modules are native executables built for one architecture. This action
compares the executable's ELF machine with the host's architecture (from
facts before the module is sent; without facts, ``uname -m`` once the module
could not be run), so that a host of another architecture gets a clear
failure saying how to build for it, instead of an "exec format error".
For a task of a role of this collection run from another checkout, it also
checks that the roles' version is the installed modules' version.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible.plugins.loader import module_loader

from ansible_collections.imagegate.containers.plugins.action.modules_version import calling_role_mismatch

# ELF e_machine values and the names uname -m gives them.
ELF_MACHINES = {
    0x3E: ("x86_64", {"x86_64", "amd64"}),
    0xB7: ("aarch64", {"aarch64", "arm64"}),
    0xF3: ("riscv64", {"riscv64"}),
    0x15: ("ppc64le", {"ppc64le", "ppc64"}),
    0x16: ("s390x", {"s390x"}),
}
RUST_TARGETS = {
    "x86_64": "x86_64-unknown-linux-musl",
    "aarch64": "aarch64-unknown-linux-musl",
    "riscv64": "riscv64gc-unknown-linux-musl",
    "ppc64le": "powerpc64le-unknown-linux-musl",
    "s390x": "s390x-unknown-linux-gnu",
}


def binary_machine(path):
    """The (name, aliases) of the ELF file's machine, or None if not ELF."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    little = head[5] == 1
    machine = int.from_bytes(head[18:20], "little" if little else "big")
    return ELF_MACHINES.get(machine, (f"ELF machine {machine:#x}", set()))


def could_not_run(result):
    """Whether a failed result may be the binary not running at all rather
    than the module's own failure: no result of the module's (Ansible's
    "MODULE FAILURE"), or the shell's word that it could not execute it. A
    shell such as dash runs a file it cannot execute as a script, so what it
    says varies; the architecture is then asked, which settles it."""
    said = " ".join(str(result.get(k, "")) for k in ("module_stderr", "module_stdout", "msg"))
    return (
        str(result.get("msg", "")).startswith("MODULE FAILURE")
        or result.get("rc") in (126, 127)
        or "xec format error" in said
        or "cannot execute" in said
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        module = self._task.action
        short = module.split(".")[-1]
        found = module_loader.find_plugin_with_context(module, collection_list=self._task.collections)
        path = found.plugin_resolved_path if found and found.resolved else None
        if not path or not os.path.exists(path):
            result.update(
                failed=True,
                msg=f"{module}: the module binary is not built into the collection "
                f"(build it with tools/setup.sh, or install a collection built with it)",
            )
            return result
        # A role of this collection from elsewhere (a Zuul job's checkout)
        # must be of the installed modules' version: this is the check the
        # modules_version action makes, here for every module task of such a
        # role, so that a role need not spend a task of its own on it.
        stale = calling_role_mismatch(self._task)
        if stale:
            result.update(failed=True, msg=stale)
            return result
        machine = binary_machine(path)
        host = task_vars.get("inventory_hostname", "this host")
        # With facts, the architecture is compared before anything is sent.
        # Without them it is asked for only if the module could not be run:
        # asking first would cost every task a command (a round trip over
        # SSH) to catch a mistake that the run itself shows.
        arch = task_vars.get("ansible_architecture")
        if machine is not None and arch:
            mismatch = self._mismatch(module, short, machine, arch, host)
            if mismatch:
                result.update(failed=True, msg=mismatch)
                return result
        executed = self._execute_module(module_name=module, module_args=self._task.args, task_vars=task_vars)
        if machine is not None and not arch and executed.get("failed") and could_not_run(executed):
            probe = self._low_level_execute_command("uname -m")
            mismatch = self._mismatch(module, short, machine, probe.get("stdout", "").strip(), host)
            if mismatch:
                result.update(failed=True, msg=mismatch)
                return result
        result.update(executed)
        return result

    @staticmethod
    def _mismatch(module, short, machine, arch, host):
        """What to say when the binary's machine is not the host's arch."""
        built_for, aliases = machine
        if not arch or arch in aliases:
            return None
        target = RUST_TARGETS.get(arch, f"<the Rust target for {arch}>")
        return (
            f"{module} is built for {built_for}, but {host} is {arch}. Build the collection's modules for {arch}: "
            f"rustup target add {target} && cargo build --release --target {target} -p imagegate-modules --bins, "
            f"then copy target/{target}/release/{short} (and the other modules) into plugins/modules/."
        )
