// Package bench compares taskscope's spawn+wait cost with its peers. It is
// its own module so that the peers (errgroup, conc, suture) stay
// benchmark-only dependencies and never enter the root go.mod.
//
// Method (see shared/reference/anchors-performance.md, which it mirrors):
//
//   - BenchmarkSpawn/batch=N/peer=P spawns no-op tasks. Every N tasks it
//     makes a new group, spawns N tasks into it and waits for them; the
//     group set-up and the wait are inside the timing. b.N counts tasks, so
//     ns/op, B/op and allocs/op are per task. N=1 is the call-and-wait round
//     trip, N=100 a typical fan-out (the headline), N=10000 a burst.
//   - Each peer gets the task body once, in its own native form (func(),
//     func() error, func(context.Context) error, a suture.Service), so the
//     harness adds no allocation per task.
//   - taskscope: a new runtime.New supervisor per batch ("taskscope"), the
//     counterpart of errgroup's zero Group per batch: both are a fresh,
//     unshared root that is dropped after Wait. "taskscope.subgroup" is the
//     long-lived-supervisor pattern instead: one supervisor, a child group
//     per batch, and Shutdown after Wait, which detaches the group from
//     its parent at once (a group merely dropped is detached when the GC
//     collects it; runtime's BenchmarkGroupPerRequest measures that).
//     "taskscope.reuse" is how a service uses its supervisor: one,
//     long-lived, waited on after each batch.
//   - suture: one long-lived supervisor; each task is a one-shot service
//     (Add, then Serve returns ErrDoNotRestart). A batch has ended when
//     every Serve has returned and Services() is empty, that is when the
//     supervisor has forgotten the services.
//
// `make bench` (mk/bench.mk) runs the compiled binary several times over the
// whole suite and prints benchstat's comparison; `make bench-check` checks
// the budget against the results.
package bench

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sourcegraph/conc"
	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	taskscope "github.com/taskscope/taskscope/runtime"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// body is one task body in every peer's native form.
type body struct {
	plain func()
	err   func() error
	ctx   func(context.Context) error
}

// noop is the benchmarked body: true no-ops, not wrappers.
var noop = body{
	plain: func() {},
	err:   func() error { return nil },
	ctx:   func(context.Context) error { return nil },
}

// counting returns a body that counts its runs in c (for the tests).
func counting(c *atomic.Int64) body {
	return body{
		plain: func() { c.Add(1) },
		err:   func() error { c.Add(1); return nil },
		ctx:   func(context.Context) error { c.Add(1); return nil },
	}
}

// A peer is one way of running tasks. start prepares it for body f and
// returns run, which starts n tasks in a fresh group and waits for them
// all, and stop.
type peer struct {
	name  string
	start func(f body) (run func(n int), stop stopFunc)
}

// stopFunc releases whatever a peer keeps for its runs (not timed) and, when
// b is not nil, reports the runs' own metrics to it (such as a stream
// subscriber's drops).
type stopFunc func(b *testing.B)

func nothing(*testing.B) {}

// peers, errgroup first: benchstat compares every column with the first one
// it sees, and the budget is stated against errgroup.
var peers = []peer{
	{"errgroup", func(f body) (func(int), stopFunc) {
		fn := f.err
		return func(n int) {
			var g errgroup.Group
			for range n {
				g.Go(fn)
			}
			if err := g.Wait(); err != nil {
				panic(err)
			}
		}, nothing
	}},
	{"raw.go+WaitGroup", func(f body) (func(int), stopFunc) {
		fn := f.plain
		return func(n int) {
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fn()
				}()
			}
			wg.Wait()
		}, nothing
	}},
	{"errgroup.WithContext", func(f body) (func(int), stopFunc) {
		fn := f.err
		return func(n int) {
			g, _ := errgroup.WithContext(context.Background())
			for range n {
				g.Go(fn)
			}
			if err := g.Wait(); err != nil {
				panic(err)
			}
		}, nothing
	}},
	{"conc.WaitGroup", func(f body) (func(int), stopFunc) {
		fn := f.plain
		return func(n int) {
			var wg conc.WaitGroup
			for range n {
				wg.Go(fn)
			}
			wg.Wait()
		}, nothing
	}},
	{"suture", startSuture},
	{"taskscope", func(f body) (func(int), stopFunc) {
		fn := f.ctx
		return func(n int) {
			s := taskscope.New("bench")
			for range n {
				s.Go("noop", fn)
			}
			if err := s.Wait(context.Background()); err != nil {
				panic(err)
			}
		}, nothing
	}},
	{"taskscope.reuse", func(f body) (func(int), stopFunc) {
		fn := f.ctx
		bg := context.Background()
		s := taskscope.New("bench")
		run := func(n int) {
			for range n {
				s.Go("noop", fn)
			}
			if err := s.Wait(bg); err != nil {
				panic(err)
			}
		}
		stop := func(*testing.B) {
			if err := s.Shutdown(bg); err != nil {
				panic(err)
			}
		}
		return run, stop
	}},
	{"taskscope.subgroup", func(f body) (func(int), stopFunc) {
		fn := f.ctx
		bg := context.Background()
		s := taskscope.New("bench")
		run := func(n int) {
			g := s.Group("batch")
			for range n {
				g.Go("noop", fn)
			}
			if err := g.Wait(bg); err != nil {
				panic(err)
			}
			if err := g.Shutdown(bg); err != nil { // detaches g from s
				panic(err)
			}
		}
		stop := func(*testing.B) {
			if err := s.Shutdown(bg); err != nil {
				panic(err)
			}
		}
		return run, stop
	}},
}

// oneShot is a suture service that runs its body once and asks not to be
// restarted. One value serves every task of a benchmark.
type oneShot struct {
	fn      func()
	running sync.WaitGroup // Serve calls not yet returned
}

func (s *oneShot) Serve(context.Context) error {
	defer s.running.Done()
	s.fn()
	return suture.ErrDoNotRestart
}

// String names the service; without it suture formats the value with
// fmt.Sprintf("%#v") on every Add.
func (s *oneShot) String() string { return "noop" }

func startSuture(f body) (func(int), stopFunc) {
	sup := suture.New("bench", suture.Spec{EventHook: func(suture.Event) {}})
	ctx, cancel := context.WithCancel(context.Background())
	served := sup.ServeBackground(ctx)
	svc := &oneShot{fn: f.plain}
	run := func(n int) {
		svc.running.Add(n)
		for range n {
			sup.Add(svc)
		}
		svc.running.Wait()
		// The supervisor forgets a service when it handles its end
		// message, which is sent after Serve has returned.
		for len(sup.Services()) > 0 {
			goruntime.Gosched()
		}
	}
	stop := func(*testing.B) {
		cancel()
		<-served
	}
	return run, stop
}

var batches = []int{1, 100, 10000}

func BenchmarkSpawn(b *testing.B) {
	for _, n := range batches {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			for _, p := range peers {
				b.Run("peer="+p.name, func(b *testing.B) {
					run, stop := p.start(noop)
					b.ReportAllocs()
					b.ResetTimer()
					for done := 0; done < b.N; done += n {
						run(min(n, b.N-done))
					}
					b.StopTimer()
					stop(b)
				})
			}
		})
	}
}

// TestPeersRunEveryTask checks that each adapter really runs and waits for
// n tasks per batch, batch after batch (suture's supervisor is reused).
func TestPeersRunEveryTask(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			var count atomic.Int64
			run, stop := p.start(counting(&count))
			defer stop(nil)
			want := int64(0)
			for _, n := range append(batches, 1, 100) {
				run(n)
				want += int64(n)
				if got := count.Load(); got != want {
					t.Fatalf("after a batch of %d: %d tasks ran, want %d", n, got, want)
				}
			}
		})
	}
}

// TestNoopBodies runs the benchmarked bodies once, so that the benchmark's
// exact configuration is exercised by `go test` too.
func TestNoopBodies(t *testing.T) {
	for _, p := range peers {
		run, stop := p.start(noop)
		run(100)
		stop(nil)
	}
}
