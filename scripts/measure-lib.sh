# Shared by measure-cold-build.sh and measure-cold-demo.sh (sourced, not run): times every
# compiler process (cputime-wrapper.sh), samples the load average every 30 s, and writes the
# summary (cold-build-summary.py).
#
#   measure_start OUT       exports the wrappers, starts the sampler, sets $measure_began
#   measure_finish OUT TIMINGS_HTML
#                           copies cargo's --timings report and writes OUT/summary.txt

measure_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

measure_start() {
  export CPUTIME_LOG=$1/cpu.tsv RUSTC_WRAPPER=$measure_here/cputime-wrapper.sh CC=$measure_here/cputime-cc.sh
  rm -f "$CPUTIME_LOG" "$1/load.log"
  (while :; do echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)" >> "$1/load.log"; sleep 30; done) &
  measure_sampler=$!
  measure_began=$(date +%s)
}

measure_finish() {
  local ended
  ended=$(date +%s)
  kill "$measure_sampler" 2>/dev/null || true
  cp "$2" "$1/"
  python3 "$measure_here/cold-build-summary.py" "$1" "$measure_began" "$ended" | tee "$1/summary.txt"
}
