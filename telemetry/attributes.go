package telemetry

import (
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
)

// Span attribute keys in the taskscope namespace. The diagnostics log
// observer uses the same keys, so a log line and a span say the same thing
// with the same words. Standard keys (error.type, exception.*,
// code.function.name) come from semconv.
const (
	attrGroup     = attribute.Key("taskscope.group")          // full dotted group name
	attrTaskName  = attribute.Key("taskscope.task.name")      // task name
	attrTaskID    = attribute.Key("taskscope.task.id")        // int64, unique per supervisor
	attrOutcome   = attribute.Key("taskscope.task.outcome")   // success, error, canceled, panic, aborted
	attrRun       = attribute.Key("taskscope.task.run")       // int64 run number of a periodic task, from 1
	attrRejected  = attribute.Key("taskscope.task.rejected")  // bool: spawned on a closed group, never ran
	attrStack     = attribute.Key("taskscope.task.stack")     // where an aborted task's goroutine was stuck
	attrCause     = attribute.Key("taskscope.cancel.cause")   // runtime.CauseKind of the cancellation cause
	attrCauseText = attribute.Key("taskscope.cancel.message") // the cause's message

	attrShutdownDrained      = attribute.Key("taskscope.shutdown.drained")       // int: tasks that returned in time
	attrShutdownAborted      = attribute.Key("taskscope.shutdown.aborted")       // int: tasks abandoned at the deadline
	attrShutdownAbortedTasks = attribute.Key("taskscope.shutdown.aborted_tasks") // []string: group/name#id of each
	attrShutdownResult       = attribute.Key("taskscope.shutdown.result")        // clean or aborted
)

// maxText bounds messages put on spans (status descriptions, cause
// messages): an error message can be arbitrarily long, and a panic's
// includes its stack, which has its own attribute.
const maxText = 1024

// maxAbortedNames bounds the task names listed on a shutdown span.
const maxAbortedNames = 64

// truncate cuts s to at most maxText bytes without splitting a rune.
func truncate(s string) string {
	if len(s) <= maxText {
		return s
	}
	i := maxText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
