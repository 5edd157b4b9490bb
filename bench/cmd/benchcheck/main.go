// Command benchcheck checks taskscope's spawn budget against raw benchmark
// results (bench/results/latest.txt, as written by `make bench`).
//
// For every GOMAXPROCS value found at the checked batch size it takes the
// median of each peer's runs and fails (exit 1) unless
//
//	taskscope ns/op      <= -max-vs-errgroup × errgroup ns/op
//	suture ns/op         >= -min-vs-suture × taskscope ns/op
//	taskscope allocs/op  <= -max-allocs
//
// Missing data (no taskscope, errgroup or suture rows) is a failure too.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"golang.org/x/perf/benchfmt"
)

func main() {
	var c budget
	flag.StringVar(&c.batch, "batch", "100", "batch size to check (the /batch= value)")
	flag.StringVar(&c.peer, "peer", "taskscope", "peer under test")
	flag.StringVar(&c.fast, "fast", "errgroup", "fast reference peer")
	flag.StringVar(&c.slow, "slow", "suture", "slow reference peer")
	flag.Float64Var(&c.maxVsFast, "max-vs-errgroup", 2.0, "peer ns/op must be at most this multiple of the fast peer's")
	flag.Float64Var(&c.minVsSlow, "min-vs-suture", 4.0, "the slow peer's ns/op must be at least this multiple of the peer's")
	flag.Float64Var(&c.maxAllocs, "max-allocs", 3, "peer allocs/op must be at most this")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: benchcheck [flags] results.txt...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	s := samples{}
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchcheck:", err)
			os.Exit(2)
		}
		err = s.read(f, path)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchcheck:", err)
			os.Exit(2)
		}
	}
	if !c.check(s, os.Stdout) {
		os.Exit(1)
	}
}

// key identifies one benchmark configuration.
type key struct {
	batch, peer string
	procs       int
}

// samples holds every run's values, by configuration and unit.
type samples map[key]map[string][]float64

func (s samples) read(r io.Reader, name string) error {
	br := benchfmt.NewReader(r, name)
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // unit metadata and syntax errors of foreign lines
		}
		base, parts := res.Name.Parts()
		if string(base) != "Spawn" {
			continue
		}
		k := key{procs: 1}
		for _, p := range parts {
			switch {
			case bytes.HasPrefix(p, []byte("/batch=")):
				k.batch = string(p[len("/batch="):])
			case bytes.HasPrefix(p, []byte("/peer=")):
				k.peer = string(p[len("/peer="):])
			case bytes.HasPrefix(p, []byte("-")):
				n, err := strconv.Atoi(string(p[1:]))
				if err != nil {
					return fmt.Errorf("%s: bad GOMAXPROCS in %s", name, res.Name)
				}
				k.procs = n
			}
		}
		if s[k] == nil {
			s[k] = map[string][]float64{}
		}
		for _, v := range res.Values {
			s[k][v.Unit] = append(s[k][v.Unit], v.Value)
		}
	}
	return br.Err()
}

// median returns the median of k's values in unit and how many there are.
func (s samples) median(k key, unit string) (float64, int) {
	v := slices.Clone(s[k][unit])
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m], len(v)
	}
	return (v[m-1] + v[m]) / 2, len(v)
}

type budget struct {
	batch, peer, fast, slow string
	maxVsFast, minVsSlow    float64
	maxAllocs               float64
}

// check prints one verdict line per GOMAXPROCS and reports whether all hold.
func (c budget) check(s samples, w io.Writer) bool {
	var procs []int
	for k := range s {
		if k.batch == c.batch && k.peer == c.peer && !slices.Contains(procs, k.procs) {
			procs = append(procs, k.procs)
		}
	}
	slices.Sort(procs)
	if len(procs) == 0 {
		fmt.Fprintf(w, "FAIL: no results for batch=%s peer=%s\n", c.batch, c.peer)
		return false
	}
	ok := true
	for _, p := range procs {
		at := func(peer string) key { return key{c.batch, peer, p} }
		ns, n := s.median(at(c.peer), "sec/op")
		allocs, _ := s.median(at(c.peer), "allocs/op")
		bytesOp, _ := s.median(at(c.peer), "B/op")
		fastNs, nf := s.median(at(c.fast), "sec/op")
		slowNs, ns2 := s.median(at(c.slow), "sec/op")
		if nf == 0 || ns2 == 0 {
			fmt.Fprintf(w, "FAIL cpu=%d: missing %s or %s results at batch=%s\n", p, c.fast, c.slow, c.batch)
			ok = false
			continue
		}
		_, hasAllocs := s[at(c.peer)]["allocs/op"]
		vsFast, vsSlow := ns/fastNs, slowNs/ns
		pass := vsFast <= c.maxVsFast && vsSlow >= c.minVsSlow && hasAllocs && allocs <= c.maxAllocs
		verdict := "ok  "
		if !pass {
			verdict, ok = "FAIL", false
		}
		fmt.Fprintf(w, "%s cpu=%d batch=%s n=%d: %s %.0f ns/op %.0f B/op %.0f allocs/op; %.2f× %s (%.0f ns, budget ≤ %.1f×); %s is %.2f× slower (%.0f ns, budget ≥ %.1f×); allocs budget ≤ %.0f\n",
			verdict, p, c.batch, n, c.peer, ns*1e9, bytesOp, allocs,
			vsFast, c.fast, fastNs*1e9, c.maxVsFast,
			c.slow, vsSlow, slowNs*1e9, c.minVsSlow, c.maxAllocs)
		if !hasAllocs {
			fmt.Fprintf(w, "FAIL cpu=%d: no allocs/op for %s (run with -benchmem)\n", p, c.peer)
		}
	}
	return ok
}
