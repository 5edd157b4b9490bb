package main

import (
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
	s := samples{}
	if err := s.read(strings.NewReader(sample), "sample"); err != nil {
		t.Fatal(err)
	}
	if m, n := s.median(key{"100", "taskscope", 1}, "sec/op"); n != 2 || m < 319e-9 || m > 321e-9 {
		t.Fatalf("median = %v over %d runs, want 320ns over 2", m, n)
	}
	c := budget{batch: "100", peer: "taskscope", fast: "errgroup", slow: "suture", maxVsFast: 2, minVsSlow: 4, maxAllocs: 3}
	var out strings.Builder
	if c.check(s, &out) {
		t.Fatalf("check passed, want cpu=2 to fail (3.6× errgroup):\n%s", out.String())
	}
	got := out.String()
	if !strings.Contains(got, "ok   [spawn] cpu=1") || !strings.Contains(got, "FAIL [spawn] cpu=2") {
		t.Fatalf("unexpected verdicts:\n%s", got)
	}

	c.maxVsFast = 4
	c.minVsSlow = 2
	out.Reset()
	if !c.check(s, &out) {
		t.Fatalf("check failed with loose budget:\n%s", out.String())
	}

	c.peer = "missing"
	out.Reset()
	if c.check(s, &out) {
		t.Fatal("check passed without results for the peer")
	}
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
	s := samples{}
	if err := s.read(strings.NewReader(observerSample), "sample"); err != nil {
		t.Fatal(err)
	}

	// taskscope+all: 2.5× errgroup at cpu=1, 3.6× at cpu=2.
	all := allObservers{batch: "100", peer: "taskscope+all", fast: "errgroup", maxVsFast: 3}
	var out strings.Builder
	if all.check(s, &out) {
		t.Fatalf("observers-all passed, want cpu=2 to fail:\n%s", out.String())
	}
	if got := out.String(); !strings.Contains(got, "ok   [observers-all] cpu=1") || !strings.Contains(got, "FAIL [observers-all] cpu=2") {
		t.Fatalf("unexpected verdicts:\n%s", got)
	}

	// sdk: cpu=1 adds 2200 ns against 1800 (1.22, ok); cpu=2 adds 3000
	// against 2000 (1.5, fail).
	sdk := sdkOverhead{batch: "100", peer: "taskscope+sdk", base: "taskscope", span: "span.sdk", fast: "errgroup", maxVsSpan: 1.3}
	out.Reset()
	if sdk.check(s, &out) {
		t.Fatalf("sdk-overhead passed, want cpu=2 to fail:\n%s", out.String())
	}
	got := out.String()
	if !strings.Contains(got, "ok   [sdk-overhead] cpu=1") || !strings.Contains(got, "FAIL [sdk-overhead] cpu=2") || !strings.Contains(got, "ratio 1.22") {
		t.Fatalf("unexpected verdicts:\n%s", got)
	}
	sdk.maxVsSpan = 1.6
	out.Reset()
	if !sdk.check(s, &out) {
		t.Fatalf("sdk-overhead failed with a loose budget:\n%s", out.String())
	}

	// Missing peers fail.
	sdk.span = "missing"
	out.Reset()
	if sdk.check(s, &out) {
		t.Fatalf("sdk-overhead passed without span rows:\n%s", out.String())
	}
	all.peer = "missing"
	out.Reset()
	if all.check(s, &out) {
		t.Fatalf("observers-all passed without its rows:\n%s", out.String())
	}
}
