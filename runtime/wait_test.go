package runtime_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

func TestWaitIdleWithDeadContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		task := sup.Go("t", func(context.Context) error { return nil })
		<-task.Done()
		ctx := expired()
		if err := sup.Wait(ctx); err != nil {
			t.Fatalf("Wait on an idle group with a dead ctx = %v, want nil", err)
		}
	})
}

func TestWaitIncludesDescendants(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		release := make(chan struct{})
		deep := sup.Group("a").Group("b").Group("c")
		task := deep.Go("deep", func(context.Context) error { <-release; return nil })
		var te *runtime.TimeoutError
		start := time.Now()
		err := sup.Wait(timeout(t, time.Second))
		if !errors.As(err, &te) || len(te.Active) != 1 || te.Active[0].ID != task.ID() || te.Active[0].Group != "runtime.a.b.c" {
			t.Fatalf("Wait = %v, want TimeoutError naming the deep task", err)
		}
		if time.Since(start) != time.Second {
			t.Fatalf("Wait returned after %v, want the ctx's 1s", time.Since(start))
		}
		if age := te.Active[0].Started; !age.Equal(start) {
			t.Fatalf("TaskInfo.Started = %v, want %v", age, start)
		}
		if rec.Count(runtime.KindGroupWaitTimedOut) != 1 {
			t.Fatal("no wait_timed_out event")
		}
		select {
		case <-task.Done():
			t.Fatal("Wait canceled the task")
		default:
		}
		close(release)
		mustWait(t, sup)
		if a := sup.Active(); len(a) != 0 {
			t.Fatalf("Active after Wait = %v", a)
		}
	})
}

func TestWaitReturnsWhenLastTaskEnds(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		g := sup.Group("g")
		for i := range 10 {
			d := time.Duration(i) * time.Millisecond
			g.Go("sleeper", func(ctx context.Context) error {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
				return nil
			})
		}
		start := time.Now()
		mustWait(t, sup)
		if got := time.Since(start); got != 9*time.Millisecond {
			t.Fatalf("Wait took %v, want 9ms (the longest task)", got)
		}
	})
}

// TestActiveIsInTreeOrder: Active lists the subtree depth first, a group's
// tasks before its children's, as Snapshot nests them (and so do a Wait's
// TimeoutError and a Shutdown's AbortError).
func TestActiveIsInTreeOrder(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("app")
		a := sup.Group("a")
		a1 := a.Group("a1")
		b := sup.Group("b")
		b.Go("tb", blockUntilCanceled)
		a1.Go("ta1", blockUntilCanceled)
		a.Go("ta", blockUntilCanceled)
		sup.Go("root", blockUntilCanceled)
		var got []string
		for _, ti := range sup.Active() {
			got = append(got, ti.Name)
		}
		if want := []string{"root", "ta", "ta1", "tb"}; !slices.Equal(got, want) {
			t.Errorf("Active order %v, want %v", got, want)
		}
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWaitTimeoutListsTasksStillReporting: a task whose fn has returned
// but whose finished event is still being delivered (a slow observer)
// keeps Wait waiting, so a Wait that times out then must name it.
func TestWaitTimeoutListsTasksStillReporting(t *testing.T) {
	bubble(t, func(t *testing.T) {
		slow, release := holding(runtime.KindTaskFinished)
		sup := runtime.New("app", runtime.WithObserver(slow))
		task := sup.Go("reporting", func(context.Context) error { return nil })
		wantTimeoutNaming(t, sup.Wait(timeout(t, time.Second)), task, runtime.Running)
		if active := sup.Active(); len(active) != 1 {
			t.Errorf("Active = %v, want the task still reporting", active)
		}
		close(release)
		<-task.Done()
		if active := sup.Active(); len(active) != 0 {
			t.Errorf("Active after Done = %v, want none", active)
		}
	})
}

// TestWaitTimeoutListsTasksBeingAborted: a task aborted at a shutdown
// deadline keeps its group busy until the abort has delivered its events;
// a Wait that times out meanwhile names it, as abandoned.
func TestWaitTimeoutListsTasksBeingAborted(t *testing.T) {
	bubble(t, func(t *testing.T) {
		slow, release := holding(runtime.KindTaskAborted)
		sup := runtime.New("app", runtime.WithObserver(slow))
		g := sup.Group("g")
		stuck := g.Go("stuck", func(context.Context) error { time.Sleep(time.Hour); return nil })
		go func() { _ = g.Shutdown(expired()) }()
		time.Sleep(time.Millisecond)
		wantTimeoutNaming(t, sup.Wait(timeout(t, time.Second)), stuck, runtime.Abandoned)
		close(release)
		mustWait(t, sup)
		if active := sup.Active(); len(active) != 0 {
			t.Errorf("Active once the abort has reported = %v, want none", active)
		}
		time.Sleep(2 * time.Hour) // the abandoned goroutine returns
	})
}

// holding returns an observer that holds every event of kind until release
// is closed: a slow observer.
func holding(kind string) (o runtime.Observer, release chan struct{}) {
	release = make(chan struct{})
	return observeFunc(func(_ context.Context, ev runtime.Event) {
		if ev.Kind == kind {
			<-release
		}
	}), release
}

// wantTimeoutNaming checks that err is a TimeoutError listing task alone,
// in state.
func wantTimeoutNaming(t *testing.T, err error, task *runtime.Task, state runtime.TaskState) {
	t.Helper()
	var te *runtime.TimeoutError
	if !errors.As(err, &te) || len(te.Active) != 1 || te.Active[0].ID != task.ID() || te.Active[0].State != state {
		t.Errorf("Wait = %v, want a TimeoutError naming task %d as %v", err, task.ID(), state)
	}
}

// TestWaitEndedByCancelIsNoTimeout: a Wait whose context was canceled (a
// request whose client left) did not time out: its error says "canceled"
// and its event is at info; a Wait whose deadline passed says "timed out"
// at warn, even when the deadline carries a cause of its own. All are
// *TimeoutError, unwrapping to the cause.
func TestWaitEndedByCancelIsNoTimeout(t *testing.T) {
	errBudget := errors.New("request budget spent")
	tests := []struct {
		name  string
		ctx   func(t *testing.T) context.Context
		cause error
		text  string
		level string
	}{
		{"deadline", func(t *testing.T) context.Context { return timeout(t, time.Second) }, context.DeadlineExceeded, "wait timed out", "WARN"},
		{"canceled", func(*testing.T) context.Context { return expired() }, context.Canceled, "wait canceled", "INFO"},
		// Past its deadline, whatever cause the deadline carries.
		{"deadline with a cause", func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errBudget)
			t.Cleanup(cancel)
			return ctx
		}, errBudget, "wait timed out", "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				sup, rec := recorded()
				release := make(chan struct{})
				sup.Go("slow", func(context.Context) error { <-release; return nil })
				err := sup.Wait(tt.ctx(t))
				close(release)
				mustWait(t, sup)
				var te *runtime.TimeoutError
				if !errors.As(err, &te) || !errors.Is(err, tt.cause) || !strings.Contains(err.Error(), tt.text+" with 1 active task(s)") {
					t.Errorf("Wait = %v, want a *TimeoutError saying %q, wrapping %v", err, tt.text, tt.cause)
				}
				for _, ev := range rec.Events() {
					if ev.Kind == runtime.KindGroupWaitTimedOut && ev.Level().String() != tt.level {
						t.Errorf("wait_timed_out event at %v, want %s", ev.Level(), tt.level)
					}
				}
				if rec.Count(runtime.KindGroupWaitTimedOut) != 1 {
					t.Errorf("%d wait_timed_out events, want 1", rec.Count(runtime.KindGroupWaitTimedOut))
				}
			})
		})
	}
}
