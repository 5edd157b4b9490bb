package runtime_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

// The checks FuzzOps and TestRandomizedInvariants share: a recorded event
// log against the documented contract (Seq numbers, the per-task event
// grammar, results against finished events, snapshots against the events
// up to their Seq).

func isDone(t *runtime.Task) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// sameErr reports whether a and b are the same error, or print the same
// (an error that crossed an observer may have been wrapped again).
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a == b || a.Error() == b.Error()
}

// splitEvents checks the Seq numbers of a log (non-zero, unique) and that
// no observer panicked, and returns the events by task and the groups'
// cancel_requested events by group ID, each in delivery order. A group has
// at most one cancel_requested event.
func splitEvents(t *testing.T, events []runtime.Event) (byTask, groupCancels map[uint64][]runtime.Event) {
	seen := map[uint64]runtime.Event{}
	byTask, groupCancels = map[uint64][]runtime.Event{}, map[uint64][]runtime.Event{}
	for _, ev := range events {
		if prev, dup := seen[ev.Seq]; dup || ev.Seq == 0 {
			t.Errorf("event %s with Seq %d: zero or used twice (also by %s)", ev.Kind, ev.Seq, prev.Kind)
		}
		seen[ev.Seq] = ev
		if ev.TaskID != 0 {
			byTask[ev.TaskID] = append(byTask[ev.TaskID], ev)
		}
		switch ev.Kind {
		case runtime.KindGroupCancelRequested:
			groupCancels[ev.GroupID] = append(groupCancels[ev.GroupID], ev)
		case runtime.KindObserverPanicked:
			t.Errorf("observer panicked: %v", ev.Err)
		}
	}
	for id, evs := range groupCancels {
		if len(evs) > 1 {
			t.Errorf("group %d (%s): %d cancel_requested events", id, evs[0].Group, len(evs))
		}
	}
	return byTask, groupCancels
}

// taskSpec is what a test knows of a task it spawned.
type taskSpec struct {
	task     *runtime.Task
	groupID  uint64 // the group it was spawned on
	every    bool   // spawned with Every
	long     bool   // spawned LongRunning
	cancelOn bool   // spawned WithCancelOn
}

// taskLog is one task's events, in delivery order, digested.
type taskLog struct {
	evs                []runtime.Event
	spawned, end, late uint64 // Seqs; end: aborted, else finished
	finished           *runtime.Event
	cancel             *runtime.Event // its cancel_requested
	cancelIndex        int            // cancel's index in evs
	aborted, rejected  bool
	runs               []uint64 // Seqs of run_started events
}

// dump lists the task's events, for error messages.
func (l *taskLog) dump() string {
	var b strings.Builder
	for _, ev := range l.evs {
		fmt.Fprintf(&b, "\n\t%d %s %s run=%d outcome=%v err=%v cause=%v", ev.Seq, ev.Kind, ev.Task, ev.Run, ev.Outcome, ev.Err, ev.Cause)
	}
	return b.String()
}

// badTask returns a reporter of errors about task sp, its events appended.
func badTask(t *testing.T, sp taskSpec, l *taskLog) func(format string, args ...any) {
	return func(format string, args ...any) {
		t.Helper()
		t.Errorf("task %d (%s, every=%v): %s%s", sp.task.ID(), sp.task.Name(), sp.every, fmt.Sprintf(format, args...), l.dump())
	}
}

// checkTaskEvents checks a task's events, in delivery order, against the
// lifecycle grammar, and digests them.
func checkTaskEvents(t *testing.T, sp taskSpec, evs []runtime.Event) *taskLog {
	l := &taskLog{evs: evs}
	bad := badTask(t, sp, l)
	if len(evs) == 0 || evs[0].Kind != runtime.KindTaskSpawned {
		bad("first event is not spawned")
		return l
	}
	var openRun uint64
	for i, ev := range evs {
		if ev.GroupID != sp.groupID || ev.Task != sp.task.Name() {
			bad("event %s of group %d, task %q", ev.Kind, ev.GroupID, ev.Task)
		}
		if ev.LongRunning != sp.long {
			bad("%s with LongRunning=%v", ev.Kind, ev.LongRunning)
		}
		if i > 0 && ev.Seq <= evs[i-1].Seq {
			bad("Seq not increasing")
		}
		if l.late != 0 {
			bad("%s after late_exit", ev.Kind)
		}
		if l.finished != nil && ev.Kind != runtime.KindTaskLateExit {
			bad("%s after finished", ev.Kind)
		}
		switch ev.Kind {
		case runtime.KindTaskSpawned:
			if i != 0 {
				bad("second spawned")
			}
			l.spawned, l.rejected = ev.Seq, ev.Rejected
		case runtime.KindTaskRejected:
			if !l.rejected || i != 1 {
				bad("unexpected rejected")
			}
		case runtime.KindTaskRunStarted:
			if !sp.every {
				bad("run_started of a task not spawned with Every")
			}
			if l.end != 0 {
				bad("run_started after the end")
			}
			if openRun != 0 {
				bad("run_started while run %d open", openRun)
			}
			l.runs = append(l.runs, ev.Seq)
			if ev.Run != uint64(len(l.runs)) {
				bad("run_started numbered %d, want %d", ev.Run, len(l.runs))
			}
			openRun = ev.Run
		case runtime.KindTaskRunFinished:
			if openRun == 0 || ev.Run != openRun {
				bad("run_finished %d, open run %d", ev.Run, openRun)
			}
			if l.aborted != (ev.Outcome == runtime.Aborted) {
				bad("run_finished outcome %v, aborted=%v", ev.Outcome, l.aborted)
			}
			if ev.Outcome == runtime.Canceled && ev.Cause == nil {
				bad("canceled run without a cause")
			}
			openRun = 0
		case runtime.KindTaskCancelRequested:
			if l.cancel != nil {
				bad("second cancel_requested")
			}
			if l.end != 0 {
				bad("cancel_requested after the end")
			}
			if ev.Cause == nil || ev.Err == nil {
				bad("cancel_requested without err (%v) or cause (%v)", ev.Err, ev.Cause)
			}
			e := ev
			l.cancel, l.cancelIndex = &e, i
		case runtime.KindTaskAborted:
			if l.end != 0 {
				bad("aborted after the end (or twice)")
			}
			l.aborted, l.end = true, ev.Seq
		case runtime.KindTaskFinished:
			if openRun != 0 {
				bad("finished with run %d open", openRun)
			}
			if l.aborted != (ev.Outcome == runtime.Aborted) {
				bad("finished outcome %v, aborted=%v", ev.Outcome, l.aborted)
			}
			if ev.Rejected != l.rejected {
				bad("finished Rejected=%v", ev.Rejected)
			}
			if !l.aborted {
				l.end = ev.Seq
			}
			e := ev
			l.finished = &e
		case runtime.KindTaskLateExit:
			if !l.aborted || l.finished == nil {
				bad("late_exit of a task not aborted and finished")
			}
			l.late = ev.Seq
		default:
			bad("unexpected kind %s", ev.Kind)
		}
	}
	if l.finished == nil {
		bad("no finished event")
	}
	if l.aborted && l.late == 0 {
		bad("aborted, no late_exit once every goroutine returned")
	}
	// No run starts once Task.Cancel has returned (but the first) is
	// checked through the cancel_requested event: run_started events
	// are delivered under the lock that Cancel holds.
	if l.cancel != nil {
		for _, ev := range evs[l.cancelIndex:] {
			if ev.Kind == runtime.KindTaskRunStarted && ev.Run > 1 {
				bad("run %d started after cancel_requested", ev.Run)
			}
		}
	}
	return l
}

// checkTaskResult checks what holds of any task's Result at the end: Done
// closed, the Result its finished event's, and an outcome with the err
// and cause it implies. It returns the Result, and false if there is no
// more to check (not done, no finished event, or rejected).
func checkTaskResult(t *testing.T, sp taskSpec, l *taskLog) (runtime.Result, bool) {
	bad := badTask(t, sp, l)
	if !isDone(sp.task) {
		bad("Done not closed at the end")
		return runtime.Result{}, false
	}
	if l.finished == nil {
		return runtime.Result{}, false
	}
	res, fin := sp.task.Result(), l.finished
	if res.Outcome != fin.Outcome || !sameErr(res.Err, fin.Err) || !sameErr(res.Cause, fin.Cause) || res.Duration != fin.Duration {
		bad("Result %+v, finished event outcome=%v err=%v cause=%v duration=%v", res, fin.Outcome, fin.Err, fin.Cause, fin.Duration)
	}
	if res.Duration < 0 {
		bad("negative duration %v", res.Duration)
	}
	o := res.Outcome
	if l.rejected {
		if o != runtime.Canceled || !errors.Is(res.Err, runtime.ErrClosed) || !errors.Is(res.Cause, runtime.ErrClosed) {
			bad("rejected with %v %v %v", o, res.Err, res.Cause)
		}
		return res, false
	}
	switch o {
	case runtime.Success:
		if res.Err != nil || res.Cause != nil {
			bad("success with err %v cause %v", res.Err, res.Cause)
		}
	case runtime.Error:
		if res.Err == nil {
			bad("error outcome without an error")
		}
		if res.Err != runtime.ErrGoexit && res.Cause != nil {
			bad("error outcome with a cause %v", res.Cause)
		}
	case runtime.Canceled:
		if res.Cause == nil {
			bad("canceled without a cause")
		}
	case runtime.Panic:
		var pe *runtime.PanicError
		if !errors.As(res.Err, &pe) {
			bad("panic outcome with err %v", res.Err)
		}
	case runtime.Aborted:
		if res.Err != runtime.ErrAborted || res.Cause == nil {
			bad("aborted with err %v cause %v", res.Err, res.Cause)
		}
	default:
		bad("outcome %v", o)
	}
	// Only a task spawned WithCancelOn is canceled from outside.
	if errors.Is(res.Cause, runtime.ErrExternal) && !sp.cancelOn {
		bad("external cause %v without WithCancelOn", res.Cause)
	}
	if l.cancel != nil && res.Cause != nil && o != runtime.Aborted && res.Cause != l.cancel.Cause {
		bad("cause %v, its cancel_requested event's %v", res.Cause, l.cancel.Cause)
	}
	return res, true
}

// snapScope tells checkSnapshotLogs what belongs to a snapshot's subtree.
type snapScope struct {
	group func(gs runtime.GroupSnapshot) bool // a group listed belongs to it
	task  func(id uint64) bool                // a task belongs to it
	// groupCanceled, if set, reports whether a cancel_requested event of
	// the task's group or of an ancestor has a Seq <= seq.
	groupCanceled func(id, seq uint64) bool
}

// checkSnapshotLogs checks a snapshot against the task logs: the tasks it
// lists, their states and runs as of its Seq, its counts, and that it
// lists every task of its subtree live (or abandoned) at its Seq.
func checkSnapshotLogs(t *testing.T, snap runtime.GroupSnapshot, logs map[uint64]*taskLog, scope snapScope) {
	S := snap.Seq
	listed := map[uint64]runtime.TaskState{}
	var walk func(gs runtime.GroupSnapshot) (r, c, a int)
	walk = func(gs runtime.GroupSnapshot) (r, c, a int) {
		if !scope.group(gs) {
			t.Errorf("snapshot of %s lists group %s (%d) outside its subtree", snap.Name, gs.Name, gs.ID)
		}
		if gs.Seq != S {
			t.Errorf("snapshot %s: nested Seq %d != %d", gs.Name, gs.Seq, S)
		}
		var lastID uint64
		for _, info := range gs.Tasks {
			if info.Group != gs.Name {
				t.Errorf("snapshot %s lists task %d of group %s", gs.Name, info.ID, info.Group)
			}
			if info.ID <= lastID {
				t.Errorf("snapshot %s: tasks not in spawn order (%d after %d)", gs.Name, info.ID, lastID)
			}
			lastID = info.ID
			if _, dup := listed[info.ID]; dup {
				t.Errorf("snapshot %s: task %d listed twice", snap.Name, info.ID)
			}
			listed[info.ID] = info.State
			switch info.State {
			case runtime.Running:
				r++
			case runtime.Canceling:
				c++
			case runtime.Abandoned:
				a++
			}
			l := logs[info.ID]
			if l == nil {
				t.Errorf("snapshot Seq %d lists unknown task %d", S, info.ID)
				continue
			}
			var runs uint64
			for _, rs := range l.runs {
				if rs <= S {
					runs++
				}
			}
			switch {
			case l.rejected || l.spawned > S:
				t.Errorf("snapshot Seq %d lists task %d spawned at %d (rejected=%v)%s", S, info.ID, l.spawned, l.rejected, l.dump())
			case info.Runs != runs:
				t.Errorf("snapshot Seq %d: task %d Runs=%d, %d run_started events <= Seq (runs at %v)%s", S, info.ID, info.Runs, runs, l.runs, l.dump())
			case info.State == runtime.Abandoned:
				if !l.aborted || l.end > S || (l.late != 0 && l.late <= S) {
					t.Errorf("snapshot Seq %d: task %d abandoned; aborted=%v end=%d late=%d%s", S, info.ID, l.aborted, l.end, l.late, l.dump())
				}
			case info.State == runtime.Running || info.State == runtime.Canceling:
				if l.end <= S {
					t.Errorf("snapshot Seq %d: task %d %v but ended at Seq %d%s", S, info.ID, info.State, l.end, l.dump())
				}
				if info.State == runtime.Running && l.cancel != nil && l.cancel.Seq <= S {
					t.Errorf("snapshot Seq %d: task %d running after its cancel_requested%s", S, info.ID, l.dump())
				}
				// A group cancel is a group event: it only binds a task whose
				// context was done when fn returned (outcome canceled/aborted).
				ctxDone := l.finished != nil && (l.finished.Outcome == runtime.Canceled || l.finished.Outcome == runtime.Aborted)
				if info.State == runtime.Running && ctxDone && scope.groupCanceled != nil && scope.groupCanceled(info.ID, S) {
					t.Errorf("snapshot Seq %d: task %d running after a group's cancel_requested%s", S, info.ID, l.dump())
				}
			default:
				t.Errorf("snapshot: task %d in state %v", info.ID, info.State)
			}
		}
		for _, cg := range gs.Groups {
			cr, cc, ca := walk(cg)
			r, c, a = r+cr, c+cc, a+ca
		}
		if gs.Running != r || gs.Canceling != c || gs.Abandoned != a {
			t.Errorf("snapshot %s: counts %d/%d/%d, tasks say %d/%d/%d", gs.Name, gs.Running, gs.Canceling, gs.Abandoned, r, c, a)
		}
		return r, c, a
	}
	walk(snap)
	// Every task of the subtree live (or abandoned) at S is listed.
	for id, l := range logs {
		if l.rejected || l.spawned > S || !scope.task(id) {
			continue
		}
		live := l.end > S || (l.aborted && (l.late == 0 || l.late > S))
		if _, ok := listed[id]; live && !ok {
			t.Errorf("snapshot %s Seq %d misses task %d (spawned %d, end %d, late %d)%s", snap.Name, S, id, l.spawned, l.end, l.late, l.dump())
		}
	}
}
