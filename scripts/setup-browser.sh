#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver (chromedriver), which the
# browser tests of the web UI drive. Idempotent: does nothing when both are present.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup: install chromium and chromedriver with your package manager (browser tests)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "setup: installing chromium and chromium-driver (browser tests)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
