package runtime

import (
	"log/slog"
	"sync"
	"time"
)

// Event kinds: stable dotted names, used verbatim as the slog "event"
// attribute, the stream's event type and in span events.
const (
	KindTaskSpawned         = "taskscope.task.spawned"
	KindTaskCancelRequested = "taskscope.task.cancel_requested"
	KindTaskFinished        = "taskscope.task.finished"
	KindTaskAborted         = "taskscope.task.aborted"
	KindTaskLateExit        = "taskscope.task.late_exit"
	KindTaskRejected        = "taskscope.task.rejected"
	KindTaskRunStarted      = "taskscope.task.run_started"
	KindTaskRunFinished     = "taskscope.task.run_finished"

	KindGroupCancelRequested = "taskscope.group.cancel_requested"
	KindGroupShutdownStarted = "taskscope.group.shutdown_started"
	KindGroupShutdownDone    = "taskscope.group.shutdown_finished"
	KindGroupWaitTimedOut    = "taskscope.group.wait_timed_out"

	KindObserverPanicked = "taskscope.observer.panicked"
)

// Event is one lifecycle transition. Fields that do not apply to a kind are
// zero. Events are values: observers may keep them (an [EventObserver]
// keeps a copy of *ev, never ev itself).
type Event struct {
	// Seq is unique within a supervisor and increases across the events of
	// one task; it orders a [GroupSnapshot] against the event stream.
	Seq  uint64
	Time time.Time
	Kind string

	Group string // full dotted group name
	// GroupID is the group's [Group.ID]: sibling groups may share a name.
	// ParentGroupID is its parent's (0 for the root), so that a consumer
	// can place a group it first hears of in the tree.
	GroupID, ParentGroupID uint64
	Task                   string // task name; empty for group events
	TaskID                 uint64 // 0 for group events

	// Function is fn's fully qualified name (for code.function.name),
	// resolved once per function.
	Function string
	// Interval is the period of an [Group.Every] task; 0 for plain tasks.
	Interval time.Duration
	// Run numbers the runs of a periodic task, from 1, on run events.
	Run uint64

	// Outcome is set on finished, run_finished, aborted and late_exit
	// events.
	Outcome Outcome
	// Rejected marks the events of a task spawned on a closed group
	// (spawned, rejected, finished): it never ran.
	Rejected bool
	// LongRunning marks the events of a task spawned with [LongRunning].
	LongRunning bool
	// Err is what fn returned (a [*PanicError] for panics), the cause of a
	// cancel request, or a group call's error. On an observer_panicked
	// event it is a *PanicError whose Value prints as "observer T panicked
	// on kind: value", about the task or group of the event it panicked on.
	Err error
	// Cause is context.Cause of the task's context when it finished (on a
	// run_finished event, when the run was canceled or aborted), or the
	// cause of a cancel request; on a spawned event, the cause of a context
	// that was already done (the task was spawned into a canceled group),
	// or, for a task rejected by a closed group, the rejection (as its
	// Result.Cause). On a group's cancel_requested event it is the group
	// context's cause, and on wait_timed_out the cause of the context
	// Wait was given (a deadline there is the wait's, not a cancellation).
	Cause error
	// Duration is the time from the task's spawn to its end on finished
	// events (as Result.Duration: to the abort for an aborted task), to the
	// abandoned goroutine's return on late_exit, a run's time on
	// run_finished, and the shutdown's duration on shutdown_finished.
	Duration time.Duration
	// CancelLatency is the time from the first cancellation request that
	// reached the task (or from its spawn, for a task spawned into a
	// canceled group) to fn's return; 0 when none was requested. On a
	// late_exit event it runs to the abandoned goroutine's actual return.
	CancelLatency time.Duration
	// Stack is the panic stack on panic outcomes (and observer_panicked
	// events: the observer's), and where the goroutine was stuck on the
	// events of an abort (aborted, and the finished and run_finished that
	// follow it): empty when no stack was found, as for a task aborted
	// before its goroutine ran fn.
	Stack []byte

	// Drained and Aborted count the tasks of a shutdown_finished event.
	Drained, Aborted int
}

// eventPool holds the buffers of the events the runtime delivers on hot
// paths (spawned, finished, a periodic task's runs). Observers get events
// by pointer, so an Event on the stack would escape to the heap on every
// emit; a pool keeps buffers per P, so that a spawner and a task goroutine
// on another core do not write the same one.
var eventPool = sync.Pool{New: func() any { return new(Event) }}

// newEvent returns an event buffer from the pool, holding a stale event:
// fill it with Task.fillEvent. Give it back with freeEvent once every
// observer has returned (observers must not keep *ev). A buffer keeps its
// last event's error and stack until it is reused or the pool is emptied
// at a GC: clearing them would cost write barriers on every event.
func newEvent() *Event { return eventPool.Get().(*Event) }

func freeEvent(ev *Event) { eventPool.Put(ev) }

// Level is the severity every channel uses for the event: lifecycle at
// debug, cancellation at info, errors and aborts at warn, panics at error.
// In detail: finished, run_finished and late_exit events by outcome
// (success debug, canceled info, error and aborted warn, panic error);
// cancel requests, shutdown_started and rejected spawns at info;
// shutdown_finished at info, or warn when it aborted tasks; wait_timed_out
// at warn when the wait's deadline passed, info when its context was
// canceled (a request whose client left); aborted and stream lag notices
// at warn; observer panics at error; everything else (spawned,
// run_started) at debug.
//
// It takes a pointer: observers call it on task goroutines, where a copy
// of the event is stack the goroutine may have to grow for.
func (e *Event) Level() slog.Level {
	switch e.Kind {
	case KindTaskFinished, KindTaskRunFinished, KindTaskLateExit:
		return e.Outcome.level()
	case KindTaskCancelRequested, KindGroupCancelRequested, KindGroupShutdownStarted, KindTaskRejected:
		return slog.LevelInfo
	case KindGroupShutdownDone:
		if e.Aborted > 0 {
			return slog.LevelWarn
		}
		return slog.LevelInfo
	case KindGroupWaitTimedOut:
		if te, ok := e.Err.(*TimeoutError); ok && te.canceled() || !ok && canceledWait(e.Cause) {
			return slog.LevelInfo
		}
		return slog.LevelWarn
	case KindTaskAborted, KindStreamLagged:
		return slog.LevelWarn
	case KindObserverPanicked:
		return slog.LevelError
	}
	return slog.LevelDebug
}

func (o Outcome) level() slog.Level {
	switch o {
	case Canceled:
		return slog.LevelInfo
	case Error, Aborted:
		return slog.LevelWarn
	case Panic:
		return slog.LevelError
	}
	return slog.LevelDebug
}
