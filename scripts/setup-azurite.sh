#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator, from the npm registry) next to the Python venv,
# for the tests of tables on Azure Blob Storage (az://). Needs Node.js and npm: installed from
# Debian's packages when missing. Idempotent: does nothing when the pinned version is there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${TWEETFLOW_VENV:-$root/.venv}
version=3.37.0
dir="$venv/azurite"
bin="$dir/node_modules/.bin/azurite-blob"
if [ -x "$bin" ] && grep -q "\"version\": \"$version\"" "$dir/node_modules/azurite/package.json" 2>/dev/null; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: install Node.js and npm with your package manager (Azure emulator tests)" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "setup: installing nodejs and npm (Azure emulator tests)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
echo "setup: installing azurite $version into $dir" >&2
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$version" >&2
