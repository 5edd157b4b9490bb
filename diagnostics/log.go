package diagnostics

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/taskscope/taskscope/internal/errtext"
	"github.com/taskscope/taskscope/runtime"
)

// LogObserver is a [runtime.Observer] that writes every event as one slog
// record: at [runtime.Event.Level] (task lifecycle at debug, cancellation at
// info, errors and aborts at warn, panics at error, with the stack), with a
// short message, the attribute "event" set to the event kind, and the same
// keys the telemetry spans use (taskscope.group, taskscope.task.name,
// taskscope.task.id as an int64, taskscope.task.outcome,
// taskscope.cancel.cause, error.type, exception.stacktrace, ...).
// Where a task aborted at a shutdown deadline was stuck is on its aborted
// record (taskscope.task.stack), once: its finished record and the
// group's shutdown_finished one (whose error is logged as its message)
// do not repeat it. Nor does a periodic task's finished record repeat the
// stack of a panic, which is on the record of the run that panicked; nor a
// canceled task's record its cause as its error, when fn returned the
// cause. Messages and stacks are capped
// as a [Stream]'s are ([WithMaxMessage], [WithMaxStack]): an error is
// passed to the handler as it is unless its message is over the cap.
//
// A record whose level the logger does not enable costs one level check
// and no allocation, so lifecycle records can stay wired in production
// with the logger at info.
//
// Create one with [NewLogObserver]; the zero LogObserver is not usable. It
// is safe for concurrent use.
type LogObserver struct {
	payloadCaps
	logger   *slog.Logger
	min      slog.Leveler
	traceIDs func(context.Context) (traceID, spanID string, ok bool)
}

var _ runtime.Observer = (*LogObserver)(nil)

// LogOption configures a [LogObserver]. An option given more than once
// takes its last value.
type LogOption interface{ applyLog(*LogObserver) }

type logOption func(*LogObserver)

func (f logOption) applyLog(o *LogObserver) { f(o) }

// WithTraceIDs adds trace_id and span_id attributes to every record whose
// context carries a span, as found by lookup. diagnostics imports no
// tracing library, so the application supplies the lookup; with
// OpenTelemetry:
//
//	diagnostics.WithTraceIDs(func(ctx context.Context) (string, string, bool) {
//		sc := trace.SpanContextFromContext(ctx)
//		return sc.TraceID().String(), sc.SpanID().String(), sc.IsValid()
//	})
//
// Task events are observed with the task's context, so when the telemetry
// observer is passed to runtime.New before the log observer, a task's
// records carry the ids of its own span. lookup is called only for records
// that are logged; a nil lookup adds nothing.
func WithTraceIDs(lookup func(ctx context.Context) (traceID, spanID string, ok bool)) LogOption {
	return logOption(func(o *LogObserver) { o.traceIDs = lookup })
}

// WithMinLevel skips events below level even when the logger would log
// them: for sharing an application logger at debug without a record per
// task spawn. A *slog.LevelVar changes it at run time; nil leaves the
// logger's level alone. A nil pointer (a *slog.LevelVar never made)
// panics: its Level would panic at every event instead.
func WithMinLevel(level slog.Leveler) LogOption {
	if v := reflect.ValueOf(level); v.Kind() == reflect.Pointer && v.IsNil() {
		panic(fmt.Sprintf("taskscope/diagnostics: WithMinLevel(nil %T)", level))
	}
	return logOption(func(o *LogObserver) { o.min = level })
}

// NewLogObserver returns an observer logging to l; a nil l means
// slog.Default() as of this call. It never changes the default logger. A
// nil option panics.
func NewLogObserver(l *slog.Logger, opts ...LogOption) *LogObserver {
	if l == nil {
		l = slog.Default()
	}
	o := &LogObserver{logger: l, payloadCaps: defaultPayloadCaps}
	for _, opt := range opts {
		mustOption(opt, "LogOption")
		opt.applyLog(o)
	}
	return o
}

// TaskStarting logs the spawned and run_started events, which the runtime
// delivers here rather than to Observe, and returns ctx unchanged.
func (o *LogObserver) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	return o.TaskStartingEvent(ctx, &ev)
}

// TaskStartingEvent implements [runtime.EventObserver]: TaskStarting
// without the copy of the event.
func (o *LogObserver) TaskStartingEvent(ctx context.Context, ev *runtime.Event) context.Context {
	o.ObserveEvent(ctx, ev)
	return ctx
}

// Observe logs ev. It checks the level before building anything: it runs
// on task goroutines, where even an unused attribute slice would grow the
// stack.
func (o *LogObserver) Observe(ctx context.Context, ev runtime.Event) { o.ObserveEvent(ctx, &ev) }

// ObserveEvent implements [runtime.EventObserver]: Observe without the
// copy of the event.
func (o *LogObserver) ObserveEvent(ctx context.Context, ev *runtime.Event) {
	lvl := ev.Level()
	if o.min != nil && lvl < o.min.Level() {
		return
	}
	if !o.logger.Enabled(ctx, lvl) {
		return
	}
	o.log(ctx, lvl, ev)
}

// log builds and writes the record. It is kept out of Observe so that the
// disabled path has a small frame.
//
//go:noinline
func (o *LogObserver) log(ctx context.Context, lvl slog.Level, ev *runtime.Event) {
	var buf [24]slog.Attr
	a := append(buf[:0], slog.String(keyEvent, ev.Kind))
	if ev.Group != "" {
		a = append(a, slog.String(keyGroup, ev.Group))
	}
	if ev.GroupID != 0 {
		a = append(a, slog.Int64(keyGroupID, int64(ev.GroupID)))
	}
	if ev.TaskID != 0 {
		a = append(a, slog.String(keyTaskName, ev.Task), slog.Int64(keyTaskID, int64(ev.TaskID)))
	}
	if ev.Function != "" {
		a = append(a, slog.String(keyFunction, ev.Function))
	}
	if ev.Interval > 0 {
		a = append(a, slog.Duration(keyInterval, ev.Interval))
	}
	if ev.Run > 0 {
		a = append(a, slog.Int64(keyRun, int64(ev.Run)))
	}
	if ev.Outcome != 0 {
		a = append(a, slog.String(keyOutcome, ev.Outcome.String()))
	}
	if ev.Rejected {
		a = append(a, slog.Bool(keyRejected, true))
	}
	if t := runtime.ErrorType(ev.Outcome, ev.Err); t != "" {
		a = append(a, slog.String(keyErrorType, t))
	}
	// The handler renders the error values: slog's own recover from an
	// Error that panics (a typed nil prints <nil>).
	if ev.Cause != nil {
		a = append(a, slog.String(keyCauseKind, runtime.CauseKind(ev.Cause)), slog.Any(keyCauseMessage, o.logged(ev.Cause)))
	}
	pe, panicked := panicError(ev.Err)
	switch {
	case ev.Err == nil, isCancelRequest(ev.Kind): // a cancel request's Err is its cause, logged above
	case panicked:
		stack := ev.Stack
		if len(stack) == 0 {
			stack = pe.Stack
		}
		a = append(a,
			slog.String(keyExcType, fmt.Sprintf("%T", pe.Value)),
			slog.String(keyExcMessage, truncateString(fmt.Sprint(pe.Value), o.maxMessage)))
		// A periodic task panics in a run, whose record has the stack.
		if ev.Kind != runtime.KindTaskFinished || ev.Interval == 0 {
			a = append(a, slog.String(keyExcStack, o.stackText(stack)))
		}
	// fn returned its context's cause (a canceled sibling of a fail-fast
	// group): taskscope.cancel.message says it already.
	case ev.Outcome == runtime.Canceled && ev.Cause != nil && errtext.Text(ev.Err) == errtext.Text(ev.Cause):
	case ev.Kind == runtime.KindGroupShutdownDone:
		// Its message (an *AbortError's): a text handler prints an error
		// with %+v, which adds the stacks already on the aborted records.
		a = append(a, slog.String(keyError, truncateString(errtext.Text(ev.Err), o.maxMessage)))
	default:
		a = append(a, slog.Any(keyError, o.logged(ev.Err)))
	}
	// Where an aborted task was stuck: on its aborted record, not again on
	// the finished one that follows it.
	if ev.Kind == runtime.KindTaskAborted && len(ev.Stack) > 0 {
		a = append(a, slog.String(keyTaskStack, o.stackText(ev.Stack)))
	}
	if ev.Duration > 0 {
		a = append(a, slog.Duration(keyDuration, ev.Duration))
	}
	if ev.CancelLatency > 0 {
		a = append(a, slog.Duration(keyCancelLatency, ev.CancelLatency))
	}
	if ev.Kind == runtime.KindGroupShutdownDone {
		a = append(a, slog.Int(keyDrained, ev.Drained), slog.Int(keyAborted, ev.Aborted))
	}
	if lag, ok := ev.Err.(*LaggedError); ok && ev.Kind == KindStreamLagged {
		a = append(a, slog.Uint64(keyMissed, lag.Missed))
	}
	if o.traceIDs != nil {
		if traceID, spanID, ok := o.traceIDs(ctx); ok {
			a = append(a, slog.String(keyTraceID, traceID), slog.String(keySpanID, spanID))
		}
	}
	o.logger.LogAttrs(ctx, lvl, message(ev), a...)
}
