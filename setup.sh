#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian/Ubuntu machine (idempotent):
#   - Bazel (Debian's bazel-bootstrap; works offline with this repository's WORKSPACE)
#   - a virtual environment .venv with the exact pins of requirements.txt
#   - the project itself in editable mode (`from official import losses` works anywhere)
#   - .bazelrc.user pointing Bazel at the virtual environment's interpreter
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(pwd)"

log() { echo "[setup] $*"; }

SUDO=""
if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi

if ! command -v bazel >/dev/null; then
  log "installing bazel-bootstrap (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bazel-bootstrap >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

if [[ ! -x .venv/bin/python ]]; then
  log "creating virtual environment .venv"
  "$PYTHON" -m venv .venv
fi

STAMP=.venv/.requirements.sha256
WANT="$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  log "installing requirements.txt into .venv (first time: about a minute)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$WANT" > "$STAMP"
fi

cat > .bazelrc.user <<BAZELRC
# Written by setup.sh: Bazel runs binaries and tests with the project's virtual environment.
build --incompatible_use_python_toolchains=false
build --python_path=$ROOT/.venv/bin/python3
BAZELRC
log "ready: .venv ($(.venv/bin/python --version)), $(command -v bazel)"
