// Command benchcheck checks taskscope's spawn budgets against raw benchmark
// results (bench/results/latest.txt, as written by `make bench`).
//
// For every GOMAXPROCS value found at the checked batch size it takes the
// median of each peer's runs and fails (exit 1) unless every check holds.
// Each check prints one verdict line per GOMAXPROCS, tagged with its name:
//
//	[spawn]          taskscope ns/op      <= -max-vs-errgroup × errgroup ns/op
//	                 suture ns/op         >= -min-vs-suture × taskscope ns/op
//	                 taskscope allocs/op  <= -max-allocs
//	[observers-all]  taskscope+all ns/op  <= -max-all-vs-errgroup × errgroup ns/op
//	                 (every observer on: metrics, slog at a disabled level, a
//	                 stream with one subscriber, a no-op tracer provider)
//	[sdk-overhead]   taskscope+sdk − taskscope <= -max-sdk-vs-span × (span.sdk − errgroup)
//	                 (what SDK tracing adds to a supervised task, against what
//	                 the same span by hand adds to an errgroup task; see
//	                 bench/observers_test.go)
//
// An empty -all-peer or -sdk-peer skips that check. Missing data (no rows for
// a peer a check needs) is a failure too.
//
// With -table it prints the README's Cost table from the results instead;
// with -readme FILE it checks instead that FILE's Cost table is exactly
// that one (make test does, so that the README cannot drift from the
// recorded results).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

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
	var all allObservers
	flag.StringVar(&all.peer, "all-peer", "taskscope+all", "peer with every observer on (empty: skip the observers-all check)")
	flag.Float64Var(&all.maxVsFast, "max-all-vs-errgroup", 3.0, "all-observers peer ns/op must be at most this multiple of the fast peer's")
	var sdk sdkOverhead
	flag.StringVar(&sdk.peer, "sdk-peer", "taskscope+sdk", "peer tracing every span with the SDK (empty: skip the sdk-overhead check)")
	flag.StringVar(&sdk.span, "span-peer", "span.sdk", "fast peer plus the same SDK span by hand")
	flag.Float64Var(&sdk.maxVsSpan, "max-sdk-vs-span", 1.3, "(sdk-peer − peer) must be under this multiple of (span-peer − fast peer)")
	table := flag.Bool("table", false, "print the README's Cost table from the results, check nothing")
	readme := flag.String("readme", "", "check only that this file's Cost table is the results' (-table)")
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
	switch {
	case *table:
		t, err := s.costTable(c.batch, c.fast, costPeers)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchcheck:", err)
			os.Exit(1)
		}
		fmt.Print(t)
		return
	case *readme != "":
		f, err := os.Open(*readme)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchcheck:", err)
			os.Exit(2)
		}
		defer f.Close()
		if !s.checkTable(f, c.batch, c.fast, costPeers, os.Stdout) {
			os.Exit(1)
		}
		return
	}
	all.batch, all.fast = c.batch, c.fast
	sdk.batch, sdk.base, sdk.fast = c.batch, c.peer, c.fast
	ok := c.check(s, os.Stdout)
	if all.peer != "" {
		ok = all.check(s, os.Stdout) && ok
	}
	if sdk.peer != "" {
		ok = sdk.check(s, os.Stdout) && ok
	}
	if !ok {
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
	return s.eachProcs(w, "spawn", c.batch, c.peer, []string{c.fast, c.slow}, func(p int, at func(string) key) bool {
		ns, n := s.median(at(c.peer), "sec/op")
		allocs, _ := s.median(at(c.peer), "allocs/op")
		bytesOp, _ := s.median(at(c.peer), "B/op")
		fastNs, _ := s.median(at(c.fast), "sec/op")
		slowNs, _ := s.median(at(c.slow), "sec/op")
		_, hasAllocs := s[at(c.peer)]["allocs/op"]
		vsFast, vsSlow := ns/fastNs, slowNs/ns
		pass := vsFast <= c.maxVsFast && vsSlow >= c.minVsSlow && hasAllocs && allocs <= c.maxAllocs
		fmt.Fprintf(w, "%s [spawn] cpu=%d batch=%s n=%d: %s %.0f ns/op %.0f B/op %.0f allocs/op; %.2f× %s (%.0f ns, budget ≤ %.1f×); %s is %.2f× slower (%.0f ns, budget ≥ %.1f×); allocs budget ≤ %.0f\n",
			verdict(pass), p, c.batch, n, c.peer, ns*1e9, bytesOp, allocs,
			vsFast, c.fast, fastNs*1e9, c.maxVsFast,
			c.slow, vsSlow, slowNs*1e9, c.minVsSlow, c.maxAllocs)
		if !hasAllocs {
			fmt.Fprintf(w, "FAIL [spawn] cpu=%d: no allocs/op for %s (run with -benchmem)\n", p, c.peer)
		}
		return pass
	})
}

// eachProcs runs one check for every GOMAXPROCS with results for peer at
// batch: it reports a missing peer or missing companions (the peers the
// check compares with) as failures, calls check otherwise, and reports
// whether every check held.
func (s samples) eachProcs(w io.Writer, name, batch, peer string, companions []string, check func(p int, at func(string) key) bool) bool {
	if len(s.procs(batch, peer)) == 0 {
		fmt.Fprintf(w, "FAIL [%s] no results for batch=%s peer=%s\n", name, batch, peer)
		return false
	}
	// Every CPU count any of the compared peers ran at is checked, and the
	// peer under test needs ns/op there as much as its companions do: a
	// median over no values is 0, which passes every "at most" budget.
	var procs []int
	for _, c := range append([]string{peer}, companions...) {
		for _, p := range s.procs(batch, c) {
			if !slices.Contains(procs, p) {
				procs = append(procs, p)
			}
		}
	}
	slices.Sort(procs)
	ok := true
	for _, p := range procs {
		at := func(peer string) key { return key{batch, peer, p} }
		missing := slices.DeleteFunc(append([]string{peer}, companions...), func(c string) bool {
			_, n := s.median(at(c), "sec/op")
			return n > 0
		})
		if len(missing) > 0 {
			fmt.Fprintf(w, "FAIL [%s] cpu=%d: missing %s results at batch=%s\n", name, p, strings.Join(missing, ", "), batch)
			ok = false
			continue
		}
		ok = check(p, at) && ok
	}
	return ok
}

// procs returns the GOMAXPROCS values with results for peer at batch.
func (s samples) procs(batch, peer string) []int {
	var procs []int
	for k := range s {
		if k.batch == batch && k.peer == peer && !slices.Contains(procs, k.procs) {
			procs = append(procs, k.procs)
		}
	}
	slices.Sort(procs)
	return procs
}

// verdict is the line prefix of a check's result.
func verdict(pass bool) string {
	if pass {
		return "ok  "
	}
	return "FAIL"
}

// allObservers is the observers-all check: the peer with every cheap
// observer on stays within maxVsFast of the fast peer.
type allObservers struct {
	batch, peer, fast string
	maxVsFast         float64
}

func (c allObservers) check(s samples, w io.Writer) bool {
	return s.eachProcs(w, "observers-all", c.batch, c.peer, []string{c.fast}, func(p int, at func(string) key) bool {
		ns, n := s.median(at(c.peer), "sec/op")
		allocs, _ := s.median(at(c.peer), "allocs/op")
		bytesOp, _ := s.median(at(c.peer), "B/op")
		fastNs, _ := s.median(at(c.fast), "sec/op")
		vs := ns / fastNs
		pass := vs <= c.maxVsFast
		fmt.Fprintf(w, "%s [observers-all] cpu=%d batch=%s n=%d: %s %.0f ns/op %.0f B/op %.0f allocs/op; %.2f× %s (%.0f ns, budget ≤ %.1f×)\n",
			verdict(pass), p, c.batch, n, c.peer, ns*1e9, bytesOp, allocs, vs, c.fast, fastNs*1e9, c.maxVsFast)
		return pass
	})
}

// sdkOverhead is the sdk-overhead check: what SDK tracing adds to the
// supervised peer (peer − base) is at most maxVsSpan times what the same
// span adds to the fast peer by hand (span − fast).
type sdkOverhead struct {
	batch, peer, base, span, fast string
	maxVsSpan                     float64
}

func (c sdkOverhead) check(s samples, w io.Writer) bool {
	return s.eachProcs(w, "sdk-overhead", c.batch, c.peer, []string{c.base, c.span, c.fast}, func(p int, at func(string) key) bool {
		peerNs, n := s.median(at(c.peer), "sec/op")
		baseNs, _ := s.median(at(c.base), "sec/op")
		spanNs, _ := s.median(at(c.span), "sec/op")
		fastNs, _ := s.median(at(c.fast), "sec/op")
		added, spanAdded := peerNs-baseNs, spanNs-fastNs
		pass := spanAdded > 0 && added < c.maxVsSpan*spanAdded // "under 30 %"
		ratio := 0.0
		if spanAdded > 0 {
			ratio = added / spanAdded
		}
		fmt.Fprintf(w, "%s [sdk-overhead] cpu=%d batch=%s n=%d: %s − %s = %.0f − %.0f = %.0f ns; %s − %s = %.0f − %.0f = %.0f ns; ratio %.2f (budget < %.2f, i.e. taskscope's own cost on top of the span under %.0f%%)\n",
			verdict(pass), p, c.batch, n,
			c.peer, c.base, peerNs*1e9, baseNs*1e9, added*1e9,
			c.span, c.fast, spanNs*1e9, fastNs*1e9, spanAdded*1e9,
			ratio, c.maxVsSpan, (c.maxVsSpan-1)*100)
		if spanAdded <= 0 {
			fmt.Fprintf(w, "FAIL [sdk-overhead] cpu=%d: %s is not slower than %s; the span cost cannot be measured\n", p, c.span, c.fast)
		}
		return pass
	})
}
