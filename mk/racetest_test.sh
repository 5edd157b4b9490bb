#!/usr/bin/env bash
# racetest_test.sh: tests of mk/racetest.sh with a fake go command that
# prints canned outputs. Run from anywhere; exits 1 on a failed case.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/go" <<'FAKE'
#!/usr/bin/env bash
n=$(( $(cat "$FAKE_DIR/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$FAKE_DIR/count"
cat "$FAKE_DIR/out.$n"
exit "$(cat "$FAKE_DIR/rc.$n")"
FAKE
chmod +x "$tmp/go"

crash='ThreadSanitizer: CHECK failed: tsan_rtl.cpp:346 "((0)) != (0)" (0x0, 0x0) (tid=1)
FAIL	example.com/m/runtime	3.2s'
segv='fatal error: unexpected signal during runtime execution
[signal SIGSEGV: segmentation violation code=0x1 addr=0x8 pc=0x4a1b2c]

goroutine 7 gp=0xc000102a80 m=4 mp=0xc000100008 [running]:
runtime.throw({0x5e1f2a?, 0x0?})
runtime.sigpanic()
runtime.(*timer).maybeRunChan(0xc0001a2000, 0x0)
FAIL	example.com/m/runtime	2.9s'
pass='ok  	example.com/m/diagnostics	1.1s'
failed=0
# check NAME WANT_RC WANT_RUNS OUT1 RC1 [OUT2 RC2]
check() {
	local name=$1 want_rc=$2 want_runs=$3
	shift 3
	local dir="$tmp/$name" i=1
	mkdir -p "$dir"
	while [ $# -gt 0 ]; do
		printf '%s\n' "$1" >"$dir/out.$i"
		echo "$2" >"$dir/rc.$i"
		i=$((i + 1))
		shift 2
	done
	FAKE_DIR=$dir "$here/racetest.sh" "$tmp/go" ./... >"$dir/log" 2>&1
	local rc=$? runs
	runs=$(cat "$dir/count")
	if [ "$rc" -ne "$want_rc" ] || [ "$runs" -ne "$want_runs" ]; then
		echo "FAIL $name: exit $rc after $runs run(s), want exit $want_rc after $want_runs" >&2
		failed=1
	fi
}
check pass 0 1 "$pass" 0
check crash-then-pass 0 2 "$crash
$pass" 1 "$pass" 0
check crash-then-fail 1 2 "$crash" 1 "--- FAIL: TestX (0.00s)
FAIL	example.com/m/runtime	1.0s" 1
check segv-then-pass 0 2 "$segv" 2 "$pass" 0
# The same bug also fails other CHECKs of the race runtime (seen: :282).
check check282-then-pass 0 2 'ThreadSanitizer: CHECK failed: tsan_rtl.cpp:282 "((!thr->slot_locked)) != (0)" (0x0, 0x0) (tid=24639)
FAIL	example.com/m/runtime	1.5s' 1 "$pass" 0
check crash-twice 1 2 "$crash" 1 "$crash" 1
check test-fails 1 1 "--- FAIL: TestX (0.00s)
    x_test.go:9: ThreadSanitizer: CHECK failed: tsan_rtl.cpp:346
FAIL	example.com/m/runtime	1.0s" 1
check race-elsewhere 66 1 "$crash
WARNING: DATA RACE
FAIL	example.com/m/diagnostics	1.0s" 66
# A package that failed without a test's failure line (a fatal error, an
# os.Exit in a test or TestMain, a build failure) next to the crash of
# another: its failure is not the race runtime's, and a rerun may hide it.
check fatal-elsewhere 2 1 "$crash
fatal error: concurrent map writes

goroutine 9 [running]:
FAIL	example.com/m/diagnostics	0.5s" 2
check exit-elsewhere 1 1 "$crash
FAIL	example.com/m/telemetry	0.2s" 1
check build-failed-elsewhere 1 1 "# example.com/m/telemetry
telemetry/x.go:3:1: syntax error
$crash
FAIL	example.com/m/telemetry [build failed]" 1
exit $failed
