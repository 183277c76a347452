#!/usr/bin/env bash
# Runs the whole test suite under Bazel (`bazel test //...`: every *_test.py of official/,
# experiments/ and benchmarks/ is a py_test target there). `.venv/bin/python -m pytest` runs
# the same tests in one process.
# Sets the project up first (idempotent), so it works on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
# A test file that is not a py_test target of its package would never run here.
missing=""
for test in $(find official experiments benchmarks -name '*_test.py' | sort); do
  grep -q "name = \"$(basename "$test" .py)\"" "$(dirname "$test")/BUILD" || missing="$missing $test"
done
if [[ -n "$missing" ]]; then
  echo "test.sh: not a py_test target of its package's BUILD:$missing" >&2
  exit 1
fi
bazel test //... --test_output=errors "$@"
