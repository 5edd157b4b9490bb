// Command gen writes taskscope's Grafana dashboards as JSON.
//
//	go run ./cmd/gen -out .      (from dashboards/; `go generate ./...` does this)
//	go run ./cmd/gen -check .    (exit 1 if a committed file is stale)
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/taskscope/taskscope/dashboards"
)

func main() {
	out := flag.String("out", ".", "directory to write the dashboard JSON files to")
	check := flag.Bool("check", false, "do not write; exit 1 if a file in -out differs from the generator's output")
	flag.Parse()
	stale := false
	for _, s := range dashboards.All {
		d, err := s.Build()
		if err != nil {
			fail(fmt.Errorf("%s: %w", s.File, err))
		}
		if problems := dashboards.Lint(d); len(problems) > 0 {
			for _, p := range problems {
				fmt.Fprintf(os.Stderr, "%s: %s\n", s.File, p)
			}
			fail(fmt.Errorf("%s: %d lint problem(s)", s.File, len(problems)))
		}
		data, err := dashboards.Render(d)
		if err != nil {
			fail(fmt.Errorf("%s: %w", s.File, err))
		}
		path := filepath.Join(*out, s.File)
		if *check {
			old, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(old, data) {
				fmt.Fprintf(os.Stderr, "%s is stale: run `go generate ./...` in dashboards/\n", path)
				stale = true
			}
			continue
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			fail(err)
		}
		fmt.Println("wrote", path)
	}
	if stale {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
