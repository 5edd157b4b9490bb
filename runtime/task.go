package runtime

import (
	"context"
	"errors"
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
	Outcome  Outcome
	Err      error         // what fn returned; a *PanicError for panics; ErrGoexit
	Cause    error         // context.Cause of the task's context when it ended
	Duration time.Duration // from spawn to the end (for aborted tasks: to the abort)
}

// Task is a handle to one supervised task. Its methods are safe for
// concurrent use.
type Task struct {
	id      uint64
	name    string
	group   *Group
	fn      func(context.Context) error
	every   *every        // nil for plain tasks
	started time.Duration // since the supervisor's epoch: one monotonic clock read
	ctx     taskContext
	fnCtx   context.Context // what fn receives: ctx as wrapped by observers; set before the goroutine starts

	// Guarded by group.mu.
	prev, next *Task
	spawnSeq   uint64 // sequence number of the spawned event
	abandoned  bool

	returned bool // fn returned normally; touched only by the task goroutine

	mu      sync.Mutex // guards the fields below
	state   taskState
	final   bool   // Done is (or, once made, will be) closed
	endSeq  uint64 // Seq of the finished (or, for aborted tasks, aborted) event
	exitSeq uint64 // Seq of the late_exit event
	result  Result
	done    chan struct{} // made on demand by Done
}

// every is what only periodic tasks carry.
type every struct {
	interval time.Duration
	runs     atomic.Uint64 // runs started so far

	// Guarded by Task.mu.
	runCtx   context.Context // the current run's context, while a run is in progress
	runStart time.Time       // when the current run started
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
func (t *Task) Name() string { return t.name }

// Group returns the dotted name of the task's group.
func (t *Task) Group() string { return t.group.name }

// Done returns a channel closed once the task has ended and its
// [KindTaskFinished] event has been delivered: fn returned, or the task was
// aborted at a shutdown deadline (its goroutine may still be running), or
// it was rejected by a closed group.
func (t *Task) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		if t.final {
			return closedChan
		}
		t.done = make(chan struct{})
	}
	return t.done
}

// Result returns how the task ended. Before [Task.Done] is closed it
// returns the zero Result.
func (t *Task) Result() Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.final {
		return Result{}
	}
	return t.result
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
	if t.group.tree.observed() {
		ev := t.event(KindTaskCancelRequested)
		ev.Cause = context.Cause(o)
		ev.Err = cause
		t.group.tree.emit(t.fnCtx, &ev)
	}
}

// fnName is fn's name, known when the supervisor has observers.
func (t *Task) fnName() string {
	if t.ctx.extra == nil {
		return ""
	}
	return t.ctx.extra.fnName
}

// interval is the period of an Every task, 0 for plain tasks.
func (t *Task) interval() time.Duration {
	if t.every == nil {
		return 0
	}
	return t.every.interval
}

// event returns an event of kind about t, without Seq and Time.
func (t *Task) event(kind string) Event {
	return Event{
		Kind:     kind,
		Group:    t.group.name,
		Task:     t.name,
		TaskID:   t.id,
		Function: t.fnName(),
		Interval: t.interval(),
	}
}

// Go starts fn as a task named name ("" means [DefaultTaskName]) in g and
// returns its handle. fn receives a context canceled when the task, the
// group or an ancestor is canceled or shut down; [context.Cause] says why.
//
// On a closed group, Go starts nothing and never calls fn: the returned
// task is already done with outcome [Canceled] and an error wrapping
// [ErrClosed]. A nil fn panics.
func (g *Group) Go(name string, fn func(ctx context.Context) error, opts ...TaskOption) *Task {
	if fn == nil {
		panic("taskscope: Go(" + name + ") with nil function")
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
	t := &Task{id: tr.ids.Add(1), name: name, group: g, fn: fn, started: tr.now()}
	t.fnCtx = &t.ctx
	if interval > 0 {
		t.every = &every{interval: interval}
	}
	if len(opts) > 0 || tr.observed() {
		t.ctx.extra = &taskExtra{}
		if cfg.parent != nil {
			t.ctx.extra.values = context.WithoutCancel(cfg.parent)
		}
	}
	if tr.observed() {
		t.ctx.extra.fnName = tr.funcName(fn)
		// t.mu is held until observers have seen the spawn, so that a
		// Cancel or an abort that finds the task once it is linked reports
		// after it. Nobody else can lock t.mu before the link, so taking
		// g.mu under it cannot deadlock. Without observers there is no
		// order to keep.
		t.mu.Lock()
	}
	g.mu.Lock()
	if g.closed {
		t.ctx.base = g.ctx
		g.mu.Unlock()
		t.reject()
		if tr.observed() {
			t.mu.Unlock()
		}
		return t
	}
	t.ctx.base = g.labelsLocked(name)
	g.linkLocked(t)
	t.spawnSeq = tr.nextSeq()
	g.mu.Unlock()
	if tr.observed() {
		ev := t.event(KindTaskSpawned)
		ev.Seq, ev.Time = t.spawnSeq, tr.wall(t.started)
		t.fnCtx = tr.taskStarting(t.fnCtx, ev)
		t.mu.Unlock()
	}
	// After t.mu is released: an already done context cancels the task
	// here, and Cancel takes t.mu.
	if cfg.cancelOn != nil {
		t.watch(cfg.cancelOn)
	}
	go t.run()
	return t
}

// watch cancels t when ext is done.
func (t *Task) watch(ext context.Context) {
	cancel := func() {
		t.cancelWith(fmt.Errorf("%w: %w", ErrExternal, context.Cause(ext)), time.Now())
	}
	if ext.Err() != nil {
		cancel()
		return
	}
	t.ctx.extra.stopExt = context.AfterFunc(ext, cancel)
}

// reject ends a task spawned on a closed group without running it.
func (t *Task) reject() {
	err := fmt.Errorf("taskscope: %s/%s not started: %w", t.group.name, t.name, ErrClosed)
	t.result = Result{Outcome: Canceled, Err: err, Cause: err}
	t.state = stateDone
	t.fnCtx = &t.ctx
	if tr := t.group.tree; tr.observed() {
		ev := t.event(KindTaskSpawned)
		ev.Seq, ev.Time = tr.nextSeq(), tr.wall(t.started)
		ctx := tr.taskStarting(t.fnCtx, ev)
		ev = t.event(KindTaskRejected)
		ev.Err = err
		tr.emit(ctx, &ev)
		t.reportFinished(ctx, new(Event), 0, &t.result, 0, nil)
	}
	t.final = true
}

// run is the task goroutine. It stays shallow: the observers of the
// finished event run at the bottom of this call chain, and a stack growth
// costs more than the whole spawn.
func (t *Task) run() {
	pprof.SetGoroutineLabels(t.ctx.base)
	if t.group.tree.observed() {
		growStack()
	}
	defer t.exitAbnormally()
	var err error
	if t.every != nil {
		err = t.loop()
	} else {
		err = t.fn(t.fnCtx)
	}
	t.returned = true
	res := Result{Outcome: Success, Err: err}
	switch {
	case t.ctx.Err() != nil:
		res.Outcome = Canceled
	case err != nil:
		res.Outcome = Error
	}
	t.finish(res, nil)
}

// growStack makes an observed task goroutine's stack grow now, while it is
// two frames deep. Observers (a histogram observation, a span's end) take
// the finish path past the 2 KiB a goroutine starts with; growing there,
// ten frames down, costs several times more, because every frame on the
// stack is adjusted when it is copied.
//
//go:noinline
func growStack() {
	var pad [1536]byte
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
		stack = debug.Stack()
		res.Outcome, res.Err = Panic, &PanicError{Value: r, Stack: stack}
	}
	if t.every != nil {
		t.endRun(res.Outcome, res.Err, stack)
	}
	t.finish(res, stack)
	if r != nil && t.group.policy == Crash {
		panic(r)
	}
}

// finish reports the outcome, updates the books and closes Done.
func (t *Task) finish(res Result, stack []byte) {
	if x := t.ctx.extra; x != nil && x.stopExt != nil {
		x.stopExt()
	}
	g, tr := t.group, t.group.tree
	end := tr.now()
	res.Duration = end - t.started
	res.Cause = context.Cause(&t.ctx)
	failFast := g.failFast && (res.Outcome == Error || res.Outcome == Panic)
	t.mu.Lock()
	if t.state == stateAborted {
		t.mu.Unlock()
		t.lateExit(res)
		return
	}
	t.endSeq = tr.nextSeq() // with the state change, for Snapshot
	t.result = res
	if !tr.observed() && !failFast {
		// Nothing to report before Done closes: end in one step.
		t.closeDoneLocked(stateDone)
		t.mu.Unlock()
		g.retire(t)
		return
	}
	t.state = stateFinishing
	var ownAt time.Time
	if o := t.ctx.own.Load(); o != nil {
		ownAt = o.at
	}
	t.mu.Unlock()

	if tr.observed() {
		var latency time.Duration
		if res.Cause != nil {
			latency = tr.wall(end).Sub(g.cancelTime(ownAt))
		}
		t.reportFinished(t.fnCtx, t.goroutineEvent(), t.endSeq, &res, latency, stack)
	}
	if failFast {
		g.cancelWith(t.fnCtx, &TaskError{Group: g.name, Task: t.name, TaskID: t.id, Err: res.Err})
	}
	g.retire(t)
	t.mu.Lock()
	t.closeDoneLocked(stateDone)
	t.mu.Unlock()
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

// reportFinished delivers t's finished event. It builds the event in
// place: every Event-sized temporary on this path is stack that task
// goroutines may have to grow for.
func (t *Task) reportFinished(ctx context.Context, ev *Event, seq uint64, res *Result, latency time.Duration, stack []byte) {
	*ev = t.event(KindTaskFinished)
	ev.Seq = seq
	ev.Outcome, ev.Err, ev.Cause, ev.Duration = res.Outcome, res.Err, res.Cause, res.Duration
	ev.CancelLatency, ev.Stack = latency, stack
	t.group.tree.emit(ctx, ev)
}

// goroutineEvent returns the buffer for the end events the task goroutine
// emits (finished, run_finished). Observers get events by pointer, so an
// Event on the stack would escape to the heap on every emit; the buffer
// lives in the extras an observed task has anyway. Only the task goroutine
// uses it, one event after the other; events emitted elsewhere (an abort)
// get their own.
func (t *Task) goroutineEvent() *Event {
	if t.ctx.extra == nil { // not observed: nothing is emitted
		return nil
	}
	return &t.ctx.extra.ev
}

func (t *Task) closeDoneLocked(state taskState) {
	t.state, t.final = state, true
	if t.done != nil {
		close(t.done)
	}
}

// lateExit closes the books of an abandoned task whose goroutine returned.
func (t *Task) lateExit(res Result) {
	<-t.Done() // the abort's own events come first
	g, tr := t.group, t.group.tree
	t.mu.Lock()
	t.exitSeq = tr.nextSeq()
	t.mu.Unlock()
	if tr.observed() {
		ev := t.event(KindTaskLateExit)
		ev.Seq = t.exitSeq
		ev.Outcome, ev.Err, ev.Cause, ev.Duration = Aborted, res.Err, res.Cause, res.Duration
		if pe, ok := errors.AsType[*PanicError](res.Err); ok {
			ev.Stack = pe.Stack
		}
		tr.emit(t.fnCtx, &ev)
	}
	g.mu.Lock()
	g.unlinkLocked(t)
	g.mu.Unlock()
	tr.abandoned.Add(-1)
	g.maybeDetach()
}
