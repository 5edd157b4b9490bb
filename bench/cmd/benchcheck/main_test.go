package main

import (
	"io"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/taskscope/taskscope/bench
# run 1/2
BenchmarkSpawn/batch=100/peer=errgroup          	 3000000	       200.0 ns/op	      24 B/op	       1 allocs/op
BenchmarkSpawn/batch=100/peer=errgroup-2        	 3000000	       250.0 ns/op	      24 B/op	       1 allocs/op
BenchmarkSpawn/batch=100/peer=suture            	  300000	      2000 ns/op	     497 B/op	       8 allocs/op
BenchmarkSpawn/batch=100/peer=suture-2          	  300000	      2000 ns/op	     497 B/op	       8 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope         	 1000000	       300.0 ns/op	     100 B/op	       2 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope-2       	 1000000	       900.0 ns/op	     100 B/op	       2 allocs/op
BenchmarkSpawn/batch=10000/peer=taskscope       	 1000000	     99999 ns/op	     100 B/op	       9 allocs/op
# run 2/2
BenchmarkSpawn/batch=100/peer=errgroup          	 3000000	       220.0 ns/op	      24 B/op	       1 allocs/op
BenchmarkSpawn/batch=100/peer=errgroup-2        	 3000000	       260.0 ns/op	      24 B/op	       1 allocs/op
BenchmarkSpawn/batch=100/peer=suture            	  300000	      2200 ns/op	     497 B/op	       8 allocs/op
BenchmarkSpawn/batch=100/peer=suture-2          	  300000	      2200 ns/op	     497 B/op	       8 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope         	 1000000	       340.0 ns/op	     100 B/op	       2 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope-2       	 1000000	       940.0 ns/op	     100 B/op	       2 allocs/op
`

func TestCheck(t *testing.T) {
	s := readSample(t, sample)
	if m, n := s.median(key{"100", "taskscope", 1}, "sec/op"); n != 2 || m < 319e-9 || m > 321e-9 {
		t.Fatalf("median = %v over %d runs, want 320ns over 2", m, n)
	}
	c := budget{batch: "100", peer: "taskscope", fast: "errgroup", slow: "suture", maxVsFast: 2, minVsSlow: 4, maxAllocs: 3}
	wantSplit(t, verdicts(t, c, s, false), "spawn") // cpu=2 is 3.6× errgroup

	c.maxVsFast = 4
	c.minVsSlow = 2
	verdicts(t, c, s, true) // loose budget

	c.peer = "missing"
	verdicts(t, c, s, false) // no results for the peer
}

const observerSample = `# run 1/1
BenchmarkSpawn/batch=100/peer=errgroup          	 3000000	       200.0 ns/op	      24 B/op	       1 allocs/op
BenchmarkSpawn/batch=100/peer=errgroup-2        	 3000000	       250.0 ns/op	      24 B/op	       1 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope         	 1000000	       300.0 ns/op	     100 B/op	       2 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope-2       	 1000000	       400.0 ns/op	     100 B/op	       2 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope+all     	 1000000	       500.0 ns/op	     300 B/op	       3 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope+all-2   	 1000000	       900.0 ns/op	     300 B/op	       3 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope+sdk     	  300000	      2500 ns/op	    2900 B/op	      14 allocs/op
BenchmarkSpawn/batch=100/peer=taskscope+sdk-2   	  300000	      3400 ns/op	    2900 B/op	      14 allocs/op
BenchmarkSpawn/batch=100/peer=span.sdk          	  300000	      2000 ns/op	    2400 B/op	      12 allocs/op
BenchmarkSpawn/batch=100/peer=span.sdk-2        	  300000	      2250 ns/op	    2400 B/op	      12 allocs/op
`

func TestObserverChecks(t *testing.T) {
	s := readSample(t, observerSample)

	// taskscope+all: 2.5× errgroup at cpu=1, 3.6× at cpu=2.
	all := allObservers{batch: "100", peer: "taskscope+all", fast: "errgroup", maxVsFast: 3}
	wantSplit(t, verdicts(t, all, s, false), "observers-all")

	// sdk: cpu=1 adds 2200 ns against 1800 (1.22, ok); cpu=2 adds 3000
	// against 2000 (1.5, fail).
	sdk := sdkOverhead{batch: "100", peer: "taskscope+sdk", base: "taskscope", span: "span.sdk", fast: "errgroup", maxVsSpan: 1.3}
	got := verdicts(t, sdk, s, false)
	wantSplit(t, got, "sdk-overhead")
	if !strings.Contains(got, "ratio 1.22") {
		t.Fatalf("unexpected verdicts:\n%s", got)
	}
	sdk.maxVsSpan = 1.5 // cpu=2 is exactly at it: not under it, so it fails
	wantSplit(t, verdicts(t, sdk, s, false), "sdk-overhead")
	sdk.maxVsSpan = 1.6
	verdicts(t, sdk, s, true) // loose budget

	// Missing peers fail.
	sdk.span = "missing"
	verdicts(t, sdk, s, false)
	all.peer = "missing"
	verdicts(t, all, s, false)
}

func readSample(t *testing.T, text string) samples {
	t.Helper()
	s := samples{}
	if err := s.read(strings.NewReader(text), "sample"); err != nil {
		t.Fatal(err)
	}
	return s
}

// verdicts runs c on s and returns its report, failing t unless the check
// as a whole gives want.
func verdicts(t *testing.T, c interface {
	check(samples, io.Writer) bool
}, s samples, want bool) string {
	t.Helper()
	var out strings.Builder
	if got := c.check(s, &out); got != want {
		t.Fatalf("check = %v, want %v:\n%s", got, want, out.String())
	}
	return out.String()
}

// wantSplit fails t unless the report of check name passes cpu=1 and
// fails cpu=2.
func wantSplit(t *testing.T, report, name string) {
	t.Helper()
	if !strings.Contains(report, "ok   ["+name+"] cpu=1") || !strings.Contains(report, "FAIL ["+name+"] cpu=2") {
		t.Fatalf("unexpected verdicts:\n%s", report)
	}
}

// TestMissingDataFails: a peer whose rows have no ns/op (a dropped column,
// a unit benchfmt does not normalise) or that lacks a CPU count its
// companions ran at must fail, not pass with a median of 0.
func TestMissingDataFails(t *testing.T) {
	noNs := strings.ReplaceAll(observerSample, "500.0 ns/op", "")
	noNs = strings.ReplaceAll(noNs, "900.0 ns/op", "")
	all := allObservers{batch: "100", peer: "taskscope+all", fast: "errgroup", maxVsFast: 100}
	verdicts(t, all, readSample(t, noNs), false)

	var kept []string
	for _, l := range strings.Split(observerSample, "\n") {
		if !strings.Contains(l, "peer=taskscope+all-2") {
			kept = append(kept, l)
		}
	}
	verdicts(t, all, readSample(t, strings.Join(kept, "\n")), false)
	verdicts(t, all, readSample(t, observerSample), true) // complete data, loose budget

	c := budget{batch: "100", peer: "taskscope", fast: "errgroup", slow: "suture", maxVsFast: 100, minVsSlow: 0.1, maxAllocs: 3}
	verdicts(t, c, readSample(t, sample), true)
	verdicts(t, c, readSample(t, strings.ReplaceAll(strings.ReplaceAll(sample, "300.0 ns/op", ""), "340.0 ns/op", "")), false)
}

// TestCostTable: the table is the medians (taskscope at 1 CPU: 320 ns,
// 1.52× errgroup's 210), and a README whose table differs in one number,
// or lacks it, fails the check.
func TestCostTable(t *testing.T) {
	s := readSample(t, sample)
	peers := []string{"errgroup", "taskscope"}
	got, err := s.costTable("100", "errgroup", peers)
	if err != nil {
		t.Fatal(err)
	}
	want := "| peer (batch=100) | ns/op 1 CPU | ns/op 2 CPU | × errgroup (1 / 2 CPU) | B/op | allocs/op |\n" +
		"|---|---:|---:|---:|---:|---:|\n" +
		"| errgroup | 210 | 255 | 1.00 / 1.00 | 24 | 1 |\n" +
		"| taskscope | 320 | 920 | 1.52 / 3.61 | 100 | 2 |\n"
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	if _, err := s.costTable("100", "errgroup", []string{"conc.WaitGroup"}); err == nil {
		t.Error("a peer without results made a row")
	}
	for _, tc := range []struct {
		doc  string
		pass bool
	}{
		{"# Cost\n\n" + want + "\nText.\n", true},
		{"# Cost\n\n" + strings.Replace(want, "| 920 |", "| 921 |", 1) + "\nText.\n", false},
		{"# Cost\n\n" + strings.Replace(want, "| errgroup | 210 | 255 | 1.00 / 1.00 | 24 | 1 |\n", "", 1), false},
		{"# Cost\n\nno table\n", false},
	} {
		var out strings.Builder
		if got := s.checkTable(strings.NewReader(tc.doc), "100", "errgroup", peers, &out); got != tc.pass {
			t.Errorf("checkTable = %v, want %v, for:\n%s\n%s", got, tc.pass, tc.doc, out.String())
		}
	}
}
