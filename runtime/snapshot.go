package runtime

import "time"

// TaskInfo describes a live or abandoned task.
type TaskInfo struct {
	ID       uint64
	Name     string
	Group    string
	Started  time.Time
	State    TaskState
	Interval time.Duration // > 0 for Every tasks
	Runs     uint64        // runs started so far, for Every tasks
	// RunStarted is when the run in progress of an Every task started;
	// zero between its runs. A run much older than the period is stuck.
	RunStarted time.Time
	// LastRun is the last run of an Every task to have ended (a run
	// aborted at a shutdown deadline included), as its
	// [KindTaskRunFinished] event said; zero (Run 0) before the first one
	// ends, and for plain tasks. A job that fails every run shows it here:
	// its State stays running.
	LastRun RunResult
	// Stack is set only in [AbortError]: where the task's goroutine was
	// stuck at the abort, as found in a goroutine profile under the task's
	// pprof labels. Goroutines that fn started inherit those labels, so
	// the stacks of a task's helpers (or of an earlier task of the same
	// name and group still running) can be listed with it; a task aborted
	// before its goroutine started, which then never runs fn, has only
	// theirs, if any.
	Stack string
}

// RunResult is how a run of an [Group.Every] task ended.
type RunResult struct {
	Run     uint64  // the run's number, from 1
	Outcome Outcome // Success, Error, Canceled, Panic, or Aborted at a shutdown deadline
	// Err is what the run returned: a [*PanicError] for a panic,
	// [ErrAborted] for an abort; nil for a run that returned nil or
	// [ErrStop], a request rather than an error.
	Err      error
	Ended    time.Time
	Duration time.Duration
}

// GroupSnapshot is a consistent picture of a subtree.
type GroupSnapshot struct {
	Name     string
	ID       uint64 // [Group.ID]: tells apart siblings of one name
	Closed   bool
	Canceled bool
	Tasks    []TaskInfo // live and abandoned tasks of this group, in spawn order
	Groups   []GroupSnapshot
	// Counts for the whole subtree.
	Running, Canceling, Abandoned int
	// Seq is the event sequence number the snapshot corresponds to: it
	// reflects every task event with a lower or equal Seq and none with a
	// higher one, so a stream consumer can start from the snapshot and
	// apply the events after Seq. One exception: a task's Running or
	// Canceling state follows its context when the snapshot reaches it, so
	// a cancel requested while the snapshot is taken may show before its
	// cancel_requested event.
	Seq uint64
}

// info describes t in state, with its spawn time read with its state
// (see Task.clock).
func (t *Task) info(state TaskState, spawned time.Duration) TaskInfo {
	info := TaskInfo{
		ID:       t.id,
		Name:     t.Name(),
		Group:    t.Group(),
		Started:  t.tree().wall(spawned),
		State:    state,
		Interval: t.interval(),
	}
	if e := t.periodic(); e != nil {
		info.Runs = e.runs.Load()
		t.mu.Lock()
		if e.runCtx != nil {
			info.RunStarted = e.runStart
		}
		info.LastRun = e.last
		t.mu.Unlock()
	}
	return info
}

// liveStateLocked returns t's state now and its spawn time, or 0 if it
// has ended or been abandoned. A task whose fn has returned is live until
// its finished event has been delivered (Done closes then, and a Wait
// still waits for it). With aborting, so is a task being aborted, as
// Abandoned, until the abort has delivered its events: a Wait waits for
// that too. Called with t.group.mu held.
func (t *Task) liveStateLocked(aborting bool) (TaskState, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.state == stateRunning || t.state == stateFinishing:
		return t.runningStateLocked(), t.clock
	case aborting && t.state == stateAborted && !t.final:
		return Abandoned, t.clock
	}
	return 0, 0
}

// runningStateLocked is Running or Canceling, for a task shown as running.
// A task that has returned (shown as running before its end event) has an
// ended context whatever canceled it: it was canceling if its end found it
// canceled, or if a cancel reached it after fn returned and before its end
// (the task's own cancel_requested event comes before its finished one; a
// group's may come after, as a fail-fast group's does). Called with t.mu
// held.
func (t *Task) runningStateLocked() TaskState {
	canceling := t.ctx.Err() != nil
	if t.state == stateFinishing || t.state == stateDone {
		canceling = t.canceled || t.lateCancel
	}
	if canceling {
		return Canceling
	}
	return Running
}

// stateAtLocked returns t's state as of event sequence number seq, and its
// spawn time, or 0 if it had ended by then: a task whose end (or late
// exit) event has a later Seq is shown as it was before that event, so
// that a snapshot and the events after its Seq never disagree (such a task
// is observed, so it keeps its spawn time in clock). Called with
// t.group.mu held.
func (t *Task) stateAtLocked(seq uint64) (TaskState, time.Duration) {
	// Unobserved tasks have no events, so no Seq to agree with: zeros.
	var spawnSeq, endSeq, exitSeq uint64
	x := t.ctx.ext()
	if x != nil {
		spawnSeq = x.spawnSeq
	}
	if spawnSeq > seq {
		return 0, 0 // the stream reports its spawn after the snapshot
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if x != nil {
		endSeq = x.endSeq
		if r := x.rare.Load(); r != nil {
			exitSeq = r.exitSeq
		}
	}
	switch {
	case t.state == stateRunning || endSeq > seq:
		return t.runningStateLocked(), t.clock
	case t.state == stateAborted && (exitSeq == 0 || exitSeq > seq):
		return Abandoned, t.clock
	}
	return 0, 0
}

// Active returns the subtree's live tasks (running or canceling, until
// their finished event has been delivered), groups in tree order, tasks in
// spawn order. It holds each group's lock only while copying that group's
// tasks.
func (g *Group) Active() []TaskInfo { return g.active(false) }

// active is Active, with the tasks an abort is still reporting when
// aborting (see liveStateLocked).
func (g *Group) active(aborting bool) []TaskInfo {
	var out []TaskInfo
	for _, c := range g.subtree() {
		c.mu.Lock()
		for t := c.head; t != nil; t = t.next {
			if s, spawned := t.liveStateLocked(aborting); s != 0 {
				out = append(out, t.info(s, spawned))
			}
		}
		c.mu.Unlock()
	}
	return out
}

// Snapshot returns the subtree: groups, live and abandoned tasks, their
// states and counts, and the event sequence number it corresponds to.
//
// For that number to mean something, the subtree's groups are locked
// together while it is read (children before parents, the order spawns
// lock them in), so spawns and completions in the subtree wait for the
// copy, and no longer. When groups are being made in the subtree while it
// locks it, a Snapshot also holds off [Group.Group] calls anywhere in the
// tree, outside the subtree too, until it has locked it (not while it
// copies).
func (g *Group) Snapshot() GroupSnapshot {
	groups := g.lockSubtree()
	defer func() {
		for _, c := range groups {
			c.mu.Unlock()
		}
	}()
	return g.snapshotLocked(g.tree.seq.Load())
}

// lockSubtree locks g and its descendants, children first, and returns
// them.
//
// It lists the tree, locks what it listed, then locks the groups made
// since under groups listed, with TryLock (their parents are locked, and
// locks go children first): once every group is locked, none can appear
// under them. When a TryLock fails (a spawn in the new group, waiting for
// its parent), it starts over, and from then on holds off the making of
// groups in the tree (tree.gate) until it has them all: a listing of n
// groups takes O(n), and with requests each making a group, retrying
// until none had appeared never ended (a tree of 50,000 groups with four
// goroutines making groups: no Snapshot in 5 s; with one, starting over
// whenever a group had appeared never ended either). Groups listed that
// have left the tree since (shut down and detached) stay locked,
// harmlessly: they have no tasks and no children.
func (g *Group) lockSubtree() []*Group {
	tr := g.tree
	for pass := 0; ; pass++ {
		if pass == 1 {
			tr.gate.Lock()
			tr.gated.Store(true)
			defer func() {
				tr.gated.Store(false)
				tr.gate.Unlock()
			}()
		}
		groups := g.subtree()
		for i := len(groups) - 1; i >= 0; i-- {
			groups[i].mu.Lock()
		}
		locked := make(map[*Group]bool, len(groups))
		for _, c := range groups {
			locked[c] = true
		}
		stable := true
		for i := 0; i < len(groups) && stable; i++ { // groups grows
			for _, child := range groups[i].childrenLocked() {
				if locked[child] {
					continue
				}
				if !child.mu.TryLock() {
					stable = false
					break
				}
				locked[child] = true
				groups = append(groups, child)
			}
		}
		if stable {
			return groups
		}
		for _, c := range groups {
			c.mu.Unlock()
		}
	}
}

func (g *Group) snapshotLocked(seq uint64) GroupSnapshot {
	s := GroupSnapshot{Name: g.name, ID: g.id, Seq: seq, Closed: g.closed, Canceled: g.ctx.Err() != nil}
	for t := g.head; t != nil; t = t.next {
		state, spawned := t.stateAtLocked(seq)
		if state == 0 {
			continue
		}
		s.Tasks = append(s.Tasks, t.info(state, spawned))
		switch state {
		case Running:
			s.Running++
		case Canceling:
			s.Canceling++
		case Abandoned:
			s.Abandoned++
		}
	}
	for _, c := range g.childrenLocked() {
		cs := c.snapshotLocked(seq)
		s.Running += cs.Running
		s.Canceling += cs.Canceling
		s.Abandoned += cs.Abandoned
		s.Groups = append(s.Groups, cs)
	}
	return s
}
