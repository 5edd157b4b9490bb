package telemetry_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bubble runs f in a synctest bubble: time is fake and advances only when
// every goroutine of the bubble is blocked, so timeouts need no sleeps.
func bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}

// harness is a supervisor observed by a Telemetry that records spans in
// memory and registers on a fresh registry.
type harness struct {
	t   *testing.T
	tel *telemetry.Telemetry
	reg *prometheus.Registry
	sr  *tracetest.SpanRecorder
	tp  *sdktrace.TracerProvider
	sup *runtime.Supervisor
}

func newHarness(t *testing.T, opts ...telemetry.Option) *harness {
	t.Helper()
	return newHarnessWith(t, nil, opts...)
}

func newHarnessWith(t *testing.T, tpOpts []sdktrace.TracerProviderOption, opts ...telemetry.Option) *harness {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(sr)}, tpOpts...)...)
	reg := prometheus.NewPedanticRegistry()
	tel, err := telemetry.New(append([]telemetry.Option{telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(reg)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &harness{t: t, tel: tel, reg: reg, sr: sr, tp: tp, sup: runtime.New("app", runtime.WithObserver(tel))}
}

// spans returns the ended spans named name, in end order.
func (h *harness) spans(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range h.sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// span returns the only ended span named name.
func (h *harness) span(name string) sdktrace.ReadOnlySpan {
	h.t.Helper()
	s := h.spans(name)
	if len(s) != 1 {
		h.t.Fatalf("%d ended spans named %q, want 1 (ended: %v)", len(s), name, spanNames(h.sr.Ended()))
	}
	return s[0]
}

// checkSpansEndedOnce fails unless every started span has ended, once.
func (h *harness) checkSpansEndedOnce() {
	h.t.Helper()
	started, ended := h.sr.Started(), h.sr.Ended()
	ids := map[string]int{}
	for _, s := range ended {
		ids[s.SpanContext().SpanID().String()]++
	}
	for _, s := range started {
		if n := ids[s.SpanContext().SpanID().String()]; n != 1 {
			h.t.Errorf("span %q ended %d times", s.Name(), n)
		}
	}
	if len(started) != len(ended) {
		h.t.Errorf("%d spans started, %d ended", len(started), len(ended))
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func attrOf(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func attrString(s sdktrace.ReadOnlySpan, key string) string {
	v, _ := attrOf(s, key)
	return v.String()
}

func eventNamed(s sdktrace.ReadOnlySpan, name string) (sdktrace.Event, bool) {
	for _, e := range s.Events() {
		if e.Name == name {
			return e, true
		}
	}
	return sdktrace.Event{}, false
}

func eventAttr(e sdktrace.Event, key string) string {
	for _, kv := range e.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// metricValue sums, over the series of metric name whose labels include
// want, the counter or gauge value, or the histogram sample count.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	var sum float64
	for _, m := range series(t, g, name) {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// wantMetric fails t unless metricValue of name over the series with lbls
// is want; why, when not empty, says what the expectation rests on.
func wantMetric(t *testing.T, g prometheus.Gatherer, name string, lbls map[string]string, want float64, why string) {
	t.Helper()
	got := metricValue(t, g, name, lbls)
	if got == want {
		return
	}
	pairs := make([]string, 0, len(lbls))
	for k, v := range lbls {
		pairs = append(pairs, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(pairs)
	msg := fmt.Sprintf("%s{%s} = %v, want %v", name, strings.Join(pairs, ","), got, want)
	if why != "" {
		msg += " (" + why + ")"
	}
	t.Error(msg)
}

func series(t *testing.T, g prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.Metric
		}
	}
	return nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.Label {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// exemplars returns the exemplars of the histogram series of name whose
// labels include want, native and classic, as "label=value" strings.
func exemplars(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) []string {
	t.Helper()
	var found []string
	add := func(e *dto.Exemplar) {
		for _, lp := range e.GetLabel() {
			found = append(found, lp.GetName()+"="+lp.GetValue())
		}
	}
	for _, m := range series(t, g, name) {
		if !hasLabels(m, want) {
			continue
		}
		for _, e := range m.Histogram.Exemplars { // native histogram exemplars
			add(e)
		}
		for _, b := range m.Histogram.Bucket { // classic bucket exemplars
			if b.Exemplar != nil {
				add(b.Exemplar)
			}
		}
	}
	return found
}

// labelValues returns the distinct values of label across metric name.
func labelValues(t *testing.T, g prometheus.Gatherer, name, label string) []string {
	t.Helper()
	var out []string
	for _, m := range series(t, g, name) {
		for _, lp := range m.Label {
			if lp.GetName() == label && !slices.Contains(out, lp.GetValue()) {
				out = append(out, lp.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// timeout returns a context that ends after d of bubble time.
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func blockUntilCanceled(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// recordOnly is a sampler that records every span and samples none, as a
// tail-sampling setup does: the spans record but are never exported.
type recordOnly struct{}

func (recordOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (recordOnly) Description() string { return "RecordOnly" }
