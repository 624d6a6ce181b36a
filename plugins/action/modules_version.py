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
VERSION_LINE = re.compile(r"^version:\s*['\"]?([^'\"\s#]+)", re.MULTILINE)


def collection_version(root):
    """The version of the collection at root: MANIFEST.json as installed by
    ansible-galaxy, else galaxy.yml of a source checkout; None if neither."""
    manifest = os.path.join(root, "MANIFEST.json")
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            return json.load(f).get("collection_info", {}).get("version")
    galaxy = os.path.join(root, "galaxy.yml")
    if os.path.isfile(galaxy):
        with open(galaxy, encoding="utf-8") as f:
            found = VERSION_LINE.search(f.read())
        return found.group(1) if found else None
    return None


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
            role = self._task._role
            role_path = getattr(role, "_role_path", None) if role else None
            if role_path is None:
                result.update(failed=True, msg="modules_version: give expected, or call it from a role of this collection")
                return result
            source = os.path.dirname(os.path.dirname(role_path))
            expected = collection_version(source)
            if expected is None:
                # A role with no collection beside it: nothing to compare.
                result.update(installed=installed, expected=None, msg="no collection version beside the role")
                return result
        result.update(installed=installed, expected=str(expected))
        if installed is None:
            result.update(failed=True, msg=f"modules_version: cannot read the installed collection's version under {COLLECTION_ROOT}")
        elif str(expected) != installed:
            result.update(
                failed=True,
                msg=(
                    f"the roles (from {source}) were written for imagegate.containers {expected}, "
                    f"but the installed modules are version {installed}: install the matching collection with "
                    f"'ansible-galaxy collection install --force imagegate-containers-{expected}.tar.gz' "
                    f"(--force reinstalls the same version), or run the roles of version {installed}"
                ),
            )
        else:
            result["msg"] = f"imagegate.containers {installed}"
        return result
