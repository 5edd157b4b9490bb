package diagnostics

import (
	"context"
	"errors"
	"log/slog"

	"github.com/taskscope/taskscope/runtime"
)

// Attribute keys: the span attribute names, so that a log line, a span and
// a stream event about one task can be joined on the same keys.
const (
	keyEvent         = "event"
	keyGroup         = "taskscope.group"
	keyTaskName      = "taskscope.task.name"
	keyTaskID        = "taskscope.task.id"
	keyInterval      = "taskscope.task.interval"
	keyOutcome       = "taskscope.task.outcome"
	keyTaskStack     = "taskscope.task.stack" // where an aborted task's goroutine was stuck
	keyRun           = "taskscope.run"
	keyCauseKind     = "taskscope.cancel.cause"
	keyCancelLatency = "taskscope.cancel.latency"
	keyDrained       = "taskscope.shutdown.drained"
	keyAborted       = "taskscope.shutdown.aborted"
	keyMissed        = "taskscope.stream.missed"
	keyFunction      = "code.function.name"
	keyErrorType     = "error.type"
	keyError         = "error"
	keyCause         = "cause"
	keyExcType       = "exception.type"
	keyExcMessage    = "exception.message"
	keyExcStack      = "exception.stacktrace"
	keyDuration      = "duration"
	keyTraceID       = "trace_id"
	keySpanID        = "span_id"
)

// errorType is the low-cardinality error.type of a failed outcome ("" for
// the others): "panic", "aborted", "deadline_exceeded", the value of an
// ErrorType() string method found in the error chain, or "_OTHER".
func errorType(o runtime.Outcome, err error) string {
	switch o {
	case runtime.Panic:
		return "panic"
	case runtime.Aborted:
		return "aborted"
	case runtime.Error:
	default:
		return ""
	}
	var typed interface{ ErrorType() string }
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.As(err, &typed):
		if t := typed.ErrorType(); t != "" {
			return t
		}
	}
	return "_OTHER"
}

// level is the event's severity; a lag notice, which the runtime does not
// know of, is a warning.
func level(ev *runtime.Event) slog.Level {
	if ev.Kind == KindStreamLagged {
		return slog.LevelWarn
	}
	return ev.Level()
}

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
