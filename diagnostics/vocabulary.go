package diagnostics

import (
	"log/slog"

	"github.com/taskscope/taskscope/runtime"
)

// Log keys: runtime's attribute vocabulary, which the spans use too, so
// that a log line, a span and a stream event about one task join on the
// same keys; the rest are slog's and OpenTelemetry's standard names.
const (
	keyEvent         = "event"
	keyGroup         = runtime.AttrGroup
	keyGroupID       = runtime.AttrGroupID
	keyTaskName      = runtime.AttrTaskName
	keyTaskID        = runtime.AttrTaskID
	keyInterval      = runtime.AttrInterval
	keyOutcome       = runtime.AttrOutcome
	keyRejected      = runtime.AttrRejected
	keyTaskStack     = runtime.AttrStack
	keyRun           = runtime.AttrRun
	keyCauseKind     = runtime.AttrCause
	keyCauseMessage  = runtime.AttrCauseMessage
	keyCancelLatency = runtime.AttrCancelLatency
	keyDrained       = runtime.AttrShutdownDrained
	keyAborted       = runtime.AttrShutdownAborted
	keyMissed        = "taskscope.stream.missed"
	keyFunction      = "code.function.name"
	keyErrorType     = "error.type"
	keyError         = "error"
	keyExcType       = "exception.type"
	keyExcMessage    = "exception.message"
	keyExcStack      = "exception.stacktrace"
	keyDuration      = "duration"
	keyTraceID       = "trace_id"
	keySpanID        = "span_id"
)

// message is the short human text of a log record; constant per kind and
// outcome, so log pipelines can group on it.
func message(ev *runtime.Event) string {
	switch ev.Kind {
	case runtime.KindTaskSpawned:
		return "task spawned"
	case runtime.KindTaskFinished:
		return byOutcome(ev.Outcome, "task finished", "task failed", "task canceled", "task panicked", "task aborted")
	case runtime.KindTaskCancelRequested:
		return "task cancel requested"
	case runtime.KindTaskAborted:
		return "task abandoned at shutdown deadline"
	case runtime.KindTaskLateExit:
		return "abandoned task returned"
	case runtime.KindTaskRejected:
		return "task rejected by closed group"
	case runtime.KindTaskRunStarted:
		return "periodic run started"
	case runtime.KindTaskRunFinished:
		return byOutcome(ev.Outcome, "periodic run finished", "periodic run failed", "periodic run canceled", "periodic run panicked", "periodic run aborted")
	case runtime.KindGroupCancelRequested:
		return "group cancel requested"
	case runtime.KindGroupShutdownStarted:
		return "group shutdown started"
	case runtime.KindGroupShutdownDone:
		if ev.Aborted > 0 {
			return "group shutdown aborted tasks"
		}
		return "group shutdown finished"
	case runtime.KindGroupWaitTimedOut:
		if ev.Level() < slog.LevelWarn { // canceled, not past its deadline (Event.Level)
			return "group wait canceled"
		}
		return "group wait timed out"
	case runtime.KindObserverPanicked:
		return "observer panicked"
	case KindStreamLagged:
		return "stream subscriber lagged"
	}
	return ev.Kind
}

func byOutcome(o runtime.Outcome, success, failed, canceled, panicked, aborted string) string {
	switch o {
	case runtime.Error:
		return failed
	case runtime.Canceled:
		return canceled
	case runtime.Panic:
		return panicked
	case runtime.Aborted:
		return aborted
	}
	return success
}

// isCancelRequest reports whether ev's Err is the requested cancellation
// cause rather than a failure.
func isCancelRequest(kind string) bool {
	return kind == runtime.KindTaskCancelRequested || kind == runtime.KindGroupCancelRequested
}
