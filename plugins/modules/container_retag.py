# Copyright imagegate developers. Apache-2.0.
# imagegate.containers.container_retag is a native executable, one per node architecture
# in binaries/<architecture>/container_retag of the collection, that the action plugin of
# the same name (plugins/action/container_retag.py) picks for each host and runs. This
# file only makes the module known to ansible-doc; its documentation is
# container_retag.yml beside it.
