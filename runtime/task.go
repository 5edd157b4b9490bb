package runtime

import (
	"context"
	"fmt"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTaskName is the name of a task spawned with an empty name.
const DefaultTaskName = "task.default"

// Spawner starts named tasks. [*Supervisor] and [*Group] implement it, so
// components can take a Spawner rather than a concrete group.
type Spawner interface {
	Go(name string, fn func(ctx context.Context) error, opts ...TaskOption) *Task
}

var (
	_ Spawner = (*Group)(nil)
	_ Spawner = (*Supervisor)(nil)
)

// Result is how a task ended. It is valid once [Task.Done] is closed.
type Result struct {
	Outcome Outcome
	// Err is what fn returned, a [*PanicError] for panics, [ErrGoexit] or
	// [ErrAborted]; for a spawn a closed group refused, an error wrapping
	// [ErrClosed].
	Err error
	// Cause is context.Cause of the task's context when it ended, nil if
	// it was not done; for a refused spawn, Err.
	Cause    error
	Duration time.Duration // from spawn to the end (for aborted tasks: to the abort)
}

// Task is a handle to one supervised task, returned by [Group.Go] and
// [Group.Every]; the zero Task is not usable. Its methods are safe for
// concurrent use.
type Task struct {
	// The record is kept to 80 bytes, rare fields out of line (taskExtra,
	// taskRare): the spawner writes it and the task goroutine, often on
	// another core, finishes it, so its size is paid in allocation, GC and
	// cache misses on every task.

	id uint64
	fn func(context.Context) error
	// clock is the spawn time (since the supervisor's epoch: one monotonic
	// clock read). A task that ends without extras (unobserved, without
	// options, error or Done channel) keeps its Result.Duration here
	// instead, from the change to stateDone on, when nobody reads its
	// spawn time any more: one field for both saves a size class. The
	// others keep it in taskExtra.duration. Written under mu.
	clock time.Duration
	ctx   taskContext // also holds the group and the name (ctx.lab)

	// Guarded by group.mu.
	prev, next *Task
	abandoned  bool

	returned bool // fn returned normally; touched only by the task goroutine

	// lateCancel: the task's context was not done when fn returned but was
	// when the task recorded its end (a Cancel of the task, whose
	// cancel_requested event precedes the finished one, or of its group,
	// whose event may follow it, came in between).
	// Guarded by mu; kept here, where the record has room for it.
	lateCancel bool

	mu       sync.Mutex // guards the fields below, and ctx.rare().err (see setErrLocked)
	state    taskState
	final    bool // Done is (or, once made, will be) closed
	canceled bool // the task's context was done when it ended: Result.Cause is its cause
	outcome  Outcome
}

// taskWithExtra is an observed task and its extras, allocated together.
type taskWithExtra struct {
	Task
	extra taskExtra
}

// taskWithRare is a task with options or a period: record, extras and
// rare fields, allocated together.
type taskWithRare struct {
	Task
	extra taskExtra
	rare  taskRare
}

// every is what only periodic tasks carry.
type every struct {
	interval time.Duration
	runs     atomic.Uint64 // runs started so far

	// Guarded by Task.mu.
	runCtx   context.Context // the current run's context, while a run is in progress
	runStart time.Time       // when the current run started
	last     RunResult       // the last run that ended (TaskInfo.LastRun)
}

type taskState uint8

const (
	stateRunning   taskState = iota
	stateFinishing           // fn returned; reporting the outcome
	stateDone                // finished and reported
	stateAborted             // abandoned at a shutdown deadline
)

// closedChan is returned by Done for tasks that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// ID returns the task's ID, unique within its supervisor.
func (t *Task) ID() uint64 { return t.id }

// Name returns the task's name.
func (t *Task) Name() string { return t.ctx.lab.name }

// Group returns the dotted name of the task's group.
func (t *Task) Group() string { return t.owner().name }

// owner is the task's group.
func (t *Task) owner() *Group { return t.ctx.lab.group }

// Done returns a channel closed once the task has ended and its
// [KindTaskFinished] event has been delivered: fn returned, or the task was
// aborted at a shutdown deadline (its goroutine may still be running), or
// it was rejected by a closed group.
func (t *Task) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.ctx.rare()
	if r != nil && r.done != nil {
		return r.done
	}
	if t.final {
		return closedChan
	}
	r = t.ctx.makeRare()
	r.done = make(chan struct{})
	return r.done
}

// Result returns how the task ended. Before [Task.Done] is closed it
// returns the zero Result.
func (t *Task) Result() Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.final {
		return Result{}
	}
	return t.resultLocked()
}

// resultLocked assembles the Result from its parts. The cause is not
// stored: a context's cause never changes once it is done, so reading it
// now gives what it was when the task ended.
func (t *Task) resultLocked() Result {
	r := Result{Outcome: t.outcome, Duration: t.clock}
	var x *taskRare
	if e := t.ctx.ext(); e != nil {
		r.Duration, x = e.duration, e.rare.Load()
	}
	if x != nil {
		r.Err = x.err
	}
	switch {
	case x != nil && x.rejected:
		r.Cause = x.err
	case t.canceled:
		r.Cause = context.Cause(&t.ctx)
	}
	return r
}

// setErrLocked records Result.Err, out of line: a task that ends with an
// error and had no rare fields gets them now. Only the task goroutine (or
// an abort, which holds the lock too) sets it, once.
func (t *Task) setErrLocked(err error) {
	if err != nil {
		t.ctx.makeRare().err = err
	}
}

// errUnlocked returns Result.Err to the task goroutine, which set it.
func (t *Task) errUnlocked() error {
	if r := t.ctx.rare(); r != nil {
		return r.err
	}
	return nil
}

// setResultLocked records how the task ended, but for Duration (see
// clock).
func (t *Task) setResultLocked(res *Result) {
	t.outcome = res.Outcome
	t.setErrLocked(res.Err)
	t.canceled = res.Cause != nil
}

// Cancel requests cancellation of this task alone, with cause (nil means
// context.Canceled). It does not wait. Canceling an ended task does
// nothing; canceling twice keeps the first cause.
func (t *Task) Cancel(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	t.cancelWith(cause, time.Now())
}

func (t *Task) cancelWith(cause error, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock() // held while observing, so cancel_requested precedes finished
	if t.state != stateRunning {
		return
	}
	o := t.ctx.activate()
	if o.Err() != nil {
		return
	}
	o.at = at
	o.cancel(cause)
	if tr := t.tree(); tr.observed() {
		ev := t.event(KindTaskCancelRequested)
		ev.Cause = context.Cause(o)
		ev.Err = cause
		tr.emit(t.eventContext(), &ev)
	}
}

// eventContext is the context t's events are observed with: a periodic
// task's run in progress, whose context carries the run's trace, as its
// run_finished event does, so that a log record of a cancel that reached
// the run joins the run's trace; else fnContext. Called with t.mu held.
func (t *Task) eventContext() context.Context {
	if e := t.periodic(); e != nil && e.runCtx != nil {
		return e.runCtx
	}
	return t.fnContext()
}

func (t *Task) tree() *tree { return t.owner().tree }

// fnContext is what fn receives: the task context, as wrapped by the
// observers' TaskStarting.
func (t *Task) fnContext() context.Context {
	if r := t.ctx.rare(); r != nil && r.fnCtx != nil {
		return r.fnCtx
	}
	return &t.ctx
}

// periodic returns an Every task's period state, nil for plain tasks.
func (t *Task) periodic() *every {
	if r := t.ctx.rare(); r != nil {
		return r.every
	}
	return nil
}

// interval is the period of an Every task, 0 for plain tasks.
func (t *Task) interval() time.Duration {
	if e := t.periodic(); e != nil {
		return e.interval
	}
	return 0
}

// event returns an event of kind about t, without Seq and Time.
func (t *Task) event(kind string) (ev Event) {
	t.fillEvent(&ev, kind)
	return ev
}

// fillEvent makes *ev an event of kind about t, without Seq and Time. It
// writes field by field, in place: on the task goroutine, an Event-sized
// temporary is stack the goroutine would have to grow for, and copying a
// whole Event into a pooled buffer costs twice as much as these stores.
// Every field is written (TestFillEventWritesEveryField).
func (t *Task) fillEvent(ev *Event, kind string) {
	ev.Seq, ev.Time, ev.Kind = 0, time.Time{}, kind
	g := t.owner()
	ev.Group, ev.GroupID, ev.ParentGroupID = g.name, g.id, g.parentID()
	ev.Task, ev.TaskID = t.Name(), t.id
	ev.Function, ev.Interval, ev.Run, ev.LongRunning = t.tree().funcName(t.ctx.lab, t.fn), 0, 0, false
	if r := t.ctx.rare(); r != nil {
		ev.LongRunning = r.longRunning
		if r.every != nil {
			ev.Interval = r.every.interval
		}
	}
	ev.Outcome, ev.Rejected, ev.Err, ev.Cause = 0, false, nil, nil
	ev.Duration, ev.CancelLatency, ev.Stack = 0, 0, nil
	ev.Drained, ev.Aborted = 0, 0
}

// Go starts fn as a task named name ("" means [DefaultTaskName]) in g and
// returns its handle. fn receives a context canceled when the task, the
// group or an ancestor is canceled or shut down; [context.Cause] says why.
// Like an http.Request's, the context is also canceled once fn has
// returned (with cause [ErrTaskEnded], unless it was canceled before), so
// goroutines fn started with it stop too.
//
// On a closed group, Go starts nothing and never calls fn: the returned
// task is already done with outcome [Canceled] and an error wrapping
// [ErrClosed]. A nil fn or a nil option panics.
func (g *Group) Go(name string, fn func(ctx context.Context) error, opts ...TaskOption) *Task {
	if fn == nil {
		panic(fmt.Sprintf("taskscope: Go(%q) with nil function", name))
	}
	return g.spawn(name, fn, 0, opts)
}

func (g *Group) spawn(name string, fn func(context.Context) error, interval time.Duration, opts []TaskOption) *Task {
	if name == "" {
		name = DefaultTaskName
	}
	var cfg taskConfig
	if len(opts) > 0 {
		cfg = newTaskConfig(opts) // out of line: cfg escapes through the interface calls
	}
	tr := g.tree
	var t *Task
	var x *taskExtra // always set for observed tasks
	switch {
	case cfg.parent != nil || len(cfg.cancelOn) > 0 || interval > 0 || cfg.longRunning:
		tx := new(taskWithRare) // one allocation for all three
		t, x = &tx.Task, &tx.extra
		storeUnpublished(&x.rare, &tx.rare)
		storeUnpublished(&t.ctx.extra, x)
		if cfg.parent != nil {
			tx.rare.values = context.WithoutCancel(cfg.parent)
		}
		if interval > 0 {
			tx.rare.every = &every{interval: interval}
		}
		tx.rare.longRunning = cfg.longRunning
		tx.rare.deadline = earliestDeadline(cfg.cancelOn)
	case tr.observed():
		tx := new(taskWithExtra)
		t, x = &tx.Task, &tx.extra
		storeUnpublished(&t.ctx.extra, x)
	default:
		t = new(Task)
	}
	t.fn, t.clock = fn, tr.now()
	if tr.observed() {
		// t.mu is held until observers have seen the spawn, so that a
		// Cancel or an abort that finds the task once it is linked reports
		// after it. Nobody else can lock t.mu before the link, so taking
		// g.mu under it cannot deadlock. Without observers there is no
		// order to keep.
		t.mu.Lock()
	}
	g.mu.Lock()
	t.id = g.nextIDLocked()
	if g.closed {
		g.mu.Unlock()
		t.ctx.lab = &taskLabel{group: g, name: name, ctx: g.ctx}
		t.reject()
		if tr.observed() {
			t.mu.Unlock()
		}
		return t
	}
	t.ctx.lab = g.labelsLocked(name)
	g.linkLocked(t)
	if tr.observed() {
		x.spawnSeq = tr.nextSeq()
	}
	g.mu.Unlock()
	if tr.observed() {
		ev := newEvent()
		t.fillEvent(ev, KindTaskSpawned)
		ev.Seq, ev.Time = x.spawnSeq, tr.wall(t.clock)
		if base := t.ctx.lab.ctx; base.Err() != nil { // spawned into a canceled group
			ev.Cause = context.Cause(base)
		}
		if ctx := tr.taskStarting(&t.ctx, ev); ctx != context.Context(&t.ctx) {
			t.ctx.makeRare().fnCtx = ctx // t.mu keeps others from reading it yet
		}
		freeEvent(ev)
		t.mu.Unlock()
	}
	// After t.mu is released: an already done context cancels the task
	// here, and Cancel takes t.mu.
	if len(cfg.cancelOn) > 0 {
		t.watch(cfg.cancelOn)
	}
	go t.run()
	return t
}

// watch cancels t when any of exts is done.
func (t *Task) watch(exts []context.Context) {
	stops := make([]func() bool, 0, len(exts))
	for _, ext := range exts {
		cancel := func() {
			t.cancelWith(fmt.Errorf("%w: %w", ErrExternal, context.Cause(ext)), time.Now())
		}
		if ext.Err() != nil {
			cancel()
			break
		}
		// A group's Context is watched through the group's own context,
		// without the pin its Done would take (which would keep the group
		// until it is canceled, long after this task): cancel holds ext,
		// and with it the group, reachable from the task while it runs,
		// so that the walk of an ancestor's cancellation reaches it.
		watched := ext
		if gc, ok := ext.(*groupContext); ok {
			watched = gc.Context
		}
		stops = append(stops, context.AfterFunc(watched, cancel))
	}
	t.ctx.rare().stopExt = func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// earliestDeadline returns the earliest deadline of the WithCancelOn
// contexts, the task context's own (taskContext.Deadline): the task is
// canceled then, as a context derived from them would be. Zero if none
// has one.
func earliestDeadline(exts []context.Context) (d time.Time) {
	for _, ext := range exts {
		if e, ok := ext.Deadline(); ok && (d.IsZero() || e.Before(d)) {
			d = e
		}
	}
	return d
}

// reject ends a task spawned on a closed group without running it.
func (t *Task) reject() {
	err := &closedError{"taskscope: " + t.Group() + "/" + t.Name() + " not started: group closed"}
	t.owner().noteErr(t, err)
	t.ctx.makeRare().rejected = true
	res := Result{Outcome: Canceled, Err: err, Cause: err}
	t.setResultLocked(&res)
	t.state = stateDone
	if tr := t.tree(); tr.observed() {
		ev := t.event(KindTaskSpawned)
		ev.Seq, ev.Time, ev.Rejected = tr.nextSeq(), tr.wall(t.clock), true
		ev.Cause = err // as Result.Cause: the group may not be canceled yet
		ctx := tr.taskStarting(&t.ctx, &ev)
		t.ctx.rare().fnCtx = ctx
		ev = t.event(KindTaskRejected)
		ev.Err, ev.Rejected = err, true
		tr.emit(ctx, &ev)
		t.reportFinished(ctx, &res, nil)
	}
	t.final = true // with extras (rare), its duration is 0
}

// run is the task goroutine. The frames from here to the observers of the
// finished event are kept small (no Result or Event values on the way):
// a goroutine starts with 2 KiB of stack, about half of it usable before
// it must grow, and growing it costs more than the whole spawn.
func (t *Task) run() {
	pprof.SetGoroutineLabels(t.ctx.lab.ctx)
	if t.ctx.ext() != nil && t.tree().growStack {
		growStack()
	}
	defer t.exitAbnormally()
	var err error
	if t.periodic() != nil {
		err = t.loop()
	} else if !t.abortedBeforeStart() {
		err = t.fn(t.fnContext())
	}
	t.returned = true
	canceled := t.ctx.Err() != nil
	outcome := Success
	switch {
	case canceled:
		outcome = Canceled
	case err != nil:
		outcome = Error
	}
	if end, report := t.finish(outcome, err, canceled); report {
		t.report(nil, end)
	}
}

// abortedBeforeStart reports whether a Shutdown aborted t before its
// goroutine got to run fn (Every's loop checks the same before each run):
// fn must not start after the Shutdown that listed it has returned. A
// Shutdown cancels the group's context before it aborts anything, so the
// lock is taken only once that is done.
func (t *Task) abortedBeforeStart() bool {
	return t.ctx.lab.ctx.Err() != nil && t.aborted()
}

func (t *Task) aborted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == stateAborted
}

// growStack makes the task goroutine's stack grow now, while it is two
// frames deep, for observers that are [StackUser]s.
//
//go:noinline
func growStack() {
	var pad [2048]byte
	use(pad[:])
}

//go:noinline
func use([]byte) {}

// exitAbnormally reports a task whose fn panicked or called
// runtime.Goexit; it does nothing after a normal return.
func (t *Task) exitAbnormally() {
	if t.returned {
		return
	}
	r := recover()
	res := Result{Outcome: Error, Err: ErrGoexit}
	var stack []byte
	if r != nil {
		stack = panicStack(debug.Stack())
		p := &PanicError{Value: r, Stack: stack}
		res.Outcome, res.Err = Panic, p
		if !t.tree().observed() && t.owner().policy != Crash { // Crash's re-panic prints it
			logUnobservedPanic(t, p)
		}
	}
	if t.periodic() != nil {
		t.endRun(res.Outcome, res.Err, stack)
	}
	if end, report := t.finish(res.Outcome, res.Err, t.ctx.Err() != nil); report {
		t.report(stack, end)
	}
	if r != nil && t.owner().policy == Crash {
		panic(r)
	}
}

// finish records the outcome, and cancels a fail-fast group the task's
// failure fails. Without observers or fail-fast it also updates the books
// and closes Done; otherwise it returns the end time and true, and the
// caller calls report, so that finish's frame is off the stack while the
// observers run.
//
// canceled says whether the task's context was done when fn ended (the
// moment its outcome was decided): Result.Cause is then its cause.
func (t *Task) finish(outcome Outcome, err error, canceled bool) (end time.Duration, report bool) {
	if r := t.ctx.rare(); r != nil && r.stopExt != nil {
		r.stopExt()
	}
	x := t.ctx.ext()
	g, tr := t.owner(), t.tree()
	end = tr.now()
	// A failure that fails its group fast holds the group's cancellation
	// lock from its end's Seq to the cancellation, so that of failures
	// racing to end, the first (by the Seq of its finished event) is the
	// one that cancels the group, and Err names.
	failing := g.failFast && (outcome == Error || outcome == Panic)
	if failing {
		g.cancelMu.Lock()
	}
	t.mu.Lock()
	if t.state == stateAborted {
		t.mu.Unlock()
		if failing {
			g.cancelMu.Unlock()
		}
		t.lateExit(outcome, err, end)
		return end, false
	}
	// Under t.mu with the state change: Snapshot never sees the ended
	// context of a task it still finds running.
	t.endLocked(canceled, tr.observed())
	t.outcome, t.canceled = outcome, canceled
	t.setErrLocked(err)
	if err != nil && !failing { // a failing task's error is noted with the cancellation
		g.noteErr(t, err)
	}
	if !tr.observed() && !failing && !t.crashes() {
		// Nothing to report before Done closes: end in one step.
		t.doneLocked(end)
		t.mu.Unlock()
		g.retire(t)
		return end, false
	}
	t.state = stateFinishing
	if tr.observed() {
		x.endSeq = tr.nextSeq() // with the state change, for Snapshot
	}
	t.mu.Unlock()
	if failing {
		// Now, as errgroup does: the siblings must not go on while the
		// observers are told. The group's event follows the finished one
		// (report).
		// The failure is the group's cause, and Err even after an earlier
		// error, only if its cause stands: an ancestor's cancellation
		// reaches the group without cancelMu, and may land between the
		// check that made this request first and its cancel.
		if cause := (&TaskError{Group: g.name, Task: t.Name(), TaskID: t.id, Err: err}); g.cancelCtxLocked(cause) && context.Cause(g.ctx) == error(cause) {
			g.firstErr.Store(cause)
		} else {
			g.firstErr.CompareAndSwap(nil, cause)
		}
		g.cancelMu.Unlock()
	}
	return end, true
}

// endLocked ends the task's context (see taskContext.end), noting first,
// for observed tasks, whether a cancel reached it after fn returned: only
// they have a finished event for a Snapshot to agree with. Called with
// t.mu held.
func (t *Task) endLocked(canceled, observed bool) {
	t.lateCancel = observed && !canceled && t.ctx.Err() != nil
	t.ctx.end(canceled)
}

// crashes reports whether t panicked under the Crash policy: its goroutine
// re-panics once the panic is reported, before Done closes, so that nobody
// waiting for the task can end the program first.
func (t *Task) crashes() bool { return t.outcome == Panic && t.owner().policy == Crash }

// failsFast reports whether t's outcome cancels its group.
func (t *Task) failsFast() bool {
	return t.owner().failFast && (t.outcome == Error || t.outcome == Panic)
}

// report ends what finish began for a task in stateFinishing, which ended
// at end: it delivers the finished event, then the event of the fail-fast
// cancellation finish made, updates the books and closes Done. Only the
// task goroutine writes the result, and it is done writing, so it is read
// without the lock.
func (t *Task) report(stack []byte, end time.Duration) {
	g, tr, ctx := t.owner(), t.tree(), t.fnContext()
	if tr.observed() {
		ev := newEvent()
		t.fillEvent(ev, KindTaskFinished)
		ev.Seq, ev.Time = t.ctx.ext().endSeq, tr.wall(end)
		ev.Outcome, ev.Err, ev.Duration, ev.Stack = t.outcome, t.errUnlocked(), end-t.clock, stack
		if t.canceled {
			t.setCancelInfo(ev, end)
		}
		tr.emit(ctx, ev)
		freeEvent(ev)
	}
	if t.failsFast() {
		// The group's event, when this task's failure is the one that
		// canceled it (finish).
		if f := g.firstErr.Load(); f != nil && f.TaskID == t.id && context.Cause(g.ctx) == error(f) {
			g.emitCanceled(ctx, f)
		}
	}
	if t.crashes() {
		return // the caller re-panics: Done never closes
	}
	// Done first: retiring may make the group idle, and a Shutdown or Wait
	// that returns then promises that every task of it is done.
	t.mu.Lock()
	t.doneLocked(end)
	t.mu.Unlock()
	g.retire(t)
}

// setCancelInfo sets the cause and the cancel latency (from the request
// that reached the task first, or its spawn when it started canceled, to
// its end) of a canceled task's event.
//
//go:noinline
func (t *Task) setCancelInfo(ev *Event, end time.Duration) {
	ev.Cause = context.Cause(&t.ctx)
	var ownAt time.Time // Cancel writes it only while the task is running
	if o := t.ctx.own.Load(); o != nil {
		ownAt = o.at
	}
	tr := t.tree()
	from := max(t.owner().cancelTime(ownAt).Sub(tr.epoch), t.clock)
	ev.CancelLatency = end - from
}

// cancelTime is the earliest of the task's own cancel time and the group's.
func (g *Group) cancelTime(own time.Time) time.Time {
	g.mu.Lock()
	at := g.canceledAt
	g.mu.Unlock()
	if at.IsZero() || (!own.IsZero() && own.Before(at)) {
		return own
	}
	return at
}

// reportFinished delivers the finished event of a task ended by something
// other than its goroutine (a rejection, an abort).
func (t *Task) reportFinished(ctx context.Context, res *Result, stack []byte) {
	ev := t.event(KindTaskFinished)
	ev.Outcome, ev.Err, ev.Cause, ev.Duration, ev.Stack = res.Outcome, res.Err, res.Cause, res.Duration, stack
	if r := t.ctx.rare(); r != nil {
		ev.Rejected = r.rejected
	}
	t.tree().emit(ctx, &ev)
}

// doneLocked ends a task that ended at end: it records its duration (see
// clock) and closes Done. No extras are made after this: Done then returns
// a closed channel, and only aborted tasks get rare fields later.
func (t *Task) doneLocked(end time.Duration) {
	if x := t.ctx.ext(); x != nil {
		x.duration = end - t.clock
	} else {
		t.clock = end - t.clock
	}
	t.closeDoneLocked(stateDone)
}

func (t *Task) closeDoneLocked(state taskState) {
	t.state, t.final = state, true
	if r := t.ctx.rare(); r != nil && r.done != nil {
		close(r.done)
	}
}

// lateExit closes the books of an abandoned task whose goroutine returned.
func (t *Task) lateExit(outcome Outcome, err error, end time.Duration) {
	<-t.Done() // the abort's own events come first
	g, tr := t.owner(), t.tree()
	if tr.observed() {
		t.mu.Lock()
		seq := tr.nextSeq()
		t.ctx.makeRare().exitSeq = seq
		t.mu.Unlock()
		ev := t.event(KindTaskLateExit)
		ev.Seq = seq
		ev.Outcome, ev.Err, ev.Duration = Aborted, err, end-t.clock
		if outcome == Canceled || t.ctx.Err() != nil {
			t.setCancelInfo(&ev, end) // the latency the abort cut off, to the real return
		}
		// The panic's own error, not errors.As: that would call the
		// methods of fn's error here, after fn, where a panic in one (a
		// typed nil's) ends the process.
		if pe, ok := err.(*PanicError); ok && outcome == Panic {
			ev.Stack = pe.Stack
		}
		tr.emit(t.fnContext(), &ev)
	}
	g.mu.Lock()
	g.unlinkLocked(t)
	g.mu.Unlock()
	tr.abandoned.Add(-1)
	g.maybeDetach()
}
