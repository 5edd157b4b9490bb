package telemetry_test

import (
	"context"
	goruntime "runtime"
	"runtime/debug"
	"testing"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// parker is an observer that holds each task goroutine inside its finished
// event, after the observers before it have run, so that the stack those
// observers grew can be measured while the goroutines are parked.
type parker struct {
	arrived chan struct{}
	release chan struct{}
}

func (p *parker) TaskStarting(ctx context.Context, _ runtime.Event) context.Context { return ctx }

func (p *parker) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == runtime.KindTaskFinished {
		p.arrived <- struct{}{}
		<-p.release
	}
}

// stackPerTask returns the stack bytes per task goroutine parked in its
// finished event, with the given observers before the parker.
func stackPerTask(t *testing.T, observers ...runtime.Observer) float64 {
	t.Helper()
	const n = 2000
	p := &parker{arrived: make(chan struct{}), release: make(chan struct{})}
	var opts []runtime.Option
	for _, o := range observers {
		opts = append(opts, runtime.WithObserver(o))
	}
	sup := runtime.New("app", append(opts, runtime.WithObserver(p))...)
	noop := func(context.Context) error { return nil }

	// Warm up: the first task of a (group, task) pair binds its metric
	// children, a one-off deeper path.
	sup.Go("work", noop)
	<-p.arrived
	p.release <- struct{}{}
	if err := sup.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}

	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	for range n {
		sup.Go("work", noop)
	}
	for range n {
		<-p.arrived
	}
	goruntime.ReadMemStats(&after)
	close(p.release)
	if err := sup.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	return float64(after.StackInuse-before.StackInuse) / n
}

// TestObserverDoesNotGrowTaskStack: the finished event runs on the task
// goroutine, whose stack starts at 2 KiB; growing it costs more than a
// whole spawn (and doubles an idle task's memory). With tracing off the
// observer must fit in what the runtime's own path leaves.
func TestObserverDoesNotGrowTaskStack(t *testing.T) {
	// Stacks shrink only at GC; keep it off so a grown stack stays visible.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	tel, err := telemetry.New(telemetry.WithTracerProvider(nil))
	if err != nil {
		t.Fatal(err)
	}
	base := stackPerTask(t)
	with := stackPerTask(t, tel)
	t.Logf("stack per parked task: %.0f B without telemetry, %.0f B with", base, with)
	if with > base+512 {
		t.Errorf("telemetry grew the task stack: %.0f B per task, %.0f B without it", with, base)
	}
	// The runtime's own finish path may already need more than the initial
	// stack; telemetry's, from the top of a fresh goroutine, must not.
	alone := stackObserveAlone(t, tel)
	t.Logf("stack per goroutine after a spawn and a finish observed from its top frame: %.0f B", alone)
	if alone > 2048+512 && !raceEnabled { // race instrumentation alone needs more
		t.Errorf("a finished event alone takes %.0f B of stack, more than a fresh goroutine's 2 KiB", alone)
	}
}

// stackObserveAlone returns the stack per goroutine that made one
// TaskStarting+Observe(finished) call from its top frame and parked.
func stackObserveAlone(t *testing.T, tel *telemetry.Telemetry) float64 {
	t.Helper()
	const n = 2000
	spawn := runtime.Event{Kind: runtime.KindTaskSpawned, Group: "app", Task: "alone", TaskID: 1}
	fin := spawn
	fin.Kind, fin.Outcome = runtime.KindTaskFinished, runtime.Success
	tel.Observe(tel.TaskStarting(context.Background(), spawn), fin) // bind the children
	arrived, release := make(chan struct{}), make(chan struct{})
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	for range n {
		go func() {
			tel.Observe(tel.TaskStarting(context.Background(), spawn), fin)
			arrived <- struct{}{}
			<-release
		}()
	}
	for range n {
		<-arrived
	}
	goruntime.ReadMemStats(&after)
	close(release)
	return float64(after.StackInuse-before.StackInuse) / n
}
