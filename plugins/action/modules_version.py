# Copyright imagegate developers. Apache-2.0.
"""Checks that the installed modules are the ones the calling role expects.

Zuul runs a job's roles from the repository at the change under test (the
job playbooks call them by short name), while the module binaries are the
ones installed with the collection on the executor or controller. This
action compares the version in the galaxy.yml beside the calling role with
the version of the installed collection that holds this plugin, and fails
naming both versions and the fix when they differ.
"""

from __future__ import annotations

import json
import mmap
import os
import re

from ansible.plugins.action import ActionBase

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION_ROOT = os.path.dirname(os.path.dirname(HERE))
OURS = ("imagegate", "containers")
BINARIES = os.path.join(COLLECTION_ROOT, "binaries")
# The mark every module binary carries, followed by the version it was built
# as and a NUL (imagegate_modules::VERSION_MARK).
VERSION_MARK = b"imagegate.containers modules version "


def binary_version(path):
    """The collection version built into a module binary, or None."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            at = data.find(VERSION_MARK)
            if at < 0:
                return None
            start = at + len(VERSION_MARK)
            end = data.find(b"\0", start, start + 64)
            return data[start:end].decode("ascii", "replace") if end > start else None


def carried_binaries():
    """{architecture: [module, ...]} of the executables in binaries/."""
    found = {}
    try:
        arches = sorted(os.listdir(BINARIES))
    except OSError:
        return found
    for arch in arches:
        directory = os.path.join(BINARIES, arch)
        if os.path.isdir(directory):
            found[arch] = sorted(n for n in os.listdir(directory) if os.path.isfile(os.path.join(directory, n)))
    return found


def stale_binaries(installed):
    """The binaries/<arch>/<module> paths whose built-in version is not
    installed, each with the version it has (None if it has no mark)."""
    stale = []
    for arch, names in carried_binaries().items():
        for name in names:
            built = binary_version(os.path.join(BINARIES, arch, name))
            if built != installed:
                stale.append((f"binaries/{arch}/{name}", built))
    return stale


def top_level(text, key):
    """The value of a top-level `key:` line of a YAML text, or None."""
    found = re.search(rf"^{key}:\s*['\"]?([^'\"\s#]+)", text, re.MULTILINE)
    return found.group(1) if found else None


def collection_info(root):
    """(namespace, name, version) of the collection at root: MANIFEST.json as
    installed by ansible-galaxy, else galaxy.yml of a source checkout; None
    if neither is there. A missing field is None."""
    manifest = os.path.join(root, "MANIFEST.json")
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            info = json.load(f).get("collection_info", {})
        return info.get("namespace"), info.get("name"), info.get("version")
    galaxy = os.path.join(root, "galaxy.yml")
    if os.path.isfile(galaxy):
        with open(galaxy, encoding="utf-8") as f:
            text = f.read()
        return top_level(text, "namespace"), top_level(text, "name"), top_level(text, "version")
    return None


def collection_version(root):
    """The version of the collection at root, or None."""
    info = collection_info(root)
    return info[2] if info else None


def role_source(task):
    """The directory holding the roles/ of the task's role, or None."""
    role = task._role
    role_path = getattr(role, "_role_path", None) if role else None
    return os.path.dirname(os.path.dirname(role_path)) if role_path else None


def mismatch_message(source, expected, installed):
    return (
        f"the roles (from {source}) were written for imagegate.containers {expected}, "
        f"but the installed modules are version {installed}: install the matching collection with "
        f"'ansible-galaxy collection install --force imagegate-containers-{expected}.tar.gz' "
        f"(--force reinstalls the same version), or run the roles of version {installed}"
    )


def calling_role_mismatch(task):
    """For a module task of a role of this collection run from elsewhere (a
    Zuul job's checkout): the failure message if the roles' version is not
    the installed modules' version, else None. Tasks of other roles, or of
    no role, are not this check's business."""
    source = role_source(task)
    if source is None or os.path.realpath(source) == os.path.realpath(COLLECTION_ROOT):
        return None
    info = collection_info(source)
    if not info or info[:2] != OURS or info[2] is None:
        return None
    installed = collection_version(COLLECTION_ROOT)
    if installed is None or str(info[2]) == installed:
        return None
    return mismatch_message(source, info[2], installed)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("expected",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result["changed"] = False
        installed = collection_version(COLLECTION_ROOT)
        expected = self._task.args.get("expected")
        source = "the expected option"
        if expected is None:
            source = role_source(self._task)
            if source is None:
                result.update(failed=True, msg="modules_version: give expected, or call it from a role of this collection")
                return result
            expected = collection_version(source)
            if expected is None:
                # A role with no collection beside it: nothing to compare.
                result.update(installed=installed, expected=None, msg="no collection version beside the role")
                return result
        result.update(installed=installed, expected=str(expected), binaries=carried_binaries())
        stale = stale_binaries(installed) if installed else []
        if installed is None:
            result.update(failed=True, msg=f"modules_version: cannot read the installed collection's version under {COLLECTION_ROOT}")
        elif str(expected) != installed:
            result.update(failed=True, msg=mismatch_message(source, expected, installed))
        elif not result["binaries"]:
            result.update(failed=True, msg=f"imagegate.containers {installed} holds no module binaries (build them with tools/build-modules.sh)")
        elif stale:
            listed = ", ".join(f"{path} ({built or 'no version mark'})" for path, built in stale)
            result.update(
                failed=True,
                msg=f"imagegate.containers {installed} holds binaries of another version: {listed}; rebuild them with tools/build-modules.sh",
            )
        else:
            arches = ", ".join(f"{arch} ({len(names)} modules)" for arch, names in result["binaries"].items())
            result["msg"] = f"imagegate.containers {installed}: binaries for {arches}"
        return result
