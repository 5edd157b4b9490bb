package runtime

import "context"

// Observer receives the supervisor's events. Telemetry, logging and the
// diagnostic stream are observers; several are passed as several
// [WithObserver] options. To write one, see the Observer example (the
// smallest is [github.com/taskscope/taskscope/runtime/runtimetest.Recorder]);
// [EventObserver] and [StackUser] are optional interfaces for observers
// that run on every task.
//
// Observers are called synchronously on the goroutine that caused the event
// (the spawner for spawns, the task goroutine for completions), so from
// many goroutines at once: an observer must be safe for concurrent use,
// and must not block (one that needs slow work buffers it). Whatever waits
// for a task waits for its observers: its Done, [Group.Wait], and
// [Group.Shutdown], even past its deadline (a task that has returned and
// is being reported is never aborted). A panicking observer is recovered;
// the task is unaffected, the remaining observers still get the event,
// and the others are told with a [KindObserverPanicked] event (when it is
// the only observer, the panic is logged to slog.Default() instead). An
// observer must not end its goroutine with runtime.Goexit, as a test's
// t.Fatal or t.FailNow does: that cannot be recovered, and leaves the
// task's lock held, so that a later Snapshot or Shutdown hangs. A test
// observer reports with t.Error.
//
// Some events are delivered while the supervisor holds the task's lock (so
// that a task's events keep their order: spawned, run_started,
// run_finished, cancel_requested): an observer must not call methods of a
// [Task], [Group] or [Supervisor] (Cancel, Go, Group, Active, Snapshot,
// Wait, Shutdown, ...) from TaskStarting or Observe: some deadlock at once
// (Snapshot from TaskStarting; Wait on the task's own group), others
// against a snapshot or a shutdown taking the same locks in the other
// order. Hand such work to another goroutine, without waiting for it (a
// buffered channel and a send that drops when it is full): that goroutine
// may take the locks the observer's caller holds. Events carry IDs, not
// handles: to act on a task or group (cancel one that trips an alarm),
// that goroutine uses the *Task or *Group the application kept, by
// [Task.ID] or [Group.ID]. Canceling a context of the observer's own,
// returned by TaskStarting, is no substitute: the task then ends with
// outcome [Error] and no cause, as for any fn that returns ctx.Err()
// unasked.
//
// Cancel methods take no context: [Task.Cancel]'s event comes with the
// task's context, [Group.Cancel]'s with context.Background(). An audit
// log that wants to know who asked finds it in the cause (Event.Err on
// cancel_requested events): give Cancel an error type that says so.
//
// Events go on after [Group.Shutdown] returns: a [KindTaskLateExit] for
// each task it abandoned (counted by [Supervisor.Abandoned]), and the
// events of spawns a closed group refuses. An observer with a goroutine of
// its own stops it once the supervisor is done with it, and must not
// panic on events that come later. Under the [Crash] panic policy, the
// process dies as soon as the observers of the panicking task's finished
// event return: an observer that buffers sends a panic before it
// returns, or it is lost.
type Observer interface {
	// TaskStarting runs before fn, on the spawning goroutine, with the
	// task's [KindTaskSpawned] event (also for tasks rejected by a closed
	// group), and, on the task's goroutine, before each run of an
	// [Group.Every] task with a [KindTaskRunStarted] event. The context it
	// returns is the one fn (or the run) receives and the one the task's
	// later events are observed with; return ctx unchanged when there is
	// nothing to add.
	TaskStarting(ctx context.Context, ev Event) context.Context
	// Observe receives every other event: a task's own events with the
	// context TaskStarting returned (for those of a periodic task during
	// a run, its run_started call's), in order per task, and group events
	// with the context given to the call that caused them. An observer
	// that keeps per-task state in that context finds it with a key of its
	// own and checks that it is the event's TaskID's: the context may
	// carry another task's (a spawner's, through [WithParent]) where its
	// own TaskStarting panicked.
	Observe(ctx context.Context, ev Event)
}

// EventObserver is an optional interface for observers: when an Observer
// also implements it, the supervisor calls TaskStartingEvent and
// ObserveEvent instead of TaskStarting and Observe, with the same
// contracts, passing the event by pointer. Events are delivered on task
// goroutines, whose stacks start at 2 KiB; an Event copy is a tenth of
// that, and one stack growth costs more than a whole spawn. The observer
// must neither keep nor modify *ev after it returns (copy what it keeps).
type EventObserver interface {
	TaskStartingEvent(ctx context.Context, ev *Event) context.Context
	ObserveEvent(ctx context.Context, ev *Event)
}

// StackUser is an optional interface for observers whose work on task
// goroutines needs more stack than a goroutine starts with (ending an
// OpenTelemetry SDK span does). When an observer of a supervisor reports
// true, each task goroutine grows its stack once as it starts, two frames
// deep, instead of at the bottom of the finish path: a stack growth copies
// and adjusts every frame on the stack, so it costs least where there are
// few. Observers that fit in the first stack should not implement it, or
// report false.
type StackUser interface {
	NeedsStack() bool
}
