package diagnostics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

type typedErr struct{}

func (typedErr) Error() string     { return "connection refused" }
func (typedErr) ErrorType() string { return "conn_refused" }

// TestLogObserverRecords checks level, message and attributes per kind and
// outcome against the shared vocabulary (runtime's kinds, outcomes, keys).
func TestLogObserverRecords(t *testing.T) {
	task := runtime.Event{Seq: 9, Group: "runtime.ingest", Task: "fetch", TaskID: 7, Function: "example.com/pkg.fetch"}
	with := func(f func(*runtime.Event)) runtime.Event { ev := task; f(&ev); return ev }
	stack := []byte("goroutine 7 [running]:\nexample.com/pkg.fetch()\n")
	closed := fmt.Errorf("group shut down: %w", runtime.ErrClosed)
	aborted := &runtime.AbortError{Group: "runtime", Aborted: []runtime.TaskInfo{{Group: "runtime.ingest", Name: "fetch", ID: 7, Stack: string(stack)}}}

	tests := []struct {
		name    string
		ev      runtime.Event
		level   slog.Level
		msg     string
		want    map[string]any // attribute → value (compared as strings, int64 for the id)
		without []string       // attributes that must be absent
	}{
		{"spawned", with(func(e *runtime.Event) { e.Kind = runtime.KindTaskSpawned }),
			slog.LevelDebug, "task spawned",
			map[string]any{"event": runtime.KindTaskSpawned, "taskscope.group": "runtime.ingest", "taskscope.task.name": "fetch", "taskscope.task.id": int64(7), "code.function.name": "example.com/pkg.fetch"},
			[]string{"taskscope.task.outcome", "error.type", "error", "duration"}},
		{"success", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Duration = runtime.KindTaskFinished, runtime.Success, 2*time.Second
		}),
			slog.LevelDebug, "task finished",
			map[string]any{"taskscope.task.outcome": "success", "duration": "2s"},
			[]string{"error.type", "error", "taskscope.cancel.cause", "taskscope.task.rejected"}},
		{"rejected", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Cause, e.Rejected = runtime.KindTaskFinished, runtime.Canceled, closed, closed, true
		}), slog.LevelInfo, "task canceled",
			map[string]any{"taskscope.task.outcome": "canceled", "taskscope.task.rejected": "true", "taskscope.cancel.cause": "shutdown"},
			[]string{"duration", "taskscope.cancel.latency"}},
		{"canceled, returned its cause", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Cause = runtime.KindTaskFinished, runtime.Canceled, closed, closed
		}), slog.LevelInfo, "task canceled",
			map[string]any{"taskscope.cancel.message": closed.Error()}, []string{"error"}},
		{"canceled, returned something else", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Cause = runtime.KindTaskFinished, runtime.Canceled, fmt.Errorf("fetch: %w", closed), closed
		}), slog.LevelInfo, "task canceled",
			map[string]any{"taskscope.cancel.message": closed.Error(), "error": "fetch: " + closed.Error()}, nil},
		{"error", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err = runtime.KindTaskFinished, runtime.Error, errors.New("boom")
		}),
			slog.LevelWarn, "task failed",
			map[string]any{"taskscope.task.outcome": "error", "error.type": "*errors.errorString", "error": "boom"}, nil},
		{"deadline", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err = runtime.KindTaskFinished, runtime.Error, fmt.Errorf("call: %w", context.DeadlineExceeded)
		}), slog.LevelWarn, "task failed", map[string]any{"error.type": "deadline_exceeded"}, nil},
		{"typed", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err = runtime.KindTaskFinished, runtime.Error, fmt.Errorf("dial: %w", typedErr{})
		}),
			slog.LevelWarn, "task failed", map[string]any{"error.type": "conn_refused"}, nil},
		{"canceled", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Cause, e.CancelLatency = runtime.KindTaskFinished, runtime.Canceled, context.Canceled, closed, 5*time.Millisecond
		}), slog.LevelInfo, "task canceled",
			map[string]any{"taskscope.task.outcome": "canceled", "taskscope.cancel.cause": "shutdown", "taskscope.cancel.message": closed.Error(), "taskscope.cancel.latency": "5ms"},
			[]string{"error.type"}},
		{"panic", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Stack = runtime.KindTaskFinished, runtime.Panic, &runtime.PanicError{Value: "kaboom", Stack: stack}, stack
		}), slog.LevelError, "task panicked",
			map[string]any{"taskscope.task.outcome": "panic", "error.type": "panic", "exception.type": "string", "exception.message": "kaboom", "exception.stacktrace": string(stack)},
			[]string{"error", "taskscope.task.stack"}},
		{"aborted", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Stack = runtime.KindTaskAborted, runtime.Aborted, runtime.ErrAborted, stack
		}), slog.LevelWarn, "task abandoned at shutdown deadline",
			map[string]any{"taskscope.task.outcome": "aborted", "error.type": "aborted", "error": runtime.ErrAborted.Error(), "taskscope.task.stack": string(stack)},
			[]string{"exception.stacktrace"}},
		// The aborted record above has the stack: the finished one that
		// follows it, and the shutdown's, do not repeat it.
		{"finished aborted", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Stack = runtime.KindTaskFinished, runtime.Aborted, runtime.ErrAborted, stack
		}), slog.LevelWarn, "task aborted",
			map[string]any{"taskscope.task.outcome": "aborted", "error": runtime.ErrAborted.Error()},
			[]string{"taskscope.task.stack", "exception.stacktrace"}},
		{"cancel requested", with(func(e *runtime.Event) {
			e.Kind, e.Err, e.Cause = runtime.KindTaskCancelRequested, context.Canceled, context.Canceled
		}),
			slog.LevelInfo, "task cancel requested",
			map[string]any{"taskscope.cancel.cause": "canceled"}, []string{"error", "error.type"}},
		{"run failed", with(func(e *runtime.Event) {
			e.Kind, e.Outcome, e.Err, e.Run, e.Interval = runtime.KindTaskRunFinished, runtime.Error, errors.New("scrape"), 3, time.Minute
		}), slog.LevelWarn, "periodic run failed",
			map[string]any{"taskscope.task.run": int64(3), "taskscope.task.interval": "1m0s", "error": "scrape"}, nil},
		{"shutdown aborted", runtime.Event{Kind: runtime.KindGroupShutdownDone, Group: "runtime", Drained: 2, Aborted: 1, Duration: time.Second, Err: aborted},
			slog.LevelWarn, "group shutdown aborted tasks",
			map[string]any{"taskscope.group": "runtime", "taskscope.shutdown.drained": int64(2), "taskscope.shutdown.aborted": int64(1), "error": aborted.Error()},
			[]string{"taskscope.task.id", "taskscope.task.name"}},
		// A wait whose context was canceled (its client left) did not
		// time out.
		{"wait timed out", runtime.Event{Kind: runtime.KindGroupWaitTimedOut, Group: "runtime", Cause: context.DeadlineExceeded, Err: &runtime.TimeoutError{Group: "runtime", Cause: context.DeadlineExceeded}},
			slog.LevelWarn, "group wait timed out", map[string]any{"taskscope.cancel.cause": "deadline"}, nil},
		{"wait canceled", runtime.Event{Kind: runtime.KindGroupWaitTimedOut, Group: "runtime", Cause: context.Canceled, Err: &runtime.TimeoutError{Group: "runtime", Cause: context.Canceled}},
			slog.LevelInfo, "group wait canceled", map[string]any{"taskscope.cancel.cause": "canceled"}, nil},
		{"group cancel", runtime.Event{Kind: runtime.KindGroupCancelRequested, Group: "runtime", Err: context.Canceled, Cause: context.Canceled},
			slog.LevelInfo, "group cancel requested", map[string]any{"taskscope.cancel.cause": "canceled"}, []string{"taskscope.task.id"}},
		// A lag notice, as a subscription yields it (logged by an application
		// that feeds its subscription's events to a LogObserver): the missed
		// count under the vocabulary's key, not only inside the error text.
		{"stream lagged", runtime.Event{Kind: diagnostics.KindStreamLagged, Err: &diagnostics.LaggedError{Missed: 12}},
			slog.LevelWarn, "stream subscriber lagged", map[string]any{"taskscope.stream.missed": uint64(12)}, []string{"taskscope.task.id", "error.type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{level: slog.LevelDebug}
			publish(diagnostics.NewLogObserver(slog.New(rec)), tt.ev)
			recs := rec.records()
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			r := recs[0]
			if r.Level != tt.level || r.Message != tt.msg {
				t.Errorf("record = %v %q, want %v %q", r.Level, r.Message, tt.level, tt.msg)
			}
			got := attrs(r)
			if got["event"].String() != tt.ev.Kind {
				t.Errorf("event = %q, want %q", got["event"], tt.ev.Kind)
			}
			for k, want := range tt.want {
				v, ok := got[k]
				switch w := want.(type) {
				case int64:
					if !ok || v.Kind() != slog.KindInt64 || v.Int64() != w {
						t.Errorf("%s = %v (%v), want int64 %d", k, v, v.Kind(), w)
					}
				case string:
					if !ok || v.String() != w {
						t.Errorf("%s = %q, want %q", k, v, w)
					}
				}
			}
			for _, k := range tt.without {
				if v, ok := got[k]; ok {
					t.Errorf("unexpected %s = %v", k, v)
				}
			}
		})
	}
}

// TestLogObserverStackOnce: slog's text handler prints an error value
// with %+v, which for a shutdown's *runtime.AbortError adds every aborted
// task's stack. A task aborted at a shutdown deadline has three records
// (aborted, finished, the group's shutdown_finished); its stack must be on
// one, the aborted one.
func TestLogObserverStackOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		log := diagnostics.NewLogObserver(slog.New(slog.NewTextHandler(&out, nil)))
		sup := runtime.New("svc", runtime.WithObserver(log))
		release := make(chan struct{})
		sup.Go("stuck", func(context.Context) error { <-release; return nil })
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := sup.Shutdown(ctx); !errors.Is(err, runtime.ErrAborted) {
			t.Fatalf("Shutdown = %v, want an abort", err)
		}
		close(release)
		synctest.Wait() // the late exit
		wantStackOnce(t, out.String(), runtime.KindTaskAborted)
	})
}

// TestLogObserverPeriodicPanicStackOnce: a periodic task's panic is on
// the record of the run that panicked; the task's finished record, which
// follows it, names the panic without repeating its stack.
func TestLogObserverPeriodicPanicStackOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		log := diagnostics.NewLogObserver(slog.New(slog.NewTextHandler(&out, nil)))
		sup := runtime.New("svc", runtime.WithObserver(log))
		<-sup.Every("job", time.Minute, func(context.Context) error { panic("kaboom") }).Done()
		wantStackOnce(t, out.String(), runtime.KindTaskRunFinished)
		if !strings.Contains(out.String(), "event="+runtime.KindTaskFinished) || strings.Count(out.String(), "exception.message=kaboom") != 2 {
			t.Errorf("want the run's and the task's records to name the panic:\n%s", out.String())
		}
	})
}

// wantStackOnce checks that exactly one record of text handler output
// holds a stack of this file, and that it is an event of kind.
func wantStackOnce(t *testing.T, out, kind string) {
	t.Helper()
	frames := 0
	for line := range strings.Lines(out) {
		if n := strings.Count(line, "log_test.go:"); n > 0 {
			frames++
			if !strings.Contains(line, "event="+kind) {
				t.Errorf("a stack in a record other than the %s one:\n%s", kind, line)
			}
		}
	}
	if frames != 1 {
		t.Errorf("%d records with the stack, want 1:\n%s", frames, out)
	}
}

// TestLogObserverSupervisor runs real tasks: the spawned event, which
// arrives through TaskStarting, is logged like the others, and a panic is
// logged at error with its stack.
func TestLogObserverSupervisor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{level: slog.LevelDebug}
		sup := runtime.New("svc", runtime.WithObserver(diagnostics.NewLogObserver(slog.New(rec))))
		ok := sup.Go("ok", func(context.Context) error { return nil })
		bad := sup.Go("bad", func(context.Context) error { panic("kaboom") })
		if err := sup.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		spawned := rec.byKind(runtime.KindTaskSpawned)
		if len(spawned) != 2 {
			t.Fatalf("%d spawned records, want 2", len(spawned))
		}
		for _, r := range spawned {
			if a := attrs(r); r.Level != slog.LevelDebug || a["taskscope.group"].String() != "svc" || a["taskscope.group.id"].Int64() != int64(sup.ID()) {
				t.Errorf("spawned record %v %v", r.Level, a)
			}
		}
		for _, r := range rec.byKind(runtime.KindTaskFinished) {
			a := attrs(r)
			switch id := uint64(a["taskscope.task.id"].Int64()); id {
			case ok.ID():
				if r.Level != slog.LevelDebug || a["taskscope.task.outcome"].String() != "success" {
					t.Errorf("ok: %v %v", r.Level, a)
				}
			case bad.ID():
				if r.Level != slog.LevelError || a["taskscope.task.outcome"].String() != "panic" ||
					!strings.Contains(a["exception.stacktrace"].String(), "TestLogObserverSupervisor") {
					t.Errorf("bad: %v %v", r.Level, a)
				}
			default:
				t.Errorf("finished record for unknown task %d", id)
			}
		}
	})
}

type spanKey struct{}

func TestLogObserverTraceIDs(t *testing.T) {
	lookup := func(ctx context.Context) (string, string, bool) {
		s, ok := ctx.Value(spanKey{}).(string)
		return "trace-" + s, "span-" + s, ok
	}
	rec := &recorder{level: slog.LevelDebug}
	obs := diagnostics.NewLogObserver(slog.New(rec), diagnostics.WithTraceIDs(lookup))
	ev := runtime.Event{Kind: runtime.KindTaskFinished, Group: "g", Task: "t", TaskID: 1, Outcome: runtime.Success}

	if got := obs.TaskStarting(context.WithValue(context.Background(), spanKey{}, "a"), ev); got.Value(spanKey{}) != "a" {
		t.Error("TaskStarting changed the context")
	}
	obs.Observe(context.Background(), ev) // no span: no ids
	recs := rec.records()
	if a := attrs(recs[0]); a["trace_id"].String() != "trace-a" || a["span_id"].String() != "span-a" {
		t.Errorf("with span: %v", a)
	}
	if a := attrs(recs[1]); a["trace_id"].Any() != nil || a["span_id"].Any() != nil {
		t.Errorf("without span: %v", a)
	}
}

// TestLogObserverDisabledAllocs: a disabled level costs no allocation and
// builds nothing (the trace lookup is not even called).
func TestLogObserverDisabledAllocs(t *testing.T) {
	called := 0
	lookup := func(context.Context) (string, string, bool) { called++; return "", "", false }
	var lv slog.LevelVar
	lv.Set(slog.LevelInfo)
	h := slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: &lv})
	var obs runtime.Observer = diagnostics.NewLogObserver(slog.New(h), diagnostics.WithTraceIDs(lookup))
	ctx := context.Background()
	fin := runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Group: "runtime.ingest", Task: "fetch", TaskID: 7, Outcome: runtime.Success, Duration: time.Millisecond}
	spawn := runtime.Event{Seq: 1, Kind: runtime.KindTaskSpawned, Group: "runtime.ingest", Task: "fetch", TaskID: 7}

	observe := testing.AllocsPerRun(1000, func() { obs.Observe(ctx, fin) })
	starting := testing.AllocsPerRun(1000, func() { obs.TaskStarting(ctx, spawn) })
	t.Logf("allocs per disabled record: Observe %v, TaskStarting %v", observe, starting)
	if observe != 0 || starting != 0 {
		t.Errorf("disabled level allocates: Observe %v, TaskStarting %v", observe, starting)
	}
	if called != 0 {
		t.Errorf("trace lookup called %d times for disabled records", called)
	}

	// WithMinLevel: the logger enables debug, the observer skips it.
	lv.Set(slog.LevelDebug)
	rec := &recorder{level: slog.LevelDebug}
	floor := diagnostics.NewLogObserver(slog.New(rec), diagnostics.WithMinLevel(slog.LevelInfo))
	if n := testing.AllocsPerRun(1000, func() { floor.Observe(ctx, fin) }); n != 0 {
		t.Errorf("below WithMinLevel: %v allocs", n)
	}
	floor.Observe(ctx, runtime.Event{Kind: runtime.KindTaskFinished, Outcome: runtime.Canceled})
	if n := len(rec.records()); n != 1 {
		t.Errorf("WithMinLevel(info): %d records, want only the canceled one", n)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestLogObserverNilLogger(t *testing.T) {
	rec := &recorder{level: slog.LevelDebug}
	old := slog.Default()
	slog.SetDefault(slog.New(rec))
	defer slog.SetDefault(old)
	publish(diagnostics.NewLogObserver(nil), runtime.Event{Kind: runtime.KindGroupShutdownStarted, Group: "runtime"})
	if n := len(rec.records()); n != 1 {
		t.Errorf("nil logger: %d records on slog.Default(), want 1", n)
	}
}

func BenchmarkLogObserver(b *testing.B) {
	ev := runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Group: "runtime.ingest", Task: "fetch", TaskID: 7, Outcome: runtime.Success, Duration: time.Millisecond}
	ctx := context.Background()
	for _, lvl := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		b.Run("handler="+lvl.String(), func(b *testing.B) {
			obs := diagnostics.NewLogObserver(slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: lvl})))
			b.ReportAllocs()
			for b.Loop() {
				obs.Observe(ctx, ev)
			}
		})
	}
}

// TestLogObserverCapsPayloads: errors, causes, panic values and stacks are
// cut to the caps, so that one huge error cannot write a megabyte line; an
// error within the cap reaches the handler as it is, and a cut one still
// unwraps to its chain.
func TestLogObserverCapsPayloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxMessage, maxStack = 100, 300
		const mark = len(" …[truncated 1234567 bytes]")
		long := strings.Repeat("x", 10_000)
		rec := &recorder{level: slog.LevelDebug}
		log := diagnostics.NewLogObserver(slog.New(rec), diagnostics.WithMaxMessage(maxMessage), diagnostics.WithMaxStack(maxStack))
		sup := runtime.New("svc", runtime.WithObserver(log))
		short := sup.Go("short", func(context.Context) error { return typedErr{} })
		sup.Go("long", func(context.Context) error { return fmt.Errorf("%s: %w", long, typedErr{}) })
		sup.Go("panics", func(context.Context) error { panic(long) })
		canceled := sup.Go("canceled", func(ctx context.Context) error { <-ctx.Done(); return nil })
		release := make(chan struct{})
		sup.Go("stuck", func(context.Context) error { <-release; return nil })
		synctest.Wait()
		canceled.Cancel(errors.New(long))
		<-canceled.Done()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := sup.Shutdown(ctx); !errors.Is(err, runtime.ErrAborted) {
			t.Fatalf("Shutdown = %v, want an abort", err)
		}
		close(release)
		synctest.Wait()

		cut := map[string]int{} // attribute key → records with a cut value
		for _, r := range rec.records() {
			for k, v := range attrs(r) {
				s, limit := v.String(), maxStack
				if err, ok := v.Any().(error); ok {
					s, limit = err.Error(), maxMessage
					if k == "error" && strings.HasPrefix(s, "xxx") && !errors.As(err, new(typedErr)) {
						t.Errorf("%s: the cut error no longer unwraps to its chain", k)
					}
				}
				if len(s) > limit+mark {
					t.Errorf("%s record: %s is %d bytes, cap %d", r.Message, k, len(s), limit)
				}
				if strings.Contains(s, "…[truncated ") {
					cut[k]++
				}
			}
		}
		for _, k := range []string{"error", "exception.message", "exception.stacktrace", "taskscope.cancel.message", "taskscope.task.stack"} {
			if cut[k] == 0 {
				t.Errorf("no record has a cut %s (cut: %v)", k, cut)
			}
		}
		for _, r := range rec.byKind(runtime.KindTaskFinished) {
			if a := attrs(r); a["taskscope.task.id"].Int64() == int64(short.ID()) && a["error"].Any() != error(typedErr{}) {
				t.Errorf("an error within the cap reached the handler as %#v", a["error"].Any())
			}
		}
	})
}
