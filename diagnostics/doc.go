// Package diagnostics is the operator-facing side of taskscope: a slog
// observer, a subscribable event stream, and debug HTTP handlers that show
// the task tree and stream its events. Besides the standard library it
// imports only taskscope's own packages (runtime): no tracing or metrics
// library.
//
// # Wiring
//
// Observers are passed to runtime.New; the telemetry observer, when there
// is one, goes first, so that task contexts already carry the task's span
// when the log observer sees them:
//
//	stream := diagnostics.NewStream()
//	sup := runtime.New("svc",
//		runtime.WithObserver(tel),
//		runtime.WithObserver(diagnostics.NewLogObserver(logger, diagnostics.WithTraceIDs(otelIDs))),
//		runtime.WithObserver(stream))
//	mux.Handle("GET /debug/tasks", diagnostics.TasksHandler(sup))
//	mux.Handle("GET /debug/events", diagnostics.EventsHandler(stream))
//	srv.RegisterOnShutdown(stream.Close)
//
// otelIDs is the application's: this package imports no tracing library.
// [WithTraceIDs] shows the function to write for OpenTelemetry.
//
// # Logs
//
// [LogObserver] writes one record per event, at the event's
// [runtime.Event.Level] (lifecycle debug, cancellation info, errors and
// aborts warn, panics error), with "event" = the event kind and the span attribute keys
// (taskscope.group, taskscope.group.id, taskscope.task.name, taskscope.task.id,
// taskscope.task.outcome, taskscope.cancel.cause, error.type, ...). A
// disabled level costs a level check and no allocation.
//
// error.type is set on failed outcomes (error, panic, aborted) only, with
// the value [runtime.ErrorType] gives: "panic", "aborted", the value of an
// ErrorType() string method in the error chain, "deadline_exceeded",
// "canceled", "goexit", or the error's Go type name.
//
// # Stream
//
// A [Stream] fans events out to subscriptions, each with a bounded buffer
// that drops its oldest events when the reader falls behind, and says so
// in-band with a [KindStreamLagged] event carrying a [*LaggedError]. The
// publisher (a task goroutine) never waits for a subscriber.
//
// A client that keeps a picture of the tree starts from a snapshot and
// follows the stream from the snapshot's sequence number:
//
//	snap := sup.Snapshot()
//	sub := stream.Subscribe(ctx, diagnostics.After(snap.Seq))
//
// Events of different tasks can reach the stream slightly out of Seq
// order; [After] is designed so that nothing is lost, at the price of an
// occasional duplicate near the resume point, so clients apply events
// idempotently by task ID. When the stream no longer holds the events a
// client needs, the client receives a resync notice and must fetch a new
// snapshot.
//
// # Keeping a picture of the tree
//
// The snapshot lists the live tasks (running, canceling, or abandoned: aborted
// at a shutdown deadline, their goroutines not returned yet). The events
// after it change that list so, applied in the order received, as
// [TasksHandler]'s page does (kinds without their "taskscope." prefix):
//
//   - task.spawned adds a task, running, or canceling if the event has a
//     cause (its group was canceled already); one with rejected set never
//     ran: ignore it (its rejected and finished events follow).
//   - task.cancel_requested makes a running task canceling.
//   - group.cancel_requested (also sent by a shutdown) makes canceling
//     every running task of the group (group_id) and of its descendants:
//     no event is sent per task.
//   - task.aborted, and task.finished with outcome aborted, make a task
//     abandoned; it leaves with its task.late_exit.
//   - task.finished with any other outcome removes the task.
//   - task.run_started sets a periodic task's runs to its run.
//   - task.run_finished sets a periodic task's last_run: its run, outcome
//     and error, its time as ended, and its duration_seconds.
//
// Sibling groups may share a name, so groups are told apart by id: group
// events carry the group's (group_id), a task's events its group's and
// that group's parent's (parent_group_id). When that parent is a group the
// client has not heard of (made after the snapshot, with no task of its
// own), nothing places it in the tree, and the client cannot tell which
// group events reach the task: it re-fetches the snapshot.
//
// Over HTTP, a client that re-fetches the snapshot (on a resync or a lag
// notice, which also means events were lost, or for the reason above)
// reconnects with ?after= the snapshot's seq and without a Last-Event-ID,
// which would win; the events that follow a notice on the old connection
// do not make up for the loss.
//
// # HTTP
//
// [EventsHandler] serves the stream as Server-Sent Events or NDJSON, each
// event in the [EventJSON] shape; [TasksHandler] serves the tree as JSON
// ([SnapshotJSON]) or as a self-contained page that updates live from the
// event stream. The application mounts them (behind whatever
// authentication its debug endpoints use); the package starts no server
// and no goroutine that outlives a request.
package diagnostics
