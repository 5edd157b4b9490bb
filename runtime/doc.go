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
//
// # Testing with synctest
//
// A service's tests can run its supervisor in a testing/synctest bubble:
// shutdown deadlines, [Group.Wait] timeouts and [Group.Every] periods then
// pass in the bubble's fake time, and every time and duration the
// supervisor and its observers report ([Result].Duration, [Event].Time,
// [TaskInfo].Started, an [AbortError]'s ages, span and log times) is the
// bubble's, exact. A test does this:
//
//   - It makes the supervisor, and its observers, inside the bubble, one
//     per test. A supervisor's contexts and wait channels belong to the
//     bubble whose goroutine first uses them: one made outside (a
//     package-level supervisor) or kept for another bubble ends the test
//     binary with a fatal error ("close of synctest channel from outside
//     bubble", or receive, or select), or keeps fake time still.
//   - It ends every task before the bubble ends, or synctest.Test panics
//     ("deadlock: main bubble goroutine has exited but blocked goroutines
//     remain"). A t.Cleanup that shuts the supervisor down runs inside the
//     bubble, in fake time: give it a context.WithTimeout of
//     context.Background(), not t.Context(), which is done before cleanups
//     run and would abort every task at once. A stream subscription's
//     reader ends with its context or the stream's Close.
//   - It releases what an aborted task is stuck on. Shutdown abandons the
//     goroutine, which stays in the bubble: the bubble ends only once it
//     has returned (its [KindTaskLateExit] event is delivered then).
//   - It makes a stuck task wait on a channel made in the bubble. Fake time
//     advances only when every goroutine of the bubble is durably blocked:
//     a task stuck on a sync.Mutex, a system call or network I/O holds it
//     still, and a Shutdown deadline never passes (the test runs into its
//     -timeout).
//   - It calls synctest.Wait before it reads what the observers saw, when
//     what it did reaches tasks on another goroutine: [WithCancelOn]
//     cancels a task on the goroutine that [context.AfterFunc] starts, so
//     when the request's cancel returns, the task may not have heard yet.
//
// Task IDs and sequence numbers are numbered per supervisor, from 1 in
// every test; group IDs ([Group.ID]) are numbered process-wide, and depend
// on the tests run before. Package runtimetest's doc shows such a test.
package runtime
