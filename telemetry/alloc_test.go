package telemetry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// lifecycle is the sequence of observer calls one task causes, with
// prebuilt events, so that only the observer's own work is measured.
type lifecycle struct {
	name   string
	events []runtime.Event // events[0] goes to TaskStarting, the rest to Observe
}

func lifecycles() []lifecycle {
	spawn := runtime.Event{Kind: runtime.KindTaskSpawned, Group: "app.g", Task: "work", TaskID: 7, Function: "main.work"}
	fin := func(o runtime.Outcome, err, cause error) runtime.Event {
		ev := spawn
		ev.Kind, ev.Outcome, ev.Err, ev.Cause, ev.Duration = runtime.KindTaskFinished, o, err, cause, 3*time.Millisecond
		return ev
	}
	cancel := spawn
	cancel.Kind, cancel.Cause, cancel.Err = runtime.KindTaskCancelRequested, context.Canceled, context.Canceled
	periodic := spawn
	periodic.Interval = time.Second
	runStart := periodic
	runStart.Kind, runStart.Run = runtime.KindTaskRunStarted, 1
	runEnd := runStart
	runEnd.Kind, runEnd.Outcome, runEnd.Duration = runtime.KindTaskRunFinished, runtime.Success, time.Millisecond
	periodicFin := fin(runtime.Success, nil, nil)
	periodicFin.Interval = time.Second
	return []lifecycle{
		{"success", []runtime.Event{spawn, fin(runtime.Success, nil, nil)}},
		{"error", []runtime.Event{spawn, fin(runtime.Error, errors.New("boom"), nil)}},
		{"canceled", []runtime.Event{spawn, cancel, fin(runtime.Canceled, context.Canceled, context.Canceled)}},
		{"panic", []runtime.Event{spawn, fin(runtime.Panic, &runtime.PanicError{Value: "p"}, nil)}},
		{"periodic", []runtime.Event{periodic, runStart, runEnd, periodicFin}},
	}
}

func (l lifecycle) play(tel *telemetry.Telemetry, ctx context.Context) context.Context {
	ctx = tel.TaskStarting(ctx, l.events[0])
	for _, ev := range l.events[1:] {
		if ev.Kind == runtime.KindTaskRunStarted {
			tel.TaskStarting(ctx, ev)
			continue
		}
		tel.Observe(ctx, ev)
	}
	return ctx
}

// TestTracingOffAllocatesNothing: with metrics on and tracing off (a nil or
// no-op provider), a task's whole lifecycle costs the observer no
// allocation and leaves the task's context as it was.
func TestTracingOffAllocatesNothing(t *testing.T) {
	for name, tp := range map[string]trace.TracerProvider{"nil": nil, "noop": noop.NewTracerProvider()} {
		for _, l := range lifecycles() {
			t.Run(name+"/"+l.name, func(t *testing.T) {
				tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(prometheus.NewRegistry()))
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				if got := l.play(tel, ctx); got != ctx {
					t.Fatal("tracing off, yet TaskStarting wrapped the context")
				}
				if allocs := testing.AllocsPerRun(1000, func() { l.play(tel, ctx) }); allocs != 0 {
					t.Errorf("%v allocations per task, want 0", allocs)
				}
			})
		}
	}
}

// TestMetricsStillCountWithTracingOff guards the alloc test against
// measuring an observer that does nothing.
func TestMetricsStillCountWithTracingOff(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tel, err := telemetry.New(telemetry.WithTracerProvider(nil), telemetry.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lifecycles() {
		l.play(tel, context.Background())
	}
	wantMetric(t, reg, "taskscope_tasks_finished_total", nil, 5, "")
	wantMetric(t, reg, "taskscope_periodic_runs_total", nil, 1, "")
	wantMetric(t, reg, "taskscope_periodic_run_duration_seconds", nil, 1, "")
}
