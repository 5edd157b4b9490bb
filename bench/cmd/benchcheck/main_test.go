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
	if !strings.Contains(got, "ok   cpu=1") || !strings.Contains(got, "FAIL cpu=2") {
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
