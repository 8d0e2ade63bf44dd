#!/usr/bin/env bash
# Records the CPU time (user + system) of every compiler process of a cargo build, per crate,
# a measure that a busy machine disturbs far less than wall time (docs/build.md):
#
#   CPUTIME_LOG=/tmp/cpu.tsv RUSTC_WRAPPER=$PWD/scripts/cputime-wrapper.sh \
#     CC=$PWD/scripts/cputime-cc.sh cargo build --release --bin tweetflow --timings
#
# As RUSTC_WRAPPER it is called as `wrapper /path/to/rustc ARGS...`; through cputime-cc.sh as
# `wrapper cc ARGS...` (the C parts that build scripts compile). Appends one line per process
# to $CPUTIME_LOG: tool, package ($CARGO_PKG_NAME), crate name, user s, system s, wall s.
set -u
tool=$1
shift
if [ -z "${CPUTIME_LOG:-}" ] || [ -z "${CARGO_PKG_NAME:-}" ]; then
  exec "$tool" "$@"
fi
crate=-
prev=
for a in "$@"; do
  if [ "$prev" = "--crate-name" ]; then crate=$a; fi
  prev=$a
done
out=$(mktemp)
/usr/bin/time -f "%U %S %e" -o "$out" "$tool" "$@"
rc=$?
read -r user sys wall < <(tail -n 1 "$out") || true
rm -f "$out"
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(basename "$tool")" "$CARGO_PKG_NAME" "$crate" "${user:-0}" "${sys:-0}" "${wall:-0}" >> "$CPUTIME_LOG"
exit $rc
