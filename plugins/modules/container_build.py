# Copyright imagegate developers. Apache-2.0.
# imagegate.containers.container_build is a native executable, one per node architecture
# in binaries/<architecture>/container_build of the collection, that the action plugin of
# the same name (plugins/action/container_build.py) picks for each host and runs. This
# file only makes the module known to ansible-doc; its documentation is
# container_build.yml beside it.
