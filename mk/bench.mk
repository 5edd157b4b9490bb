# Comparison benchmarks: bench/ is its own module (errgroup, conc, suture,
# the OpenTelemetry SDK and benchstat never enter the root go.mod). See
# bench/spawn_test.go for the method and bench/observers_test.go for the
# observer rows.
#
#   make bench         compile the benchmark binary once, run it BENCH_RUNS
#                      times over the whole suite (so every peer sees the same
#                      load drift), write bench/results/latest.txt and print
#                      benchstat's comparison, peers side by side, errgroup
#                      as the base column. The default filter runs batch=100
#                      only: the peers, taskscope, and taskscope with each
#                      observer (taskscope+nopobs, +metrics, +slogoff, +stream, +noop,
#                      +all, +sdk) next to span.sdk (errgroup plus the same
#                      SDK span by hand). About 5 minutes with the defaults
#                      (19 rows, the model.* ones included, x 2 CPU counts
#                      x 10 runs x 0.5 s; 10 rather than 6 because the
#                      2-CPU spawn ratio sits near its budget and 6 runs
#                      moved its median by 0.05).
#   make bench-check   fail unless, at batch=100 and every CPU count in
#                      latest.txt (medians), each check holds:
#                      [spawn]         taskscope ns/op <= 2.0x errgroup,
#                                      suture >= 4x slower than taskscope,
#                                      taskscope allocs/op <= 3;
#                      [observers-all] taskscope+all ns/op <= 3.0x errgroup;
#                      [sdk-overhead]  (taskscope+sdk - taskscope) <=
#                                      1.3 x (span.sdk - errgroup).
#                      It reads the results; it does not run the benchmarks.
#   make test-bench    vet and race-test the bench module (correctness of the
#                      adapters, observers included, and of benchcheck, not
#                      timings). Part of `make test`.
#
# Override e.g. BENCH_FILTER='^BenchmarkSpawn$$/' for all batch sizes, or
# BENCH_FILTER='^BenchmarkSpawn$$/^batch=100$$/^peer=(errgroup|taskscope.*|span.sdk)$$'
# for the observer rows and their references only.

BENCH_RUNS   ?= 10
BENCH_CPU    ?= 1,2
BENCH_TIME   ?= 0.5s
BENCH_FILTER ?= ^BenchmarkSpawn$$/^batch=100$$/
BENCH_OUT    ?= results/latest.txt
BENCHSTAT_FLAGS ?= -col /peer

.PHONY: bench bench-check bench-table test-bench

bench:
	@cd bench && tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(GO) test -c -o "$$tmp/bench.test" . && \
	mkdir -p "$$(dirname $(BENCH_OUT))" && \
	rev=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) && \
	{ git diff --quiet HEAD -- ../runtime ../telemetry ../diagnostics 2>/dev/null || rev="$$rev+dirty"; } && \
	echo "# $$(date -u +%FT%TZ) taskscope $$rev, $(BENCH_RUNS) runs, -test.cpu=$(BENCH_CPU) -test.benchtime=$(BENCH_TIME)" > "$$tmp/out.txt" && \
	for i in $$(seq 1 $(BENCH_RUNS)); do \
	  load=$$(cut -d' ' -f1-3 /proc/loadavg); \
	  echo "bench: run $$i/$(BENCH_RUNS), load $$load" >&2; \
	  echo "# run $$i/$(BENCH_RUNS), loadavg $$load" >> "$$tmp/out.txt"; \
	  "$$tmp/bench.test" -test.run='^$$' -test.bench='$(BENCH_FILTER)' \
	    -test.benchmem -test.cpu=$(BENCH_CPU) -test.benchtime=$(BENCH_TIME) \
	    >> "$$tmp/out.txt" || { tail -20 "$$tmp/out.txt"; exit 1; }; \
	done && \
	cp "$$tmp/out.txt" $(BENCH_OUT) && \
	echo "bench: raw results in bench/$(BENCH_OUT)" >&2 && \
	$(GO) tool benchstat $(BENCHSTAT_FLAGS) $(BENCH_OUT)

bench-check:
	@cd bench && test -s $(BENCH_OUT) || { echo "bench-check: no bench/$(BENCH_OUT); run make bench first"; exit 1; }
	@# The results must measure the code in this tree: the header names the
	@# commit they were recorded at (+dirty: uncommitted product changes).
	@cd bench && rev=$$(sed -n '1s/^# [^ ]* taskscope \([^ ,]*\),.*/\1/p' $(BENCH_OUT)); \
	  case "$$rev" in ""|*+dirty|unknown) echo "bench-check: bench/$(BENCH_OUT) was not recorded at a clean commit ($$rev); run make bench"; exit 1;; esac; \
	  git -C .. diff --quiet "$$rev" -- runtime telemetry diagnostics go.mod go.sum \
	    ':(exclude,glob)runtime/**/*_test.go' ':(exclude,glob)telemetry/**/*_test.go' ':(exclude,glob)diagnostics/**/*_test.go' \
	    ':(exclude,glob)runtime/**/testdata/**' ':(exclude,glob)telemetry/**/testdata/**' ':(exclude,glob)diagnostics/**/testdata/**' \
	    ':(glob)bench/*_test.go' bench/go.mod bench/go.sum 2>/dev/null || \
	  { echo "bench-check: bench/$(BENCH_OUT) measures $$rev; the measured code (runtime/, telemetry/, diagnostics/ but their tests and testdata, bench/*_test.go, the go.mod files) changed since; run make bench"; exit 1; }
	cd bench && $(GO) run ./cmd/benchcheck -batch 100 -peer taskscope \
	  -fast errgroup -max-vs-errgroup 2.0 -slow suture -min-vs-suture 4 \
	  -max-allocs 3 \
	  -all-peer taskscope+all -max-all-vs-errgroup 3.0 \
	  -sdk-peer taskscope+sdk -span-peer span.sdk -max-sdk-vs-span 1.3 \
	  $(BENCH_OUT)

# The README's Cost table must be the recorded results' (make bench-table
# prints it).
test-bench:
	cd bench && $(GO) vet ./... && $(GO) test -race -count=1 ./... && \
	  $(GO) run ./cmd/benchcheck -readme ../README.md $(BENCH_OUT)

bench-table:
	@cd bench && $(GO) run ./cmd/benchcheck -table $(BENCH_OUT)

TEST_TARGETS += test-bench
