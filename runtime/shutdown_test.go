package runtime_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

var errLate = errors.New("returned after the abort")

// stuckOnRelease ignores cancellation until release is closed.
func stuckOnRelease(release chan struct{}) func(context.Context) error {
	return func(context.Context) error {
		<-release
		return errLate
	}
}

func TestShutdownCauseWrapsErrClosed(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		var cause error
		sup.Group("g").Go("t", func(ctx context.Context) error {
			<-ctx.Done()
			cause = context.Cause(ctx)
			return nil
		})
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(cause, runtime.ErrClosed) {
			t.Fatalf("cause %v does not wrap ErrClosed", cause)
		}
	})
}

func TestShutdownAbortsStragglers(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		release := make(chan struct{})
		stuck := sup.Group("ingest").Go("stubborn", stuckOnRelease(release))
		polite := sup.Go("polite", blockUntilCanceled)
		start := time.Now()
		err := sup.Shutdown(timeout(t, 100*time.Millisecond))
		if got := time.Since(start); got != 100*time.Millisecond {
			t.Fatalf("Shutdown took %v, want the 100ms deadline", got)
		}
		var ae *runtime.AbortError
		if !errors.As(err, &ae) || len(ae.Aborted) != 1 || ae.Aborted[0].ID != stuck.ID() {
			t.Fatalf("Shutdown = %v, want AbortError listing only the stubborn task", err)
		}
		if s := ae.Aborted[0].Stack; !strings.Contains(s, "stuckOnRelease") || !strings.Contains(s, `"taskscope.task":"stubborn"`) {
			t.Fatalf("straggler stack does not show where it is stuck:\n%s", s)
		}
		if verbose := fmt.Sprintf("%+v", err); !strings.Contains(verbose, "stuckOnRelease") {
			t.Fatalf("%%+v omits the stack: %s", verbose)
		}
		if plain := fmt.Sprintf("%v", err); strings.Contains(plain, "stuckOnRelease") {
			t.Fatalf("%%v should be one line: %s", plain)
		}
		// Every task is done when Shutdown returns; the outcome is aborted.
		for _, task := range []*runtime.Task{stuck, polite} {
			select {
			case <-task.Done():
			default:
				t.Fatalf("task %s not done after Shutdown", task.Name())
			}
		}
		if r := stuck.Result(); r.Outcome != runtime.Aborted || !errors.Is(r.Err, runtime.ErrAborted) {
			t.Fatalf("stuck result %+v", r)
		}
		if polite.Result().Outcome != runtime.Canceled {
			t.Fatalf("polite task outcome %v, want canceled", polite.Result().Outcome)
		}
		if sup.Abandoned() != 1 || len(sup.Active()) != 0 {
			t.Fatalf("Abandoned=%d Active=%v, want 1 and none", sup.Abandoned(), sup.Active())
		}
		if snap := sup.Snapshot(); snap.Abandoned != 1 {
			t.Fatalf("snapshot does not show the abandoned task: %+v", snap)
		}
		want := []string{runtime.KindTaskSpawned, runtime.KindTaskAborted, runtime.KindTaskFinished}
		if got := rec.Kinds(stuck.ID()); !slices.Equal(got, want) {
			t.Fatalf("events before late exit = %v, want %v", got, want)
		}

		close(release)
		synctest.Wait()
		want = append(want, runtime.KindTaskLateExit)
		if got := rec.Kinds(stuck.ID()); !slices.Equal(got, want) {
			t.Fatalf("events after late exit = %v, want %v", got, want)
		}
		late := rec.Events()[len(rec.Events())-1]
		if late.Kind != runtime.KindTaskLateExit || !errors.Is(late.Err, errLate) || late.Outcome != runtime.Aborted {
			t.Fatalf("late exit event %+v, want fn's error and outcome aborted", late)
		}
		if sup.Abandoned() != 0 || stuck.Result().Outcome != runtime.Aborted {
			t.Fatalf("after late exit: Abandoned=%d outcome=%v", sup.Abandoned(), stuck.Result().Outcome)
		}
		if got := rec.Outcomes(); got[runtime.Aborted] != 1 || got[runtime.Canceled] != 1 || len(got) != 2 {
			t.Fatalf("finished outcomes %v, want one aborted and one canceled", got)
		}
		if snap := sup.Snapshot(); snap.Abandoned != 0 || len(snap.Groups) != 0 {
			t.Fatalf("snapshot after late exit: %+v", snap)
		}
	})
}

func TestShutdownWithExpiredContextHasNoGracePeriod(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		release := make(chan struct{})
		stuck := sup.Go("stuck", stuckOnRelease(release))
		ctx := expired()
		start := time.Now()
		var ae *runtime.AbortError
		if err := sup.Shutdown(ctx); !errors.As(err, &ae) || ae.Aborted[0].ID != stuck.ID() {
			t.Fatalf("Shutdown = %v", err)
		}
		if time.Since(start) != 0 {
			t.Fatalf("expired ctx still waited %v", time.Since(start))
		}
		close(release)
	})
}

func TestShutdownIsIdempotent(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		release := make(chan struct{})
		stuck := sup.Go("stuck", stuckOnRelease(release))
		first := make(chan error)
		go func() { first <- sup.Shutdown(timeout(t, time.Second)) }()
		synctest.Wait()
		// A second caller with a shorter deadline gets its own cause and
		// aborts nothing.
		if err := sup.Shutdown(timeout(t, 10*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second Shutdown = %v, want its ctx's DeadlineExceeded", err)
		}
		if len(sup.Active()) != 1 {
			t.Fatal("the second caller's deadline aborted a task")
		}
		err1 := <-first
		var ae *runtime.AbortError
		if !errors.As(err1, &ae) || ae.Aborted[0].ID != stuck.ID() {
			t.Fatalf("first Shutdown = %v", err1)
		}
		if err3 := sup.Shutdown(context.Background()); err3 != err1 {
			t.Fatalf("third Shutdown = %v, want the first result %v", err3, err1)
		}
		close(release)
	})
}

// blockingObserver holds a task's finished event until released, leaving
// the task between "fn returned" and "reported".
type blockingObserver struct {
	task    string
	release chan struct{}
}

func (o *blockingObserver) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return ctx
}

func (o *blockingObserver) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == runtime.KindTaskFinished && ev.Task == o.task {
		<-o.release
	}
}

func TestShutdownNeverAbortsATaskThatIsReporting(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &blockingObserver{task: "reporting", release: make(chan struct{})}
		sup := runtime.New("", runtime.WithObserver(obs))
		task := sup.Go("reporting", func(context.Context) error { return nil })
		synctest.Wait() // fn returned; its finished event is held
		done := make(chan error)
		ctx := expired()
		go func() { done <- sup.Shutdown(ctx) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v while a task was still reporting", err)
		default:
		}
		close(obs.release)
		if err := <-done; err != nil {
			t.Fatalf("Shutdown = %v, want nil: the task had returned", err)
		}
		if task.Result().Outcome != runtime.Success {
			t.Fatalf("outcome %v, want success", task.Result().Outcome)
		}
	})
}

func TestShutdownOfChildLeavesSiblings(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		a, b := sup.Group("a"), sup.Group("b")
		ta := a.Go("t", blockUntilCanceled)
		tb := b.Go("t", blockUntilCanceled)
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-ta.Done()
		select {
		case <-tb.Done():
			t.Fatal("shutting down a stopped its sibling b")
		default:
		}
		if r := a.Go("late", blockUntilCanceled).Result(); !errors.Is(r.Err, runtime.ErrClosed) {
			t.Fatalf("spawn on a shut-down group: %+v", r)
		}
		sup.Cancel(nil)
		mustWait(t, sup)
	})
}

// holdObserver blocks on the first event of kind until released.
type holdObserver struct {
	kind    string
	release chan struct{}
	once    sync.Once
}

func (o *holdObserver) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return ctx
}

func (o *holdObserver) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == o.kind {
		o.once.Do(func() { <-o.release })
	}
}

// TestLateExitFollowsTheAbortEvents returns the abandoned goroutine while
// the abort is still being reported: its late exit must wait for the
// aborted and finished events.
func TestLateExitFollowsTheAbortEvents(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hold := &holdObserver{kind: runtime.KindTaskAborted, release: make(chan struct{})}
		rec := &runtimetest.Recorder{}
		sup := runtime.New("", runtime.WithObserver(hold), runtime.WithObserver(rec))
		release := make(chan struct{})
		task := sup.Go("stuck", stuckOnRelease(release))
		ctx := expired()
		done := make(chan error)
		go func() { done <- sup.Shutdown(ctx) }()
		synctest.Wait() // the abort is being reported, held by the observer
		close(release)
		synctest.Wait() // fn returned during the report
		close(hold.release)
		<-done
		synctest.Wait()
		want := []string{runtime.KindTaskSpawned, runtime.KindTaskAborted, runtime.KindTaskFinished, runtime.KindTaskLateExit}
		if got := rec.Kinds(task.ID()); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
	})
}

// TestSnapshotDuringALateExitAgreesWithItsSeq takes a snapshot while the
// late_exit event of an abandoned task is being delivered (the task is
// still in its group then): the snapshot's Seq is the event's, so the
// snapshot reflects it and shows the task gone, not abandoned. A client
// applying the events after that Seq will not see the late exit again.
func TestSnapshotDuringALateExitAgreesWithItsSeq(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hold := &holdObserver{kind: runtime.KindTaskLateExit, release: make(chan struct{})}
		rec := &runtimetest.Recorder{}
		sup := runtime.New("", runtime.WithObserver(rec), runtime.WithObserver(hold))
		release := make(chan struct{})
		task := sup.Go("stuck", stuckOnRelease(release))
		synctest.Wait() // fn is running: its late exit comes after the Shutdown's events
		mustAbort(t, sup, 1)
		close(release)
		synctest.Wait() // the late_exit event is being delivered, held by the observer
		late := eventsOf(rec, task.ID(), runtime.KindTaskLateExit)
		if len(late) != 1 {
			t.Fatalf("%d late_exit events, want 1 (held)", len(late))
		}
		snap := sup.Snapshot()
		close(hold.release)
		synctest.Wait()
		if snap.Seq != late[0].Seq {
			t.Fatalf("snapshot Seq %d, want the late_exit's %d (no other event since)", snap.Seq, late[0].Seq)
		}
		if snap.Abandoned != 0 || len(snap.Tasks) != 0 {
			t.Errorf("snapshot at the late_exit's Seq shows %d abandoned, tasks %+v; want none", snap.Abandoned, snap.Tasks)
		}
		if n := sup.Abandoned(); n != 0 {
			t.Errorf("Abandoned() = %d after the late exit", n)
		}
	})
}

// TestShutdownStacksOfManyStuckTasks: the profile lists the stack most
// goroutines share first, right after its header; it is that of the
// stragglers when many tasks of one name are stuck in one place, and each
// of them must get it.
func TestShutdownStacksOfManyStuckTasks(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		release := make(chan struct{})
		for range 20 {
			sup.Go("stubborn", stuckOnRelease(release))
		}
		synctest.Wait()
		ae := mustAbort(t, sup, 20)
		close(release)
		synctest.Wait()
		for _, info := range ae.Aborted {
			if !strings.Contains(info.Stack, "stuckOnRelease") {
				t.Fatalf("aborted task %d has no stack (got %q)", info.ID, info.Stack)
			}
		}
	})
}

// TestShutdownReturnsWithEveryTaskDone: when Shutdown returns, each task's
// Done is closed and its Result is final, also while observers are being
// told (readers of Result contend for the task's lock meanwhile).
func TestShutdownReturnsWithEveryTaskDone(t *testing.T) {
	for i := range 1000 {
		sup, _ := recorded()
		start := make(chan struct{})
		task := sup.Go("t", func(context.Context) error { <-start; return nil })
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for !stop.Load() {
					_ = task.Result()
				}
			})
		}
		close(start)
		err := sup.Shutdown(context.Background())
		res := task.Result()
		stop.Store(true)
		wg.Wait()
		if err != nil || res.Outcome == 0 {
			t.Fatalf("iteration %d: Shutdown returned %v with the task's Result %+v, want nil and a final Result", i, err, res)
		}
	}
}

// TestShutdownStacksAreTheGroupsOwn: sibling groups may share a name; the
// stacks an abort reports are those of the aborted group's tasks only.
func TestShutdownStacksAreTheGroupsOwn(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		release := make(chan struct{})
		aborted, other := sup.Group("req"), sup.Group("req")
		aborted.Go("w", stuckOnRelease(release))
		other.Go("w", func(context.Context) error { return stuckElsewhere(release) })
		synctest.Wait()
		ae := mustAbort(t, aborted, 1)
		if s := ae.Aborted[0].Stack; !strings.Contains(s, "stuckOnRelease") || strings.Contains(s, "stuckElsewhere") {
			t.Errorf("the aborted task's stacks include another group's:\n%s", s)
		}
		close(release)
		synctest.Wait()
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

//go:noinline
func stuckElsewhere(release chan struct{}) error {
	<-release
	return nil
}

// TestWaitersSeeAbortedTasksDone: a Wait of the aborted group and a
// Shutdown of its parent, running while the abort is being reported,
// return only once the aborted task is done (its finished event delivered,
// Done closed). The observer holds the aborted event.
func TestWaitersSeeAbortedTasksDone(t *testing.T) {
	tests := []struct {
		name string
		wait func(sup *runtime.Supervisor, g *runtime.Group) error
	}{
		{"Wait", func(_ *runtime.Supervisor, g *runtime.Group) error { return g.Wait(context.Background()) }},
		{"parent Shutdown", func(sup *runtime.Supervisor, _ *runtime.Group) error { return sup.Shutdown(context.Background()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				gate := &gateObserver{kind: runtime.KindTaskAborted, reached: make(chan struct{}), release: make(chan struct{})}
				sup := runtime.New("", runtime.WithObserver(gate))
				g := sup.Group("g")
				release := make(chan struct{})
				task := g.Go("stuck", stuckOnRelease(release))
				synctest.Wait()
				expired := expired()
				go func() { _ = g.Shutdown(expired) }()
				<-gate.reached // the abort is delivering the aborted event
				waited := make(chan bool, 1)
				go func() {
					err := tt.wait(sup, g)
					select {
					case <-task.Done():
						waited <- err == nil
					default:
						waited <- false
					}
				}()
				synctest.Wait()
				close(gate.release)
				if !<-waited {
					t.Error("it returned with the aborted task not done")
				}
				close(release)
				synctest.Wait()
			})
		})
	}
}

// gateObserver holds the first event of kind until release is closed,
// after closing reached.
type gateObserver struct {
	kind             string
	once             sync.Once
	reached, release chan struct{}
}

func (o *gateObserver) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return ctx
}

func (o *gateObserver) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == o.kind {
		o.once.Do(func() {
			close(o.reached)
			<-o.release
		})
	}
}

// TestShutdownDrainedExcludesTasksAbortedByAChild: a task aborted by a
// concurrent Shutdown of a child group did not return in time; the
// ancestor's shutdown_finished event must not count it as drained.
func TestShutdownDrainedExcludesTasksAbortedByAChild(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		child := sup.Group("child")
		release := make(chan struct{})
		child.Go("stuck", func(context.Context) error { <-release; return nil })
		synctest.Wait()

		parentDone := make(chan error, 1)
		go func() { parentDone <- sup.Shutdown(timeout(t, time.Hour)) }()
		synctest.Wait() // the parent's Shutdown waits for the subtree
		mustAbort(t, child, 1)
		if err := <-parentDone; err != nil {
			t.Fatalf("parent Shutdown: %v", err)
		}
		close(release)
		synctest.Wait()
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindGroupShutdownDone && ev.Group == sup.Name() {
				if ev.Drained != 0 {
					t.Fatalf("parent shutdown_finished: drained %d, aborted %d; the only task was aborted by the child's shutdown, not drained", ev.Drained, ev.Aborted)
				}
			}
		}
	})
}

// TestSnapshotAfterShutdownStartedShowsClosed: a Snapshot whose Seq is at
// or after a shutdown_started event shows the subtree closed: a client
// following the stream from that Seq never sees the event.
func TestSnapshotAfterShutdownStartedShowsClosed(t *testing.T) {
	bubble(t, func(t *testing.T) {
		started := make(chan uint64)
		release := make(chan struct{})
		hold := observeFunc(func(_ context.Context, ev runtime.Event) {
			if ev.Kind == runtime.KindGroupShutdownStarted {
				started <- ev.Seq
				<-release
			}
		})
		sup := runtime.New("svc", runtime.WithObserver(hold))
		g := sup.Group("g")
		g.Go("t", blockUntilCanceled)
		done := make(chan error)
		go func() { done <- g.Shutdown(t.Context()) }()
		seq := <-started
		snap := sup.Snapshot()
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if gs := snap.Groups[0]; snap.Seq >= seq && !gs.Closed {
			t.Errorf("snapshot Seq %d (shutdown_started has %d) shows %s open", snap.Seq, seq, gs.Name)
		}
	})
}

// TestShutdownDrainedExcludesTasksFinishedBefore: a task that returned
// before the shutdown, and whose finished event came first, was not
// drained by it, even if it was still in its group (between its finished
// event and its retirement) when the shutdown closed the group.
func TestShutdownDrainedExcludesTasksFinishedBefore(t *testing.T) {
	bubble(t, func(t *testing.T) {
		reached, release := make(chan struct{}), make(chan struct{})
		hold := observeFunc(func(_ context.Context, ev runtime.Event) {
			if ev.Kind == runtime.KindTaskFinished {
				close(reached)
				<-release
			}
		})
		sup, rec := recorded(runtime.WithObserver(hold))
		g := sup.Group("g")
		g.Go("t", func(context.Context) error { return nil })
		<-reached // finished is delivered; the task is not retired yet
		done := make(chan error)
		go func() { done <- g.Shutdown(t.Context()) }()
		synctest.Wait() // the shutdown has closed the group and waits
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindGroupShutdownDone && ev.Drained != 0 {
				t.Errorf("shutdown_finished: drained %d; the only task had finished before", ev.Drained)
			}
		}
	})
}

// TestTimeoutErrorsMatchTheirCause: Shutdown's *AbortError and Wait's
// *TimeoutError match the context's cause with errors.Is, as
// http.Server.Shutdown's ctx.Err() does, and the AbortError ErrAborted.
func TestTimeoutErrorsMatchTheirCause(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		release := make(chan struct{})
		sup.Go("stuck", func(context.Context) error { <-release; return nil })
		defer close(release)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		werr := sup.Wait(ctx)
		var te *runtime.TimeoutError
		if !errors.As(werr, &te) || !errors.Is(werr, context.DeadlineExceeded) {
			t.Errorf("Wait = %v: want a *TimeoutError matching context.DeadlineExceeded", werr)
		}

		ctx, cancel = context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		serr := sup.Shutdown(ctx)
		var ae *runtime.AbortError
		if !errors.As(serr, &ae) || !errors.Is(serr, context.DeadlineExceeded) || !errors.Is(serr, runtime.ErrAborted) {
			t.Errorf("Shutdown = %v: want an *AbortError matching context.DeadlineExceeded and ErrAborted", serr)
		}
		if errors.Is(serr, context.Canceled) {
			t.Errorf("Shutdown = %v matches context.Canceled", serr)
		}

		// A context's own cause, not its Err, is what they carry.
		errDeploy := errors.New("deploy window over")
		ctx, cancel = context.WithTimeoutCause(t.Context(), time.Second, errDeploy)
		defer cancel()
		sup2 := runtime.New("")
		sup2.Go("stuck", func(context.Context) error { <-release; return nil })
		if werr := sup2.Wait(ctx); !errors.As(werr, &te) || te.Cause != errDeploy || !errors.Is(werr, errDeploy) {
			t.Errorf("Wait = %v: want a *TimeoutError with Cause %v", werr, errDeploy)
		}
		if serr := sup2.Shutdown(ctx); !errors.As(serr, &ae) || ae.Cause != errDeploy || !errors.Is(serr, errDeploy) {
			t.Errorf("Shutdown = %v: want an *AbortError with Cause %v", serr, errDeploy)
		}
	})
}

// TestTaskAbortedBeforeItStartedNeverRuns: a task aborted before its
// goroutine ran fn (spawned just before a Shutdown with no grace period)
// never runs fn, and a periodic task never starts a run then: fn starting
// after the Shutdown that listed it returned would use what the service
// has since closed. Its late exit carries no error (Event.Err is what fn
// returned); an Every task's used to carry the shutdown's cause.
func TestTaskAbortedBeforeItStartedNeverRuns(t *testing.T) {
	spawners := map[string]func(sup *runtime.Supervisor, fn func(context.Context) error) *runtime.Task{
		"Go": func(sup *runtime.Supervisor, fn func(context.Context) error) *runtime.Task {
			return sup.Go("late-start", fn)
		},
		"Every": func(sup *runtime.Supervisor, fn func(context.Context) error) *runtime.Task {
			return sup.Every("late-start", time.Hour, fn)
		},
	}
	// One P: the new goroutine runs only once the test's blocks, which
	// Go, Every and a Shutdown with no grace period do not.
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(1))
	for name, spawn := range spawners {
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				for range 20 {
					sup, rec := recorded()
					var ran atomic.Bool
					task := spawn(sup, func(context.Context) error { ran.Store(true); return nil })
					mustAbort(t, sup, 1)
					synctest.Wait()
					if ran.Load() {
						t.Fatal("fn ran after the Shutdown that aborted its task returned")
					}
					want := []string{runtime.KindTaskSpawned, runtime.KindTaskAborted, runtime.KindTaskFinished, runtime.KindTaskLateExit}
					if got := rec.Kinds(task.ID()); !slices.Equal(got, want) {
						t.Fatalf("events %v, want %v", got, want)
					}
					if late := eventsOf(rec, task.ID(), runtime.KindTaskLateExit); late[0].Err != nil {
						t.Fatalf("late_exit Err = %v: fn never ran", late[0].Err)
					}
					if n := sup.Abandoned(); n != 0 {
						t.Fatalf("Abandoned() = %d after the goroutine ended", n)
					}
				}
			})
		})
	}
}

// TestRejectedSpawnCarriesItsCause: the spawned event of a task rejected
// by a closed group carries the rejection as its cause (its Result.Cause),
// also while the shutdown's first event is being told, when the group is
// closed but not canceled yet.
func TestRejectedSpawnCarriesItsCause(t *testing.T) {
	for _, during := range []bool{false, true} {
		rec := &runtimetest.Recorder{}
		started, release := make(chan struct{}), make(chan struct{})
		gate := observeFunc(func(_ context.Context, ev runtime.Event) {
			if during && ev.Kind == runtime.KindGroupShutdownStarted {
				close(started)
				<-release
			}
		})
		sup := runtime.New("app", runtime.WithObserver(gate), runtime.WithObserver(rec))
		done := make(chan error)
		go func() { done <- sup.Shutdown(context.Background()) }()
		if during {
			<-started
		} else if err := <-done; err != nil {
			t.Fatal(err)
		}
		task := sup.Go("late", func(context.Context) error { return nil })
		if during {
			close(release)
			<-done
		}
		spawned := eventsOf(rec, task.ID(), runtime.KindTaskSpawned)
		if len(spawned) != 1 || !spawned[0].Rejected || !errors.Is(spawned[0].Cause, runtime.ErrClosed) || spawned[0].Cause != task.Result().Cause {
			t.Errorf("during the shutdown's first event %v: spawned events %+v, want one, rejected, with the task's Result.Cause %v", during, spawned, task.Result().Cause)
		}
	}
}

// TestErrorAgesAreAsOfTheError: the ages an AbortError and a TimeoutError
// print are those at the abort or the timeout, however late the error is
// printed, and however long the shutdown then waited for tasks that were
// still being reported.
func TestErrorAgesAreAsOfTheError(t *testing.T) {
	bubble(t, func(t *testing.T) {
		slow := observeFunc(func(_ context.Context, ev runtime.Event) {
			if ev.Kind == runtime.KindTaskFinished && ev.Task == "reporting" {
				time.Sleep(time.Hour)
			}
		})
		sup := runtime.New("app", runtime.WithObserver(slow))
		g := sup.Group("g")
		release := make(chan struct{})
		g.Go("stuck", stuckOnRelease(release))
		g.Go("reporting", func(context.Context) error { time.Sleep(1500 * time.Millisecond); return nil })
		time.Sleep(time.Second)
		werr := g.Wait(timeout(t, time.Second))
		ae := mustAbort(t, g, 1) // at 2s, while "reporting" is told of for an hour
		time.Sleep(time.Hour)
		for _, err := range []error{werr, ae} {
			if msg := err.Error(); !strings.Contains(msg, "(age 2s)") {
				t.Errorf("an hour later: %q, want the age at the error, 2s", msg)
			}
		}
		close(release)
		synctest.Wait()
	})
}
