#!/usr/bin/env bash
# Installs what is needed, then runs every check and test:
# rustfmt, clippy, ansible-lint, and the test suite (unit tests, tests against
# real registries, ansible-playbook runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
source tools/env.sh

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --quiet --locked --all-targets -- -D warnings
echo "==> ansible-lint"
ansible-lint --offline -q
echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast --failure-output final
else
  cargo test --locked --workspace --no-fail-fast
fi
