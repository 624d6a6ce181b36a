# Copyright imagegate developers. Apache-2.0.
# imagegate.containers.registries_conf is a native executable, one per node architecture
# in binaries/<architecture>/registries_conf of the collection, that the action plugin of
# the same name (plugins/action/registries_conf.py) picks for each host and runs. This
# file only makes the module known to ansible-doc; its documentation is
# registries_conf.yml beside it.
