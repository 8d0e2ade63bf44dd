#!/usr/bin/env bash
# Measures a cold release build of the `tweetflow` binary (docs/build.md):
#
#   scripts/measure-cold-build.sh OUT_DIR       (run from the checkout to measure)
#
# Empties OUT_DIR/target, then runs `cargo build --release --bin tweetflow --timings` there with
# every rustc and C compiler process timed (cputime-wrapper.sh), sampling the load average
# every 30 s. Leaves in OUT_DIR: cpu.tsv (CPU time per compiler process), load.log,
# cargo-timing.html, build.log, and summary.txt (wall time, load, CPU time, top 10 units by
# CPU time and by wall time). NICE (default 0) lowers the build's priority.
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
source "$(dirname "$0")/measure-lib.sh"
export CARGO_TARGET_DIR=$out/target
rm -rf "$CARGO_TARGET_DIR"
measure_start "$out"
trap 'kill $measure_sampler 2>/dev/null' EXIT
nice -n "${NICE:-0}" cargo build --release --bin tweetflow --timings > "$out/build.log" 2>&1
measure_finish "$out" "$CARGO_TARGET_DIR"/cargo-timings/cargo-timing.html
