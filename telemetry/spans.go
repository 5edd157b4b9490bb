package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskscope/taskscope/internal/errtext"
	"github.com/taskscope/taskscope/runtime"
)

// ScopeName is the instrumentation scope of the spans: this package's
// import path.
const ScopeName = "github.com/taskscope/taskscope/telemetry"

// taskCtx is the context a task's fn receives when tracing is on. It
// carries the task span (started on the spawning goroutine, so the SDK's
// deep call path grows the spawner's stack, not the task's) and, for a
// periodic task, the run span in progress, so that an abort can end it.
//
// It answers Value(owner) with itself: keying by the *Telemetry means two
// Telemetry observers on one supervisor, or a task spawned with
// runtime.WithParent from another task's context, never find each other's
// spans; the ID check is a second guard.
type taskCtx struct {
	context.Context
	owner *Telemetry
	id    uint64
	span  trace.Span              // the task span; nil for periodic tasks
	run   atomic.Pointer[runSpan] // periodic tasks: the run in progress
}

type runSpan struct{ span trace.Span }

func (c *taskCtx) Value(key any) any {
	if key == any(c.owner) {
		return c
	}
	return c.Context.Value(key)
}

// taskCtxOf finds task id's taskCtx in ctx, or nil.
func (t *Telemetry) taskCtxOf(ctx context.Context, id uint64) *taskCtx {
	tc, _ := ctx.Value(t).(*taskCtx)
	if tc == nil || tc.id != id {
		return nil
	}
	return tc
}

// parentOptions makes a span a child of the span in ctx (the default), or
// with WithSpanLinks (or always, for periodic runs) the root of a new trace
// linked to it. A link is added at start, where head samplers see it.
func parentOptions(ctx context.Context, link bool, opts []trace.SpanStartOption) []trace.SpanStartOption {
	if !link {
		return opts
	}
	if l := trace.LinkFromContext(ctx); l.SpanContext.IsValid() {
		return append(opts, trace.WithNewRoot(), trace.WithLinks(l))
	}
	return opts
}

// startTask starts the task span, or, for a periodic task, only the holder
// of its run spans: a periodic task may run for days, and a span is
// exported only when it ends. A long-running task gets no span either, and
// a context without a current one: the spans its fn makes per request or
// message are then roots, not children of a span that is never exported.
func (t *Telemetry) startTask(ctx context.Context, ev *runtime.Event, e *taskEntry) context.Context {
	switch {
	case ev.Interval > 0:
		return &taskCtx{Context: ctx, owner: t, id: ev.TaskID}
	case ev.LongRunning:
		return trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	}
	group, task := e.spanNames(ev)
	opts := make([]trace.SpanStartOption, 1, 3)
	// No taskscope.group.id here: a fifth start attribute costs a sampled
	// span about 400 bytes and as many nanoseconds (the SDK's attribute
	// slice then grows when the outcome is added).
	opts[0] = trace.WithAttributes(
		attrGroup.String(group),
		attrTaskName.String(task),
		attrTaskID.Int64(int64(ev.TaskID)),
		semconv.CodeFunctionName(ev.Function),
	)
	sctx, span := t.tracer.Start(ctx, e.s.taskSpanName, parentOptions(ctx, t.links, opts)...)
	return &taskCtx{Context: sctx, owner: t, id: ev.TaskID, span: span}
}

// startRun starts a periodic run's span. Runs are always roots linked to
// the spawner's span: the spawner's trace is long over when the hundredth
// run starts.
func (t *Telemetry) startRun(ctx context.Context, ev *runtime.Event) context.Context {
	tc := t.taskCtxOf(ctx, ev.TaskID)
	if tc == nil {
		return ctx
	}
	e := t.cache.entry(ev.Group, ev.Task, false)
	group, task := e.spanNames(ev)
	opts := make([]trace.SpanStartOption, 1, 3)
	opts[0] = trace.WithAttributes(
		attrGroup.String(group),
		attrTaskName.String(task),
		attrTaskID.Int64(int64(ev.TaskID)),
		attrRun.Int64(int64(ev.Run)),
		semconv.CodeFunctionName(ev.Function),
	)
	rctx, span := t.tracer.Start(ctx, e.s.runSpanName, parentOptions(ctx, true, opts)...)
	tc.run.Store(&runSpan{span: span})
	return rctx
}

// endSpan records how a task or run ended and ends its span. Status
// follows the outcome table: error, panic and aborted set Error; success
// and canceled leave it Unset (never Ok: that is the application's call).
func endSpan(span trace.Span, ev *runtime.Event, errType string) {
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, attrOutcome.String(ev.Outcome.String()))
	if ev.Cause != nil {
		attrs = append(attrs, attrCause.String(runtime.CauseKind(ev.Cause)), attrCauseText.String(truncate(errtext.Text(ev.Cause))))
	}
	if errType != "" {
		// An ErrorType method may return anything: the metric label is
		// made valid by the label cap, the attribute here.
		attrs = append(attrs, semconv.ErrorTypeKey.String(valid(errType)))
	}
	span.SetAttributes(attrs...)
	switch ev.Outcome {
	case runtime.Error:
		msg := errType
		if ev.Err != nil {
			msg = errtext.Text(ev.Err)
		}
		span.SetStatus(codes.Error, truncate(msg))
	case runtime.Panic:
		recordPanic(span, ev)
	case runtime.Aborted:
		span.SetStatus(codes.Error, "aborted at the shutdown deadline; goroutine abandoned")
	}
	span.End()
}

// recordPanic adds the exception event with the stack the runtime captured
// where the panic happened. span.RecordError would capture the stack of
// this observer call instead, truncated to 2 KiB.
func recordPanic(span trace.Span, ev *runtime.Event) {
	var value any = ev.Err
	stack := ev.Stack
	var pe *runtime.PanicError
	if errors.As(ev.Err, &pe) {
		value = pe.Value
		if len(stack) == 0 {
			stack = pe.Stack
		}
	}
	msg := fmt.Sprint(value)
	span.AddEvent(semconv.ExceptionEventName, trace.WithAttributes(
		semconv.ExceptionType(fmt.Sprintf("%T", value)),
		semconv.ExceptionMessage(truncate(msg)), // a String method may return megabytes
		semconv.ExceptionStacktrace(valid(string(stack))),
	))
	span.SetStatus(codes.Error, truncate("panic: "+msg))
}

// current returns the span a task event should annotate: the task span,
// or a periodic task's run in progress.
func (c *taskCtx) current() trace.Span {
	if c.span != nil {
		return c.span
	}
	if rs := c.run.Load(); rs != nil {
		return rs.span
	}
	return nil
}

func cancelEvent(span trace.Span, kind string, cause error) {
	if span == nil || !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attrCause.String(kind)}
	if cause != nil {
		attrs = append(attrs, attrCauseText.String(truncate(errtext.Text(cause))))
	}
	span.AddEvent(runtime.KindTaskCancelRequested, trace.WithAttributes(attrs...))
}

func abortEvent(span trace.Span, ev *runtime.Event) {
	if !span.IsRecording() {
		return
	}
	span.AddEvent(runtime.KindTaskAborted, trace.WithAttributes(attrStack.String(valid(string(ev.Stack)))))
}

// shutdownSpan records a finished shutdown as a `shutdown <group>` span,
// a child of the context given to Shutdown, and returns it for the caller
// to end at ev.Time. The span is named after the group's capped label, as
// task spans are; taskscope.group keeps its name. It is
// made whole from the shutdown_finished event, backdated to the start:
// a span is exported only once it ends, so nothing is lost by starting it
// late, and no state has to match the shutdown's start to its end (names
// of sibling groups, and of groups in different supervisors, repeat).
func (t *Telemetry) shutdownSpan(ctx context.Context, ev *runtime.Event, label, result string) trace.Span {
	group := valid(ev.Group)
	_, span := t.tracer.Start(ctx, "shutdown "+valid(label),
		trace.WithTimestamp(ev.Time.Add(-ev.Duration)),
		trace.WithAttributes(attrGroup.String(group), attrGroupID.Int64(int64(ev.GroupID))))
	if !span.IsRecording() {
		return span
	}
	attrs := []attribute.KeyValue{
		attrShutdownDrained.Int(ev.Drained),
		attrShutdownAborted.Int(ev.Aborted),
		attrShutdownResult.String(result),
	}
	var ae *runtime.AbortError
	if errors.As(ev.Err, &ae) {
		names := make([]string, 0, min(len(ae.Aborted), maxAbortedNames))
		for _, ti := range ae.Aborted[:min(len(ae.Aborted), maxAbortedNames)] {
			names = append(names, valid(ti.Group+"/"+ti.Name)+"#"+strconv.FormatUint(ti.ID, 10))
		}
		attrs = append(attrs, attrShutdownAbortedTasks.StringSlice(names), semconv.ErrorTypeKey.String("aborted"))
	}
	span.SetAttributes(attrs...)
	if ev.Aborted > 0 {
		msg := "shutdown aborted " + strconv.Itoa(ev.Aborted) + " task(s)"
		if ev.Err != nil {
			msg = ev.Err.Error()
		}
		span.SetStatus(codes.Error, truncate(msg))
	}
	return span
}
