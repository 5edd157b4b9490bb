#!/usr/bin/env bash
# racetest.sh GO ARGS...: runs `GO test -race ARGS...`, and once more when
# it failed only because Go 1.26's race runtime crashed (golang/go#78156:
# "ThreadSanitizer: CHECK failed: tsan_rtl.cpp:346", or SIGSEGV in
# runtime.(*timer).maybeRunChan, in processes that run many timers inside
# testing/synctest bubbles). A failing test (--- FAIL), a panic or a race
# report elsewhere in the output is never retried.
set -uo pipefail
go=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT

"$go" test -race "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 0 ]; then
	exit 0
fi
if grep -qE 'ThreadSanitizer: CHECK failed: tsan_rtl\.cpp:346|runtime\.\(\*timer\)\.maybeRunChan' "$log" &&
	! grep -qE -e '--- FAIL|WARNING: DATA RACE|^panic: ' "$log"; then
	echo "racetest: the race runtime crashed (golang/go#78156, not a test failure): running the tests once more" >&2
	"$go" test -race "$@"
	exit
fi
exit "$rc"
