#!/usr/bin/env bash
# Runs the whole test suite with both runners: pytest, then Bazel (`bazel test //...`).
# Sets the project up first (idempotent), so it works on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
echo "== pytest =="
.venv/bin/python -m pytest -q "$@"
echo "== bazel test //... =="
bazel test //... --test_output=errors
