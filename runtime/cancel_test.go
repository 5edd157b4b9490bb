package runtime_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// TestCancelCause checks each source of cancellation and the cause that
// context.Cause reports inside fn.
func TestCancelCause(t *testing.T) {
	errGroup := errors.New("group says stop")
	errTask := errors.New("task says stop")
	errExt := errors.New("request gone")
	tests := []struct {
		name   string
		cancel func(sup *runtime.Supervisor, g *runtime.Group, task *runtime.Task, ext context.CancelCauseFunc)
		want   error
	}{
		{"group", func(_ *runtime.Supervisor, g *runtime.Group, _ *runtime.Task, _ context.CancelCauseFunc) {
			g.Cancel(errGroup)
		}, errGroup},
		{"parent group", func(sup *runtime.Supervisor, _ *runtime.Group, _ *runtime.Task, _ context.CancelCauseFunc) {
			sup.Cancel(errGroup)
		}, errGroup},
		{"task", func(_ *runtime.Supervisor, _ *runtime.Group, task *runtime.Task, _ context.CancelCauseFunc) {
			task.Cancel(errTask)
		}, errTask},
		{"task nil cause", func(_ *runtime.Supervisor, _ *runtime.Group, task *runtime.Task, _ context.CancelCauseFunc) {
			task.Cancel(nil)
		}, context.Canceled},
		{"external", func(_ *runtime.Supervisor, _ *runtime.Group, _ *runtime.Task, ext context.CancelCauseFunc) {
			ext(errExt)
		}, errExt},
		{"shutdown", func(sup *runtime.Supervisor, _ *runtime.Group, _ *runtime.Task, _ context.CancelCauseFunc) {
			go sup.Shutdown(context.Background())
		}, runtime.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				sup := runtime.New("")
				g := sup.Group("g")
				extCtx, ext := context.WithCancelCause(context.Background())
				defer ext(nil)
				var cause error
				task := g.Go("t", func(ctx context.Context) error {
					<-ctx.Done()
					cause = context.Cause(ctx)
					return nil
				}, runtime.WithCancelOn(extCtx))
				sibling := sup.Group("sibling").Go("s", blockUntilCanceled)
				tt.cancel(sup, g, task, ext)
				<-task.Done()
				if !errors.Is(cause, tt.want) {
					t.Fatalf("context.Cause in fn = %v, want %v", cause, tt.want)
				}
				if r := task.Result(); r.Outcome != runtime.Canceled || !errors.Is(r.Cause, tt.want) {
					t.Fatalf("Result = %+v, want canceled with cause %v", r, tt.want)
				}
				if tt.name == "external" && !errors.Is(cause, runtime.ErrExternal) {
					t.Fatalf("external cause %v does not wrap ErrExternal", cause)
				}
				if kind := runtime.CauseKind(cause); kind == "" {
					t.Fatalf("CauseKind(%v) empty", cause)
				}
				// Only the canceled subtree stops.
				siblingStopped := tt.name == "parent group" || tt.name == "shutdown"
				select {
				case <-sibling.Done():
					if !siblingStopped {
						t.Fatalf("%s cancellation reached a sibling group", tt.name)
					}
				default:
					if siblingStopped {
						<-sibling.Done() // canceled, still returning
					}
				}
				sup.Cancel(nil)
				mustWait(t, sup)
			})
		})
	}
}

func TestCancelAlreadyCanceledExternalContext(t *testing.T) {
	for _, opts := range [][]runtime.Option{nil, {runtime.WithObserver(&runtimetest.Recorder{})}} {
		testCancelAlreadyCanceledExternalContext(t, opts)
	}
}

func testCancelAlreadyCanceledExternalContext(t *testing.T, opts []runtime.Option) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("", opts...)
		ext := expired()
		var sawDone bool
		task := sup.Go("t", func(ctx context.Context) error {
			sawDone = ctx.Err() != nil
			return nil
		}, runtime.WithCancelOn(ext))
		<-task.Done()
		if !sawDone || task.Result().Outcome != runtime.Canceled {
			t.Fatalf("task with a done WithCancelOn context: sawDone=%v outcome=%v", sawDone, task.Result().Outcome)
		}
	})
}

// TestWithCancelOnSeveral: each WithCancelOn context cancels the task, not
// only the last one given.
func TestWithCancelOnSeveral(t *testing.T) {
	for which := range 2 {
		bubble(t, func(t *testing.T) {
			sup := runtime.New("")
			exts := make([]context.Context, 2)
			cancels := make([]context.CancelFunc, 2)
			for i := range exts {
				exts[i], cancels[i] = context.WithCancel(t.Context())
				defer cancels[i]()
			}
			task := sup.Go("t", blockUntilCanceled, runtime.WithCancelOn(exts[0]), runtime.WithCancelOn(exts[1]))
			synctest.Wait()
			cancels[which]()
			<-task.Done()
			if res := task.Result(); res.Outcome != runtime.Canceled || !errors.Is(res.Cause, runtime.ErrExternal) {
				t.Fatalf("canceling WithCancelOn context %d: outcome %v, cause %v", which, res.Outcome, res.Cause)
			}
		})
	}
}

func TestCauseKind(t *testing.T) {
	tests := []struct {
		cause error
		want  string
	}{
		{nil, ""},
		{runtime.ErrClosed, "shutdown"},
		{&runtime.TaskError{Err: errors.New("x")}, "fail_fast"},
		{runtime.ErrExternal, "external"},
		{context.DeadlineExceeded, "deadline"},
		{context.Canceled, "canceled"},
		{errors.New("mine"), "custom"},
		// In CauseKind's order: external, then fail_fast, then shutdown.
		{fmt.Errorf("%w: %w", runtime.ErrExternal, fmt.Errorf("group x shut down: %w", runtime.ErrClosed)), "external"},
		{&runtime.TaskError{Err: fmt.Errorf("spawn: %w", runtime.ErrClosed)}, "fail_fast"},
		// Typed-nil causes whose methods errors.Is and errors.As call
		// dereference their receiver.
		{(*nilIsError)(nil), "custom"},
		{fmt.Errorf("wrapped: %w", (*nilUnwrapError)(nil)), "custom"},
		// A check that panics does not hide the ones that match.
		{&runtime.TaskError{Err: (*nilUnwrapError)(nil)}, "fail_fast"},
	}
	for _, tt := range tests {
		if got := runtime.CauseKind(tt.cause); got != tt.want {
			t.Errorf("CauseKind(%v) = %q, want %q", tt.cause, got, tt.want)
		}
	}
}

// TestCancelLatency: the finished event's CancelLatency runs from the first
// cancel request that reached the task to fn's return, and for a task
// spawned into a group canceled earlier, from its spawn.
func TestCancelLatency(t *testing.T) {
	const want = 2 * time.Second // fn's time from seeing ctx done to returning
	exitLate := func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(want)
		return ctx.Err()
	}
	// cancel requests the cancellation an hour after the spawn, or, with
	// before, an hour before it.
	tests := []struct {
		name   string
		before bool
		cancel func(sup *runtime.Supervisor, g *runtime.Group, task *runtime.Task)
	}{
		{"own cancel", false, func(_ *runtime.Supervisor, _ *runtime.Group, task *runtime.Task) { task.Cancel(nil) }},
		{"group cancel", false, func(_ *runtime.Supervisor, g *runtime.Group, _ *runtime.Task) { g.Cancel(nil) }},
		{"ancestor cancel", false, func(sup *runtime.Supervisor, _ *runtime.Group, _ *runtime.Task) { sup.Cancel(nil) }},
		{"spawned into a canceled group", true, func(_ *runtime.Supervisor, g *runtime.Group, _ *runtime.Task) { g.Cancel(nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				sup, rec := recorded()
				g := sup.Group("g")
				var task *runtime.Task
				if tt.before {
					tt.cancel(sup, g, nil)
					time.Sleep(time.Hour)
					task = g.Go("t", exitLate)
				} else {
					task = g.Go("t", exitLate)
					time.Sleep(time.Hour)
					tt.cancel(sup, g, task)
				}
				<-task.Done()
				finished := eventsOf(rec, task.ID(), runtime.KindTaskFinished)
				if len(finished) != 1 {
					t.Fatalf("%d finished events, want 1", len(finished))
				}
				if ev := finished[0]; ev.Outcome != runtime.Canceled || ev.CancelLatency != want {
					t.Errorf("finished %v, CancelLatency %v; want canceled, %v", ev.Outcome, ev.CancelLatency, want)
				}
			})
		})
	}
}

// TestCancelLatencyOfALateExit: a task that ignores its context past a
// shutdown deadline gets its cancel latency on the late_exit event, from
// the first request that reached it to its goroutine's actual return, not
// cut off at the abort.
func TestCancelLatencyOfALateExit(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		const want = 20 * time.Second
		task := sup.Go("deaf", func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(want) // ignores the cancellation
			return nil
		})
		time.Sleep(time.Hour)
		task.Cancel(nil) // the first request
		time.Sleep(5 * time.Second)
		mustAbort(t, sup, 1)
		time.Sleep(time.Minute)
		synctest.Wait()
		late := eventsOf(rec, task.ID(), runtime.KindTaskLateExit)
		if len(late) != 1 {
			t.Fatalf("%d late_exit events, want 1", len(late))
		}
		if ev := late[0]; ev.CancelLatency != want || ev.Cause == nil {
			t.Errorf("late exit CancelLatency %v, cause %v; want %v and the cause", ev.CancelLatency, ev.Cause, want)
		}
	})
}

// TestLateExitErrors: a late exit carries what fn returned, and the stack
// of a panic; nothing on that path calls the methods of fn's error (it
// runs after fn, where a panic in one, a typed nil's, ends the process).
func TestLateExitErrors(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		release := make(chan struct{})
		typedNil := sup.Go("typed-nil", func(context.Context) error {
			<-release
			return (*nilUnwrapError)(nil)
		})
		panicking := sup.Go("panicking", func(context.Context) error {
			<-release
			panic("late")
		})
		synctest.Wait() // both stuck in fn
		mustAbort(t, sup, 2)
		close(release)
		synctest.Wait()
		late := map[uint64]runtime.Event{}
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskLateExit {
				late[ev.TaskID] = ev
			}
		}
		if ev := late[typedNil.ID()]; ev.Err != error((*nilUnwrapError)(nil)) || ev.Stack != nil {
			t.Errorf("typed-nil late exit: err %#v, stack %q; want the typed nil, no stack", ev.Err, ev.Stack)
		}
		if ev := late[panicking.ID()]; !strings.Contains(string(ev.Stack), "panic") {
			t.Errorf("panicking late exit: err %v, stack %q; want the panic's stack", ev.Err, ev.Stack)
		}
	})
}

// TestTaskContextEndsWithTheTask: once fn has returned, its context is
// done, so that goroutines fn started with it stop; the cause is
// ErrTaskEnded unless something canceled the task before.
func TestTaskContextEndsWithTheTask(t *testing.T) {
	errStop := errors.New("stop")
	tests := []struct {
		name      string
		fn        func(ctx context.Context) error
		cancel    func(g *runtime.Group, task *runtime.Task)
		wantCause error
	}{
		{"never looked at its context", func(context.Context) error { return nil }, nil, runtime.ErrTaskEnded},
		{"waited on Done", func(ctx context.Context) error {
			select {
			case <-ctx.Done():
			default:
			}
			return nil
		}, nil, runtime.ErrTaskEnded},
		{"canceled", blockUntilCanceled, func(_ *runtime.Group, task *runtime.Task) { task.Cancel(errStop) }, errStop},
		{"group canceled, polled Err", func(ctx context.Context) error {
			for ctx.Err() == nil {
				time.Sleep(time.Second)
			}
			return nil
		}, func(g *runtime.Group, _ *runtime.Task) { g.Cancel(errStop) }, errStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				sup := runtime.New("")
				g := sup.Group("g")
				ctxs := make(chan context.Context, 1)
				task := g.Go("t", func(ctx context.Context) error { ctxs <- ctx; return tt.fn(ctx) })
				ctx := <-ctxs
				if tt.cancel != nil {
					synctest.Wait()
					tt.cancel(g, task)
				}
				<-task.Done()
				select {
				case <-ctx.Done():
				default:
					t.Fatal("the task's context is not done after the task ended")
				}
				if !errors.Is(ctx.Err(), context.Canceled) || context.Cause(ctx) != tt.wantCause {
					t.Errorf("Err %v, Cause %v; want Canceled, %v", ctx.Err(), context.Cause(ctx), tt.wantCause)
				}
			})
		})
	}
}

// TestEndedContextKeepsItsCause: a task's context ended with ErrTaskEnded
// keeps that cause when its group is canceled later, even if nobody looked
// at the context before.
func TestEndedContextKeepsItsCause(t *testing.T) {
	sup := runtime.New("")
	ctxs := make(chan context.Context, 1)
	<-sup.Go("t", func(ctx context.Context) error { ctxs <- ctx; return nil }).Done()
	sup.Cancel(errors.New("canceled after the task ended"))
	if cause := context.Cause(<-ctxs); cause != runtime.ErrTaskEnded {
		t.Errorf("Cause = %v, want ErrTaskEnded", cause)
	}
}

// TestEndingTaskIsNotShownCanceling: canceling the context of a task that
// returned (its children's cancel functions run then, which takes a while
// with many) never makes Active or Snapshot show it as canceling.
func TestEndingTaskIsNotShownCanceling(t *testing.T) {
	for _, observed := range []bool{false, true} {
		t.Run(fmt.Sprint("observed=", observed), func(t *testing.T) {
			var opts []runtime.Option
			if observed {
				opts = append(opts, runtime.WithObserver(&runtimetest.Recorder{}))
			}
			sup := runtime.New("", opts...)
			returning := make(chan struct{})
			task := sup.Go("t", func(ctx context.Context) error {
				cancels := make([]context.CancelFunc, 20_000) // called when the task ends, by its context
				for i := range cancels {
					_, cancels[i] = context.WithCancel(ctx)
				}
				close(returning)
				return nil
			})
			<-returning
			for {
				select {
				case <-task.Done():
					return
				default:
				}
				infos := sup.Active()
				if observed {
					infos = sup.Snapshot().Tasks
				}
				for _, info := range infos {
					if info.State == runtime.Canceling {
						t.Fatalf("a task nobody canceled is shown %v", info.State)
					}
				}
			}
		})
	}
}

// TestFinishedTasksLeaveNoContextBehind: a task whose fn registered work
// on its context (here context.AfterFunc, which also makes the task's own
// context, a child of the group's) must not leave it reachable from a
// long-lived group once the task ended: the task's context ends with it,
// running the work and letting go of it. Weak pointers tell what the
// garbage collector could free.
func TestFinishedTasksLeaveNoContextBehind(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		g := sup.Group("long-lived")
		const n = 100
		held := make([]weak.Pointer[[64]byte], n)
		var ran atomic.Int64
		for i := range n {
			g.Go("t", func(ctx context.Context) error {
				p := new([64]byte)
				held[i] = weak.Make(p)
				context.AfterFunc(ctx, func() { ran.Add(1); goruntime.KeepAlive(p) })
				return nil
			})
		}
		mustWait(t, g)
		synctest.Wait() // the AfterFunc goroutines the ends started
		goruntime.GC()
		goruntime.GC()
		kept := 0
		for _, w := range held {
			if w.Value() != nil {
				kept++
			}
		}
		if ran.Load() != n || kept != 0 {
			t.Errorf("after %d tasks ended: %d AfterFuncs ran, %d of their closures still reachable from the group", n, ran.Load(), kept)
		}
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSpawnedIntoCanceledGroupSaysSo: the spawned event of a task whose
// context is done from the start carries the cause, so that a consumer
// (the task page) shows it canceling without guessing from the group.
func TestSpawnedIntoCanceledGroupSaysSo(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		stop := errors.New("stop")
		g := sup.Group("g")
		live := g.Go("live", blockUntilCanceled)
		g.Cancel(stop)
		late := g.Go("late", blockUntilCanceled)
		<-live.Done()
		<-late.Done()
		for _, ev := range rec.Events() {
			if ev.Kind != runtime.KindTaskSpawned {
				continue
			}
			if want := map[uint64]error{late.ID(): stop}[ev.TaskID]; ev.Cause != want {
				t.Errorf("spawned event of task %s: Cause %v, want %v", ev.Task, ev.Cause, want)
			}
		}
	})
}

// TestSnapshotShowsEndingTasksRunning: a Snapshot taken while many tasks
// return nil still shows those whose finished events come after its Seq
// as running, not canceling, though their contexts have ended.
func TestSnapshotShowsEndingTasksRunning(t *testing.T) {
	for round := range 10 {
		sup, _ := recorded()
		release := make(chan struct{})
		for range 2000 {
			sup.Go("w", func(context.Context) error { <-release; return nil })
		}
		stop := make(chan struct{})
		canceling := make(chan int, 1)
		go func() {
			defer close(canceling)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s := sup.Snapshot(); s.Canceling > 0 {
					canceling <- s.Canceling
					return
				}
			}
		}()
		close(release)
		mustWait(t, sup)
		close(stop)
		if n, ok := <-canceling; ok {
			t.Fatalf("round %d: a Snapshot shows %d tasks canceling; none was canceled", round, n)
		}
	}
}
