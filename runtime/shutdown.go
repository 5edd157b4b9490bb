package runtime

import (
	"context"
	"errors"
	"time"
)

// ErrAborted is the Result.Err of a task aborted at a shutdown deadline;
// a Shutdown's [*AbortError] matches it too.
var ErrAborted = errors.New("taskscope: task aborted at shutdown deadline (goroutine abandoned)")

type shutdownState struct {
	closed chan struct{} // closed once the first call has closed the subtree
	done   chan struct{} // closed when the first Shutdown call has finished
	err    error         // its result; written before done is closed
}

// Shutdown stops the group's subtree, in the manner of http.Server.Shutdown:
// it closes every group of the subtree (new spawns are rejected), cancels
// every task with a cause wrapping [ErrClosed] (unless an earlier cause
// stands), and waits for the subtree to drain until ctx ends. Tasks still
// running then are aborted: each ends with outcome [Aborted], is removed
// from the live set and is listed, with the stack where its goroutine is
// stuck, in the returned [*AbortError]. Go cannot kill goroutines: an
// aborted task's goroutine keeps running, is counted by
// [Supervisor.Abandoned], and gets a [KindTaskLateExit] event when it
// finally returns.
//
// Shutdowns of nested groups may overlap: a task is aborted once, by the
// Shutdown whose deadline passed first, and only that call's AbortError
// lists it; the other may return nil.
//
// When the first call returns, every task of the subtree is done. With a
// ctx that is already done, it aborts whatever has not returned, with no
// grace period. Shutdown is idempotent: later calls wait for the first one
// and return its result, or their own ctx's cause if that ends first (they
// never abort on their own deadline, so tasks may still be running then).
// Either way, once any call has returned, the subtree is closed and new
// spawns are rejected. A nil ctx panics.
//
// A task that shuts down its own subtree (a "signals" task calling
// sup.Shutdown) waits for itself until ctx ends (with a ctx that never
// ends, for ever) and is then aborted: run
// the shutdown from outside the supervisor, such as from main.
func (g *Group) Shutdown(ctx context.Context) error {
	if ctx == nil {
		panic("taskscope: Shutdown(nil context)")
	}
	g.mu.Lock()
	st, first := g.shutdown, g.shutdown == nil
	if first {
		st = &shutdownState{closed: make(chan struct{}), done: make(chan struct{})}
		g.shutdown = st
	}
	g.mu.Unlock()
	if !first {
		// Not before the subtree is closed, even when ctx is done: once
		// any Shutdown call has returned, spawns are rejected. The first
		// call closes it at once (it only takes the groups' locks).
		<-st.closed
		select {
		case <-st.done:
			return st.err
		default:
		}
		select {
		case <-st.done:
			return st.err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	start := time.Now()
	tr := g.tree
	// Closed before the event is issued its Seq: a Snapshot at or after
	// that Seq must show the subtree closed, since a client following the
	// stream from it will not see the event.
	groups, live := g.closeSubtree(tr.observed())
	close(st.closed)
	started := &Event{Kind: KindGroupShutdownStarted, Group: g.name, GroupID: g.id, ParentGroupID: g.parentID()}
	tr.emit(ctx, started)
	g.cancelWith(ctx, &closedError{"taskscope: group " + g.name + " shut down"})
	var aborted []TaskInfo
	var abortedAt time.Time
	if idle := g.idleChan(); idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			aborted, abortedAt = g.abort(groups)
		}
	}
	// Tasks that had returned but were still reporting when the deadline
	// passed were not aborted; they finish without blocking on anything.
	if idle := g.idleChan(); idle != nil {
		<-idle
	}
	for i := len(groups) - 1; i >= 0; i-- {
		c := groups[i]
		c.mu.Lock()
		c.shut = true
		c.mu.Unlock()
		c.maybeDetach()
	}
	if len(aborted) > 0 {
		st.err = &AbortError{Group: g.name, Aborted: aborted, Cause: context.Cause(ctx), at: abortedAt}
	}
	tr.emit(ctx, &Event{
		Kind:          KindGroupShutdownDone,
		Group:         g.name,
		GroupID:       g.id,
		ParentGroupID: g.parentID(),
		Err:           st.err,
		Duration:      time.Since(start),
		Drained:       drainedAfter(live, started.Seq),
		Aborted:       len(aborted),
	})
	close(st.done)
	return st.err
}

// closeSubtree closes g and its descendants and, when observed (only
// the shutdown_finished event needs them), lists their live tasks. A child
// created concurrently is either listed or born closed.
func (g *Group) closeSubtree(observed bool) (groups []*Group, live []*Task) {
	groups = g.subtreeLocking(func(c *Group) {
		c.closed = true
		if !observed {
			return
		}
		for t := c.head; t != nil; t = t.next {
			if !t.abandoned {
				live = append(live, t)
			}
		}
	})
	return groups, live
}

// drainedAfter counts the tasks of live (observed tasks) that returned on
// their own after the event with Seq started: not those a descendant's
// concurrent shutdown aborted, nor those that had returned before and were
// still being retired (their finished event comes first in the stream).
func drainedAfter(live []*Task, started uint64) int {
	drained := 0
	for _, t := range live {
		t.mu.Lock()
		if t.state != stateAborted && t.ctx.ext().endSeq > started {
			drained++
		}
		t.mu.Unlock()
	}
	return drained
}

// abortedRun is the run an aborted Every task was in: its context, its
// start, and how and when the abort ended it, with the Seq of its
// run_finished event.
type abortedRun struct {
	ctx    context.Context
	start  time.Time
	seq    uint64
	result RunResult
}

// abort abandons every task of groups still running, reports each with the
// stack its goroutine is stuck in, and closes their Done channels. It
// returns them, and the time of the abort.
func (g *Group) abort(groups []*Group) ([]TaskInfo, time.Time) {
	now := g.tree.now()
	var tasks []*Task
	var runs []abortedRun
	for _, c := range groups {
		c.mu.Lock()
		for t := c.head; t != nil; t = t.next {
			if t.abandoned {
				continue
			}
			t.mu.Lock()
			if t.state == stateRunning {
				t.state = stateAborted
				if x := t.ctx.ext(); x != nil {
					x.endSeq = g.tree.nextSeq()
				}
				res := Result{Outcome: Aborted, Err: ErrAborted, Duration: now - t.clock}
				if t.ctx.Err() != nil {
					res.Cause = context.Cause(&t.ctx)
				}
				t.setResultLocked(&res)
				c.noteErr(t, ErrAborted)
				t.ctx.ext().duration = res.Duration // it has extras: its error is rare
				t.abandoned = true
				var run abortedRun
				if e := t.periodic(); e != nil && e.runCtx != nil {
					// The abort ends the run in progress and reports it,
					// recorded and given its Seq here, with the task's
					// end, as endRun does (see there).
					ctx := e.endLocked(Aborted, ErrAborted, g.tree.wall(now))
					run = abortedRun{ctx, e.runStart, g.tree.nextSeq(), e.last}
				}
				runs = append(runs, run)
				tasks = append(tasks, t)
			}
			t.mu.Unlock()
		}
		c.mu.Unlock()
	}
	if len(tasks) == 0 {
		return nil, time.Time{}
	}
	tr := g.tree
	tr.abandoned.Add(int64(len(tasks)))
	stacks := labeledStacks()
	infos := make([]TaskInfo, len(tasks))
	for i, t := range tasks {
		stack := stacks[labelKey{t.owner().label, t.Name()}]
		infos[i] = t.info(Abandoned, t.clock) // aborted: clock is its spawn time, and stays
		infos[i].Stack = stack
		run, evCtx := runs[i], t.fnContext()
		if run.ctx != nil {
			infos[i].RunStarted = run.start // the stuck run's, which the abort ended
			evCtx = run.ctx                 // and its trace, as eventContext gives
		}
		if tr.observed() {
			ev := t.event(KindTaskAborted)
			res := t.resultLocked() // final: nobody changes it any more
			ev.Seq = t.ctx.ext().endSeq
			ev.Outcome, ev.Err, ev.Cause, ev.Duration, ev.Stack = Aborted, ErrAborted, res.Cause, res.Duration, []byte(stack)
			tr.emit(evCtx, &ev)
			if run.ctx != nil {
				t.reportRun(run.ctx, run.seq, &run.result, ev.Stack)
			}
			t.reportFinished(t.fnContext(), &res, ev.Stack)
		}
		t.mu.Lock()
		t.closeDoneLocked(stateAborted)
		t.mu.Unlock()
		// Only now, as report does: retiring may make the group idle, and
		// a Wait or an ancestor's Shutdown that returns then promises
		// every task done.
		c := t.owner()
		c.mu.Lock()
		c.retireLocked()
		c.mu.Unlock()
	}
	return infos, g.tree.wall(now)
}
