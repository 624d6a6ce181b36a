# Sourced by the tools: the venv and the collection path.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IMAGEGATE_VENV="$ROOT/.venv"
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.work/collections"
export ANSIBLE_HOME="$ROOT/.work/ansible"
export ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false
export ANSIBLE_PYTHON_INTERPRETER="$ROOT/.venv/bin/python3"
