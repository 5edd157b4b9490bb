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

func TestEveryFixedDelay(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		start := time.Now()
		var at []time.Duration
		errRun := errors.New("run failed")
		task := sup.Every("tick", 10*time.Millisecond, func(ctx context.Context) error {
			at = append(at, time.Since(start))
			time.Sleep(3 * time.Millisecond) // the run's own work, in bubble time
			switch len(at) {
			case 2:
				return errRun // reported, loop goes on
			case 4:
				return runtime.ErrStop
			}
			return nil
		})
		<-task.Done()
		want := []time.Duration{0, 13 * time.Millisecond, 26 * time.Millisecond, 39 * time.Millisecond}
		if len(at) != len(want) {
			t.Fatalf("runs at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Fatalf("runs at %v, want %v (run at once, then interval after each run ends)", at, want)
			}
		}
		if r := task.Result(); r.Outcome != runtime.Success || r.Err != nil {
			t.Fatalf("ErrStop result %+v, want success", r)
		}
		var outcomes []runtime.Outcome
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskRunFinished {
				outcomes = append(outcomes, ev.Outcome)
				if ev.Outcome == runtime.Error && !errors.Is(ev.Err, errRun) {
					t.Fatalf("run error event carries %v", ev.Err)
				}
				if ev.Duration != 3*time.Millisecond {
					t.Fatalf("run duration %v, want 3ms", ev.Duration)
				}
			}
		}
		wantOutcomes := []runtime.Outcome{runtime.Success, runtime.Error, runtime.Success, runtime.Success}
		if len(outcomes) != 4 || outcomes[1] != runtime.Error || outcomes[0] != wantOutcomes[0] || outcomes[3] != runtime.Success {
			t.Fatalf("run outcomes %v, want %v", outcomes, wantOutcomes)
		}
		if rec.Count(runtime.KindTaskRunStarted) != 4 {
			t.Fatalf("%d run_started events, want 4", rec.Count(runtime.KindTaskRunStarted))
		}
	})
}

func TestEveryCancelMidWaitIsPrompt(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		task := sup.Every("tick", time.Hour, func(context.Context) error { return nil })
		synctest.Wait() // first run done, now waiting an hour
		start := time.Now()
		task.Cancel(nil)
		<-task.Done()
		if time.Since(start) != 0 || task.Result().Outcome != runtime.Canceled {
			t.Fatalf("cancel mid-wait took %v, outcome %v", time.Since(start), task.Result().Outcome)
		}
	})
}

// TestEveryStartsNoRunAfterCancel: once Cancel has taken effect, no
// further run starts, also when the next run fell due at the same moment
// and the wait saw the timer rather than the cancellation. Both events are
// delivered under the task's lock, so their order in the recorder is the
// order in which they happened.
func TestEveryStartsNoRunAfterCancel(t *testing.T) {
	for range 200 {
		bubble(t, func(t *testing.T) {
			sup, rec := recorded()
			task := sup.Every("tick", time.Second, func(context.Context) error { return nil })
			go func() {
				time.Sleep(time.Second) // as the second run falls due
				task.Cancel(nil)
			}()
			<-task.Done()
			kinds := rec.Kinds(task.ID())
			if i := slices.Index(kinds, runtime.KindTaskCancelRequested); i < 0 || slices.Contains(kinds[i:], runtime.KindTaskRunStarted) {
				t.Fatalf("events %v: a run started after the cancel request", kinds)
			}
		})
	}
}

// TestEveryCanceledRunSaysWhy: a run canceled mid-way reports the cause on
// its run_finished event, as a task's finished event does, so that its run
// span and log record say why.
func TestEveryCanceledRunSaysWhy(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		stop := errors.New("operator said stop")
		task := sup.Every("tick", time.Hour, blockUntilCanceled)
		synctest.Wait() // in the first run
		task.Cancel(stop)
		<-task.Done()
		var run *runtime.Event
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskRunFinished {
				run = &ev
			}
		}
		if run == nil || run.Outcome != runtime.Canceled || !errors.Is(run.Cause, stop) {
			t.Fatalf("run_finished %+v: want outcome canceled with the cancel's cause", run)
		}

		// A run stuck past a shutdown deadline: aborted, because of the
		// shutdown.
		release := make(chan struct{})
		defer close(release)
		stuck := sup.Every("stuck", time.Hour, func(context.Context) error { <-release; return nil })
		synctest.Wait()
		_ = sup.Shutdown(expired())
		run = nil
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskRunFinished && ev.TaskID == stuck.ID() {
				run = &ev
			}
		}
		if run == nil || run.Outcome != runtime.Aborted || !errors.Is(run.Cause, runtime.ErrClosed) {
			t.Fatalf("run_finished %+v: want outcome aborted with the shutdown's cause", run)
		}
	})
}

func TestEveryPanicEndsTheLoop(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		runs := 0
		task := sup.Every("tick", time.Millisecond, func(context.Context) error {
			runs++
			if runs == 3 {
				panic("third run")
			}
			return nil
		})
		<-task.Done()
		if runs != 3 || task.Result().Outcome != runtime.Panic {
			t.Fatalf("runs=%d outcome=%v, want 3 and panic", runs, task.Result().Outcome)
		}
		last := runtime.Event{}
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskRunFinished {
				last = ev
			}
		}
		if last.Run != 3 || last.Outcome != runtime.Panic || len(last.Stack) == 0 {
			t.Fatalf("last run event %+v, want run 3 ending in panic with a stack", last)
		}
	})
}

// runCtxObserver hands each run a context value naming its run number.
type runCtxObserver struct{}

type runKey struct{}

func (runCtxObserver) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	if ev.Kind == runtime.KindTaskRunStarted {
		return context.WithValue(ctx, runKey{}, ev.Run)
	}
	return ctx
}
func (runCtxObserver) Observe(context.Context, runtime.Event) {}

func TestEveryRunContextComesFromObservers(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("", runtime.WithObserver(runCtxObserver{}))
		var seen []uint64
		task := sup.Every("tick", time.Millisecond, func(ctx context.Context) error {
			seen = append(seen, ctx.Value(runKey{}).(uint64))
			if len(seen) == 3 {
				return runtime.ErrStop
			}
			return nil
		})
		<-task.Done()
		if len(seen) != 3 || seen[0] != 1 || seen[2] != 3 {
			t.Fatalf("runs saw %v, want [1 2 3]", seen)
		}
	})
}

func TestEveryBadInterval(t *testing.T) {
	sup := runtime.New("")
	for _, d := range []time.Duration{0, -time.Second} {
		expectPanic(t, "non-positive interval", func() { sup.Every("x", d, func(context.Context) error { return nil }) })
	}
	expectPanic(t, `Every("x") with nil function`, func() { sup.Every("x", time.Second, nil) })
}

func TestEveryAbortedMidRunEndsTheRunOnce(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		release := make(chan struct{})
		start := time.Now()
		task := sup.Every("stuck", time.Second, func(context.Context) error { <-release; return nil })
		ctx := expired()
		synctest.Wait()
		time.Sleep(time.Minute)
		var ae *runtime.AbortError
		if err := sup.Shutdown(ctx); !errors.As(err, &ae) {
			t.Fatalf("Shutdown with an expired context: %v, want the run aborted", err)
		}
		// The AbortError says since when the run was stuck.
		if got := ae.Aborted[0].RunStarted; !got.Equal(start) {
			t.Errorf("the aborted task's RunStarted %v, want the stuck run's start %v", got, start)
		}
		// The abort ended the run: it is the last run, aborted, in the
		// AbortError and in snapshots while the task is abandoned.
		aborted := runtime.RunResult{Run: 1, Outcome: runtime.Aborted, Err: runtime.ErrAborted, Ended: start.Add(time.Minute), Duration: time.Minute}
		snap := sup.Snapshot()
		if len(snap.Tasks) != 1 || !sameRun(snap.Tasks[0].LastRun, aborted) || !sameRun(ae.Aborted[0].LastRun, aborted) {
			t.Errorf("LastRun %+v in the AbortError, snapshot %+v, want %+v", ae.Aborted[0].LastRun, snap.Tasks, aborted)
		}
		close(release)
		synctest.Wait()
		want := []string{
			runtime.KindTaskSpawned, runtime.KindTaskRunStarted, runtime.KindTaskAborted,
			runtime.KindTaskRunFinished, runtime.KindTaskFinished, runtime.KindTaskLateExit,
		}
		if got := rec.Kinds(task.ID()); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskRunFinished && !sameRun(runtime.RunResult{Run: ev.Run, Outcome: ev.Outcome, Err: ev.Err, Ended: ev.Time, Duration: ev.Duration}, aborted) {
				t.Fatalf("run_finished %+v, want run 1 aborted at the abort, as LastRun %+v", ev, aborted)
			}
		}
	})
}

// sameRun reports whether a and b are the same run result, their end
// times compared as instants (UTC drops a monotonic reading).
func sameRun(a, b runtime.RunResult) bool {
	a.Ended, b.Ended = a.Ended.UTC(), b.Ended.UTC()
	return a == b
}

// TestEveryAbortWhileARunIsObserved: a shutdown deadline that passes while
// a run's run_started or run_finished event is being observed comes
// entirely before or after it: before run_started, the run never starts;
// during the run, the abort reports it; after run_finished, the abort finds
// no run (or the task ended). A run is never reported after the task's
// finished event. The observer holds the event until the shutdown has
// requested cancellation, then yields until the abort is observed (or for
// a bounded number of turns, when the abort must wait for the event).
func TestEveryAbortWhileARunIsObserved(t *testing.T) {
	for _, kind := range []string{runtime.KindTaskRunStarted, runtime.KindTaskRunFinished} {
		t.Run(kind, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				rec := &holdRun{kind: kind, canceling: make(chan struct{})}
				sup := runtime.New("", runtime.WithObserver(rec))
				task := sup.Every("tick", time.Second, func(context.Context) error { return nil })
				synctest.Wait() // the event of run 1 is being observed
				ctx := expired()
				_ = sup.Shutdown(ctx) // aborts the task, unless it ends first
				synctest.Wait()       // a late exit
				kinds := rec.Kinds(task.ID())
				finished := slices.Index(kinds, runtime.KindTaskFinished)
				if after := kinds[finished+1:]; finished < 0 || len(after) > 1 || len(after) == 1 && after[0] != runtime.KindTaskLateExit {
					t.Fatalf("events %v: only late_exit may follow finished", kinds)
				}
				aborted := false
				for _, ev := range rec.Events() {
					switch {
					case ev.TaskID != task.ID():
					case ev.Kind == runtime.KindTaskAborted:
						aborted = true
					case aborted && ev.Kind == runtime.KindTaskRunFinished && ev.Outcome != runtime.Aborted:
						t.Fatalf("events %v: a run that ended on its own is reported after the abort", kinds)
					}
				}
			})
		})
	}
}

// holdRun records events and holds run 1's event of kind as
// TestEveryAbortWhileARunIsObserved describes.
type holdRun struct {
	runtimetest.Recorder
	kind      string
	canceling chan struct{} // closed at the group cancel request, Shutdown's step before its abort
	aborted   atomic.Bool   // the task's aborted event arrived
}

func (o *holdRun) hold(ev runtime.Event) {
	if ev.Kind == o.kind && ev.Run == 1 {
		<-o.canceling
		for i := 0; i < 100_000 && !o.aborted.Load(); i++ {
			goruntime.Gosched()
		}
	}
}

// TaskStarting and Observe record after holding: what an observer after
// this one would see.
func (o *holdRun) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	o.hold(ev)
	return o.Recorder.TaskStarting(ctx, ev)
}

func (o *holdRun) Observe(ctx context.Context, ev runtime.Event) {
	switch ev.Kind {
	case runtime.KindGroupCancelRequested:
		close(o.canceling)
	case runtime.KindTaskAborted:
		o.aborted.Store(true)
	}
	o.hold(ev)
	o.Recorder.Observe(ctx, ev)
}

// runsGate holds A's cancel_requested and E's spawned events, and records
// the Seqs of the first run_started and run_finished events (in runStarted
// and runFinished, when not nil).
type runsGate struct {
	aHeld, releaseA     chan struct{}
	eSpawning, releaseE chan struct{}
	runStarted          chan uint64
	runFinished         chan uint64
}

func (o *runsGate) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	switch {
	case ev.Kind == runtime.KindTaskSpawned && ev.Task == "e":
		close(o.eSpawning)
		<-o.releaseE
	case ev.Kind == runtime.KindTaskRunStarted && ev.Run == 1 && o.runStarted != nil:
		o.runStarted <- ev.Seq
	}
	return ctx
}

func (o *runsGate) Observe(_ context.Context, ev runtime.Event) {
	switch {
	case ev.Kind == runtime.KindTaskCancelRequested && ev.Task == "a":
		close(o.aHeld)
		<-o.releaseA
	case ev.Kind == runtime.KindTaskRunFinished && ev.Run == 1 && o.runFinished != nil:
		o.runFinished <- ev.Seq
	}
}

// receiveSoon receives from c if a value comes within a bounded number of
// turns of the scheduler: for a step that may happen now, or only once the
// test releases a lock it waits for.
func receiveSoon[T any](c <-chan T) (T, bool) {
	for range 100_000 {
		select {
		case v := <-c:
			return v, true
		default:
			goruntime.Gosched()
		}
	}
	var zero T
	return zero, false
}

// waitForStack yields until some goroutine's stack contains fn.
func waitForStack(fn string) {
	buf := make([]byte, 1<<20)
	for {
		if strings.Contains(string(buf[:goruntime.Stack(buf, true)]), fn) {
			return
		}
		goruntime.Gosched()
	}
}

// TestSnapshotRunsMatchSeq: GroupSnapshot.Seq "reflects every task
// event with a lower or equal Seq and none with a higher one". TaskInfo.Runs
// counts run_started events, so a snapshot must not count a run whose
// run_started event has a Seq above the snapshot's.
func TestSnapshotRunsMatchSeq(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &runsGate{
			aHeld: make(chan struct{}), releaseA: make(chan struct{}),
			eSpawning: make(chan struct{}), releaseE: make(chan struct{}),
			runStarted: make(chan uint64, 1),
		}
		sup := runtime.New("", runtime.WithObserver(o))
		a := sup.Go("a", blockUntilCanceled)
		go a.Cancel(nil) // held in the observer, with a's lock
		<-o.aHeld
		var e atomic.Pointer[runtime.Task]
		go func() { e.Store(sup.Every("e", time.Hour, func(context.Context) error { return nil })) }()
		<-o.eSpawning // e is linked; its goroutine has not started
		snaps := make(chan runtime.GroupSnapshot, 1)
		go func() { snaps <- sup.Snapshot() }()
		waitForStack("stateAtLocked") // the snapshot has its Seq and waits for a's lock
		close(o.releaseE)
		// Let run 1 start if it can (it cannot if starting a run waits for
		// the snapshot).
		runSeq, started := receiveSoon(o.runStarted)
		close(o.releaseA)
		snap := <-snaps
		if !started {
			runSeq = <-o.runStarted
		}
		for _, ti := range snap.Tasks {
			if ti.Name == "e" && ti.Runs > 0 && runSeq > snap.Seq {
				t.Errorf("snapshot Seq %d shows e with Runs=%d, but run_started of run 1 has Seq %d > %d", snap.Seq, ti.Runs, runSeq, snap.Seq)
			}
		}
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSnapshotLastRunMatchesSeq: a snapshot shows a run as ended (as
// LastRun, with RunStarted zero) exactly when the run's run_finished event
// has a Seq not above the snapshot's, even when the run ends while the
// snapshot is being taken.
func TestSnapshotLastRunMatchesSeq(t *testing.T) {
	bubble(t, func(t *testing.T) {
		o := &runsGate{aHeld: make(chan struct{}), releaseA: make(chan struct{}), runFinished: make(chan uint64, 1)}
		sup := runtime.New("", runtime.WithObserver(o))
		// a first: the snapshot, held up at a's lock, reaches f after it.
		a := sup.Go("a", blockUntilCanceled)
		release := make(chan struct{})
		f := sup.Every("f", time.Hour, func(context.Context) error { <-release; return nil })
		synctest.Wait()  // f is in run 1
		go a.Cancel(nil) // held in the observer, with a's lock
		<-o.aHeld
		snaps := make(chan runtime.GroupSnapshot, 1)
		go func() { snaps <- sup.Snapshot() }()
		waitForStack("stateAtLocked") // the snapshot has its Seq and waits for a's lock
		close(release)
		// Let run 1 end if it can (it cannot if ending a run waits for the
		// snapshot).
		runSeq, ended := receiveSoon(o.runFinished)
		close(o.releaseA)
		snap := <-snaps
		if !ended {
			runSeq = <-o.runFinished
		}
		reflected := runSeq <= snap.Seq
		for _, ti := range snap.Tasks {
			if ti.ID != f.ID() {
				continue
			}
			if shown := ti.LastRun.Run == 1; shown != reflected {
				t.Errorf("snapshot Seq %d shows LastRun %+v, but run_finished of run 1 has Seq %d", snap.Seq, ti.LastRun, runSeq)
			}
			if inRun := !ti.RunStarted.IsZero(); inRun == reflected {
				t.Errorf("snapshot Seq %d shows RunStarted %v, but run_finished of run 1 has Seq %d", snap.Seq, ti.RunStarted, runSeq)
			}
		}
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEveryRecordsTheLastRun: TaskInfo.LastRun is the last run that ended,
// exactly as its run_finished event said (number, outcome, error, end,
// duration): zero before the first run ends, a failed run's until the
// next run ends, and the run that ended the task (a panic, ErrStop) for as
// long as the task is listed. A run that returns ErrStop has no error.
func TestEveryRecordsTheLastRun(t *testing.T) {
	errRun := errors.New("run failed")
	for _, tc := range []struct {
		name    string
		run2    func() error
		outcome runtime.Outcome
		ends    bool                 // run 2 ends the task
		err     func(err error) bool // what run 2's LastRun.Err must be
	}{
		{"success", func() error { return nil }, runtime.Success, false, func(err error) bool { return err == nil }},
		{"error", func() error { return errRun }, runtime.Error, false, func(err error) bool { return err == errRun }},
		{"panic", func() error { panic("run 2") }, runtime.Panic, true, func(err error) bool {
			var pe *runtime.PanicError
			return errors.As(err, &pe) && pe.Value == "run 2"
		}},
		{"stop", func() error { return fmt.Errorf("done: %w", runtime.ErrStop) }, runtime.Success, true, func(err error) bool { return err == nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				// The task's finished event is held: a task that ended is
				// listed by Active until it has been delivered.
				held, release := make(chan struct{}), make(chan struct{})
				rec := &runtimetest.Recorder{}
				sup := runtime.New("", runtime.WithObserver(rec), runtime.WithObserver(observeFunc(func(_ context.Context, ev runtime.Event) {
					if ev.Kind == runtime.KindTaskFinished {
						close(held)
						<-release
					}
				})))
				start, runs := time.Now(), 0
				task := sup.Every("job", time.Minute, func(context.Context) error {
					time.Sleep(2 * time.Second) // the run's own work
					if runs++; runs == 1 {
						return errRun
					}
					return tc.run2()
				})
				info := func(infos []runtime.TaskInfo) runtime.TaskInfo {
					t.Helper()
					if len(infos) != 1 || infos[0].ID != task.ID() {
						t.Fatalf("tasks listed: %+v, want the job", infos)
					}
					return infos[0]
				}
				// want is the run's run_finished event, as a RunResult.
				want := func(run uint64) runtime.RunResult {
					t.Helper()
					evs := eventsOf(rec, task.ID(), runtime.KindTaskRunFinished)
					if len(evs) < int(run) {
						t.Fatalf("%d run_finished events, want run %d's", len(evs), run)
					}
					ev := evs[run-1]
					return runtime.RunResult{Run: ev.Run, Outcome: ev.Outcome, Err: ev.Err, Ended: ev.Time, Duration: ev.Duration}
				}

				time.Sleep(time.Second)
				if got := info(sup.Snapshot().Tasks).LastRun; got != (runtime.RunResult{}) {
					t.Errorf("in run 1: LastRun %+v, want zero", got)
				}
				time.Sleep(time.Minute) // run 1 failed at 2s; run 2 starts at 1m2s
				synctest.Wait()
				got := info(sup.Snapshot().Tasks).LastRun
				if got != want(1) || got.Run != 1 || got.Outcome != runtime.Error || got.Err != errRun ||
					!got.Ended.Equal(start.Add(2*time.Second)) || got.Duration != 2*time.Second {
					t.Errorf("after run 1 failed: LastRun %+v, want run 1, failed at 2s after 2s, as its event %+v", got, want(1))
				}

				time.Sleep(3 * time.Second) // run 2 ended at 1m4s
				synctest.Wait()
				if tc.ends {
					<-held
				}
				got = info(sup.Active()).LastRun
				if got != want(2) || got.Run != 2 || got.Outcome != tc.outcome || !tc.err(got.Err) ||
					!got.Ended.Equal(start.Add(64*time.Second)) || got.Duration != 2*time.Second {
					t.Errorf("after run 2: LastRun %+v, want run 2, %v at 1m4s after 2s, as its event %+v", got, tc.outcome, want(2))
				}
				close(release)
				if err := sup.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestEveryRunReturningATypedNil: a run that returns a typed-nil error
// whose Unwrap dereferences it (errors.Is panics on it) is a failed run,
// not a stop and not a panic of the task.
func TestEveryRunReturningATypedNil(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		runs := 0
		task := sup.Every("tick", time.Second, func(context.Context) error {
			if runs++; runs == 1 {
				return (*nilUnwrapError)(nil)
			}
			return runtime.ErrStop
		})
		<-task.Done()
		if res := task.Result(); res.Outcome != runtime.Success || runs != 2 {
			t.Errorf("outcome %v after %d runs, want success after 2: the typed nil is an error, not a stop", res.Outcome, runs)
		}
		if ends := eventsOf(rec, task.ID(), runtime.KindTaskRunFinished); len(ends) != 2 || ends[0].Outcome != runtime.Error {
			t.Errorf("run_finished events %+v, want 2, the first an error", ends)
		}
	})
}

// TestSnapshotShowsTheRunInProgress: TaskInfo.RunStarted is when the run
// in progress of an Every task started (a run much older than the period
// is stuck), and zero between its runs.
func TestSnapshotShowsTheRunInProgress(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("app")
		release := make(chan struct{})
		runs := 0
		sup.Every("tick", time.Minute, func(context.Context) error {
			if runs++; runs == 2 {
				<-release
			}
			return nil
		})
		info := func() runtime.TaskInfo { return sup.Snapshot().Tasks[0] }
		synctest.Wait() // run 1 is over: the task waits for its period
		if ti := info(); ti.Runs != 1 || !ti.RunStarted.IsZero() {
			t.Errorf("between runs: Runs %d, RunStarted %v, want 1 and zero", ti.Runs, ti.RunStarted)
		}
		time.Sleep(time.Minute)
		synctest.Wait() // run 2 started, and blocks
		start := time.Now()
		time.Sleep(5 * time.Second)
		if ti := info(); ti.Runs != 2 || !ti.RunStarted.Equal(start) {
			t.Errorf("in run 2: Runs %d, RunStarted %v, want 2 and %v", ti.Runs, ti.RunStarted, start)
		}
		close(release)
		synctest.Wait()
		if ti := info(); !ti.RunStarted.IsZero() {
			t.Errorf("after run 2: RunStarted %v, want zero", ti.RunStarted)
		}
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEveryStopIsNeverAnError: a run that answers its cancellation with
// ErrStop (a job written to stop itself once its context is done) ends
// its task canceled, as any canceled task, but ErrStop is a request, not
// an error: it is neither the task's Result.Err nor its group's Err.
func TestEveryStopIsNeverAnError(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("app")
		g := sup.Group("jobs")
		task := g.Every("refresh", time.Minute, func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("shutting down: %w", runtime.ErrStop)
		})
		synctest.Wait() // in the first run
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if r := task.Result(); r.Outcome != runtime.Canceled || r.Err != nil || !errors.Is(r.Cause, runtime.ErrClosed) {
			t.Errorf("Result %+v, want canceled by the shutdown, without error", r)
		}
		if err := g.Err(); err != nil {
			t.Errorf("Group.Err = %v, want nil: ErrStop is no failure", err)
		}
	})
}

// TestErrorsSayWhichRunIsStuck: a periodic task listed by a Shutdown's
// AbortError (or a Wait's TimeoutError) in a run says which run and since
// when: its own age is the loop's, and tells nothing of how long the run
// has been stuck.
func TestErrorsSayWhichRunIsStuck(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("app")
		g := sup.Group("jobs")
		release := make(chan struct{})
		runs := 0
		g.Every("cleanup", 10*time.Second, func(context.Context) error {
			if runs++; runs == 3 {
				<-release // ignores its context
			}
			return nil
		})
		idle := g.Every("refresh", time.Minute, func(context.Context) error { return nil })
		time.Sleep(95 * time.Second) // run 3 started at 20s
		werr := g.Wait(timeout(t, time.Second))
		err := sup.Shutdown(timeout(t, time.Second))
		for _, c := range []struct {
			err  error
			want string
		}{
			{werr, "app.jobs/cleanup#1 (age 1m36s, in run 3 for 1m16s)"},
			{err, "app.jobs/cleanup#1 (age 1m37s, in run 3 for 1m17s)"},
		} {
			if msg := c.err.Error(); !strings.Contains(msg, c.want) {
				t.Errorf("%q, want it to name the stuck run: %q", msg, c.want)
			}
		}
		if msg := werr.Error(); !strings.Contains(msg, "app.jobs/refresh#2 (age 1m36s)") {
			t.Errorf("%q: a periodic task between runs is listed with its age alone", msg)
		}
		close(release)
		<-idle.Done()
		synctest.Wait()
	})
}

// TestEveryRunsShareTheTaskContext: unlike a Go task's fn, a run's return
// does not cancel its context (Every's doc says so): a helper a run starts
// with it lives through the later runs, until the task ends.
func TestEveryRunsShareTheTaskContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		var first context.Context
		var during error
		task := sup.Every("tick", time.Second, func(ctx context.Context) error {
			if first == nil {
				first = ctx
				return nil
			}
			during = first.Err()
			return runtime.ErrStop
		})
		<-task.Done()
		if during != nil {
			t.Errorf("in run 2, run 1's context is done (%v), want it live", during)
		}
		if !errors.Is(context.Cause(first), runtime.ErrTaskEnded) {
			t.Errorf("once the task ended, run 1's context's cause is %v, want ErrTaskEnded", context.Cause(first))
		}
	})
}

// runOfEvents tags each run's context with its number, as a tracing
// observer gives each run its span, and records the run found in the
// context each event is observed with.
type runOfEvents struct {
	mu   sync.Mutex
	runs map[string]any // by event kind
}

func (o *runOfEvents) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	if ev.Kind == runtime.KindTaskRunStarted {
		return context.WithValue(ctx, runKey{}, ev.Run)
	}
	return ctx
}

func (o *runOfEvents) Observe(ctx context.Context, ev runtime.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.runs[ev.Kind] = ctx.Value(runKey{})
}

// TestEventsOfARunComeWithItsContext: a cancel request that reaches a
// periodic task in a run, and the abort of a run stuck past a shutdown's
// deadline, are observed with the run's context, as its run_finished
// event is: a log record of either carries the run's trace, and joins it.
func TestEventsOfARunComeWithItsContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &runOfEvents{runs: map[string]any{}}
		sup := runtime.New("", runtime.WithObserver(obs))
		release := make(chan struct{})
		runs := 0
		task := sup.Every("sync", time.Minute, func(context.Context) error {
			if runs++; runs == 2 {
				<-release // ignores its context
			}
			return nil
		})
		time.Sleep(time.Minute)
		synctest.Wait() // in run 2
		task.Cancel(nil)
		mustAbort(t, sup, 1)
		obs.mu.Lock()
		for _, kind := range []string{runtime.KindTaskCancelRequested, runtime.KindTaskAborted, runtime.KindTaskRunFinished} {
			if got := obs.runs[kind]; got != uint64(2) {
				t.Errorf("%s observed with the context of run %v, want run 2's", kind, got)
			}
		}
		obs.mu.Unlock()
		close(release)
		synctest.Wait()
	})
}
