package telemetry

import (
	"maps"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMaxLabelValues is the default cap on the distinct values of the
// group label and, separately, of the task label (and of error_type): past
// it, new values are reported as "_other". A few hundred keeps a
// misbehaving caller (a task named per request) from creating unbounded
// series while leaving room for every static name a service has.
const DefaultMaxLabelValues = 256

// DefaultMaxLabelPairs is the default cap on the distinct (group, task)
// label pairs. The per-label caps alone would allow their product (256
// groups × 256 tasks: 65,536 pairs, each a few dozen series); 1,024 pairs
// is room for every static task of a large service.
const DefaultMaxLabelPairs = 1024

// config is what the options set. It is a value: options return a modified
// copy, so applying them allocates nothing and a config cannot be changed
// after New.
type config struct {
	tp             trace.TracerProvider
	tpSet          bool // WithTracerProvider was given (nil then means tracing off)
	reg            prometheus.Registerer
	regSet         bool // WithRegisterer was given (nil then is a mistake, not "nowhere")
	constLabels    prometheus.Labels
	maxLabelValues int
	maxLabelPairs  int
	spanLinks      bool
	stream         StreamStats
}

// Option configures [New]. Options are sealed: only this package makes
// them. An option given more than once takes its last value.
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

func newConfig(opts []Option) config {
	c := config{maxLabelValues: DefaultMaxLabelValues, maxLabelPairs: DefaultMaxLabelPairs}
	for _, o := range opts {
		c = o.apply(c)
	}
	if !c.tpSet {
		// The global is a delegating provider: tracers taken from it now
		// follow a provider the application installs later.
		c.tp = otel.GetTracerProvider()
	}
	return c
}

// WithTracerProvider sets where task, run and shutdown spans go. The
// default is otel.GetTracerProvider(); the package never sets a global.
//
// A nil provider (also a nil pointer of a provider type, such as an unset
// *sdktrace.TracerProvider) or a no-op one
// (go.opentelemetry.io/otel/trace/noop) turns tracing off: no span is
// started and no context is wrapped (but that of a periodic or
// long-running task spawned with a span, see [Telemetry.TaskStarting]),
// so a task costs nothing but its metrics. (Even a no-op tracer would cost
// an allocation and about 0.15µs per span.)
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c config) config {
		c.tp, c.tpSet = tp, true
		return c
	})
}

// WithRegisterer makes [New] register the collector on r and return the
// registration error, wrapped (errors.As finds a
// [prometheus.AlreadyRegisteredError] when r already has an identical
// Telemetry), instead of panicking. Without
// it nothing is registered: register the returned *Telemetry yourself. A
// nil r, or a nil pointer in r (a *prometheus.Registry left unset), is an
// error too.
func WithRegisterer(r prometheus.Registerer) Option {
	return optionFunc(func(c config) config {
		c.reg, c.regSet = r, true
		return c
	})
}

// WithConstLabels adds labels with fixed values to every metric, to tell
// several supervisors in one process apart (for example
// {"supervisor": "ingest"}). Their names must not be one of the metrics'
// own labels (group, task, outcome, error_type, cause, result, label) nor
// le, the histogram bucket label. l is copied. Given more than once, the
// last set stands: sets are not merged, so pass every label in one.
// Wrapping the registerer with prometheus.WrapRegistererWith does the same,
// but New cannot see those labels: a wrapped le breaks the histograms'
// exposition without an error here.
func WithConstLabels(l prometheus.Labels) Option {
	l = maps.Clone(l)
	return optionFunc(func(c config) config {
		c.constLabels = l
		return c
	})
}

// WithMaxLabelValues caps the distinct values of the group label, of the
// task label and of the error_type label, each at n (default
// [DefaultMaxLabelValues]). The first n values seen are kept; later ones
// are reported as "_other" and counted in taskscope_label_overflow_total.
// Span names follow the task label, so that they stay as few: the spans of
// a folded task are named `task _other` and `run _other`, and their
// taskscope.task.name attribute keeps the real name. n < 1 is ignored.
func WithMaxLabelValues(n int) Option {
	return optionFunc(func(c config) config {
		if n >= 1 {
			c.maxLabelValues = n
		}
		return c
	})
}

// WithMaxLabelPairs caps the distinct (group, task) label pairs at n
// (default [DefaultMaxLabelPairs]), after the caps of each label
// ([WithMaxLabelValues]). The first n pairs seen are kept; the task label
// of a later pair is reported as "_other" within its group, so that the
// group's totals stay whole, and counted in taskscope_label_overflow_total
// with label="task"; its spans are named as the label says, as past
// [WithMaxLabelValues]. The pairs (group, "_other") are not capped: there are
// at most as many as group values. n < 1 is ignored.
func WithMaxLabelPairs(n int) Option {
	return optionFunc(func(c config) config {
		if n >= 1 {
			c.maxLabelPairs = n
		}
		return c
	})
}

// WithSpanLinks makes each task span the root of a new trace, linked to the
// span of the context the task was spawned from (see runtime.WithParent),
// instead of a child of it. Use it when tasks outlive their spawner, such
// as background work started from a request: otherwise the request's trace
// grows for as long as the tasks run.
func WithSpanLinks() Option {
	return optionFunc(func(c config) config {
		c.spanLinks = true
		return c
	})
}

// WithStreamStats exports a diagnostic stream's counters as
// taskscope_stream_events_total, taskscope_stream_dropped_total and
// taskscope_stream_subscribers, read at scrape time. diagnostics.Stream
// satisfies [StreamStats]; nil is ignored.
func WithStreamStats(s StreamStats) Option {
	return optionFunc(func(c config) config {
		if !isNil(s) { // a nil *diagnostics.Stream too: its methods would panic at every scrape
			c.stream = s
		}
		return c
	})
}
