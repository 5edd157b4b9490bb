package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/zpages"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// serviceName is the resource's service.name unless OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const serviceName = "taskscope-demo"

// Export pipeline sizing. At the default -rate the demo ends about 200
// spans a second. The SDK's defaults (a 2048-span queue drained by
// 512-span batches every 5 s) drop spans silently as soon as the exporter
// stalls for a few seconds; here the queue holds over a minute of spans,
// batches are large enough that one export a second keeps up with several
// times the default rate, and a 1 s delay puts traces in the backend
// quickly. OTEL_BSP_* variables, when set, win over these.
const (
	exportQueueSize = 16384
	exportBatchSize = 1024
	exportDelay     = time.Second
	// The batch processor's queue also carries ForceFlush markers: keep a
	// few slots free for them, so the processor itself never has to drop.
	flushMarkerSlots = 8
)

// tracing is the demo's OpenTelemetry SDK. The SDK lives only here:
// telemetry (the library) takes the provider through
// telemetry.WithTracerProvider and never sees the SDK, and no global
// provider is installed.
type tracing struct {
	tp     *sdktrace.TracerProvider
	zpages *zpages.SpanProcessor
	export *exportQueue // nil when spans are only shown by zpages
	// summary describes the sampler and the export for the startup output;
	// exportDesc, the export alone.
	summary, exportDesc string
}

// newTracing builds the tracer provider: zpages always (traces with no
// backend), plus an exporter configured by the standard OTEL_* variables
// when the environment asks for one.
func newTracing(ctx context.Context, cfg config, logger *slog.Logger) (*tracing, error) {
	bi, ok := debug.ReadBuildInfo()
	res, err := newResource(ctx, buildVersion(version, bi, ok), logger)
	if err != nil {
		return nil, err
	}
	t := &tracing{zpages: zpages.NewSpanProcessor()}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSpanProcessor(t.zpages)}

	sampler := "from OTEL_TRACES_SAMPLER=" + os.Getenv("OTEL_TRACES_SAMPLER")
	if cfg.traceRatioSet || os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.traceRatio))))
		sampler = fmt.Sprintf("ParentBased(TraceIDRatioBased(%g))", cfg.traceRatio)
	}

	export := "none (OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_ENDPOINT unset): zpages only"
	if exportRequested() {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
		if autoexport.IsNoneSpanExporter(exp) {
			export = "none (OTEL_TRACES_EXPORTER=none): zpages only"
		} else {
			t.export = newExportQueue(exp, logger)
			opts = append(opts, sdktrace.WithSpanProcessor(t.export))
			export = fmt.Sprintf("%s, queue %d spans, batches of %d", exportTarget(), t.export.capacity+flushMarkerSlots, t.export.batchSize)
		}
	}
	t.tp = sdktrace.NewTracerProvider(opts...)
	t.summary, t.exportDesc = fmt.Sprintf("sampler %s; export %s", sampler, export), export
	return t, nil
}

// newResource describes the demo: service.name, service.version when the
// build knows it (version ""), the SDK. OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override these.
func newResource(ctx context.Context, version string, logger *slog.Logger) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{semconv.ServiceName(serviceName)}
	if version != "" {
		attrs = append(attrs, semconv.ServiceVersion(version))
	}
	res, err := resource.New(ctx,
		// Later options win: the environment overrides the defaults.
		resource.WithAttributes(attrs...),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	// A malformed OTEL_RESOURCE_ATTRIBUTES gives a partial resource: keep
	// what parsed, as the specification asks, and say so.
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	if err != nil {
		logger.Warn("tracing resource: kept what parsed", "error", err)
	}
	return res, nil
}

// version is the demo's version when the build sets it with
// -ldflags "-X main.version=...": make demo and make up stamp the output of
// git describe (their builds run with -buildvcs=false, so the build info
// has no revision).
var version string

// buildVersion is the demo's version: stamped (see version) if set, else
// the module version of a `go install ...@version` build, else the VCS
// revision (with -dirty for local changes) when the build recorded one;
// "" when none is known (then set service.version in
// OTEL_RESOURCE_ATTRIBUTES).
func buildVersion(stamped string, bi *debug.BuildInfo, ok bool) string {
	if stamped != "" {
		return stamped
	}
	if !ok || bi == nil {
		return ""
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" && modified {
		rev += "-dirty"
	}
	return rev
}

// exportRequested reports whether the environment configures a trace
// exporter. Without this check autoexport would default to OTLP towards
// localhost:4318 and a plain `go run` would log export errors forever.
func exportRequested() bool {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// exportTarget describes where the exporter sends spans, for the startup
// output.
func exportTarget() string {
	kind := os.Getenv("OTEL_TRACES_EXPORTER")
	if kind == "" {
		kind = "otlp"
	}
	if kind != "otlp" {
		return kind
	}
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if protocol == "" {
		protocol = "http/protobuf"
	}
	if endpoint == "" {
		endpoint = "the default endpoint"
	} else {
		endpoint = redactEndpoint(endpoint)
	}
	return fmt.Sprintf("otlp (%s) to %s", protocol, endpoint)
}

// redactEndpoint is endpoint for display (the startup output, and the
// landing page, which anyone who reaches the demo reads): its userinfo and
// its query, where a collector's URL may carry a token or an API key,
// become xxxxx. A gRPC endpoint is often written host:port, with no
// scheme: url.Parse reads its host as a scheme and the rest, userinfo
// included ("user:token@collector:4317"), as opaque, or fails on it
// ("token@collector:4317"); without a "://", it is read as an authority.
func redactEndpoint(endpoint string) string {
	authority := !strings.Contains(endpoint, "://")
	raw := endpoint
	if authority {
		raw = "//" + endpoint
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "an endpoint that does not parse as a URL"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.RawQuery != "" {
		u.RawQuery = "xxxxx"
	}
	if authority {
		return strings.TrimPrefix(u.String(), "//")
	}
	return u.String()
}

// shutdown flushes what is queued and stops the provider, within ctx.
// When the flush fails (the deadline passed), Shutdown still stops the
// provider, and the flush's error is the one to report.
func (t *tracing) shutdown(ctx context.Context) error {
	flushErr := t.tp.ForceFlush(ctx)
	if err := t.tp.Shutdown(ctx); flushErr == nil {
		return err
	}
	return flushErr
}

// spanCounts is the export's books, for the shutdown report.
type spanCounts struct {
	exporting                         bool
	queued, exported, failed, dropped uint64
	pending                           int64
}

func (t *tracing) counts() spanCounts {
	if t.export == nil {
		return spanCounts{}
	}
	return t.export.counts()
}

// exportQueue is the SDK's batch span processor with books kept in front
// of it, because the processor drops spans silently when its queue is full
// (measured in this project: in a tight spawn loop only 21 % of the spans
// were exported). exportQueue counts every sampled span that ends as
// pending until its export has returned, and refuses — counting it as
// dropped — any span that would take the pending count past the
// processor's queue. Pending spans include those in the processor's queue,
// so the queue never overflows and every span is accounted for: queued =
// exported + failed + pending, and queued + dropped = every sampled span.
// Drops show as taskscope_demo_spans_dropped_total, a warning at the first
// one, and a line in the shutdown report.
type exportQueue struct {
	bsp                 sdktrace.SpanProcessor
	capacity, batchSize int
	logger              *slog.Logger

	pending                           atomic.Int64 // queued, export not yet returned
	queued, exported, failed, dropped atomic.Uint64
	stopped                           atomic.Bool
}

var _ sdktrace.SpanProcessor = (*exportQueue)(nil)

func newExportQueue(exp sdktrace.SpanExporter, logger *slog.Logger) *exportQueue {
	queueSize := envInt("OTEL_BSP_MAX_QUEUE_SIZE", exportQueueSize)
	capacity := max(queueSize-flushMarkerSlots, 1)
	// A batch must fill well before the queue does: otherwise exports
	// start only on the timer, and a burst overflows the queue.
	batchSize := min(envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", exportBatchSize), max(capacity/2, 1))
	q := &exportQueue{
		capacity:  capacity,
		batchSize: batchSize,
		logger:    logger,
	}
	opts := []sdktrace.BatchSpanProcessorOption{
		sdktrace.WithMaxQueueSize(queueSize),
		sdktrace.WithMaxExportBatchSize(batchSize),
	}
	if os.Getenv("OTEL_BSP_SCHEDULE_DELAY") == "" {
		opts = append(opts, sdktrace.WithBatchTimeout(exportDelay))
	}
	q.bsp = sdktrace.NewBatchSpanProcessor(countingExporter{exp, q}, opts...)
	return q
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

func (q *exportQueue) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) { q.bsp.OnStart(ctx, s) }

// OnEnd admits the span if the processor's queue has room for it. It runs
// on the goroutine that ends the span (often a task's), so it only does
// atomic arithmetic, except for one warning at the first drop.
func (q *exportQueue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return // the processor ignores it too
	}
	if q.stopped.Load() {
		q.drop()
		return
	}
	if q.pending.Add(1) > int64(q.capacity) {
		q.pending.Add(-1)
		q.drop()
		return
	}
	q.queued.Add(1)
	q.bsp.OnEnd(s)
}

func (q *exportQueue) drop() {
	if q.dropped.Add(1) == 1 {
		q.logger.Warn("span export queue full: dropping spans, counted in taskscope_demo_spans_dropped_total (is the exporter's endpoint slow? else lower -rate or -trace-ratio)",
			"queue", q.capacity)
	}
}

func (q *exportQueue) Shutdown(ctx context.Context) error {
	q.stopped.Store(true)
	return q.bsp.Shutdown(ctx)
}

func (q *exportQueue) ForceFlush(ctx context.Context) error { return q.bsp.ForceFlush(ctx) }

func (q *exportQueue) counts() spanCounts {
	return spanCounts{
		exporting: true,
		queued:    q.queued.Load(),
		exported:  q.exported.Load(),
		failed:    q.failed.Load(),
		dropped:   q.dropped.Load(),
		pending:   q.pending.Load(),
	}
}

// collectors exposes the books on the demo's registry.
func (q *exportQueue) collectors() []prometheus.Collector {
	counter := func(name, help string, labels prometheus.Labels, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		counter("taskscope_demo_spans_queued_total", "Sampled spans admitted to the export queue.", nil, &q.queued),
		counter("taskscope_demo_spans_dropped_total", "Sampled spans dropped because the export queue was full (or the provider was shut down): never exported.", nil, &q.dropped),
		counter("taskscope_demo_spans_exported_total", "Spans handed to the exporter, by result.", prometheus.Labels{"result": "success"}, &q.exported),
		counter("taskscope_demo_spans_exported_total", "Spans handed to the exporter, by result.", prometheus.Labels{"result": "failure"}, &q.failed),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taskscope_demo_span_queue_length", Help: "Spans queued or being exported."},
			func() float64 { return float64(q.pending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taskscope_demo_span_queue_capacity", Help: "Spans the export queue holds before it drops."},
			func() float64 { return float64(q.capacity) }),
	}
}

// countingExporter closes the books of each batch the processor exports.
type countingExporter struct {
	sdktrace.SpanExporter
	q *exportQueue
}

func (e countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	n := len(spans)
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		e.q.failed.Add(uint64(n))
	} else {
		e.q.exported.Add(uint64(n))
	}
	e.q.pending.Add(-int64(n))
	return err
}
