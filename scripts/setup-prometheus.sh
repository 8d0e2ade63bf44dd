#!/usr/bin/env bash
# Installs Debian's Prometheus server, which the metrics tests start (in a temporary directory,
# on a free port) to scrape `tweetflow schedule --metrics-listen` and `tweetflow ui`.
# Idempotent: does nothing when `prometheus` is present.
set -euo pipefail
if command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup: install the Prometheus server (\`prometheus\`) with your package manager (metrics tests)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "setup: installing prometheus (metrics tests)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Only the server binary is needed: no exporters, no web console assets.
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
