# Copyright imagegate developers. Apache-2.0.
# imagegate.containers.registry_mirror is a native executable, one per node architecture
# in binaries/<architecture>/registry_mirror of the collection, that the action plugin of
# the same name (plugins/action/registry_mirror.py) picks for each host and runs. This
# file only makes the module known to ansible-doc; its documentation is
# registry_mirror.yml beside it.
