#!/usr/bin/env bash
# Measures a cold `make demo` (the README's figure, docs/build.md):
#
#   scripts/measure-cold-demo.sh CLONE OUT_DIR
#
# CLONE is a fresh clone (any commit) with no target directory and no venv; the cargo target
# and the venv are its own (`CLONE/target`, `CLONE/.venv`), so nothing is shared with other
# checkouts. Runs `make demo` there with cargo's `--timings` and every rustc and C compiler
# process timed (cputime-wrapper.sh), the load average sampled every 30 s, then stops the
# demo's servers (`make stop`). Leaves in OUT_DIR: demo.log, cpu.tsv, load.log,
# cargo-timing.html and summary.txt (wall time of the whole `make demo`, load, CPU time, top
# 10 units by CPU time and by wall time).
set -euo pipefail
clone=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
source "$(dirname "$0")/measure-lib.sh"
if [ -e "$clone/target" ] || [ -e "$clone/.venv" ]; then
  echo "measure-cold-demo: $clone already has a target or a .venv; use a fresh clone" >&2
  exit 2
fi
unset CARGO_TARGET_DIR TWEETFLOW_VENV VIRTUAL_ENV
# `make demo` calls $(CARGO) for its one build; this adds --timings to it.
shim=$out/cargo-timings
printf '#!/bin/sh\nif [ "$1" = build ]; then exec cargo "$@" --timings; fi\nexec cargo "$@"\n' > "$shim"
chmod +x "$shim"
measure_start "$out"
trap 'kill $measure_sampler 2>/dev/null || true; make -C "$clone" stop >/dev/null 2>&1 || true' EXIT
make -C "$clone" demo CARGO="$shim" > "$out/demo.log" 2>&1
measure_finish "$out" "$clone"/target/cargo-timings/cargo-timing.html
