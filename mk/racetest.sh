#!/usr/bin/env bash
# racetest.sh GO ARGS...: runs `GO test -race ARGS...`, and once more when
# it failed only because Go 1.26's race runtime crashed (golang/go#78156:
# "ThreadSanitizer: CHECK failed: tsan_rtl.cpp:346", or :282, or SIGSEGV
# in runtime.(*timer).maybeRunChan, in processes that run many timers
# inside testing/synctest bubbles). Only then: every package that failed must show
# that crash, and none a failing test (--- FAIL), a race report, a panic or
# another fatal error. A package that failed otherwise (a fatal error, an
# os.Exit in a test, a build failure) keeps the status, even next to a
# crash in another package.
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
# go test prints each package's output, then its line: "ok  \tpkg",
# "FAIL\tpkg ..." or "?   \tpkg". crashed counts the failed packages that
# crashed and nothing else; other, those that failed otherwise.
read -r crashed other < <(awk '
	/^ThreadSanitizer: CHECK failed: |runtime\.\(\*timer\)\.maybeRunChan/ { sig = 1 }
	/--- FAIL|WARNING: DATA RACE|^panic: / { bad = 1 }
	/^fatal error: / && !/^fatal error: unexpected signal during runtime execution/ { bad = 1 }
	/^(ok  |\?   |FAIL)\t/ {
		if ($1 == "FAIL") { if (sig && !bad) crashed++; else other++ }
		sig = 0; bad = 0
	}
	END { print crashed + 0, other + 0 }' "$log")
if [ "$crashed" -gt 0 ] && [ "$other" -eq 0 ]; then
	echo "racetest: the race runtime crashed (golang/go#78156, not a test failure): running the tests once more" >&2
	"$go" test -race "$@"
	exit
fi
exit "$rc"
