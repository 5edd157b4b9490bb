package telemetry

import (
	"context"
	"fmt"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskscope/taskscope/runtime"
)

// Telemetry turns a supervisor's events into OpenTelemetry spans and
// Prometheus metrics. It is a [runtime.Observer] (pass it to
// runtime.WithObserver) and a [prometheus.Collector]. One Telemetry may
// observe several supervisors: their series are told apart by the group
// label, which begins with the supervisor's name, so give them distinct
// names. Supervisors that share a name need a Telemetry each, with its own
// [WithConstLabels] (or registry).
//
// All methods are safe for concurrent use. Make one with [New]; the zero
// Telemetry is not usable.
type Telemetry struct {
	tracer     trace.Tracer // nil: tracing off, checked before any span work
	links      bool
	m          *metrics
	cache      *seriesCache
	collectors []prometheus.Collector
}

var (
	_ runtime.Observer      = (*Telemetry)(nil)
	_ runtime.EventObserver = (*Telemetry)(nil)
	_ prometheus.Collector  = (*Telemetry)(nil)
)

// New returns a Telemetry configured by opts. With [WithRegisterer] it
// registers itself there and returns the registration error; otherwise
// register it yourself. It never touches a global: the tracer provider
// defaults to otel.GetTracerProvider(), read once here.
//
// New fails when the const labels are invalid or collide with the metrics'
// own labels (or with le, the histogram bucket label), and when
// registration fails, and when an option is nil.
func New(opts ...Option) (*Telemetry, error) {
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("taskscope/telemetry: option %d of New is nil", i)
		}
	}
	c := newConfig(opts)
	if _, ok := c.constLabels[bucketLabel]; ok {
		// The histograms are collected by hand, so client_golang's own
		// check does not run: the exposition would repeat the label.
		return nil, fmt.Errorf("taskscope/telemetry: invalid metrics: const label %q is reserved for histogram buckets", bucketLabel)
	}
	m := newMetrics(c.constLabels)
	cache := newSeriesCache(m, c.maxLabelValues, c.maxLabelPairs)
	t := &Telemetry{
		links:      c.spanLinks,
		m:          m,
		cache:      cache,
		collectors: m.collectors(cache),
	}
	if c.stream != nil {
		t.collectors = append(t.collectors, newStreamMetrics(c.stream, c.constLabels))
	}
	if tracingOn(c.tp) {
		t.tracer = c.tp.Tracer(ScopeName, trace.WithInstrumentationVersion(Version), trace.WithSchemaURL(semconv.SchemaURL))
	}
	// A private registry checks the descriptors (const label names, label
	// collisions) so that a mistake is an error here rather than a panic
	// or a failed scrape later, whether or not WithRegisterer is used.
	if err := prometheus.NewPedanticRegistry().Register(t); err != nil {
		return nil, fmt.Errorf("taskscope/telemetry: invalid metrics: %w", err)
	}
	if c.regSet {
		if c.reg == nil {
			return nil, fmt.Errorf("taskscope/telemetry: WithRegisterer(nil)")
		}
		if isNil(c.reg) {
			return nil, fmt.Errorf("taskscope/telemetry: WithRegisterer: nil %T", c.reg)
		}
		if err := c.reg.Register(t); err != nil {
			return nil, fmt.Errorf("taskscope/telemetry: registering metrics: %w", err)
		}
	}
	return t, nil
}

// tracingOn reports whether spans are worth starting: a no-op provider
// would still cost an allocation per span. A nil pointer of a provider type
// (an SDK provider left unset when tracing is disabled) is off too, like
// nil.
func tracingOn(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	return !isNil(tp)
}

// isNil reports whether v is nil or a nil pointer in an interface: an
// option given a variable of a pointer type that was never set.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// NeedsStack implements [runtime.StackUser]: with tracing on, ending a
// span on the task goroutine needs more than its first stack.
func (t *Telemetry) NeedsStack() bool { return t.tracer != nil }

// TaskStarting implements [runtime.Observer]. It runs on the spawning
// goroutine (for a periodic run, on the task's): it counts the spawn and,
// with tracing on, starts the task's span (or the run's) and returns the
// context carrying it. With
// tracing off it returns ctx unchanged and allocates nothing, but for a
// periodic or long-running task spawned with a span in ctx: its fn gets
// no current span, as with tracing on.
func (t *Telemetry) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	return t.TaskStartingEvent(ctx, &ev)
}

// TaskStartingEvent implements [runtime.EventObserver]: TaskStarting
// without the copy of the event.
func (t *Telemetry) TaskStartingEvent(ctx context.Context, ev *runtime.Event) context.Context {
	switch ev.Kind {
	case runtime.KindTaskSpawned:
		e := t.cache.entry(ev.Group, ev.Task, true)
		e.s.started.Inc()
		if ev.Interval > 0 && !ev.Rejected {
			e.s.periodicStarted(ev)
		}
		if t.tracer != nil {
			return t.startTask(ctx, ev, e)
		}
		if (ev.Interval > 0 || ev.LongRunning) && trace.SpanContextFromContext(ctx).IsValid() {
			// As with tracing on: what a consumer loop or a periodic run
			// traces on its own starts traces of its own, not under the
			// spawner's span.
			return trace.ContextWithSpanContext(ctx, trace.SpanContext{})
		}
	case runtime.KindTaskRunStarted:
		if t.tracer != nil {
			return t.startRun(ctx, ev)
		}
	}
	return ctx
}

// Observe implements [runtime.Observer]. Task completions run on the task
// goroutine, so the path for them is shallow and, with tracing off,
// allocation-free: it must not grow the goroutine's stack.
func (t *Telemetry) Observe(ctx context.Context, ev runtime.Event) { t.ObserveEvent(ctx, &ev) }

// ObserveEvent implements [runtime.EventObserver]: the supervisor calls it
// instead of Observe, without copying the event onto the task's stack.
func (t *Telemetry) ObserveEvent(ctx context.Context, ev *runtime.Event) {
	switch ev.Kind {
	case runtime.KindTaskFinished:
		t.taskFinished(ctx, ev)
	case runtime.KindTaskCancelRequested:
		t.cancelRequested(ctx, ev)
	case runtime.KindTaskAborted:
		t.taskAborted(ctx, ev)
	case runtime.KindTaskLateExit:
		t.lateExit(ev)
	case runtime.KindTaskRejected:
		t.taskRejected(ctx, ev)
	case runtime.KindTaskRunFinished:
		t.runFinished(ctx, ev)
	case runtime.KindGroupCancelRequested:
		t.groupCancelRequested(ev)
	case runtime.KindGroupShutdownDone:
		t.shutdownDone(ctx, ev)
	}
}

// groupCancelRequested counts a group cancel. It reaches every task below
// the group without a per-task event, so it is counted once, with task="".
func (t *Telemetry) groupCancelRequested(ev *runtime.Event) {
	t.m.cancellations.WithLabelValues(t.cache.groupLabel(ev.Group), "", causeKind(ev)).Inc()
}

// taskFinished runs on the task goroutine at the bottom of its stack: with
// tracing off it stays in small frames (no span context on the way).
func (t *Telemetry) taskFinished(ctx context.Context, ev *runtime.Event) {
	s := t.cache.entry(ev.Group, ev.Task, false).s
	errType := runtime.ErrorType(ev.Outcome, ev.Err)
	s.finishedCounter(ev.Outcome, t.errorTypeLabel(ev.Outcome, errType)).Inc()
	if ev.Interval > 0 && !ev.Rejected {
		s.periodicEnded(ev) // out of line: a task goroutine's frames stay small
	}
	if t.tracer != nil {
		t.taskFinishedTraced(ctx, ev, s, errType)
		return
	}
	if !ev.Rejected { // it never ran: no duration
		s.durationHistogram(ev.Outcome).observe(ev.Duration)
		if ev.Outcome == runtime.Canceled {
			s.cancelLatency().observe(ev.CancelLatency)
		}
	}
}

// errorTypeLabel is the error_type label value: capped for outcome error,
// whose types are open-ended.
func (t *Telemetry) errorTypeLabel(o runtime.Outcome, errType string) string {
	if o == runtime.Error {
		return t.cache.errorTypeLabel(errType)
	}
	return errType
}

// taskFinishedTraced is taskFinished's rest with tracing on: the
// histograms get the task span's trace as an exemplar, and the span ends.
// It repeats taskFinished's two observations on purpose: one path for both
// puts the span context and observe's frame on every task goroutine's
// stack, and TestObserverDoesNotGrowTaskStack then sees the stack grow.
func (t *Telemetry) taskFinishedTraced(ctx context.Context, ev *runtime.Event, s *series, errType string) {
	var span trace.Span
	if tc := t.taskCtxOf(ctx, ev.TaskID); tc != nil {
		span = tc.span // nil for periodic tasks: their runs have spans
	}
	if !ev.Rejected {
		s.durationHistogram(ev.Outcome).observeTraced(ev.Duration, span, ev.Time)
		if ev.Outcome == runtime.Canceled {
			s.cancelLatency().observeTraced(ev.CancelLatency, span, ev.Time)
		}
	}
	if span != nil {
		endSpan(span, ev, errType)
	}
}

func (t *Telemetry) taskRejected(ctx context.Context, ev *runtime.Event) {
	t.cache.entry(ev.Group, ev.Task, false).s.rejected().Inc()
	if t.tracer != nil {
		if tc := t.taskCtxOf(ctx, ev.TaskID); tc != nil && tc.span != nil {
			tc.span.SetAttributes(attrRejected.Bool(true))
		}
	}
}

// causeKind is the cause label of a cancel request: the cause that stands
// (Cause), else the one requested (Err).
func causeKind(ev *runtime.Event) string {
	cause := ev.Cause
	if cause == nil {
		cause = ev.Err
	}
	// runtime.CauseKind walks the cause's chain several times; the plain
	// Cancel(nil) and deadline causes are recognized here first, with the
	// same answer.
	switch cause {
	case context.Canceled:
		return "canceled"
	case context.DeadlineExceeded:
		return "deadline"
	}
	return runtime.CauseKind(cause)
}

func (t *Telemetry) cancelRequested(ctx context.Context, ev *runtime.Event) {
	kind := causeKind(ev)
	t.cache.entry(ev.Group, ev.Task, false).s.cancellations(kind).Inc()
	if t.tracer != nil {
		if tc := t.taskCtxOf(ctx, ev.TaskID); tc != nil {
			cause := ev.Cause
			if cause == nil {
				cause = ev.Err
			}
			cancelEvent(tc.current(), kind, cause)
		}
	}
}

func (t *Telemetry) taskAborted(ctx context.Context, ev *runtime.Event) {
	t.cache.entry(ev.Group, ev.Task, false).s.abandoned.Inc()
	if t.tracer == nil {
		return
	}
	tc := t.taskCtxOf(ctx, ev.TaskID)
	if tc == nil {
		return
	}
	// The finished event that follows ends the task span. A periodic task
	// has no task span: when it was stuck in a run, the runtime reports
	// that run aborted (run_finished) right after this event, and that
	// ends the run's span; a run that had ended already is reported with
	// its own outcome, so the abort does not touch it.
	if tc.span != nil {
		abortEvent(tc.span, ev)
	}
}

// lateExit closes the books of an aborted task whose goroutine returned.
// Its span ended at the abort, but its cancel latency, which the abort cut
// off, is observed now, to the real return: the tail of that histogram is
// what finds tasks that ignore their context. No exemplar: the span has
// ended.
func (t *Telemetry) lateExit(ev *runtime.Event) {
	s := t.cache.entry(ev.Group, ev.Task, false).s
	s.abandoned.Dec()
	if ev.Cause != nil {
		s.cancelLatency().observe(ev.CancelLatency)
	}
}

// runFinished runs on the task goroutine (but for a run aborted at a
// shutdown deadline): as taskFinished, it stays in small frames with
// tracing off.
func (t *Telemetry) runFinished(ctx context.Context, ev *runtime.Event) {
	s := t.cache.entry(ev.Group, ev.Task, false).s
	s.periodicRuns(ev.Outcome).Inc()
	if ev.Outcome == runtime.Success {
		s.periodicSucceeded(ev.Time)
	}
	if t.tracer != nil {
		t.runFinishedTraced(ctx, ev, s)
		return
	}
	s.runDuration(ev.Outcome).observe(ev.Duration)
}

// runFinishedTraced is runFinished's rest with tracing on: the run
// duration gets the run span's trace as an exemplar, then the span ends
// (an ended span is not recording, and makes none). It repeats
// runFinished's observation for the reason taskFinishedTraced repeats
// taskFinished's: the span context stays off the stack of a task
// goroutine observed without tracing.
func (t *Telemetry) runFinishedTraced(ctx context.Context, ev *runtime.Event, s *series) {
	var span trace.Span
	if tc := t.taskCtxOf(ctx, ev.TaskID); tc != nil {
		if rs := tc.run.Swap(nil); rs != nil {
			span = rs.span
		}
	}
	s.runDuration(ev.Outcome).observeTraced(ev.Duration, span, ev.Time)
	if span == nil {
		return
	}
	if ev.Outcome == runtime.Aborted {
		abortEvent(span, ev) // with the stack the run is stuck in
	}
	endSpan(span, ev, runtime.ErrorType(ev.Outcome, ev.Err))
}

func (t *Telemetry) shutdownDone(ctx context.Context, ev *runtime.Event) {
	result := "clean"
	if ev.Aborted > 0 {
		result = "aborted"
	}
	label := t.cache.groupLabel(ev.Group)
	var span trace.Span
	if t.tracer != nil {
		span = t.shutdownSpan(ctx, ev, label, result)
	}
	t.m.shutdownDuration.with(label, result).observeTraced(ev.Duration, span, ev.Time)
	if span != nil {
		span.End(trace.WithTimestamp(ev.Time)) // after the exemplar: an ended span is not recording
	}
}

// Describe implements [prometheus.Collector].
func (t *Telemetry) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range t.collectors {
		c.Describe(ch)
	}
}

// Collect implements [prometheus.Collector].
func (t *Telemetry) Collect(ch chan<- prometheus.Metric) {
	for _, c := range t.collectors {
		c.Collect(ch)
	}
}
