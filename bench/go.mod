module github.com/taskscope/taskscope/bench

go 1.26.0

replace github.com/taskscope/taskscope => ../

tool golang.org/x/perf/cmd/benchstat

require (
	github.com/sourcegraph/conc v0.3.0
	github.com/taskscope/taskscope v0.0.0-00010101000000-000000000000
	github.com/thejerf/suture/v4 v4.0.6
	go.uber.org/goleak v1.3.0
	golang.org/x/perf v0.0.0-20260908200009-22c9c6c9d4da
	golang.org/x/sync v0.25.0
)

require github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794 // indirect
