package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Every starts a periodic task: fn runs at once, then again interval after
// each run ends (fixed delay, so runs never overlap). A run's error is
// reported as a [KindTaskRunFinished] event (and is the task's
// [TaskInfo].LastRun until the next run ends) and the loop goes on; fn
// returning [ErrStop] ends the task with outcome [Success] ([Canceled] if
// its context was done, but ErrStop is never an error: not the task's
// Result.Err, its group's Err, nor its run's); cancellation ends it
// promptly, even between runs, and no further run starts once
// [Task.Cancel] has returned (the first run starts even with a canceled
// context, as a [Group.Go] task's fn does); a panic ends it with outcome
// [Panic].
//
// The runs share the task's context: a run's return does not cancel it,
// as Go's does when fn returns. Goroutines a run starts with it go on
// through the later runs, until the task ends; a run that wants its
// helpers gone when it returns gives them a context of its own
// (context.WithCancel, canceled before it returns).
//
// Each run is observable on its own: observers get a [KindTaskRunStarted]
// event through [Observer.TaskStarting] (the context it returns is the
// run's) and a [KindTaskRunFinished] event at its end.
//
// interval <= 0, a nil fn or a nil option panics. On a closed group, as
// with Go, nothing runs: the task is already done with outcome [Canceled].
func (g *Group) Every(name string, interval time.Duration, fn func(ctx context.Context) error, opts ...TaskOption) *Task {
	if interval <= 0 {
		panic(fmt.Sprintf("taskscope: Every(%q) with non-positive interval %v", name, interval))
	}
	if fn == nil {
		panic(fmt.Sprintf("taskscope: Every(%q) with nil function", name))
	}
	return g.spawn(name, fn, interval, opts)
}

// loop runs an Every task's fn until it stops, fails by panic or is
// canceled. Its result is judged like a plain fn's.
func (t *Task) loop() error {
	ctx, tr, e := t.fnContext(), t.tree(), t.periodic()
	var timer *time.Timer
	for {
		// t.mu is held from run_started until the run is recorded, so that
		// an abort either comes first (and no run starts) or finds the run
		// and reports it, in order.
		//
		// The run is counted and its run_started Seq issued under the
		// group's lock too (taken first, as Snapshot and abort do), so that
		// a Snapshot, which holds it while it reads Runs, counts exactly
		// the runs whose run_started Seq is not above its own.
		g := t.owner()
		g.mu.Lock()
		t.mu.Lock()
		// No run starts after an abort, nor after a cancel that came as
		// the next run fell due and the wait saw the timer first (checked
		// under t.mu, which Cancel holds: no further run starts once
		// Cancel has returned). The loop's error is what fn returned (the
		// late_exit event's Err after an abort): this run never did.
		if t.state == stateAborted || timer != nil && ctx.Err() != nil {
			t.mu.Unlock()
			g.mu.Unlock()
			return nil
		}
		run := e.runs.Add(1)
		seq := tr.nextSeq()
		g.mu.Unlock()
		runCtx := ctx
		if tr.observed() {
			ev := newEvent()
			t.fillEvent(ev, KindTaskRunStarted)
			ev.Run, ev.Seq, ev.Time = run, seq, time.Now()
			runCtx = tr.taskStarting(ctx, ev)
			freeEvent(ev)
		}
		e.runCtx, e.runStart = runCtx, time.Now()
		t.mu.Unlock()
		err := t.fn(runCtx)
		stop := err != nil && chainHolds(err, holdsStop)
		outcome := Success
		switch {
		case ctx.Err() != nil:
			outcome = Canceled
		case err != nil && !stop:
			outcome = Error
		}
		if stop {
			// A request, never an error, of the task or of the run: a run
			// that answers its cancellation with ErrStop must not leave a
			// "failed: stop periodic task" in Result.Err and Group.Err, nor
			// in its run_finished event and LastRun.
			t.endRun(outcome, nil, nil)
			return nil
		}
		t.endRun(outcome, err, nil)
		if outcome == Canceled {
			return err
		}
		if timer == nil {
			timer = time.NewTimer(e.interval)
			defer timer.Stop()
		} else {
			timer.Reset(e.interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// endRun reports the end of the run in progress, unless an abort already
// reported it. t.mu is held while observers see it, so that an abort (or
// a cancel request) comes entirely before or after it.
//
// The run is recorded as the last one, and its run_finished Seq issued,
// under the group's lock too (taken first), as its start was: a Snapshot,
// which holds that lock while it reads LastRun and RunStarted, shows the
// run ended exactly when its run_finished Seq is not above its own.
func (t *Task) endRun(outcome Outcome, err error, stack []byte) {
	e, g := t.periodic(), t.owner()
	g.mu.Lock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.runCtx == nil {
		g.mu.Unlock()
		return
	}
	runCtx := e.endLocked(outcome, err, time.Now())
	seq := t.tree().nextSeq()
	g.mu.Unlock()
	t.reportRun(runCtx, seq, &e.last, stack)
}

// endLocked records the run in progress as the last one, ended at end,
// and returns its context: no run is in progress after it. Called with the
// group's and the task's locks held (see endRun).
func (e *every) endLocked(outcome Outcome, err error, end time.Time) context.Context {
	ctx := e.runCtx
	e.runCtx = nil
	e.last = RunResult{Run: e.runs.Load(), Outcome: outcome, Err: err, Ended: end, Duration: end.Sub(e.runStart)}
	return ctx
}

// reportRun delivers the run_finished event of run, which ended, with the
// Seq issued when it was recorded as the task's last run.
func (t *Task) reportRun(runCtx context.Context, seq uint64, run *RunResult, stack []byte) {
	tr := t.tree()
	if !tr.observed() {
		return
	}
	ev := newEvent()
	t.fillEvent(ev, KindTaskRunFinished)
	ev.Seq, ev.Time = seq, run.Ended
	ev.Run, ev.Outcome, ev.Err, ev.Duration, ev.Stack = run.Run, run.Outcome, run.Err, run.Duration, stack
	if run.Outcome == Canceled || run.Outcome == Aborted {
		ev.Cause = context.Cause(&t.ctx) // why, as a task's finished event says
	}
	tr.emit(runCtx, ev)
	freeEvent(ev)
}

// holdsStop reports whether a run's error asks to stop. Every asks it
// through chainHolds: a method of the application's error chain that
// panics (a typed nil's) makes an error, not a stop, nor a panic of fn.
func holdsStop(err error) bool { return errors.Is(err, ErrStop) }
