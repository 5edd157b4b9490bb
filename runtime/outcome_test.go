package runtime_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

func panicsWithBoom(context.Context) error { panic("boom") }

func TestOutcomes(t *testing.T) {
	errWork := errors.New("work failed")
	tests := []struct {
		name    string
		fn      func(ctx context.Context) error
		cancel  bool // cancel the task before releasing it
		every   bool // holds for an Every task too (whose loop only ends so)
		want    runtime.Outcome
		wantErr error
	}{
		{"nil is success", func(context.Context) error { return nil }, false, false, runtime.Success, nil},
		{"error is error", func(context.Context) error { return errWork }, false, false, runtime.Error, errWork},
		{"canceled, returned nil", func(ctx context.Context) error { <-ctx.Done(); return nil }, true, true, runtime.Canceled, nil},
		{"canceled, returned error", func(ctx context.Context) error { <-ctx.Done(); return errWork }, true, true, runtime.Canceled, errWork},
		{"canceled, returned ctx.Err", blockUntilCanceled, true, true, runtime.Canceled, context.Canceled},
		{"Goexit is error", func(context.Context) error { goruntime.Goexit(); return nil }, false, true, runtime.Error, runtime.ErrGoexit},
	}
	spawners := []struct {
		name  string
		spawn func(g *runtime.Supervisor, fn func(context.Context) error) *runtime.Task
	}{
		{"Go", func(g *runtime.Supervisor, fn func(context.Context) error) *runtime.Task { return g.Go("t", fn) }},
		{"Every", func(g *runtime.Supervisor, fn func(context.Context) error) *runtime.Task {
			return g.Every("t", time.Hour, fn)
		}},
	}
	// With and without an observer: unobserved tasks keep their result in
	// fewer places (the error out of line), and must report the same.
	for _, observed := range []bool{true, false} {
		for _, sp := range spawners {
			for _, tt := range tests {
				if sp.name == "Every" && !tt.every {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/observed=%v", tt.name, sp.name, observed), func(t *testing.T) {
					bubble(t, func(t *testing.T) {
						testOutcome(t, observed, sp.spawn, tt.fn, tt.cancel, tt.want, tt.wantErr)
					})
				})
			}
		}
	}
}

func testOutcome(t *testing.T, observed bool, spawn func(*runtime.Supervisor, func(context.Context) error) *runtime.Task,
	fn func(context.Context) error, cancel bool, want runtime.Outcome, wantErr error) {
	sup, rec := recorded()
	if !observed {
		sup = runtime.New("")
	}
	task := spawn(sup, fn)
	if cancel {
		task.Cancel(nil)
	}
	<-task.Done()
	r := task.Result()
	if r.Outcome != want || !errors.Is(r.Err, wantErr) || (wantErr == nil && r.Err != nil) {
		t.Fatalf("Result = %+v, want outcome %v err %v", r, want, wantErr)
	}
	if (r.Cause != nil) != cancel {
		t.Fatalf("Result.Cause = %v, want set iff canceled", r.Cause)
	}
	if got := rec.Outcomes(); observed && (len(got) != 1 || got[want] != 1) {
		t.Fatalf("finished events by outcome = %v, want exactly one %v", got, want)
	}
	if fin := eventsOf(rec, task.ID(), runtime.KindTaskFinished); observed && (len(fin) != 1 || fin[0].Err != r.Err) {
		t.Fatalf("finished events %+v, want one with Err %v, as Result", fin, r.Err)
	}
}

func TestPanicOutcomeCarriesValueAndStack(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		task := sup.Go("p", panicsWithBoom)
		<-task.Done()
		// Reported at once: the finished event precedes Done, no Wait needed.
		var fin runtime.Event
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskFinished {
				fin = ev
			}
		}
		var pe *runtime.PanicError
		if r := task.Result(); r.Outcome != runtime.Panic || !errors.As(r.Err, &pe) {
			t.Fatalf("Result = %+v, want panic with *PanicError", r)
		}
		if pe.Value != "boom" || !strings.Contains(string(pe.Stack), "panicsWithBoom") {
			t.Fatalf("PanicError value %v, stack missing the panic site:\n%s", pe.Value, pe.Stack)
		}
		// As Go prints a panic: the goroutine, then the panic call, then
		// the panic site; not the frames of the recovery.
		lines := strings.Split(string(pe.Stack), "\n")
		if len(lines) < 4 || !strings.HasPrefix(lines[0], "goroutine ") || !strings.HasPrefix(lines[1], "panic(") ||
			!strings.Contains(lines[3], "panicsWithBoom") || strings.Contains(string(pe.Stack), "exitAbnormally") {
			t.Errorf("panic stack does not start at the panic:\n%s", pe.Stack)
		}
		if fin.Outcome != runtime.Panic || !strings.Contains(string(fin.Stack), "panicsWithBoom") {
			t.Fatalf("finished event %+v lacks the panic stack", fin)
		}
		if !strings.Contains(pe.Error(), "panicsWithBoom") {
			t.Fatal("PanicError.Error() omits the stack")
		}
	})
}

func TestPanicErrorUnwrapsErrorValues(t *testing.T) {
	bubble(t, func(t *testing.T) {
		errValue := errors.New("panic value")
		task := runtime.New("").Go("p", func(context.Context) error { panic(errValue) })
		<-task.Done()
		if !errors.Is(task.Result().Err, errValue) {
			t.Fatalf("errors.Is(PanicError, value) false for %v", task.Result().Err)
		}
	})
}

func TestPanicWhileCanceledIsStillPanic(t *testing.T) {
	bubble(t, func(t *testing.T) {
		task := runtime.New("").Go("p", func(ctx context.Context) error { <-ctx.Done(); panic("late") })
		task.Cancel(nil)
		<-task.Done()
		if o := task.Result().Outcome; o != runtime.Panic {
			t.Fatalf("outcome %v, want panic: a panic is never hidden as a cancellation", o)
		}
	})
}

func TestOutcomeStrings(t *testing.T) {
	want := map[runtime.Outcome]string{
		runtime.Success: "success", runtime.Error: "error", runtime.Canceled: "canceled",
		runtime.Panic: "panic", runtime.Aborted: "aborted", 0: "none",
	}
	for o, s := range want {
		if o.String() != s {
			t.Errorf("%d.String() = %q, want %q", o, o.String(), s)
		}
	}
}

func TestPanicPolicyStrings(t *testing.T) {
	for p, s := range map[runtime.PanicPolicy]string{runtime.Recover: "recover", runtime.Crash: "crash", 7: "PanicPolicy(7)"} {
		if got := fmt.Sprint(p); got != s {
			t.Errorf("PanicPolicy %d prints %q, want %q", int(p), got, s)
		}
	}
}
