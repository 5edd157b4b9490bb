package runtime_test

// Observers written the way a third party writes them, from the public
// docs alone, and a checker of what the docs promise them, run against
// a workload that exercises every kind of event.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// taskKey is the context key under which contractChecker's TaskStarting
// leaves the ID of the task (and run) it was called for.
type taskKey struct{}

type taskMark struct {
	id  uint64
	run uint64
}

// contractChecker checks, per task, the order of its events, the
// monotonicity of their Seq, the fields each kind promises, and that
// Observe gets the context TaskStarting returned.
type contractChecker struct {
	mu     sync.Mutex
	kinds  map[uint64][]string
	seq    map[uint64]uint64
	errs   []string
	groups map[uint64]uint64 // group ID -> parent ID, from the events
}

func newContractChecker() *contractChecker {
	return &contractChecker{kinds: map[uint64][]string{}, seq: map[uint64]uint64{}, groups: map[uint64]uint64{}}
}

func (c *contractChecker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *contractChecker) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	c.check(ctx, ev, true)
	return context.WithValue(ctx, taskKey{}, taskMark{ev.TaskID, ev.Run})
}

func (c *contractChecker) Observe(ctx context.Context, ev runtime.Event) { c.check(ctx, ev, false) }

func (c *contractChecker) check(ctx context.Context, ev runtime.Event, starting bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Seq == 0 || ev.Time.IsZero() || ev.Kind == "" {
		c.errorf("%s: Seq %d Time %v", ev.Kind, ev.Seq, ev.Time)
	}
	if ev.GroupID == 0 || ev.Group == "" {
		c.errorf("%s: no group (%q #%d)", ev.Kind, ev.Group, ev.GroupID)
	}
	if p, ok := c.groups[ev.GroupID]; ok && p != ev.ParentGroupID {
		c.errorf("%s: group %d's parent %d, earlier %d", ev.Kind, ev.GroupID, ev.ParentGroupID, p)
	}
	c.groups[ev.GroupID] = ev.ParentGroupID
	wantStart := ev.Kind == runtime.KindTaskSpawned || ev.Kind == runtime.KindTaskRunStarted
	if starting != wantStart {
		c.errorf("%s delivered to TaskStarting=%v", ev.Kind, starting)
	}
	if ev.TaskID == 0 {
		return
	}
	// Correlation: every later event of the task comes with the context
	// TaskStarting returned for it.
	if !starting && ev.Kind != runtime.KindObserverPanicked {
		m, ok := ctx.Value(taskKey{}).(taskMark)
		if !ok || m.id != ev.TaskID {
			c.errorf("%s of task %d: ctx carries %+v (ok=%v)", ev.Kind, ev.TaskID, m, ok)
		}
	}
	if ev.Seq <= c.seq[ev.TaskID] {
		c.errorf("task %d: %s Seq %d after %d", ev.TaskID, ev.Kind, ev.Seq, c.seq[ev.TaskID])
	}
	c.seq[ev.TaskID] = ev.Seq
	if ev.Kind != runtime.KindObserverPanicked {
		c.kinds[ev.TaskID] = append(c.kinds[ev.TaskID], ev.Kind)
	}
	switch ev.Kind {
	case runtime.KindTaskFinished:
		if ev.Outcome == 0 {
			c.errorf("finished without outcome: %+v", ev)
		}
		if ev.Outcome == runtime.Panic { // an aborted task's stack may not be found
			if len(ev.Stack) == 0 {
				c.errorf("%s finished without stack", ev.Outcome)
			}
		}
		if ev.Outcome == runtime.Canceled && ev.Cause == nil {
			c.errorf("canceled task %d without cause", ev.TaskID)
		}
		if ev.Outcome != runtime.Success && ev.Err == nil && ev.Outcome != runtime.Canceled {
			c.errorf("%s without Err", ev.Outcome)
		}
		if !ev.Rejected && ev.Duration <= 0 && ev.Outcome != runtime.Aborted {
			// In a bubble a task may take no time; only negative is wrong.
			if ev.Duration < 0 {
				c.errorf("negative duration")
			}
		}
	case runtime.KindTaskCancelRequested:
		if ev.Err == nil || ev.Cause == nil {
			c.errorf("cancel_requested without Err/Cause: %+v", ev)
		}
	case runtime.KindTaskRunFinished:
		if ev.Run == 0 || ev.Outcome == 0 {
			c.errorf("run_finished without run/outcome: %+v", ev)
		}
	case runtime.KindTaskAborted, runtime.KindTaskLateExit:
		if ev.Outcome != runtime.Aborted {
			c.errorf("%s with outcome %v", ev.Kind, ev.Outcome)
		}
	}
}

// verify checks each task's kinds against the grammar the docs give:
// spawned, then (for a periodic task) runs, cancel requests anywhere
// before the end, exactly one finished, then at most a late_exit after
// an abort.
func (c *contractChecker) verify(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		t.Error(e)
	}
	for id, kinds := range c.kinds {
		if len(kinds) == 0 || kinds[0] != runtime.KindTaskSpawned {
			t.Errorf("task %d: %v does not start with spawned", id, kinds)
			continue
		}
		finished, aborted, inRun := 0, false, false
		for i, k := range kinds[1:] {
			switch k {
			case runtime.KindTaskFinished:
				finished++
				if inRun {
					t.Errorf("task %d: finished inside a run: %v", id, kinds)
				}
			case runtime.KindTaskAborted:
				aborted = true
			case runtime.KindTaskLateExit:
				if !aborted || i != len(kinds)-2 {
					t.Errorf("task %d: late_exit out of place: %v", id, kinds)
				}
			case runtime.KindTaskRunStarted:
				if inRun || finished > 0 {
					t.Errorf("task %d: run_started out of place: %v", id, kinds)
				}
				inRun = true
			case runtime.KindTaskRunFinished:
				if !inRun {
					t.Errorf("task %d: run_finished out of place: %v", id, kinds)
				}
				inRun = false
			case runtime.KindTaskCancelRequested, runtime.KindTaskRejected:
				if finished > 0 {
					t.Errorf("task %d: %s after finished: %v", id, k, kinds)
				}
			}
		}
		if finished != 1 {
			t.Errorf("task %d: %d finished events: %v", id, finished, kinds)
		}
	}
}

// errorTracker is a Sentry-like reporter: Observe copies the failures into
// a bounded buffer (never blocking the task), and a goroutine of its own
// sends them.
type errorTracker struct {
	ch      chan runtime.Event
	done    chan struct{}
	mu      sync.Mutex
	sent    []runtime.Event
	dropped int
}

func newErrorTracker(buffer int) *errorTracker {
	tr := &errorTracker{ch: make(chan runtime.Event, buffer), done: make(chan struct{})}
	go tr.send()
	return tr
}

func (tr *errorTracker) send() {
	defer close(tr.done)
	for ev := range tr.ch {
		tr.mu.Lock()
		tr.sent = append(tr.sent, ev)
		tr.mu.Unlock()
	}
}

func (tr *errorTracker) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return ctx
}

func (tr *errorTracker) Observe(_ context.Context, ev runtime.Event) {
	report := ev.Kind == runtime.KindObserverPanicked ||
		ev.Kind == runtime.KindTaskFinished && ev.Outcome.Failed() ||
		ev.Kind == runtime.KindTaskRunFinished && ev.Outcome.Failed() ||
		ev.Kind == runtime.KindTaskLateExit
	if !report {
		return
	}
	select {
	case tr.ch <- ev: // a copy: events are values
	default:
		tr.mu.Lock()
		tr.dropped++
		tr.mu.Unlock()
	}
}

// close stops the sender once the supervisor is done with the observer.
func (tr *errorTracker) close() {
	close(tr.ch)
	<-tr.done
}

// auditEntry is one cancellation: who asked, why, and of what.
type auditEntry struct {
	kind   string
	group  uint64
	task   uint64
	who    string
	reason error // the request's cause
	stands error // the cause that stands
}

// requestBy is a cancellation cause that says who asked.
type requestBy struct {
	who, why string
}

func (r *requestBy) Error() string { return r.why + " (by " + r.who + ")" }

type auditLog struct {
	mu      sync.Mutex
	entries []auditEntry
}

func (a *auditLog) TaskStarting(ctx context.Context, _ runtime.Event) context.Context { return ctx }

func (a *auditLog) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind != runtime.KindTaskCancelRequested && ev.Kind != runtime.KindGroupCancelRequested {
		return
	}
	who := runtime.CauseKind(ev.Err)
	if r, ok := errors.AsType[*requestBy](ev.Err); ok {
		who = r.who
	}
	a.mu.Lock()
	a.entries = append(a.entries, auditEntry{ev.Kind, ev.GroupID, ev.TaskID, who, ev.Err, ev.Cause})
	a.mu.Unlock()
}

// concurrencyAlarm counts each group's running tasks from spawned and
// finished events and raises an alarm when a group goes over its limit.
type concurrencyAlarm struct {
	limit   int
	mu      sync.Mutex
	running map[uint64]int
	peak    map[uint64]int
	alarms  chan uint64 // group IDs over the limit; read by another goroutine
}

func newConcurrencyAlarm(limit int) *concurrencyAlarm {
	return &concurrencyAlarm{limit: limit, running: map[uint64]int{}, peak: map[uint64]int{}, alarms: make(chan uint64, 64)}
}

func (a *concurrencyAlarm) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	if ev.Kind != runtime.KindTaskSpawned || ev.Rejected {
		return ctx
	}
	a.mu.Lock()
	a.running[ev.GroupID]++
	n := a.running[ev.GroupID]
	a.peak[ev.GroupID] = max(a.peak[ev.GroupID], n)
	a.mu.Unlock()
	if n > a.limit {
		select {
		case a.alarms <- ev.GroupID:
		default:
		}
	}
	return ctx
}

func (a *concurrencyAlarm) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind != runtime.KindTaskFinished || ev.Rejected {
		return
	}
	a.mu.Lock()
	a.running[ev.GroupID]--
	if a.running[ev.GroupID] < 0 {
		panic(fmt.Sprintf("group %d: running count below zero", ev.GroupID))
	}
	a.mu.Unlock()
}

func TestUserObserversOnAMixedWorkload(t *testing.T) {
	bubble(t, func(t *testing.T) {
		check := newContractChecker()
		tracker := newErrorTracker(1024)
		audit := &auditLog{}
		alarm := newConcurrencyAlarm(5)
		sup := runtime.New("app",
			runtime.WithObserver(check), runtime.WithObserver(tracker),
			runtime.WithObserver(audit), runtime.WithObserver(alarm))

		work := sup.Group("work")
		// Plain tasks: success, error, panic.
		work.Go("ok", func(context.Context) error { return nil })
		work.Go("fails", func(context.Context) error { return errors.New("boom") })
		work.Go("panics", func(context.Context) error { panic("kaboom") })
		// An explicit cancel with who and why.
		c := work.Go("canceled", blockUntilCanceled)
		c.Cancel(&requestBy{who: "operator", why: "maintenance"})
		// WithCancelOn.
		reqCtx, reqCancel := context.WithCancelCause(context.Background())
		work.Go("tied", blockUntilCanceled, runtime.WithCancelOn(reqCtx))
		reqCancel(&requestBy{who: "client", why: "went away"})
		// Periodic with failing runs, stopped by a cancel.
		runs := 0
		ev := work.Every("job", time.Second, func(context.Context) error {
			runs++
			if runs%2 == 0 {
				return errors.New("run failed")
			}
			return nil
		})
		// Bubble time: five runs (at 0s … 4s), and off the tick, so that
		// the cancel never races a sixth run at 5s.
		time.Sleep(4500 * time.Millisecond)
		ev.Cancel(nil)
		// Fail-fast group.
		batch := sup.Group("batch", runtime.CancelOnError())
		for i := range 3 {
			batch.Go(fmt.Sprint("sib", i), blockUntilCanceled)
		}
		batch.Go("bad", func(context.Context) error { return errors.New("bad item") })
		mustWait(t, batch)
		// Nested groups, concurrent spawns.
		nested := work.Group("a").Group("b")
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 10 {
					nested.Go(fmt.Sprint("n", i, j), func(context.Context) error { return nil })
				}
			})
		}
		wg.Wait()
		mustWait(t, sup)

		// Shutdown with a deadline that aborts a stuck task, which exits late.
		release := make(chan struct{})
		stuck := sup.Group("stuck")
		stuck.Go("ignores", func(context.Context) error { <-release; return nil })
		stuck.Every("stuckjob", time.Minute, func(context.Context) error { <-release; return nil })
		sup.Go("consumer", blockUntilCanceled, runtime.LongRunning())
		var ae *runtime.AbortError
		if err := sup.Shutdown(timeout(t, time.Second)); !errors.As(err, &ae) || len(ae.Aborted) != 2 {
			t.Fatalf("Shutdown = %v", err)
		}
		// Spawn on the closed group.
		work.Go("late", func(context.Context) error { return nil })
		close(release)
		synctest.Wait()
		if n := sup.Abandoned(); n != 0 {
			t.Fatalf("%d abandoned after release", n)
		}
		tracker.close()

		check.verify(t)
		alarm.mu.Lock()
		for g, n := range alarm.running {
			if n != 0 {
				t.Errorf("group %d: %d running at the end", g, n)
			}
		}
		alarm.mu.Unlock()
		// The tracker got every failure: error, panic, two failed runs,
		// the fail-fast failure, the two aborts (the stuck run's too) and
		// the late exits.
		var got []string
		for _, e := range tracker.sent {
			got = append(got, e.Kind[len("taskscope.task."):]+" "+e.Task+" "+e.Outcome.String())
		}
		slices.Sort(got)
		want := []string{
			"finished bad error", "finished fails error", "finished ignores aborted",
			"finished panics panic", "finished stuckjob aborted",
			"late_exit ignores aborted", "late_exit stuckjob aborted",
			"run_finished job error", "run_finished job error", "run_finished stuckjob aborted",
		}
		if !slices.Equal(got, want) || tracker.dropped != 0 {
			t.Errorf("tracker sent %v (dropped %d), want %v", got, tracker.dropped, want)
		}
		// The audit log says who asked for each cancellation.
		var who []string
		for _, e := range audit.entries {
			who = append(who, e.who)
		}
		if want := []string{"operator", "client", "canceled", "fail_fast", "shutdown"}; !slices.Equal(who, want) {
			t.Errorf("audit log: %v, want %v", who, want)
		}
	})
}
