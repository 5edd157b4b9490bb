package runtime

import (
	"context"
	"fmt"
	"reflect"
)

// Option configures a [Supervisor]. Every [GroupOption] is also an Option
// and then applies to the root group.
type Option interface {
	applySupervisor(*supervisorConfig)
}

// GroupOption configures a [Group], at [Group.Group] or, for the root, at
// [New].
type GroupOption interface {
	Option
	applyGroup(*groupConfig)
}

// TaskOption configures one task at [Group.Go] or [Group.Every].
type TaskOption interface {
	applyTask(*taskConfig)
}

type supervisorConfig struct {
	observers []Observer
	group     groupConfig
}

type groupConfig struct {
	panicPolicy    PanicPolicy
	panicPolicySet bool // false: inherit the parent's policy
	cancelOnError  bool
}

type taskConfig struct {
	cancelOn    []context.Context
	parent      context.Context
	longRunning bool
}

func newTaskConfig(opts []TaskOption) taskConfig {
	var c taskConfig
	for _, o := range opts {
		mustOption(o, "TaskOption")
		o.applyTask(&c)
	}
	return c
}

// mustOption panics with a clear message on a nil option (a programming
// error), rather than with a nil dereference inside the option loop.
func mustOption(o any, kind string) {
	if o == nil {
		panic("taskscope: nil " + kind)
	}
}

type supervisorOption func(*supervisorConfig)

func (f supervisorOption) applySupervisor(c *supervisorConfig) { f(c) }

type groupOption func(*groupConfig)

func (f groupOption) applySupervisor(c *supervisorConfig) { f(&c.group) }
func (f groupOption) applyGroup(c *groupConfig)           { f(c) }

type taskOption func(*taskConfig)

func (f taskOption) applyTask(c *taskConfig) { f(c) }

// WithObserver adds an observer. With several, each event reaches them in
// the order given, and each [Observer.TaskStarting] receives the context the
// previous one returned. A nil observer panics, and so does a nil pointer
// in an Observer (such as a *telemetry.Telemetry left nil by an error
// that was not checked): its methods would panic at every event instead.
func WithObserver(o Observer) Option {
	if o == nil {
		panic("taskscope: WithObserver(nil)")
	}
	if v := reflect.ValueOf(o); v.Kind() == reflect.Pointer && v.IsNil() {
		panic(fmt.Sprintf("taskscope: WithObserver(nil %T)", o))
	}
	return supervisorOption(func(c *supervisorConfig) { c.observers = append(c.observers, o) })
}

// PanicPolicy says what a group does after it has recovered and reported a
// task's panic.
type PanicPolicy int

const (
	// Recover keeps the process alive: the task ends with outcome [Panic].
	// Without any observer, the panic is logged to slog.Default() at error
	// level with its stack, as net/http logs a handler's: it never
	// vanishes unread.
	Recover PanicPolicy = iota
	// Crash reports the panic like Recover (observers get the finished
	// event), then re-panics with the original value on the task goroutine,
	// so the process dies with the real stack. The task's Done never
	// closes, and it stays live in its group: nothing waiting for it can
	// let the program exit cleanly first. Nor can an observer's own
	// goroutine: one that buffers reports (an error tracker) must send a
	// panic before its Observe returns.
	Crash
)

// String returns "recover" or "crash" (and "PanicPolicy(n)" for any other
// value), for logs and configuration dumps.
func (p PanicPolicy) String() string {
	switch p {
	case Recover:
		return "recover"
	case Crash:
		return "crash"
	}
	return fmt.Sprintf("PanicPolicy(%d)", int(p))
}

// WithPanicPolicy sets the group's panic policy. Child groups inherit their
// parent's policy unless they set their own. The default is [Recover];
// given twice, the last stands. A policy other than Recover and Crash
// panics.
func WithPanicPolicy(p PanicPolicy) GroupOption {
	if p != Recover && p != Crash {
		panic(fmt.Sprintf("taskscope: WithPanicPolicy(%d): unknown PanicPolicy", int(p)))
	}
	return groupOption(func(c *groupConfig) { c.panicPolicy, c.panicPolicySet = p, true })
}

// CancelOnError makes the group fail fast, as errgroup.WithContext does: the
// first task of the group (not of its children) that ends with outcome
// [Error] or [Panic] cancels the group, with a [*TaskError] wrapping that
// task's error as the cause. The cancellation comes at once, before the
// observers hear of the failure: the group's cancel_requested event follows
// the failing task's finished event, and the siblings it canceled may be
// reported before either. [Group.Err] returns that *TaskError, as
// errgroup's Wait returns the error; [Group.Wait] itself reports only
// whether the group became idle.
//
// Like an errgroup, a fail-fast group serves one batch: once canceled, its
// later tasks start canceled. Made per batch and dropped after its Wait,
// it leaves its parent's tree as garbage (see [Group.Group]), unless its
// [Group.Context] was used (a feeder selecting on its Done, as a worker
// pool does in place of errgroup's SetLimit) and no failure canceled it:
// unlike errgroup.WithContext's, Wait does not cancel it, so cancel it
// after Wait (g.Cancel(nil)), or it stays.
func CancelOnError() GroupOption {
	return groupOption(func(c *groupConfig) { c.cancelOnError = true })
}

// WithCancelOn also cancels the task when ctx is done; the cause wraps
// [ErrExternal] and ctx's own cause. Typical use: tie background work to a
// request's context. Given several times, it cancels the task when any of
// the contexts is done (the cause of the first to end stands). A nil ctx
// panics.
//
// The task's context reports the earliest of their deadlines as its own
// (Deadline), so that clients fn calls with it forward the request's
// deadline. When that deadline passes, the task's ctx.Err() is
// [context.Canceled], not [context.DeadlineExceeded] as in a context
// derived from ctx (errgroup.WithContext's): tell a timeout by its cause,
// errors.Is(context.Cause(ctx), context.DeadlineExceeded), which also
// holds for the task's [Result].Cause. Only the cancellation is tied: ctx's
// values reach the task through [WithParent].
//
// The task is canceled on the goroutine that [context.AfterFunc] starts
// once ctx is done, not by ctx's cancel itself: when that cancel returns,
// the task's context may not be done yet, where a context derived from
// ctx would be. A test in a testing/synctest bubble calls synctest.Wait
// before it looks.
func WithCancelOn(ctx context.Context) TaskOption {
	if ctx == nil {
		panic("taskscope: WithCancelOn(nil)")
	}
	return taskOption(func(c *taskConfig) { c.cancelOn = append(c.cancelOn, ctx) })
}

// LongRunning marks a task that runs for the life of its group, such as an
// accept loop or a queue consumer: a service rather than a unit of work.
// Its events carry [Event.LongRunning], so that observers need not keep
// per-task state open for it: telemetry starts no span for it (a span is
// exported only when it ends, and one open for days is never seen) and
// gives fn a context without a current span, tracing on or off, so that
// the spans fn makes per request or message start traces of their own
// instead of joining one endless trace. Metrics, logs and the stream
// report it as any other task. [Group.Every] tasks need no such mark:
// their runs are the units of work.
func LongRunning() TaskOption {
	return taskOption(func(c *taskConfig) { c.longRunning = true })
}

// WithParent makes ctx's values (a trace span, request-scoped values)
// visible in the task's context and to observers, so that telemetry can
// make the task's span a child of the spawning one. ctx's cancellation is
// not inherited; combine with [WithCancelOn] for that. A nil ctx panics,
// and so does Go (or Every) given WithParent twice: a task has one
// parent.
func WithParent(ctx context.Context) TaskOption {
	if ctx == nil {
		panic("taskscope: WithParent(nil)")
	}
	return taskOption(func(c *taskConfig) {
		if c.parent != nil {
			panic("taskscope: WithParent given twice (a task's context has one parent for its values)")
		}
		c.parent = ctx
	})
}
