# Copyright imagegate developers. Apache-2.0.
"""Action for the registries_conf binary module: checks the host's architecture first."""

from __future__ import annotations

from ansible_collections.imagegate.containers.plugins.action.imagegate_binary import ActionModule  # noqa: F401
