#!/usr/bin/env bash
# The project's test command (README "Quick start"): starts the real test servers, then runs
# the format, lint and test gates and every deployment validator.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-env.sh start
eval "$(scripts/test-env.sh env)"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

shopt -s nullglob
for validator in scripts/validate-*.sh; do
    echo "== $validator"
    "$validator"
done
