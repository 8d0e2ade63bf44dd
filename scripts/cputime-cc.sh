#!/usr/bin/env bash
# CC for a build measured by cputime-wrapper.sh: the system C compiler, timed.
exec "$(dirname "$0")/cputime-wrapper.sh" cc "$@"
