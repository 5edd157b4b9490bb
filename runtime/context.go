package runtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// taskContext is the context a task's fn receives (before observers wrap
// it). Per-task cancellation is lazy: until something waits on Done or
// cancels the task, it is its group's context (with the task's pprof
// labels) and costs no allocation; the first Done or cancel derives the
// task's own context.WithCancelCause child, so context.Cause still finds
// the right cause.
type taskContext struct {
	base  context.Context // group context carrying the task's pprof labels
	extra *taskExtra      // nil unless the task has options or observers
	own   atomic.Pointer[ownContext]
	mu    sync.Mutex // guards creating own
}

// taskExtra holds what few tasks need, out of line to keep Task small.
type taskExtra struct {
	values  context.Context // WithParent's context, without its cancellation
	stopExt func() bool     // stops WithCancelOn's watch
	fnName  string          // fn's name, resolved only when observed
	ev      Event           // buffer for the task's end events; see eventBuf
}

// ownContext is a task's own cancelable context, made on first need.
type ownContext struct {
	context.Context
	cancel context.CancelCauseFunc
	at     time.Time // when the task's own cancel was requested; guarded by Task.mu
}

func (c *taskContext) activate() *ownContext {
	if o := c.own.Load(); o != nil {
		return o
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.own.Load(); o != nil {
		return o
	}
	ctx, cancel := context.WithCancelCause(c.base)
	o := &ownContext{Context: ctx, cancel: cancel}
	c.own.Store(o)
	return o
}

func (c *taskContext) current() context.Context {
	if o := c.own.Load(); o != nil {
		return o.Context
	}
	return c.base
}

func (c *taskContext) Deadline() (time.Time, bool) { return c.base.Deadline() }
func (c *taskContext) Done() <-chan struct{}       { return c.activate().Done() }
func (c *taskContext) Err() error                  { return c.current().Err() }

func (c *taskContext) Value(key any) any {
	if v := c.current().Value(key); v != nil || c.extra == nil || c.extra.values == nil {
		return v
	}
	return c.extra.values.Value(key)
}

func (c *taskContext) String() string { return "taskscope.taskContext" }
