package runtime

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"
)

// taskContext is the context a task's fn receives (before observers wrap
// it). Per-task cancellation is lazy: until something waits on Done or
// cancels the task, it is its group's context (with the task's pprof
// labels) and costs no allocation; the first Done or cancel derives the
// task's own context.WithCancelCause child, so context.Cause still finds
// the right cause. When fn returns the task's own context is canceled
// (see end), which also unregisters it from the group's.
type taskContext struct {
	lab   *taskLabel // the task's group and name, and its base context
	own   atomic.Pointer[ownContext]
	extra atomic.Pointer[taskExtra] // nil unless the task has observers, options or a period, ended with an error, or Done was called before its end
}

// storeUnpublished sets *p in a task record that no other goroutine can
// reach yet: spawn does it before it links the task and starts its
// goroutine, which order the write before every later Load. A plain store
// suffices there, and costs less: an atomic one (XCHG on amd64) right
// after the record's allocation waits for the allocator's stores to
// drain, about 20 ns a task at two cores. atomic.Pointer holds nothing but
// the pointer (TestStoreUnpublished checks it).
func storeUnpublished[T any](p *atomic.Pointer[T], v *T) {
	*(*unsafe.Pointer)(unsafe.Pointer(p)) = unsafe.Pointer(v)
}

// ext returns the task's extras, or nil.
func (c *taskContext) ext() *taskExtra { return c.extra.Load() }

// taskLabel is what tasks of one name in one group share: it is made once
// per (group, name) and cached in the group, so that a task record carries
// one pointer instead of its group, its name and its label context.
type taskLabel struct {
	group *Group
	name  string
	ctx   context.Context          // the group's context carrying the task's pprof labels
	fn    atomic.Pointer[funcName] // the last function spawned under this name, when observed
}

// taskExtra is what observed tasks carry beyond the record, and the way
// to the rare fields. It is kept to 32 bytes: every observed task has one,
// allocated with its record (112 bytes together), and at two cores each
// byte allocated per task shows in the GC's cost. Unobserved tasks get one
// with their rare fields, when they need those.
type taskExtra struct {
	// Set only when the supervisor has observers.
	spawnSeq uint64 // Seq of the spawned event; guarded by group.mu
	endSeq   uint64 // Seq of the finished (for aborted tasks: aborted) event; guarded by Task.mu

	rare     atomic.Pointer[taskRare] // nil unless needed
	duration time.Duration            // Result.Duration (see Task.clock); guarded by Task.mu
}

// taskRare holds what few tasks need, out of line to keep Task small:
// every byte of a task record is written by the spawner and read by the
// task goroutine, often on another core. Its fields are set before the
// task starts, except those guarded by Task.mu.
type taskRare struct {
	values  context.Context // WithParent's context, without its cancellation
	stopExt func()          // stops the WithCancelOn watches
	every   *every          // the period, for Every tasks
	// fnCtx is what fn receives when observers wrapped the task context;
	// nil when they returned it unchanged.
	fnCtx context.Context
	err   error // Result.Err; guarded by Task.mu. Out of line: most tasks end without one
	// rejected: spawned on a closed group. Result.Cause is then Result.Err,
	// not the context's cause. Guarded by Task.mu.
	rejected    bool
	longRunning bool   // LongRunning; set before the task is started
	exitSeq     uint64 // Seq of the late_exit event; guarded by Task.mu
	// deadline is the earliest deadline of the WithCancelOn contexts
	// (zero if none), the task context's Deadline; set before the task is
	// started.
	deadline time.Time
	// done is made by Task.Done when called before the end (after it,
	// Done returns a closed channel). Guarded by Task.mu.
	done chan struct{}
}

// rare returns the task's rare fields, or nil.
func (c *taskContext) rare() *taskRare {
	if x := c.ext(); x != nil {
		return x.rare.Load()
	}
	return nil
}

// makeRare returns the task's rare fields, making them (and its extras)
// on first use. Call it before the task is started or with Task.mu held.
func (c *taskContext) makeRare() *taskRare {
	x := c.ext()
	if x == nil {
		xr := new(extraWithRare) // one allocation for both
		x = &xr.extra
		x.rare.Store(&xr.rare)
		c.extra.Store(x)
		return &xr.rare
	}
	if r := x.rare.Load(); r != nil {
		return r
	}
	r := new(taskRare)
	x.rare.Store(r)
	return r
}

// extraWithRare is extras and rare fields, allocated together.
type extraWithRare struct {
	extra taskExtra
	rare  taskRare
}

// ownContext is a task's own cancelable context, made on first need.
type ownContext struct {
	context.Context
	cancel context.CancelCauseFunc
	at     time.Time // when the task's own cancel was requested; guarded by Task.mu
}

// ended marks, in taskContext.own, a task that ended before anything made
// its own context.
var ended = new(ownContext)

// activate returns the task's own context, making it on first use. Two
// goroutines may race to make it; the loser releases its copy. Made after
// the task ended, it is canceled at once with ErrTaskEnded, and detached
// from the group's cancellation: a cancel of the group after the end must
// not become its cause.
func (c *taskContext) activate() *ownContext {
	for {
		o := c.own.Load()
		if o != nil && o != ended {
			return o
		}
		parent := c.lab.ctx
		if o == ended {
			parent = context.WithoutCancel(parent)
		}
		ctx, cancel := context.WithCancelCause(parent)
		if o == ended {
			cancel(ErrTaskEnded)
		}
		if n := (&ownContext{Context: ctx, cancel: cancel}); c.own.CompareAndSwap(o, n) {
			return n
		}
		cancel(nil)
	}
}

// end cancels the task's own context once fn has returned, unless it was
// canceled already (canceled: its cause stands, and a canceled context is
// no longer registered anywhere). Until then the context is registered
// with its group's, which would otherwise keep it (and a long-lived group
// every such task) until the group is canceled.
func (c *taskContext) end(canceled bool) {
	if !canceled && !c.own.CompareAndSwap(nil, ended) {
		c.own.Load().cancel(ErrTaskEnded)
	}
}

func (c *taskContext) current() context.Context {
	if o := c.own.Load(); o == ended {
		return c.activate().Context
	} else if o != nil {
		return o.Context
	}
	return c.lab.ctx
}

// Deadline is the earliest deadline of the task's WithCancelOn contexts:
// its group's context has none.
func (c *taskContext) Deadline() (time.Time, bool) {
	if r := c.rare(); r != nil && !r.deadline.IsZero() {
		return r.deadline, true
	}
	return c.lab.ctx.Deadline()
}

func (c *taskContext) Done() <-chan struct{} { return c.activate().Done() }
func (c *taskContext) Err() error            { return c.current().Err() }

func (c *taskContext) Value(key any) any {
	r := c.rare()
	if v := c.current().Value(key); v != nil || r == nil || r.values == nil {
		return v
	}
	return r.values.Value(key)
}

func (c *taskContext) String() string { return "taskscope.taskContext" }
