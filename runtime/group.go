package runtime

import (
	"context"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// maxLabelCache bounds the per-group cache of pprof label contexts, so that
// task names made per request cannot grow it without bound; past it, labels
// are built per spawn (correct, a little slower).
const maxLabelCache = 1024

// Group owns tasks and child groups. Canceling a group cancels its whole
// subtree; a group is idle when its tasks and every descendant's tasks are
// done. Make one with [Group.Group] or, for the root, [New]; the zero
// Group is not usable.
//
// All methods are safe for concurrent use.
type Group struct {
	tree   *tree
	parent *Group
	name   string
	id     uint64 // see ID
	label  string // id as a string, for the LabelGroupID pprof label
	// ctx is canceled by the group's cancellation walk (cancelCtxLocked),
	// which reaches the descendants, not through context propagation: a
	// parent's context would hold its children's, and with them every
	// group ever made.
	ctx      context.Context
	public   context.Context // what Context returns: ctx, holding the group
	cancel   context.CancelCauseFunc
	policy   PanicPolicy
	failFast bool

	firstErr atomic.Pointer[TaskError] // see Err
	pinned   atomic.Bool               // the public context's Done was asked for, or needs no pin (see pin)

	// cancelMu serializes the group's cancellation requests (Cancel,
	// shutdown, fail-fast), so that the first is the one whose cause
	// stands; it is held while the subtree is marked and its contexts
	// are canceled, and by a failing task of a fail-fast group from the
	// Seq of its end on (see Task.finish). Lock order: cancelMu, then a
	// task's mu or a group's mu.
	cancelMu        sync.Mutex
	cancelRequested bool // guarded by cancelMu

	mu     sync.Mutex // guards the fields below
	closed bool       // refuses spawns and makes children closed
	shut   bool       // a shutdown of this group or an ancestor completed
	// detached: gone from the tree (never listed, or shut down and
	// drained). Set under mu; atomic, for the parent's prune, which reads
	// it under the parent's lock.
	detached     atomic.Bool
	stale        int   // detached children still in children, at most (see maybeDetach)
	head, tail   *Task // live and abandoned tasks, in spawn order
	live         int   // tasks in the list that are not abandoned
	busyChildren int   // children whose subtree is not idle
	// children holds the child groups weakly, so that an idle group that
	// nothing holds (one made per request and only waited for) is garbage,
	// not a leak; see childrenLocked.
	children   []weak.Pointer[Group]
	idle       chan struct{}         // closed when the subtree becomes idle; nil if nobody waits
	labels     map[string]*taskLabel // task name → its shared label
	lastLabel  *taskLabel            // the last name spawned
	canceledAt time.Time             // first cancellation that reached the group
	shutdown   *shutdownState
	ids        idBlock // task IDs taken from the tree, not yet used
}

// idBlock is a range of task IDs a group took from its tree: next up to,
// not including, end. size is the next block's size.
type idBlock struct {
	next, end uint64
	size      uint64
}

// maxIDBlock bounds the IDs a group takes at once. Blocks double from one,
// so a group with few tasks leaves few gaps in the numbering, and a busy
// one touches the tree's shared counter once every 64 spawns.
const maxIDBlock = 64

// nextIDLocked returns a new task ID, unique in the supervisor. IDs grow
// with spawn order within a group; across groups they are only unique.
func (g *Group) nextIDLocked() uint64 {
	b := &g.ids
	if b.next == b.end {
		b.size = min(max(2*b.size, 1), maxIDBlock)
		b.end = g.tree.ids.Add(b.size) + 1
		b.next = b.end - b.size
	}
	id := b.next
	b.next++
	return id
}

func newGroup(tr *tree, parent *Group, name string, cfg groupConfig) *Group {
	ctx, cancel := context.WithCancelCause(context.Background())
	id := groupIDs.Add(1)
	g := &Group{
		tree:     tr,
		parent:   parent,
		name:     name,
		id:       id,
		label:    strconv.FormatUint(id, 10),
		ctx:      ctx,
		cancel:   cancel,
		policy:   cfg.panicPolicy,
		failFast: cfg.cancelOnError,
	}
	g.public = &groupContext{ctx, g}
	return g
}

// checkGroupName panics, naming the call (New or Group), on a name no
// group can have.
func checkGroupName(call, name string) {
	if name == "" {
		panic("taskscope: " + call + `(""): empty group name`)
	}
	if strings.Contains(name, ".") {
		panic("taskscope: " + call + "(" + strconv.Quote(name) + "): group name contains '.' (names are joined with dots)")
	}
}

// Name returns the group's full dotted name from the root, such as
// "app.ingest.kafka" for Group("ingest").Group("kafka") of a supervisor
// named "app".
func (g *Group) Name() string { return g.name }

// ID returns the group's number, unique in the process: sibling groups may
// share a name, so events ([Event.GroupID]) and snapshots
// ([GroupSnapshot.ID]) carry it too, and task goroutines carry it as the
// [LabelGroupID] pprof label.
func (g *Group) ID() uint64 { return g.id }

// parentID is the parent's ID, 0 for the root.
func (g *Group) parentID() uint64 {
	if g.parent == nil {
		return 0
	}
	return g.parent.id
}

// Group returns a new child group named name; its [Group.Name] is
// g.Name()+"."+name. Sibling names need not be unique. A child of a closed
// group is closed. An empty name, one containing ".", or a nil option
// panics.
//
// Short-lived groups do not grow the tree. A child group that has been
// shut down and has drained is detached from its parent at once. One that
// is idle and that nothing holds (no task of it is running or abandoned,
// none of its child groups stays, and neither it nor its [Group.Context]
// is referenced), such as a group made per request and only waited for, as
// an errgroup would be, is garbage: it leaves the tree, and snapshots, at
// the next garbage collection. Shut it down to see it leave at once, with
// its shutdown events. A group whose Context's Done channel has been asked
// for (a select on it, a context made from it, [context.AfterFunc], a
// request made with it) stays until it is canceled, even once nothing
// uses the context any more: nothing tells the group that nobody waits on
// the channel, and whatever does must be woken when an ancestor is
// canceled. So a group made per request whose Context the request used
// ends with g.Cancel(nil) after its Wait, as errgroup.WithContext's Wait
// cancels its context. ([WithCancelOn] given a group's Context does not
// keep the group after its task.)
func (g *Group) Group(name string, opts ...GroupOption) *Group {
	checkGroupName("Group", name)
	cfg := groupConfig{}
	for _, o := range opts {
		mustOption(o, "GroupOption")
		o.applyGroup(&cfg)
	}
	if !cfg.panicPolicySet {
		cfg.panicPolicy = g.policy
	}
	if tr := g.tree; tr.gated.Load() { // a Snapshot is locking the tree: see lockSubtree
		tr.gate.RLock()
		defer tr.gate.RUnlock()
	}
	c := newGroup(g.tree, g, g.name+"."+name, cfg)
	g.mu.Lock()
	// Under g.mu, against the cancellation walk: it cancels g's context
	// and lists g's children with the lock held, so c is either listed or
	// sees g canceled here.
	c.canceledAt = g.canceledAt
	if g.closed {
		// Never listed, so no walk reaches it: its context is made from
		// g's, which the Shutdown that closed g cancels (or did). g's
		// holds it only until then.
		c.closed, c.shut = true, true
		c.detached.Store(true)
		c.ctx, c.cancel = context.WithCancelCause(g.ctx)
		c.public = &groupContext{c.ctx, c}
		c.pinned.Store(true) // g's context holds it: no pin
	} else {
		if g.ctx.Err() != nil {
			c.cancel(context.Cause(g.ctx))
		}
		if len(g.children) == cap(g.children) {
			g.pruneLocked() // drop the collected ones before growing
		}
		g.children = append(g.children, weak.Make(c))
	}
	g.mu.Unlock()
	return c
}

// pruneLocked drops from g.children the groups collected, and those
// detached (see maybeDetach). A group stays while anything holds it: a
// task of it (running or abandoned), a child group, its [Group.Context],
// or the application. Called with g.mu held.
func (g *Group) pruneLocked() {
	g.children = slices.DeleteFunc(g.children, func(w weak.Pointer[Group]) bool {
		c := w.Value()
		return c == nil || c.detached.Load()
	})
	g.stale = 0
}

// childrenLocked returns g's child groups in creation order, pruning
// first. Called with g.mu held.
func (g *Group) childrenLocked() []*Group {
	g.pruneLocked()
	live := make([]*Group, 0, len(g.children))
	for _, w := range g.children {
		if c := w.Value(); c != nil && !c.detached.Load() { // collected or detached since the prune
			live = append(live, c)
		}
	}
	return live
}

// Context returns a context that is done when the group is canceled (by
// [Group.Cancel], an ancestor, fail-fast or shutdown); [context.Cause] says
// why. The context holds the group (see [Group.Group]); once its Done
// channel has been asked for, the group stays until it is canceled:
// cancel a group made per request whose Context was used, after its Wait.
func (g *Group) Context() context.Context { return g.public }

// groupContext is the context [Group.Context] returns. It holds the group,
// so that the group, and with it the walk that cancels its context, stays
// while the context is in use. What waits on its Done channel need not
// hold it: a goroutine blocked on the channel alone, or a callback of
// context.AfterFunc (the context's own children hold it, in a cycle with
// the group). So the first Done pins the group (see pin) until it is
// canceled; what waits may be gone by then, but nothing says so.
type groupContext struct {
	context.Context
	group *Group
}

func (c *groupContext) Done() <-chan struct{} {
	if g := c.group; !g.pinned.Load() {
		g.pin()
	}
	return c.Context.Done()
}

// pin keeps g, and through it its ancestors, reachable from the tree until
// g is canceled (cancelCtxLocked unpins it), so that the walk of an
// ancestor's cancellation reaches whatever waits on g's context. The root,
// and groups canceled already, need no pin; nor does a group made under a
// closed one, whose context is made from its parent's (Group.Group marks
// it pinned at birth). Only the tree's pinMu is taken, never a group's
// lock: Done may be called under any lock of the caller.
func (g *Group) pin() {
	tr := g.tree
	tr.pinMu.Lock()
	defer tr.pinMu.Unlock()
	if g.pinned.Load() {
		return
	}
	// Before the check: a walk that cancels g after the check sees the
	// flag and unpins; one that canceled it before makes the check fail.
	g.pinned.Store(true)
	if g.parent == nil || g.ctx.Err() != nil {
		return
	}
	if tr.pins == nil {
		tr.pins = make(map[*Group]struct{})
	}
	tr.pins[g] = struct{}{}
}

// unpin releases what pin holds, once g's context is canceled.
func (g *Group) unpin() {
	if !g.pinned.Load() {
		return
	}
	tr := g.tree
	tr.pinMu.Lock()
	delete(tr.pins, g)
	tr.pinMu.Unlock()
}

// Err returns the first error of the group's own tasks (not its
// children's), as errgroup's Wait does: the [*TaskError] of the first of
// them to record a non-nil [Result].Err as it ends (of tasks ending at
// once, any may be first, whatever the order of their finished events),
// that is an error fn returned
// (whatever the outcome), a panic, [ErrGoexit], [ErrAborted], or the
// refusal of a spawn on the closed group (wrapping [ErrClosed]: the task
// never ran). In a [CancelOnError] group that a failure canceled, it is
// that failure, the group's cause. It returns nil while every task has
// returned nil.
//
// An error is recorded before its task is done, so after a [Group.Wait]
// that returned nil, Err covers every task spawned before the Wait. A
// handler that makes a group per request checks both, and a spawn refused
// during a Shutdown (errors.Is(err, ErrClosed)) does not pass for work
// done.
func (g *Group) Err() error {
	if e := g.firstErr.Load(); e != nil {
		return e
	}
	return nil
}

// noteErr records err, the Result.Err of t (a task of g), if it is g's
// first.
func (g *Group) noteErr(t *Task, err error) {
	if g.firstErr.Load() == nil {
		g.firstErr.CompareAndSwap(nil, &TaskError{Group: g.name, Task: t.Name(), TaskID: t.id, Err: err})
	}
}

// Cancel requests cancellation of every task and descendant group, with
// cause (nil means context.Canceled). It does not wait; use [Group.Wait].
// Canceling twice keeps the first cause. A canceled group still accepts
// tasks (they start canceled); [Group.Shutdown] closes it.
func (g *Group) Cancel(cause error) { g.cancelWith(context.Background(), cause) }

func (g *Group) cancelWith(ctx context.Context, cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	if g.cancelCtx(cause) {
		g.emitCanceled(ctx, cause)
	}
}

// cancelCtx cancels the subtree's contexts with cause and reports whether
// this was the group's first cancellation, which owes its
// cancel_requested event (emitCanceled): no request of the group came
// before it and no ancestor had canceled it. The group's requests are
// serialized, so that of racing ones exactly one is first and its cause is
// the one that stands (before, a later one could cancel the context
// between the first one's claim and its check, and then none was first).
// An ancestor's cancellation reaches the group without this lock: one
// that lands between the check and the cancel leaves its own cause.
func (g *Group) cancelCtx(cause error) (first bool) {
	g.cancelMu.Lock()
	defer g.cancelMu.Unlock()
	return g.cancelCtxLocked(cause)
}

// cancelCtxLocked is cancelCtx, called with g.cancelMu held.
func (g *Group) cancelCtxLocked(cause error) (first bool) {
	if g.cancelRequested {
		return false // canceled under this lock already
	}
	g.cancelRequested = true
	first = g.ctx.Err() == nil
	at := time.Now()
	// Parents come before their children: each descendant takes its
	// parent's cause, as a context canceled by its parent would. When
	// cancellation reaches a group, its time is recorded first, for its
	// tasks' cancel latency.
	g.subtreeLocking(func(c *Group) {
		if c.canceledAt.IsZero() {
			c.canceledAt = at
		}
		if c == g {
			c.cancel(cause)
		} else {
			c.cancel(context.Cause(c.parent.ctx))
		}
		c.unpin()
	})
	return first
}

// emitCanceled emits the group's cancel_requested event for a request
// with cause.
func (g *Group) emitCanceled(ctx context.Context, cause error) {
	g.tree.emit(ctx, &Event{Kind: KindGroupCancelRequested, Group: g.name, GroupID: g.id, ParentGroupID: g.parentID(), Cause: context.Cause(g.ctx), Err: cause})
}

// subtree lists g and its descendants in tree order: depth first, each
// group before its children, as a Snapshot nests them.
func (g *Group) subtree() []*Group { return g.subtreeLocking(nil) }

// subtreeLocking lists g and its descendants in tree order, calling visit
// (when not nil) on each with its lock held, in the same critical section
// that reads its children: a child created concurrently is either listed
// or created after its parent was visited (and copies what visit set
// there).
func (g *Group) subtreeLocking(visit func(c *Group)) []*Group {
	var out []*Group
	next := []*Group{g} // a stack: the next group to list is on top
	for len(next) > 0 {
		c := next[len(next)-1]
		next = next[:len(next)-1]
		out = append(out, c)
		c.mu.Lock()
		if visit != nil {
			visit(c)
		}
		children := c.childrenLocked()
		for i := len(children) - 1; i >= 0; i-- {
			next = append(next, children[i])
		}
		c.mu.Unlock()
	}
	return out
}

// labelsLocked returns the label of task name in g, whose context carries
// the pprof labels, derived from g.ctx, building it once per name. Groups
// mostly spawn one name after another, so the last one is kept where a
// string compare finds it.
func (g *Group) labelsLocked(name string) *taskLabel {
	if l := g.lastLabel; l != nil && l.name == name {
		return l
	}
	l, ok := g.labels[name]
	if !ok {
		l = &taskLabel{group: g, name: name, ctx: pprof.WithLabels(g.ctx, pprof.Labels(LabelGroup, g.name, LabelGroupID, g.label, LabelTask, name))}
		// Many groups only ever spawn one name, which lastLabel serves:
		// the map is made for the second.
		if last := g.lastLabel; last != nil && len(g.labels) < maxLabelCache {
			if g.labels == nil {
				g.labels = map[string]*taskLabel{last.name: last}
			}
			g.labels[name] = l
		}
	}
	g.lastLabel = l
	return l
}

// pprof label keys set on every task goroutine. LabelGroupID is a number
// unique in the process: sibling groups (and groups of different
// supervisors) may share a name.
const (
	LabelGroup   = "taskscope.group"
	LabelGroupID = "taskscope.group.id"
	LabelTask    = "taskscope.task"
)

// groupIDs numbers groups (Group.ID), process-wide like their pprof
// labels.
var groupIDs atomic.Uint64

// linkLocked adds a running task to the group.
func (g *Group) linkLocked(t *Task) {
	t.prev = g.tail
	if g.tail != nil {
		g.tail.next = t
	} else {
		g.head = t
	}
	g.tail = t
	g.live++
	if g.live == 1 && g.busyChildren == 0 {
		g.becameLocked(true)
	}
}

// unlinkLocked removes t from the list.
func (g *Group) unlinkLocked(t *Task) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		g.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		g.tail = t.prev
	}
	t.prev, t.next = nil, nil
}

// retire removes a finished task from its group.
func (g *Group) retire(t *Task) {
	g.mu.Lock()
	g.unlinkLocked(t)
	g.retireLocked()
	g.mu.Unlock()
}

// retireLocked stops counting t as live (it finished or was abandoned).
func (g *Group) retireLocked() {
	g.live--
	if g.live == 0 && g.busyChildren == 0 {
		g.becameLocked(false)
	}
}

func (g *Group) busyLocked() bool { return g.live > 0 || g.busyChildren > 0 }

// becameLocked records that the subtree became busy or idle: it wakes
// waiters and tells the parent. Locks go child then parent, never the other
// way, so the chain cannot deadlock.
func (g *Group) becameLocked(busy bool) {
	if !busy && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	if p := g.parent; p != nil {
		p.mu.Lock()
		was := p.busyLocked()
		if busy {
			p.busyChildren++
		} else {
			p.busyChildren--
		}
		if now := p.busyLocked(); now != was {
			p.becameLocked(now)
		}
		p.mu.Unlock()
	}
}

// idleChan returns a channel closed when the subtree becomes idle, or nil
// if it is idle now.
func (g *Group) idleChan() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.busyLocked() {
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	return g.idle
}

// maybeDetach removes a shut-down, empty group from its parent, then gives
// the parent the same chance.
//
// The group is marked detached and left in the parent's list, which walks
// and prunes skip and drop; the parent prunes once about half its list is
// detached. Removing it at once cost a scan of the parent's list per
// group: a shutdown of a parent with n child groups, or of n sibling
// groups one by one, took O(n²) (7 s for 40,000 children).
func (g *Group) maybeDetach() {
	g.mu.Lock()
	p := g.parent
	// The cheap checks first: the prune walks the children, and a child
	// detaching calls this on its parent, which is mostly not shut.
	if !g.shut || g.detached.Load() || p == nil || g.head != nil {
		g.mu.Unlock()
		return
	}
	if g.pruneLocked(); len(g.children) > 0 {
		g.mu.Unlock()
		return
	}
	g.detached.Store(true)
	g.mu.Unlock()
	p.mu.Lock()
	// stale over-counts when a walk pruned g first: that only prunes
	// sooner.
	if p.stale++; 2*p.stale > len(p.children) {
		p.pruneLocked()
	}
	p.mu.Unlock()
	p.maybeDetach()
}
