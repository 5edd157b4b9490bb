// Package runtime supervises background goroutines: every task has a name
// and an owner (a [Group] in a tree rooted at a [Supervisor]), inherits
// cancellation with a cause, has its panics captured, and is accounted for
// at shutdown, which is bounded and names whatever did not stop.
//
// The package imports only the standard library. Telemetry (spans,
// metrics, logs, the event stream) plugs in through [Observer]; with no
// observer a task costs about twice what an errgroup task costs, a few
// hundred nanoseconds.
//
// # Tasks and groups
//
// [Group.Go] starts fn as a named task; [Group.Every] starts a periodic
// one. A task's context is canceled by [Task.Cancel], by [WithCancelOn]'s
// context, or by its group and every ancestor ([Group.Cancel],
// [CancelOnError], [Group.Shutdown]); [context.Cause] says which. Once fn
// has returned, its context is canceled too (cause [ErrTaskEnded] if
// nothing came first), as an http.Request's is when its handler returns.
// [Group.Wait] waits for a subtree to go idle; [Group.Shutdown] closes it,
// cancels it, waits until its context ends and then aborts the rest. A
// group made for one request or batch needs no Shutdown to go away: once
// it is idle and nothing holds it, it leaves the tree as garbage (see
// [Group.Group]).
//
// # Outcomes
//
// Every task ends with exactly one [Outcome]: success, error, canceled
// (its context was done when fn returned, whatever fn returned), panic
// (value and stack in a [*PanicError]) or aborted (still running at a
// shutdown deadline). Go cannot kill goroutines: an aborted task's
// goroutine is abandoned, counted by [Supervisor.Abandoned], and reported
// again by a [KindTaskLateExit] event when it finally returns.
//
// # Events
//
// Observers receive one [Event] per lifecycle transition, with stable
// dotted kinds ([KindTaskSpawned], [KindTaskFinished], ...), a
// supervisor-wide sequence number, and exactly one [KindTaskFinished]
// event per task, delivered before the task's Done channel closes.
// [Group.Snapshot] carries the sequence number it corresponds to, so a
// consumer can start from a snapshot and follow the events after it.
//
// A task's own events are delivered on its goroutine, whose stack starts at
// 2 KiB; one stack growth costs more than a whole spawn. Observers that
// implement [EventObserver] get events by pointer, without copies on that
// stack, and those that need deep stacks say so with [StackUser], so that
// the growth happens once, early and shallow.
//
// # Profiling
//
// Task goroutines run under the pprof labels [LabelGroup], [LabelGroupID]
// and [LabelTask], so CPU and goroutine profiles attribute work to tasks
// (go tool pprof -tagfocus taskscope.task=fetch). Shutdown uses the same
// labels to find where aborted tasks are stuck.
//
// # Concurrency
//
// Every method of [Supervisor], [Group] and [Task] is safe for concurrent
// use. The package starts no goroutine of its own beyond the tasks (and
// the callbacks of [context.AfterFunc] that [WithCancelOn] registers), and
// every wait is a channel select, so it works inside testing/synctest
// bubbles.
package runtime
