#!/usr/bin/env bash
# Runs the whole test suite: every test under Bazel (`bazel test //...`), and the library's
# tests (official/) under pytest as well, so both runners are exercised. `pytest` alone runs
# every test too (the binaries' end-to-end tests in experiments/ included).
# Sets the project up first (idempotent), so it works on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
echo "== pytest official/ =="
.venv/bin/python -m pytest -q official "$@"
echo "== bazel test //... =="
bazel test //... --test_output=errors
