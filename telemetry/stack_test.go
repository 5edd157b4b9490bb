package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	goruntime "runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/taskscope/taskscope/diagnostics"
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
func (p *parker) Observe(ctx context.Context, ev runtime.Event)                     { p.ObserveEvent(ctx, &ev) }

// The pointer methods keep the parker's own frames small: it measures the
// stack of the observers before it.
func (p *parker) TaskStartingEvent(ctx context.Context, _ *runtime.Event) context.Context { return ctx }

func (p *parker) ObserveEvent(_ context.Context, ev *runtime.Event) {
	if ev.Kind == runtime.KindTaskFinished {
		p.arrived <- struct{}{}
		<-p.release
	}
}

// spawner spawns one task, named work, that ends by itself.
type spawner func(sup *runtime.Supervisor)

func plainTask(sup *runtime.Supervisor) { sup.Go("work", func(context.Context) error { return nil }) }

// periodicTask runs once: its goroutine observes a run_finished event
// before its finished one.
func periodicTask(sup *runtime.Supervisor) {
	sup.Every("work", time.Hour, func(context.Context) error { return runtime.ErrStop })
}

// stackPerTask returns the stack bytes per task goroutine that spawn
// makes, parked in its finished event, with the given observers before the
// parker.
func stackPerTask(t *testing.T, spawn spawner, observers ...runtime.Observer) float64 {
	t.Helper()
	const n = 2000
	p := &parker{arrived: make(chan struct{}), release: make(chan struct{})}
	var opts []runtime.Option
	for _, o := range observers {
		opts = append(opts, runtime.WithObserver(o))
	}
	sup := runtime.New("app", append(opts, runtime.WithObserver(p))...)

	// Warm up: the first task of a (group, task) pair binds its metric
	// children, a one-off deeper path.
	spawn(sup)
	<-p.arrived
	p.release <- struct{}{}
	if err := sup.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}

	var before, after goruntime.MemStats
	goruntime.GC() // frees cached stacks, so that every stack below is new
	goruntime.ReadMemStats(&before)
	for range n {
		spawn(sup)
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

// TestObserverDoesNotGrowTaskStack: the finished event, and a periodic
// task's run_finished, run on the task goroutine, whose stack starts at 2
// KiB; growing it costs more than a whole spawn (and doubles an idle
// task's memory). With tracing off the observer must fit in what the
// runtime's own path leaves.
func TestObserverDoesNotGrowTaskStack(t *testing.T) {
	tel := fixedStackTelemetry(t)
	if tel == nil {
		return
	}
	for kind, spawn := range map[string]spawner{"plain": plainTask, "periodic": periodicTask} {
		base := stackPerTask(t, spawn)
		with := stackPerTask(t, spawn, tel)
		t.Logf("stack per parked %s task: %.0f B without telemetry, %.0f B with", kind, base, with)
		if with > base+512 {
			t.Errorf("telemetry grew the %s task stack: %.0f B per task, %.0f B without it", kind, with, base)
		}
	}
	// The runtime's own finish path may already need more than the initial
	// stack; telemetry's, from the top of a fresh goroutine, must not.
	alone := stackObserveAlone(t, tel)
	t.Logf("stack per goroutine after a spawn and a finish observed from its top frame: %.0f B", alone)
	if alone > 2048+512 && !raceEnabled { // race instrumentation alone needs more
		t.Errorf("a finished event alone takes %.0f B of stack, more than a fresh goroutine's 2 KiB", alone)
	}
}

// TestObservedTaskKeepsItsFirstStack: with tracing off, a task goroutine
// runs its whole finish path, the runtime's and every observer's (metrics,
// a log observer at the default level, a stream with a subscriber), in the
// 2 KiB stack it started with. One growth would cost more than the spawn.
// The race detector's instrumentation needs more stack, so the bound holds
// only without it (make test runs this test both ways).
func TestObservedTaskKeepsItsFirstStack(t *testing.T) {
	tel := fixedStackTelemetry(t)
	if tel == nil {
		return
	}
	stream := diagnostics.NewStream()
	sub := stream.Subscribe(t.Context())
	defer sub.Close()
	logger := diagnostics.NewLogObserver(slog.New(slog.NewTextHandler(io.Discard, nil)))
	per := stackPerTask(t, plainTask, tel, logger, stream)
	t.Logf("stack per parked task with every observer: %.0f B", per)
	// A grown stack is 4 KiB, plus the 2 KiB one it replaced in the
	// stack cache; an ungrown one 2 KiB and change.
	if per > 3072 && !raceEnabled {
		t.Errorf("observed task goroutines grew their stacks: %.0f B per task, want 2 KiB", per)
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
	goruntime.GC() // frees cached stacks, so that every stack below is new
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

// fixedStackTelemetry runs the calling test in a child process with fixed
// initial stacks (see inFixedStackChild) and returns nil; in that child it
// returns telemetry with tracing off, with the GC off until the test ends:
// stacks shrink only at GC, so a grown stack stays visible.
func fixedStackTelemetry(t *testing.T) *telemetry.Telemetry {
	t.Helper()
	if !inFixedStackChild(t) {
		return nil
	}
	gc := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc) })
	tel, err := telemetry.New(telemetry.WithTracerProvider(nil))
	if err != nil {
		t.Fatal(err)
	}
	return tel
}

// inFixedStackChild runs the calling test again in a child process whose
// goroutines always start with 2 KiB stacks, and reports whether this is
// that child (then the test runs; otherwise the parent has checked the
// child's result). By default the runtime sizes new goroutines' stacks
// from the average it saw at the last GC, so a stack test would pass or
// fail depending on what ran before it.
func inFixedStackChild(t *testing.T) bool {
	t.Helper()
	const marker = "TASKSCOPE_FIXED_STACK_CHILD"
	if os.Getenv(marker) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), marker+"="+t.Name(), "GODEBUG=adaptivestackstart=0")
	out, err := cmd.CombinedOutput()
	t.Logf("child with GODEBUG=adaptivestackstart=0:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	return false
}
