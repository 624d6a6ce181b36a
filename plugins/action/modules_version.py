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
import os
import re

from ansible.plugins.action import ActionBase

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION_ROOT = os.path.dirname(os.path.dirname(HERE))
OURS = ("imagegate", "containers")


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
        result.update(installed=installed, expected=str(expected))
        if installed is None:
            result.update(failed=True, msg=f"modules_version: cannot read the installed collection's version under {COLLECTION_ROOT}")
        elif str(expected) != installed:
            result.update(failed=True, msg=mismatch_message(source, expected, installed))
        else:
            result["msg"] = f"imagegate.containers {installed}"
        return result
