# Copyright imagegate developers. Apache-2.0.
# The documentation of the modules_version action (plugins/action/modules_version.py),
# which runs on the controller: this file holds no module code.

DOCUMENTATION = r"""
module: modules_version
short_description: Check that the installed modules match the roles that call them
version_added: 0.2.0
author:
- imagegate developers
description:
- Zuul runs a job's roles from the repository at the change under test, while the module binaries come from the
  collection installed on the executor or controller.
- Compares the version in the C(galaxy.yml) beside the calling role (or I(expected)) with the version of the installed
  collection, and fails naming both versions and how to install the matching one.
- Also checks that every module binary the collection carries (C(binaries/<architecture>/<module>), one set per node
  architecture) was built as the installed version, so that a stale build of one architecture cannot go unnoticed.
- Roles of this collection that do anything else before their first module task run it first; the modules'
  own tasks make the same check when they are tasks of a role of this collection.
options:
  expected:
    description:
    - The version to expect. By default the version of the collection that holds the calling role.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Check the installed modules
  imagegate.containers.modules_version:
    expected: 0.2.0
"""

RETURN = r"""
installed:
  description: The version of the installed collection.
  returned: always
  type: str
expected:
  description: The version the roles expect.
  returned: always
  type: str
binaries:
  description: The module binaries the collection carries, by node architecture.
  returned: when a version was compared
  type: dict
  sample: {"aarch64": ["container_build", "container_push"], "x86_64": ["container_build", "container_push"]}
"""
