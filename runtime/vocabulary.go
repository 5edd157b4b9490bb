package runtime

// Attribute keys in the taskscope namespace, used verbatim as span
// attributes by telemetry and as log keys by diagnostics, so that a span,
// a log line and a stream event about one task join on the same words.
// Standard keys (error.type, exception.*, code.function.name) are the
// OpenTelemetry semantic conventions'.
const (
	AttrGroup         = "taskscope.group"          // full dotted group name
	AttrGroupID       = LabelGroupID               // int64 Group.ID: tells apart sibling groups of one name
	AttrTaskName      = "taskscope.task.name"      // task name
	AttrTaskID        = "taskscope.task.id"        // int64, unique per supervisor
	AttrOutcome       = "taskscope.task.outcome"   // Outcome.String()
	AttrInterval      = "taskscope.task.interval"  // period of an Every task
	AttrRun           = "taskscope.task.run"       // int64 run number of a periodic task, from 1
	AttrRejected      = "taskscope.task.rejected"  // bool: spawned on a closed group, never ran
	AttrStack         = "taskscope.task.stack"     // where an aborted task's goroutine was stuck
	AttrCause         = "taskscope.cancel.cause"   // CauseKind of the cancellation cause
	AttrCauseMessage  = "taskscope.cancel.message" // the cause's message
	AttrCancelLatency = "taskscope.cancel.latency" // cancel request to fn's return

	AttrShutdownDrained      = "taskscope.shutdown.drained"       // tasks that returned in time
	AttrShutdownAborted      = "taskscope.shutdown.aborted"       // tasks abandoned at the deadline
	AttrShutdownAbortedTasks = "taskscope.shutdown.aborted_tasks" // group/name#id of each
	AttrShutdownResult       = "taskscope.shutdown.result"        // "clean" or "aborted"
)

// KindStreamLagged is the kind of the notice a diagnostic stream
// subscriber gets in place of the events it missed. The runtime never
// emits it; it is defined here so that every channel shares one list of
// kinds and levels.
const KindStreamLagged = "taskscope.stream.lagged"
