package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// costPeers are the rows of the README's Cost table, in its order.
var costPeers = []string{
	"errgroup", "raw.go+WaitGroup", "errgroup.WithContext", "conc.WaitGroup", "suture",
	"taskscope", "taskscope.reuse", "taskscope.subgroup",
	"taskscope+nopobs", "taskscope+metrics", "taskscope+slogoff", "taskscope+stream",
	"taskscope+noop", "taskscope+all", "taskscope+sdk", "span.sdk",
}

const costHeader = "| peer (batch=%s) | ns/op 1 CPU | ns/op 2 CPU | × errgroup (1 / 2 CPU) | B/op | allocs/op |\n|---|---:|---:|---:|---:|---:|\n"

// costTable writes the README's Cost table from the medians: ns/op at 1 and
// 2 CPUs, each as a multiple of fast's at the same CPU count, and B/op and
// allocs/op at 1 CPU.
func (s samples) costTable(batch, fast string, peers []string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, costHeader, batch)
	med := func(peer string, procs int, unit string) (float64, error) {
		v, n := s.median(key{batch, peer, procs}, unit)
		if n == 0 {
			return 0, fmt.Errorf("no %s for batch=%s peer=%s at cpu=%d", unit, batch, peer, procs)
		}
		return v, nil
	}
	for _, p := range peers {
		var v [6]float64
		var errs []error
		for i, q := range []struct {
			peer  string
			procs int
			unit  string
		}{{p, 1, "sec/op"}, {p, 2, "sec/op"}, {fast, 1, "sec/op"}, {fast, 2, "sec/op"}, {p, 1, "B/op"}, {p, 1, "allocs/op"}} {
			var err error
			v[i], err = med(q.peer, q.procs, q.unit)
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.2f / %.2f | %.0f | %.0f |\n", p, v[0]*1e9, v[1]*1e9, v[0]/v[2], v[1]/v[3], v[4], v[5])
	}
	return b.String(), nil
}

// tableIn returns the table of doc that starts with its header line.
func tableIn(doc io.Reader, batch string) (string, error) {
	header, _, _ := strings.Cut(fmt.Sprintf(costHeader, batch), "\n")
	var b strings.Builder
	sc := bufio.NewScanner(doc)
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == header:
			in = true
		case in && !strings.HasPrefix(line, "|"):
			return b.String(), nil
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !in {
		return "", fmt.Errorf("no table starting with %q", header)
	}
	return b.String(), nil
}

// checkTable reports whether doc's Cost table is the one the results give,
// printing the lines that differ.
func (s samples) checkTable(doc io.Reader, batch, fast string, peers []string, w io.Writer) bool {
	want, err := s.costTable(batch, fast, peers)
	if err != nil {
		fmt.Fprintln(w, "FAIL [readme]", err)
		return false
	}
	got, err := tableIn(doc, batch)
	if err != nil {
		fmt.Fprintln(w, "FAIL [readme]", err)
		return false
	}
	if got == want {
		fmt.Fprintln(w, "ok   [readme] the Cost table is the results' medians")
		return true
	}
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(gotLines), len(wantLines)) {
		g, wl := line(gotLines, i), line(wantLines, i)
		if g != wl {
			fmt.Fprintf(w, "FAIL [readme] README: %s\n              results: %s\n", g, wl)
		}
	}
	return false
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(none)"
}
