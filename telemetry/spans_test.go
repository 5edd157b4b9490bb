package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// TestOutcomes checks, for every outcome, the task span's status and
// attributes and the finished counter, as the package doc's table says,
// and the duration and cancel latency histograms, with tracing on and off
// (two paths: see taskFinishedTraced).
func TestOutcomes(t *testing.T) {
	cases := []struct {
		outcome    string
		run        func(t *testing.T, h *harness) // spawns "work" in group app.g and waits for it to end
		wantStatus codes.Code
		errorType  string
	}{
		{"success", func(t *testing.T, h *harness) {
			<-h.sup.Group("g").Go("work", func(context.Context) error { return nil }).Done()
		}, codes.Unset, ""},
		{"error", func(t *testing.T, h *harness) {
			<-h.sup.Group("g").Go("work", func(context.Context) error { return errors.New("boom") }).Done()
		}, codes.Error, "*errors.errorString"},
		{"canceled", func(t *testing.T, h *harness) {
			task := h.sup.Group("g").Go("work", blockUntilCanceled)
			task.Cancel(nil)
			<-task.Done()
		}, codes.Unset, ""},
		{"panic", func(t *testing.T, h *harness) {
			<-h.sup.Group("g").Go("work", func(context.Context) error { panic("kaboom") }).Done()
		}, codes.Error, "panic"},
		{"aborted", func(t *testing.T, h *harness) {
			release := make(chan struct{})
			h.sup.Group("g").Go("work", func(context.Context) error { <-release; return nil })
			if err := h.sup.Shutdown(timeout(t, time.Second)); err == nil {
				t.Fatal("Shutdown returned nil, want an AbortError")
			}
			close(release)
			synctest.Wait() // the late exit
		}, codes.Error, "aborted"},
	}
	for _, c := range cases {
		for _, traced := range []bool{true, false} {
			name := c.outcome + "/traced"
			var opts []telemetry.Option
			if !traced { // the metrics' own path, with no span to end
				name, opts = c.outcome+"/untraced", []telemetry.Option{telemetry.WithTracerProvider(nil)}
			}
			t.Run(name, func(t *testing.T) {
				bubble(t, func(t *testing.T) {
					h := newHarness(t, opts...)
					c.run(t, h)
					if traced {
						s := h.span("task work")
						if s.Status().Code != c.wantStatus {
							t.Errorf("status %v (%q), want %v", s.Status().Code, s.Status().Description, c.wantStatus)
						}
						if got := attrString(s, "taskscope.task.outcome"); got != c.outcome {
							t.Errorf("taskscope.task.outcome = %q, want %q", got, c.outcome)
						}
						if got := attrString(s, "error.type"); got != c.errorType {
							t.Errorf("error.type = %q, want %q", got, c.errorType)
						}
						if s.SpanKind() != trace.SpanKindInternal {
							t.Errorf("span kind %v, want internal", s.SpanKind())
						}
					} else if n := len(h.sr.Started()); n != 0 {
						t.Errorf("%d spans started with tracing off", n)
					}
					wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("group", "app.g", "task", "work", "outcome", c.outcome, "error_type", c.errorType), 1, "")
					wantMetric(t, h.reg, "taskscope_task_duration_seconds", labels("outcome", c.outcome), 1, "histogram count")
					latency := 0.0
					if c.outcome == "canceled" || c.outcome == "aborted" { // aborted: at the late exit
						latency = 1
					}
					wantMetric(t, h.reg, "taskscope_task_cancel_latency_seconds", nil, latency, "histogram count: tasks that were canceled")
					wantMetric(t, h.reg, "taskscope_tasks_running", nil, 0, "after the task ended")
					wantMetric(t, h.reg, "taskscope_tasks_abandoned", nil, 0, "after the late exit")
					h.checkSpansEndedOnce()
				})
			})
		}
	}
}

func TestTaskSpanAttributes(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		sub := h.sup.Group("g").Group("sub")
		task := sub.Go("fetch", fetchUser)
		<-task.Done()
		s := h.span("task fetch")
		if v, ok := attrOf(s, "taskscope.group.id"); ok {
			t.Errorf("taskscope.group.id = %v on a task span: a fifth start attribute costs a sampled span 400 bytes", v.String())
		}
		if got := attrString(s, "taskscope.group"); got != "app.g.sub" {
			t.Errorf("taskscope.group = %q, want the full dotted name app.g.sub", got)
		}
		if got := attrString(s, "taskscope.task.name"); got != "fetch" {
			t.Errorf("taskscope.task.name = %q", got)
		}
		if v, _ := attrOf(s, "taskscope.task.id"); v.Type().String() != "INT64" || v.AsInt64() != int64(task.ID()) {
			t.Errorf("taskscope.task.id = %v (%v), want int64 %d", v.String(), v.Type(), task.ID())
		}
		if got := attrString(s, "code.function.name"); !strings.HasSuffix(got, "telemetry_test.fetchUser") {
			t.Errorf("code.function.name = %q, want the task function", got)
		}
		if _, ok := attrOf(s, "taskscope.cancel.cause"); ok {
			t.Error("taskscope.cancel.cause set on a task nobody canceled")
		}
		if s.Parent().IsValid() {
			t.Error("a task spawned without a parent context has a parent span")
		}
		if got := s.InstrumentationScope().Name; got != telemetry.ScopeName {
			t.Errorf("scope %q, want %q", got, telemetry.ScopeName)
		}
		if got := s.InstrumentationScope().Version; got != telemetry.Version {
			t.Errorf("scope version %q, want %q", got, telemetry.Version)
		}
		// The semconv version the attributes follow (error.type,
		// code.function.name, exception.*): backends translate by it.
		if got := s.InstrumentationScope().SchemaURL; got != semconv.SchemaURL {
			t.Errorf("scope schema URL %q, want %q", got, semconv.SchemaURL)
		}
	})
}

func fetchUser(context.Context) error { return nil }

func TestPanicSpanHasExceptionEventWithFullStack(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		<-h.sup.Go("deep", func(context.Context) error { recurseThenPanic(60); return nil }).Done()
		s := h.span("task deep")
		ev, ok := eventNamed(s, "exception")
		if !ok {
			t.Fatalf("no exception event; events: %v", s.Events())
		}
		if got := eventAttr(ev, "exception.type"); got != "string" {
			t.Errorf("exception.type = %q, want string (the panic value's type)", got)
		}
		if got := eventAttr(ev, "exception.message"); got != "deep trouble" {
			t.Errorf("exception.message = %q", got)
		}
		stack := eventAttr(ev, "exception.stacktrace")
		// The full stack: 60 recursive frames are more than the SDK's own
		// 2 KiB capture could hold, and the panic site must be there.
		if len(stack) <= 2048 || strings.Count(stack, "recurseThenPanic") < 60 {
			t.Errorf("stack of %d bytes with %d recursive frames, want the full stack:\n%s",
				len(stack), strings.Count(stack, "recurseThenPanic"), stack)
		}
		if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "deep trouble") {
			t.Errorf("status %v %q, want Error mentioning the panic value", s.Status().Code, s.Status().Description)
		}
	})
}

// TestPanicSpanMessageIsCapped: a panic value whose String method returns
// a megabyte puts at most maxText bytes (and the mark) in exception.message,
// as in the status: the message went on the exception event whole, a
// megabyte per span for the exporter to send.
func TestPanicSpanMessageIsCapped(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		<-h.sup.Go("huge", func(context.Context) error { panic(hugeString{}) }).Done()
		s := h.span("task huge")
		ev, ok := eventNamed(s, "exception")
		if !ok {
			t.Fatalf("no exception event; events: %v", s.Events())
		}
		msg := eventAttr(ev, "exception.message")
		if want := strings.Repeat("y", 1024) + "…"; msg != want {
			t.Errorf("exception.message of %d bytes (%.20q...), want the first 1024 bytes and a mark", len(msg), msg)
		}
		if d := s.Status().Description; len(d) > 1024+len("…") {
			t.Errorf("status description of %d bytes", len(d))
		}
	})
}

// hugeString is a panic value whose String method returns a megabyte.
type hugeString struct{}

func (hugeString) String() string { return strings.Repeat("y", 1<<20) }

func recurseThenPanic(n int) {
	if n == 0 {
		panic("deep trouble")
	}
	recurseThenPanic(n - 1)
}

func TestCancelRequestIsASpanEvent(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		task := h.sup.Go("slow", func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(2 * time.Second) // takes its time to honour the request
			return ctx.Err()
		})
		synctest.Wait()
		task.Cancel(errors.New("user asked"))
		<-task.Done()
		s := h.span("task slow")
		ev, ok := eventNamed(s, runtime.KindTaskCancelRequested)
		if !ok {
			t.Fatalf("no %s event; events: %v", runtime.KindTaskCancelRequested, s.Events())
		}
		if got := eventAttr(ev, "taskscope.cancel.cause"); got != "custom" {
			t.Errorf("event cause = %q, want custom", got)
		}
		if got := eventAttr(ev, "taskscope.cancel.message"); got != "user asked" {
			t.Errorf("event message = %q", got)
		}
		if got := attrString(s, "taskscope.cancel.cause"); got != "custom" {
			t.Errorf("span taskscope.cancel.cause = %q, want custom", got)
		}
		if s.Status().Code != codes.Unset {
			t.Errorf("canceled task status %v, want Unset", s.Status().Code)
		}
		wantMetric(t, h.reg, "taskscope_task_cancellations_total", labels("task", "slow", "cause", "custom"), 1, "")
		lat := series(t, h.reg, "taskscope_task_cancel_latency_seconds")
		if len(lat) != 1 || lat[0].Histogram.GetSampleCount() != 1 || lat[0].Histogram.GetSampleSum() != 2 {
			t.Errorf("cancel latency = %v, want one observation of 2s", lat)
		}
	})
}

func TestGroupCancelIsCountedWithEmptyTask(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		g := h.sup.Group("g")
		for range 3 {
			g.Go("w", blockUntilCanceled)
		}
		g.Cancel(nil)
		if err := g.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantMetric(t, h.reg, "taskscope_task_cancellations_total", labels("group", "app.g", "task", "", "cause", "canceled"), 1, "one request for the group")
		wantMetric(t, h.reg, "taskscope_task_cancel_latency_seconds", labels("task", "w"), 3, "histogram count")
		for _, s := range h.spans("task w") {
			if got := attrString(s, "taskscope.cancel.cause"); got != "canceled" {
				t.Errorf("span cause %q, want canceled", got)
			}
		}
	})
}

func TestAbortedSpanEndsAtAbortAndLateExitAddsNothing(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		release := make(chan struct{})
		g := h.sup.Group("g")
		g.Go("good", blockUntilCanceled)
		stuck := g.Go("stuck", func(context.Context) error { <-release; return nil })
		start := time.Now()
		err := h.sup.Shutdown(timeout(t, time.Second))
		var ae *runtime.AbortError
		if !errors.As(err, &ae) {
			t.Fatalf("Shutdown = %v, want an AbortError", err)
		}
		s := h.span("task stuck")
		if got := s.EndTime().Sub(start); got != time.Second {
			t.Errorf("span ended %v after the shutdown began, want at the abort (1s)", got)
		}
		if s.Status().Code != codes.Error {
			t.Errorf("aborted status %v, want Error", s.Status().Code)
		}
		ev, ok := eventNamed(s, runtime.KindTaskAborted)
		if !ok || !strings.Contains(eventAttr(ev, "taskscope.task.stack"), "goroutine") {
			t.Errorf("no %s event with the stuck goroutine's stack: %v", runtime.KindTaskAborted, s.Events())
		}
		if got := attrString(s, "taskscope.cancel.cause"); got != "shutdown" {
			t.Errorf("cause %q, want shutdown", got)
		}
		wantMetric(t, h.reg, "taskscope_tasks_abandoned", labels("task", "stuck"), 1, "before the late exit")
		wantMetric(t, h.reg, "taskscope_tasks_running", nil, 0, "an aborted task is abandoned, not running")

		// The shutdown span names what it abandoned.
		sh := h.span("shutdown app")
		if attrString(sh, "taskscope.shutdown.drained") != "1" || attrString(sh, "taskscope.shutdown.aborted") != "1" {
			t.Errorf("shutdown span drained=%s aborted=%s, want 1 and 1",
				attrString(sh, "taskscope.shutdown.drained"), attrString(sh, "taskscope.shutdown.aborted"))
		}
		if got, want := attrString(sh, "taskscope.shutdown.aborted_tasks"), "app.g/stuck#"; !strings.Contains(got, want) {
			t.Errorf("aborted_tasks = %s, want it to name %s%d", got, want, stuck.ID())
		}
		if v, _ := attrOf(sh, "taskscope.group.id"); v.AsInt64() != int64(h.sup.ID()) {
			t.Errorf("shutdown span taskscope.group.id = %v, want %d", v.String(), h.sup.ID())
		}
		if sh.Status().Code != codes.Error || attrString(sh, "taskscope.shutdown.result") != "aborted" {
			t.Errorf("shutdown span status %v result %s, want Error and aborted", sh.Status().Code, attrString(sh, "taskscope.shutdown.result"))
		}
		wantMetric(t, h.reg, "taskscope_group_shutdown_duration_seconds", labels("group", "app", "result", "aborted"), 1, "histogram count")

		before := len(s.Events())
		close(release)
		synctest.Wait()
		if h.sup.Abandoned() != 0 {
			t.Fatal("the task did not exit")
		}
		wantMetric(t, h.reg, "taskscope_tasks_abandoned", nil, 0, "after the late exit")
		wantMetric(t, h.reg, "taskscope_task_cancel_latency_seconds", labels("task", "stuck"), 1, "observed at the late exit")
		if n := len(h.spans("task stuck")); n != 1 {
			t.Errorf("%d spans for the stuck task after its late exit, want 1", n)
		}
		if after := h.span("task stuck"); len(after.Events()) != before || after.EndTime() != s.EndTime() {
			t.Error("the late exit changed the ended span")
		}
		h.checkSpansEndedOnce()
	})
}

func TestRejectedSpawnEndsAtOnceAsCanceled(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		g := h.sup.Group("g")
		if err := g.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		task := g.Go("late", func(context.Context) error { t.Error("a rejected task ran"); return nil })
		<-task.Done()
		s := h.span("task late")
		if attrString(s, "taskscope.task.outcome") != "canceled" || attrString(s, "taskscope.task.rejected") != "true" {
			t.Errorf("rejected span outcome=%s rejected=%s, want canceled and true",
				attrString(s, "taskscope.task.outcome"), attrString(s, "taskscope.task.rejected"))
		}
		if s.Status().Code != codes.Unset {
			t.Errorf("status %v, want Unset", s.Status().Code)
		}
		for name, want := range map[string]float64{
			"taskscope_tasks_started_total":         1,
			"taskscope_tasks_rejected_total":        1,
			"taskscope_tasks_finished_total":        1,
			"taskscope_tasks_running":               0,
			"taskscope_task_duration_seconds":       0, // it never ran
			"taskscope_task_cancel_latency_seconds": 0,
		} {
			wantMetric(t, h.reg, name, labels("task", "late"), want, "")
		}
		h.checkSpansEndedOnce()
	})
}

// TestRejectedSpawnOfAnotherSupervisor: one Telemetry observes two
// supervisors with the same root name, whose task IDs both start at 1.
// Supervisor b's first task finishes while a's rejected task 1 is between
// its rejected and finished events: each keeps its own books.
func TestRejectedSpawnOfAnotherSupervisor(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		b := runtime.New("app", runtime.WithObserver(h.tel))
		runB := onEvent(func(ev runtime.Event) {
			if ev.Kind == runtime.KindTaskRejected {
				<-b.Go("ran", func(context.Context) error { time.Sleep(time.Second); return nil }).Done()
			}
		})
		a := runtime.New("app", runtime.WithObserver(h.tel), runtime.WithObserver(runB))
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if id := a.Go("late", func(context.Context) error { return nil }).ID(); id != 1 {
			t.Fatalf("rejected task has ID %d; the test needs both supervisors' first task", id)
		}
		wantMetric(t, h.reg, "taskscope_task_duration_seconds", labels("task", "ran"), 1, "b's task ran")
		wantMetric(t, h.reg, "taskscope_task_duration_seconds", labels("task", "late"), 0, "a's rejected task never ran")
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.checkSpansEndedOnce()
	})
}

func TestSpansMadeInsideFnAreChildren(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		<-h.sup.Go("parent", func(ctx context.Context) error {
			_, child := h.tp.Tracer("user").Start(ctx, "query")
			child.End()
			return nil
		}).Done()
		task, child := h.span("task parent"), h.span("query")
		if child.Parent().SpanID() != task.SpanContext().SpanID() || child.SpanContext().TraceID() != task.SpanContext().TraceID() {
			t.Errorf("span made in fn has parent %v, want the task span %v", child.Parent().SpanID(), task.SpanContext().SpanID())
		}
	})
}

func TestWithParentMakesTaskSpanAChild(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		ctx, req := h.tp.Tracer("user").Start(context.Background(), "request")
		<-h.sup.Go("work", func(context.Context) error { return nil }, runtime.WithParent(ctx)).Done()
		req.End()
		task := h.span("task work")
		if task.Parent().SpanID() != req.SpanContext().SpanID() {
			t.Errorf("task span parent %v, want the spawner's span %v", task.Parent().SpanID(), req.SpanContext().SpanID())
		}
		if len(task.Links()) != 0 {
			t.Errorf("child task span has links %v", task.Links())
		}
	})
}

func TestWithSpanLinksStartsANewLinkedTrace(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithSpanLinks())
		ctx, req := h.tp.Tracer("user").Start(context.Background(), "request")
		<-h.sup.Go("background", func(context.Context) error { return nil }, runtime.WithParent(ctx)).Done()
		req.End()
		task := h.span("task background")
		if task.Parent().IsValid() || task.SpanContext().TraceID() == req.SpanContext().TraceID() {
			t.Errorf("detached task span has parent %v in trace %v, want a new root", task.Parent(), task.SpanContext().TraceID())
		}
		if l := task.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != req.SpanContext().SpanID() {
			t.Errorf("links %v, want one to the spawner's span", l)
		}
	})
}

func TestLongRunningTaskGetsNoSpanAndItsSpansAreRoots(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		ctx, req := h.tp.Tracer("user").Start(context.Background(), "startup")
		consumer := h.sup.Go("consumer", func(ctx context.Context) error {
			for range 2 {
				_, msg := h.tp.Tracer("user").Start(ctx, "message")
				msg.End()
			}
			<-ctx.Done()
			return ctx.Err()
		}, runtime.LongRunning(), runtime.WithParent(ctx))
		synctest.Wait()
		consumer.Cancel(nil)
		<-consumer.Done()
		req.End()
		if n := len(h.spans("task consumer")); n != 0 {
			t.Errorf("%d task spans for a long-running task, want none", n)
		}
		msgs := h.spans("message")
		if len(msgs) != 2 {
			t.Fatalf("%d message spans, want 2", len(msgs))
		}
		for _, m := range msgs {
			if m.Parent().IsValid() {
				t.Errorf("message span has parent %v, want a root", m.Parent().SpanID())
			}
		}
		if msgs[0].SpanContext().TraceID() == msgs[1].SpanContext().TraceID() {
			t.Error("the two messages share a trace")
		}
		wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("group", "app", "task", "consumer", "outcome", "canceled"), 1, "")
	})
}

func TestPeriodicTasksGetRunSpansOnly(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		ctx, req := h.tp.Tracer("user").Start(context.Background(), "setup")
		n := 0
		task := h.sup.Group("g").Every("tick", time.Minute, func(ctx context.Context) error {
			n++
			_, child := h.tp.Tracer("user").Start(ctx, "tick-work")
			child.End()
			switch n {
			case 2:
				return errors.New("flaky")
			case 3:
				return runtime.ErrStop
			}
			return nil
		}, runtime.WithParent(ctx))
		<-task.Done()
		req.End()
		if s := h.spans("task tick"); len(s) != 0 {
			t.Errorf("periodic task has %d task spans, want none", len(s))
		}
		runs := h.spans("run tick")
		if len(runs) != 3 {
			t.Fatalf("%d run spans, want 3", len(runs))
		}
		wantOutcome := []string{"success", "error", "success"}
		wantStatus := []codes.Code{codes.Unset, codes.Error, codes.Unset}
		works := h.spans("tick-work")
		for i, r := range runs {
			if got := attrString(r, "taskscope.task.run"); got != string(rune('1'+i)) {
				t.Errorf("run %d: taskscope.task.run = %s", i+1, got)
			}
			if got := attrString(r, "taskscope.task.outcome"); got != wantOutcome[i] {
				t.Errorf("run %d: outcome %s, want %s", i+1, got, wantOutcome[i])
			}
			if r.Status().Code != wantStatus[i] {
				t.Errorf("run %d: status %v, want %v", i+1, r.Status().Code, wantStatus[i])
			}
			if r.Parent().IsValid() || len(r.Links()) != 1 || r.Links()[0].SpanContext.SpanID() != req.SpanContext().SpanID() {
				t.Errorf("run %d: parent %v links %v, want a root linked to the spawner", i+1, r.Parent(), r.Links())
			}
			if works[i].Parent().SpanID() != r.SpanContext().SpanID() {
				t.Errorf("run %d: span made in the run is not its child", i+1)
			}
		}
		for outcome, want := range map[string]float64{"success": 2, "error": 1} {
			wantMetric(t, h.reg, "taskscope_periodic_runs_total", labels("task", "tick", "outcome", outcome), want, "")
		}
		wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("task", "tick", "outcome", "success"), 1, "ErrStop ends the task")
		h.checkSpansEndedOnce()
	})
}

func TestPeriodicRunSpanEndsAtAbort(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		release := make(chan struct{})
		h.sup.Every("stuck", time.Minute, func(context.Context) error { <-release; return nil })
		synctest.Wait()
		if err := h.sup.Shutdown(timeout(t, time.Second)); err == nil {
			t.Fatal("Shutdown returned nil, want an AbortError")
		}
		run := h.span("run stuck")
		if run.Status().Code != codes.Error || attrString(run, "taskscope.task.outcome") != "aborted" {
			t.Errorf("run span status %v outcome %s, want Error and aborted", run.Status().Code, attrString(run, "taskscope.task.outcome"))
		}
		ev, ok := eventNamed(run, runtime.KindTaskAborted)
		if !ok || !strings.Contains(eventAttr(ev, "taskscope.task.stack"), "goroutine") {
			t.Errorf("no %s event with the stuck run's stack: %v", runtime.KindTaskAborted, run.Events())
		}
		if got := attrString(run, "taskscope.cancel.cause"); got != "shutdown" {
			t.Errorf("cause %q, want shutdown", got)
		}
		close(release)
		synctest.Wait()
		if n := len(h.spans("run stuck")); n != 1 {
			t.Errorf("%d run spans after the late exit, want 1", n)
		}
		wantMetric(t, h.reg, "taskscope_periodic_runs_total", nil, 1, "the run reported at its late end")
		wantMetric(t, h.reg, "taskscope_tasks_abandoned", nil, 0, "")
		h.checkSpansEndedOnce()
	})
}

// onEvent is an observer that calls f with every event Observe gets.
type onEvent func(runtime.Event)

func (f onEvent) TaskStarting(ctx context.Context, _ runtime.Event) context.Context { return ctx }
func (f onEvent) Observe(_ context.Context, ev runtime.Event)                       { f(ev) }

// TestShutdownSpans shuts down four groups at once, all named "req" (Group
// makes a new child each time, so per-request groups share names), each
// taking a different time with a different number of tasks, and each from
// its own caller's span: every shutdown span must be that caller's child
// and get its own group's counts and duration.
func TestShutdownSpans(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		const n = 4
		var groups [n]*runtime.Group
		for i := range n {
			groups[i] = h.sup.Group("req")
			d := time.Duration(n-i) * time.Second // the first shut down drains last
			for range i + 1 {
				groups[i].Go("w", func(ctx context.Context) error { <-ctx.Done(); time.Sleep(d); return nil })
			}
		}
		var ops [n]trace.Span
		var wg sync.WaitGroup
		for i, g := range groups {
			var ctx context.Context
			ctx, ops[i] = h.tp.Tracer("user").Start(context.Background(), fmt.Sprint("deploy", i))
			wg.Go(func() {
				if err := g.Shutdown(ctx); err != nil {
					t.Error(err)
				}
			})
			time.Sleep(time.Millisecond) // shutdowns start in order
		}
		wg.Wait()
		byParent := make(map[trace.SpanID]sdktrace.ReadOnlySpan)
		for _, s := range h.spans("shutdown app.req") {
			byParent[s.Parent().SpanID()] = s
		}
		for i, op := range ops {
			op.End()
			s := byParent[op.SpanContext().SpanID()]
			if s == nil {
				t.Errorf("no shutdown span is a child of caller %d's span", i)
				continue
			}
			if got, want := attrString(s, "taskscope.shutdown.drained"), fmt.Sprint(i+1); got != want {
				t.Errorf("shutdown %d: drained %s, want %s", i, got, want)
			}
			if got := attrString(s, "taskscope.shutdown.aborted"); got != "0" {
				t.Errorf("shutdown %d: aborted %s, want 0", i, got)
			}
			if got, want := s.EndTime().Sub(s.StartTime()), time.Duration(n-i)*time.Second; got != want {
				t.Errorf("shutdown %d: span lasted %v, want %v", i, got, want)
			}
			if s.Status().Code != codes.Unset {
				t.Errorf("shutdown %d: status %v, want Unset", i, s.Status().Code)
			}
		}
		wantMetric(t, h.reg, "taskscope_group_shutdown_duration_seconds", labels("group", "app.req", "result", "clean"), n, "histogram count")
		h.checkSpansEndedOnce()
	})
}

func TestNotSampledSpansStillEnd(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarnessWith(t, []sdktrace.TracerProviderOption{sdktrace.WithSampler(sdktrace.NeverSample())})
		<-h.sup.Go("x", func(context.Context) error { return errors.New("e") }).Done()
		if n := len(h.sr.Ended()); n != 0 {
			t.Errorf("%d spans recorded with NeverSample", n)
		}
		wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("outcome", "error"), 1, "")
		if found := exemplars(t, h.reg, "taskscope_task_duration_seconds", nil); len(found) > 0 {
			t.Errorf("exemplars %v recorded for an unsampled span", found)
		}
	})
}

// TestNeedsStack: task goroutines grow their stacks early only when
// tracing is on, the one case whose finish path needs more than the first
// stack.
func TestNeedsStack(t *testing.T) {
	for _, tt := range []struct {
		name string
		tp   trace.TracerProvider
		want bool
	}{
		{"tracing off", nil, false},
		{"noop provider", tracenoop.NewTracerProvider(), false},
		{"sdk provider", sdktrace.NewTracerProvider(), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tel, err := telemetry.New(telemetry.WithTracerProvider(tt.tp))
			if err != nil {
				t.Fatal(err)
			}
			if got := tel.NeedsStack(); got != tt.want {
				t.Fatalf("NeedsStack() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSpanStringsAreValidUTF8: names built from raw bytes and error
// messages quoting binary data reach spans as valid UTF-8 (U+FFFD in
// place of bad bytes): OTLP exporters fail a whole batch over one invalid
// string.
func TestSpanStringsAreValidUTF8(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		g := h.sup.Group("in\xffgest")
		<-g.Go("fetch-\xff", func(context.Context) error { return errors.New("bad magic \x89PNG") }).Done()
		<-g.Go("crash-\xff", func(context.Context) error { panic("value \xfe") }).Done()
		canceled := g.Go("cancel-\xff", blockUntilCanceled)
		canceled.Cancel(errors.New("cause \xff"))
		<-canceled.Done()
		<-g.Every("tick-\xff", time.Second, func(context.Context) error { return runtime.ErrStop }).Done()
		release := make(chan struct{})
		g.Go("stuck-\xff", func(context.Context) error { <-release; return nil })
		if err := g.Shutdown(timeout(t, time.Second)); err == nil {
			t.Fatal("Shutdown returned nil, want an AbortError")
		}
		close(release)
		synctest.Wait()
		for _, s := range h.sr.Ended() {
			texts := []string{s.Name(), s.Status().Description}
			for _, kv := range s.Attributes() {
				texts = append(texts, kv.Value.String())
			}
			for _, ev := range s.Events() {
				for _, kv := range ev.Attributes {
					texts = append(texts, kv.Value.String())
				}
			}
			for _, text := range texts {
				if !utf8.ValidString(text) {
					t.Errorf("span %q carries invalid UTF-8: %q", s.Name(), text)
				}
			}
		}
		if n := len(h.sr.Ended()); n < 6 {
			t.Errorf("%d spans ended, want a task, run or shutdown span each", n)
		}
	})
}

// TestSpanNamesFollowTheTaskLabelCap: past the label cap, task and run
// spans are named `task _other` and `run _other`, so that span names stay
// as few as the label's values; the attribute keeps the real name.
// TestShutdownSpanNamesFollowTheGroupLabelCap: shutdown spans are named
// after the capped group label, as task spans after the task label, and
// keep the group's name in taskscope.group; the overflow is counted once
// per group event (a shutdown's cancel_requested and shutdown_finished),
// not once more for the span.
func TestShutdownSpanNamesFollowTheGroupLabelCap(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithMaxLabelValues(3))
		for i := range 20 {
			if err := h.sup.Group(fmt.Sprint("job-", i)).Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		names := map[string]bool{}
		for _, s := range h.sr.Ended() {
			if strings.HasPrefix(s.Name(), "shutdown ") {
				names[s.Name()] = true
			}
		}
		if len(names) > 4 || !names["shutdown _other"] {
			t.Fatalf("shutdown span names %v with a label cap of 3, want at most 3 and shutdown _other", slices.Sorted(maps.Keys(names)))
		}
		if got := attrString(h.spans("shutdown _other")[0], "taskscope.group"); !strings.HasPrefix(got, "app.job-") {
			t.Errorf("folded group: taskscope.group = %q, want the real name", got)
		}
		before := metricValue(t, h.reg, "taskscope_label_overflow_total", labels("label", "group"))
		if err := h.sup.Group("job-x").Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantMetric(t, h.reg, "taskscope_label_overflow_total", labels("label", "group"), before+2, "one folded shutdown: two group events")
	})
}

func TestSpanNamesFollowTheTaskLabelCap(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithMaxLabelValues(10))
		g := h.sup.Group("g")
		for i := range 100 {
			g.Go(fmt.Sprint("fetch-user-", i), func(context.Context) error { return nil })
		}
		<-g.Every("tick", time.Second, func(context.Context) error { return runtime.ErrStop }).Done()
		if err := g.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, s := range h.sr.Ended() {
			names[s.Name()] = true
		}
		if len(names) != 12 {
			t.Errorf("%d distinct span names with a label cap of 10: %v", len(names), slices.Sorted(maps.Keys(names)))
		}
		if got := attrString(h.span("task fetch-user-9"), "taskscope.task.name"); got != "fetch-user-9" {
			t.Errorf("kept name: taskscope.task.name = %q", got)
		}
		folded := h.spans("task _other")
		if len(folded) != 90 {
			t.Fatalf("%d spans named %q, want 90", len(folded), "task _other")
		}
		if got := attrString(folded[0], "taskscope.task.name"); !strings.HasPrefix(got, "fetch-user-") || got == "_other" {
			t.Errorf("folded name: taskscope.task.name = %q, want the real name", got)
		}
		if got := attrString(h.span("run _other"), "taskscope.task.name"); got != "tick" {
			t.Errorf("folded periodic task: taskscope.task.name = %q, want tick", got)
		}
	})
}

// nilErr is a typed-nil error's type: every method of a nil *nilErr
// panics, ErrorType included.
type nilErr struct{ kind string }

func (e *nilErr) Error() string     { return e.kind }
func (e *nilErr) ErrorType() string { return e.kind }

// TestErrorMethodsThatPanic: a task that returns, or is canceled with, a
// typed-nil error whose methods panic is still counted as finished and
// its span still ends, with a placeholder for the error's text.
func TestErrorMethodsThatPanic(t *testing.T) {
	for _, tracing := range []bool{false, true} {
		t.Run(fmt.Sprintf("tracing=%v", tracing), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				var opts []telemetry.Option
				if !tracing {
					opts = append(opts, telemetry.WithTracerProvider(nil))
				}
				h := newHarness(t, opts...)
				<-h.sup.Go("typednil", func(context.Context) error { return (*nilErr)(nil) }).Done()
				canceled := h.sup.Go("nilcause", blockUntilCanceled)
				canceled.Cancel((*nilErr)(nil))
				<-canceled.Done()
				synctest.Wait()
				wantMetric(t, h.reg, "taskscope_tasks_running", nil, 0, "both tasks ended")
				wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("task", "typednil", "outcome", "error", "error_type", "_OTHER"), 1, "")
				wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("task", "nilcause", "outcome", "canceled"), 1, "")
				h.checkSpansEndedOnce()
				if !tracing {
					return
				}
				const placeholder = "<*telemetry_test.nilErr Error() panicked: "
				if got := h.span("task typednil").Status().Description; !strings.HasPrefix(got, placeholder) {
					t.Errorf("status description %q, want the placeholder", got)
				}
				s := h.span("task nilcause")
				ev, _ := eventNamed(s, runtime.KindTaskCancelRequested)
				for _, got := range []string{eventAttr(ev, "taskscope.cancel.message"), attrString(s, "taskscope.cancel.message")} {
					if !strings.HasPrefix(got, placeholder) {
						t.Errorf("cancel message %q, want the placeholder", got)
					}
				}
			})
		})
	}
}

// TestNilSDKProviderTurnsTracingOff: a nil *sdktrace.TracerProvider (a
// provider left unset because tracing is disabled) is off, like nil.
func TestNilSDKProviderTurnsTracingOff(t *testing.T) {
	var tp *sdktrace.TracerProvider
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	if tel.NeedsStack() {
		t.Error("tracing is on with a nil provider")
	}
	sup := runtime.New("app", runtime.WithObserver(tel))
	<-sup.Go("t", func(context.Context) error { return nil }).Done()
}

// TestTracingOffKeepsLongRunningAndPeriodicSpansApart: with telemetry's
// tracing off (an application that traces on its own), a long-running
// task's fn and a periodic task's runs still get no current span from
// their spawner, as with tracing on: the spans they make per message or
// run start traces of their own, not under a span of days ago. A plain
// task keeps its spawner's span.
func TestTracingOffKeepsLongRunningAndPeriodicSpansApart(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithTracerProvider(nil))
		ctx, startup := h.tp.Tracer("user").Start(context.Background(), "startup")
		work := func(name string) func(context.Context) error {
			return func(ctx context.Context) error {
				_, s := h.tp.Tracer("user").Start(ctx, name)
				s.End()
				return nil
			}
		}
		<-h.sup.Go("plain", work("plain work"), runtime.WithParent(ctx)).Done()
		<-h.sup.Go("consumer", work("message"), runtime.LongRunning(), runtime.WithParent(ctx)).Done()
		tick := h.sup.Every("tick", time.Minute, work("run work"), runtime.WithParent(ctx))
		synctest.Wait()
		tick.Cancel(nil)
		<-tick.Done()
		startup.End()
		if p := h.span("plain work").Parent(); p.SpanID() != startup.SpanContext().SpanID() {
			t.Errorf("a plain task's span has parent %v, want its spawner's span", p.SpanID())
		}
		for _, name := range []string{"message", "run work"} {
			if p := h.span(name).Parent(); p.IsValid() {
				t.Errorf("%q has parent %v, want a root", name, p.SpanID())
			}
		}
		if n := len(h.spans("task plain")); n != 0 {
			t.Errorf("%d task spans with tracing off", n)
		}
	})
}
