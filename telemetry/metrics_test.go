package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// TestExemplarsCarryTraceID: the duration, cancel latency and shutdown
// duration histograms take the trace of the task or shutdown span they
// observe as their exemplar.
func TestExemplarsCarryTraceID(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		<-h.sup.Go("traced", func(context.Context) error { time.Sleep(3 * time.Millisecond); return nil }).Done()
		canceled := h.sup.Go("canceled", blockUntilCanceled)
		canceled.Cancel(nil)
		<-canceled.Done()
		if err := h.sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			metric string
			lbls   map[string]string
			span   string
		}{
			{"taskscope_task_duration_seconds", labels("task", "traced"), "task traced"},
			{"taskscope_task_cancel_latency_seconds", labels("task", "canceled"), "task canceled"},
			{"taskscope_group_shutdown_duration_seconds", nil, "shutdown app"},
		} {
			want := "trace_id=" + h.span(c.span).SpanContext().TraceID().String()
			found := exemplars(t, h.reg, c.metric, c.lbls)
			if len(found) == 0 {
				t.Errorf("%s: no exemplar; want %s", c.metric, want)
			}
			for _, f := range found {
				if f != want {
					t.Errorf("%s: exemplar %s, want %s", c.metric, f, want)
				}
			}
		}
	})
}

// TestNoExemplarsFromSpansNotRecording: with the default provider and no
// SDK installed, a task's (or a shutdown's) span does not record but
// carries its parent's sampled context; its trace was never recorded
// here, so it makes no exemplar.
func TestNoExemplarsFromSpansNotRecording(t *testing.T) {
	bubble(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		tel, err := telemetry.New(telemetry.WithRegisterer(reg)) // otel.GetTracerProvider(): no SDK in these tests
		if err != nil {
			t.Fatal(err)
		}
		sup := runtime.New("app", runtime.WithObserver(tel))
		tid, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
		sid, _ := trace.SpanIDFromHex("0102030405060708")
		parent := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
		<-sup.Go("w", func(ctx context.Context) error {
			if s := trace.SpanFromContext(ctx); s.IsRecording() || s.SpanContext().TraceID() != tid {
				t.Errorf("the task's span: recording %v, trace %v; want the parent's context, not recording (did a test install a global provider?)",
					s.IsRecording(), s.SpanContext().TraceID())
			}
			return nil
		}, runtime.WithParent(parent)).Done()
		canceled := sup.Go("canceled", blockUntilCanceled, runtime.WithParent(parent))
		canceled.Cancel(nil)
		<-canceled.Done()
		if err := sup.Shutdown(parent); err != nil {
			t.Fatal(err)
		}
		for name, n := range map[string]float64{
			"taskscope_task_duration_seconds":           2,
			"taskscope_task_cancel_latency_seconds":     1,
			"taskscope_group_shutdown_duration_seconds": 1,
		} {
			wantMetric(t, reg, name, nil, n, "observations")
			if found := exemplars(t, reg, name, nil); len(found) > 0 {
				t.Errorf("%s: exemplars %v from spans that do not record", name, found)
			}
		}
	})
}

// TestNoExemplarsFromSpansNotSampled: a span a sampler records but does
// not sample (RecordOnly) is never exported, so its trace cannot be
// found: it makes no exemplar.
func TestNoExemplarsFromSpansNotSampled(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarnessWith(t, []sdktrace.TracerProviderOption{sdktrace.WithSampler(recordOnly{})})
		<-h.sup.Go("w", func(context.Context) error { return nil }).Done()
		if s := h.span("task w"); s.SpanContext().IsSampled() {
			t.Fatal("the task span is sampled; want recorded only")
		}
		wantMetric(t, h.reg, "taskscope_task_duration_seconds", nil, 1, "observations")
		if found := exemplars(t, h.reg, "taskscope_task_duration_seconds", nil); len(found) > 0 {
			t.Errorf("exemplars %v from a span that is not sampled", found)
		}
	})
}

// TestExemplarIsReplacedAfterASecond: a bucket takes at most one exemplar a
// second: a task ending within the second after the exemplar's keeps it, one
// ending a second after it (to the nanosecond) replaces it.
func TestExemplarIsReplacedAfterASecond(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		lbl := labels("task", "x")
		traceOf := func(i int) string {
			t.Helper()
			s := h.spans("task x")
			if len(s) <= i {
				t.Fatalf("%d spans named \"task x\", want %d", len(s), i+1)
			}
			return "trace_id=" + s[i].SpanContext().TraceID().String()
		}
		for i, c := range []struct {
			after time.Duration // since the previous task's end
			want  int           // the task whose trace is the exemplar
		}{
			{0, 0},
			{time.Second - time.Millisecond, 0},
			{time.Millisecond, 2},
		} {
			time.Sleep(c.after)
			<-h.sup.Go("x", func(context.Context) error { return nil }).Done() // 0s: the same bucket
			want := traceOf(c.want)
			got := exemplars(t, h.reg, "taskscope_task_duration_seconds", lbl) // native and classic: the same one
			if len(got) == 0 || slices.ContainsFunc(got, func(e string) bool { return e != want }) {
				t.Errorf("after task %d: exemplars %v, want task %d's, %s", i, got, c.want, want)
			}
		}
	})
}

// TestCancelLatencyOfALateExit: a task that ignores its context past the
// shutdown deadline, the case the cancel latency histogram is for, is in
// it once its goroutine returns, with the latency to that return.
func TestCancelLatencyOfALateExit(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		h.sup.Go("deaf", func(context.Context) error { time.Sleep(10 * time.Second); return nil })
		if err := h.sup.Shutdown(timeout(t, time.Second)); err == nil {
			t.Fatal("Shutdown returned nil, want an AbortError")
		}
		wantMetric(t, h.reg, "taskscope_task_cancel_latency_seconds", labels("task", "deaf"), 0, "before the late exit")
		time.Sleep(time.Minute)
		synctest.Wait()
		if h.sup.Abandoned() != 0 {
			t.Fatal("no late exit")
		}
		lat := series(t, h.reg, "taskscope_task_cancel_latency_seconds")
		if len(lat) != 1 || lat[0].Histogram.GetSampleCount() != 1 || lat[0].Histogram.GetSampleSum() != 10 {
			t.Errorf("cancel latency = %v, want one observation of 10s (the shutdown's request to the return)", lat)
		}
	})
}

func TestNativeAndClassicHistogram(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		<-h.sup.Go("x", func(context.Context) error { return nil }).Done()
		m := series(t, h.reg, "taskscope_task_duration_seconds")
		if len(m) != 1 {
			t.Fatalf("%d duration series, want 1", len(m))
		}
		if len(m[0].Histogram.Bucket) == 0 {
			t.Error("no classic buckets")
		}
		if m[0].Histogram.Schema == nil {
			t.Error("no native histogram (schema unset)")
		}
	})
}

// TestGaugesNeverDrift runs a randomized workload (every outcome, group
// cancels, periodic tasks, rejected spawns, aborts and late exits) and
// checks the gauges against the supervisor's own books, mid-way and at the
// end, for several seeds.
func TestGaugesNeverDrift(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				h := newHarness(t, telemetry.WithTracerProvider(nil))
				rng := rand.New(rand.NewPCG(seed, 42))
				release := make(chan struct{})
				var spawned atomic.Int64
				groups := []*runtime.Group{h.sup.Group("a"), h.sup.Group("b"), h.sup.Group("b").Group("c")}
				for round := range 4 {
					for range 50 {
						g := groups[rng.IntN(len(groups))]
						name := fmt.Sprint("t", rng.IntN(5))
						spawned.Add(1)
						switch rng.IntN(8) {
						case 0:
							g.Go(name, func(context.Context) error { return nil })
						case 1:
							g.Go(name, func(context.Context) error { return errors.New("e") })
						case 2:
							g.Go(name, func(context.Context) error { panic("p") })
						case 3:
							g.Go(name, blockUntilCanceled).Cancel(nil)
						case 4:
							d := time.Duration(rng.IntN(5)) * time.Second // slow, and deaf to cancellation
							g.Go(name, func(context.Context) error { time.Sleep(d); return nil })
						case 5:
							g.Go(name, func(context.Context) error { <-release; return nil }) // ignores its context
						case 6:
							g.Every(name, time.Second, func(ctx context.Context) error { time.Sleep(100 * time.Millisecond); return nil })
						case 7:
							g.Go(name, blockUntilCanceled)
						}
					}
					if round == 1 {
						groups[2].Cancel(nil)
					}
					time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
					synctest.Wait()
					snap := h.sup.Snapshot()
					if got, want := metricValue(t, h.reg, "taskscope_tasks_running", nil), float64(snap.Running+snap.Canceling); got != want {
						t.Fatalf("round %d: running gauge %v, supervisor has %v live tasks", round, got, want)
					}
				}
				// Shut down with a deadline: stragglers are aborted.
				_ = h.sup.Shutdown(timeout(t, 2*time.Second))
				// Spawns on the closed groups are rejected.
				for _, g := range groups {
					spawned.Add(1)
					<-g.Go("late", func(context.Context) error { return nil }).Done()
				}
				wantMetric(t, h.reg, "taskscope_tasks_running", nil, 0, "after shutdown")
				if got, want := metricValue(t, h.reg, "taskscope_tasks_abandoned", nil), float64(h.sup.Abandoned()); got != want {
					t.Errorf("abandoned = %v, supervisor says %v", got, want)
				}
				close(release)
				time.Sleep(time.Minute) // the slow tasks' late exits
				synctest.Wait()
				if n := h.sup.Abandoned(); n != 0 {
					t.Fatalf("%d tasks still abandoned", n)
				}
				for _, m := range series(t, h.reg, "taskscope_tasks_running") {
					if v := m.Gauge.GetValue(); v != 0 {
						t.Errorf("running %v = %v at the end", m.Label, v)
					}
				}
				for _, m := range series(t, h.reg, "taskscope_tasks_abandoned") {
					if v := m.Gauge.GetValue(); v != 0 {
						t.Errorf("abandoned %v = %v after every late exit", m.Label, v)
					}
				}
				started := metricValue(t, h.reg, "taskscope_tasks_started_total", nil)
				finished := metricValue(t, h.reg, "taskscope_tasks_finished_total", nil)
				if started != float64(spawned.Load()) || finished != started {
					t.Errorf("started %v, finished %v, spawned %d: every spawn must finish exactly once", started, finished, spawned.Load())
				}
			})
		})
	}
}

// workload exercises every metric once, for the lint test.
func workload(t *testing.T, h *harness) {
	t.Helper()
	g := h.sup.Group("g")
	<-g.Go("ok", func(context.Context) error { return nil }).Done()
	<-g.Go("bad", func(context.Context) error { return errors.New("e") }).Done()
	task := g.Go("slow", blockUntilCanceled)
	task.Cancel(nil)
	<-task.Done()
	g.Every("tick", time.Second, func(context.Context) error { return runtime.ErrStop })
	release := make(chan struct{})
	g.Go("stuck", func(context.Context) error { <-release; return nil })
	_ = h.sup.Shutdown(timeout(t, time.Second))
	<-g.Go("rejected", func(context.Context) error { return nil }).Done()
	close(release)
	synctest.Wait()
}

type fakeStream struct {
	published, dropped uint64
	subscribers        int
}

func (s *fakeStream) Published() uint64 { return s.published }
func (s *fakeStream) Dropped() uint64   { return s.dropped }
func (s *fakeStream) Subscribers() int  { return s.subscribers }

func TestMetricsLintClean(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithStreamStats(&fakeStream{published: 1}))
		workload(t, h)
		problems, err := testutil.GatherAndLint(h.reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
		mfs, _ := h.reg.Gather()
		var names []string
		for _, mf := range mfs {
			names = append(names, mf.GetName())
		}
		for _, want := range []string{
			"taskscope_tasks_started_total", "taskscope_tasks_rejected_total", "taskscope_tasks_finished_total",
			"taskscope_task_duration_seconds", "taskscope_task_cancel_latency_seconds", "taskscope_task_cancellations_total",
			"taskscope_tasks_running", "taskscope_tasks_abandoned", "taskscope_group_shutdown_duration_seconds",
			"taskscope_periodic_runs_total", "taskscope_periodic_run_duration_seconds", "taskscope_label_overflow_total",
			"taskscope_stream_events_total", "taskscope_stream_dropped_total", "taskscope_stream_subscribers",
		} {
			if !contains(fmt.Sprint(names), want) {
				t.Errorf("metric %s not exposed (have %v)", want, names)
			}
		}
	})
}

func TestStreamStats(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := &fakeStream{published: 10, dropped: 3, subscribers: 2}
	if _, err := telemetry.New(telemetry.WithTracerProvider(nil), telemetry.WithRegisterer(reg), telemetry.WithStreamStats(s)); err != nil {
		t.Fatal(err)
	}
	s.published, s.dropped = 12, 4 // read at scrape time
	for name, want := range map[string]float64{
		"taskscope_stream_events_total":  12,
		"taskscope_stream_dropped_total": 4,
		"taskscope_stream_subscribers":   2,
	} {
		wantMetric(t, reg, name, nil, want, "")
	}
	// The counters have a created timestamp, as client_golang's counters
	// do, from which Prometheus can add their zero sample.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetCounter().GetCreatedTimestamp() == nil {
				t.Errorf("%s has no created timestamp", mf.GetName())
			}
		}
	}
}

// TestNilPointerOptions: a pointer variable left unset (the stream or the
// registry disabled by configuration) is nil in WithStreamStats, as
// documented, and a clear error in WithRegisterer, not a panic at New, a
// failure at every scrape or metrics registered nowhere.
func TestNilPointerOptions(t *testing.T) {
	var stream *fakeStream // as a *diagnostics.Stream left unset
	reg := prometheus.NewPedanticRegistry()
	if _, err := telemetry.New(telemetry.WithTracerProvider(nil), telemetry.WithRegisterer(reg), telemetry.WithStreamStats(stream)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("Gather with a nil *fakeStream: %.200v", err)
	}
	var unset *prometheus.Registry
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("New(WithRegisterer(nil *Registry)) panicked: %v", r)
			}
		}()
		if _, err := telemetry.New(telemetry.WithTracerProvider(nil), telemetry.WithRegisterer(unset)); err == nil {
			t.Error("New accepted a nil *prometheus.Registry")
		}
	}()
	// A Registerer variable left unset is the same mistake: New must not
	// return a Telemetry that no registry will ever scrape.
	var none prometheus.Registerer
	if _, err := telemetry.New(telemetry.WithTracerProvider(nil), telemetry.WithRegisterer(none)); err == nil {
		t.Error("New accepted a nil prometheus.Registerer")
	}
}

func TestTaskLabelCardinalityIsCapped(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithTracerProvider(nil))
		const n = 10_000
		g := h.sup.Group("g")
		for i := range n {
			g.Go(fmt.Sprint("fetch-user-", i), func(context.Context) error { return nil })
		}
		if err := g.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		cap := telemetry.DefaultMaxLabelValues
		for _, name := range []string{"taskscope_tasks_started_total", "taskscope_tasks_finished_total", "taskscope_task_duration_seconds", "taskscope_tasks_running"} {
			values := labelValues(t, h.reg, name, "task")
			if len(values) > cap+1 || !contains(fmt.Sprint(values), "_other") {
				t.Errorf("%s has %d task label values, want at most %d including _other", name, len(values), cap+1)
			}
		}
		wantMetric(t, h.reg, "taskscope_label_overflow_total", labels("label", "task"), n-float64(cap), "folded spawns")
		wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("task", "_other"), n-float64(cap), "")
		wantMetric(t, h.reg, "taskscope_tasks_started_total", nil, n, "folding must not lose counts")
		wantMetric(t, h.reg, "taskscope_label_overflow_total", labels("label", "group"), 0, "")
	})
}

func TestGroupLabelCardinalityIsCapped(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithTracerProvider(nil), telemetry.WithMaxLabelValues(3))
		// The root "app" takes no value: only groups that spawn do.
		for i := range 10 {
			g := h.sup.Group(fmt.Sprint("tenant", i))
			for range 2 {
				g.Go("work", func(context.Context) error { return errors.New("e") })
			}
		}
		if err := h.sup.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		values := labelValues(t, h.reg, "taskscope_tasks_started_total", "group")
		if len(values) != 4 || values[0] != "_other" {
			t.Errorf("group values %v, want 3 kept and _other", values)
		}
		wantMetric(t, h.reg, "taskscope_label_overflow_total", labels("label", "group"), 14, "7 groups × 2 spawns")
		wantMetric(t, h.reg, "taskscope_tasks_running", labels("group", "_other"), 0, "")
	})
}

// TestLabelPairsAreCapped: 3 groups × 4 tasks are 12 (group, task) pairs,
// each within the per-label caps; past the pair cap, the task of a new
// pair folds into "_other" within its group, whose totals stay whole.
func TestLabelPairsAreCapped(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithTracerProvider(nil), telemetry.WithMaxLabelPairs(5))
		for i := range 3 {
			g := h.sup.Group(fmt.Sprint("g", i))
			for j := range 4 {
				for range 2 {
					<-g.Go(fmt.Sprint("t", j), func(context.Context) error { return nil }).Done()
				}
			}
		}
		// Kept: (g0, t0…t3) and (g1, t0), the first five. The other seven
		// pairs fold into (g1, _other) and (g2, _other).
		if got := len(series(t, h.reg, "taskscope_tasks_started_total")); got != 7 {
			t.Errorf("%d started series, want 5 pairs and 2 (group, _other)", got)
		}
		wantMetric(t, h.reg, "taskscope_tasks_started_total", labels("group", "app.g1", "task", "t0"), 2, "a pair within the cap")
		wantMetric(t, h.reg, "taskscope_tasks_started_total", labels("group", "app.g1", "task", "_other"), 6, "3 folded pairs × 2 spawns")
		wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("group", "app.g2", "task", "_other"), 8, "")
		wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("group", "app.g2"), 8, "the group's total")
		wantMetric(t, h.reg, "taskscope_label_overflow_total", labels("label", "task"), 14, "7 folded pairs × 2 spawns")
		wantMetric(t, h.reg, "taskscope_label_overflow_total", labels("label", "group"), 0, "")
		wantMetric(t, h.reg, "taskscope_tasks_running", nil, 0, "")
	})
}

func TestErrorTypeLabelIsCapped(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithTracerProvider(nil), telemetry.WithMaxLabelValues(2))
		for i := range 5 {
			<-h.sup.Go("w", func(context.Context) error { return classified(fmt.Sprint("class", i)) }).Done()
		}
		values := labelValues(t, h.reg, "taskscope_tasks_finished_total", "error_type")
		want := []string{"", "_other", "aborted", "class0", "class1", "panic"} // "", panic and aborted are pre-created with their outcomes
		if fmt.Sprint(values) != fmt.Sprint(want) {
			t.Errorf("error_type values %q, want %q", values, want)
		}
		wantMetric(t, h.reg, "taskscope_label_overflow_total", labels("label", "error_type"), 3, "")
	})
}

type classified string

func (c classified) Error() string     { return string(c) }
func (c classified) ErrorType() string { return string(c) }

// TestInvalidUTF8LabelValues: names and error types that are not valid
// UTF-8 (built from request bytes, say) still get their metrics and span,
// with U+FFFD in the label value; client_golang would panic on them as is.
func TestInvalidUTF8LabelValues(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		<-h.sup.Group("in\xffgest").Go("fetch-\xff", func(context.Context) error { return badErrorType{} }).Done()
		task := labels("group", "app.in\uFFFDgest", "task", "fetch-\uFFFD")
		wantMetric(t, h.reg, "taskscope_tasks_started_total", task, 1, "")
		wantMetric(t, h.reg, "taskscope_tasks_finished_total", labels("task", "fetch-\uFFFD", "error_type", "bad\uFFFD"), 1, "")
		wantMetric(t, h.reg, "taskscope_tasks_running", task, 0, "the task has ended")
		h.checkSpansEndedOnce()
		// OTLP exporters reject a whole batch over one invalid string.
		for _, kv := range h.span("task fetch-\uFFFD").Attributes() {
			if !utf8.ValidString(kv.Value.String()) {
				t.Errorf("span attribute %s = %q is not valid UTF-8", kv.Key, kv.Value.String())
			}
		}
		if problems, err := testutil.GatherAndLint(h.reg); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	})
}

// badErrorType classifies itself with an invalid UTF-8 error type.
type badErrorType struct{}

func (badErrorType) Error() string     { return "bad" }
func (badErrorType) ErrorType() string { return "bad\xff" }

func TestWithRegistererConflictIsAnError(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := telemetry.New(telemetry.WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	_, err := telemetry.New(telemetry.WithRegisterer(reg))
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second New on the same registry: %v, want an AlreadyRegisteredError", err)
	}
	// Const labels tell two supervisors apart on one registry.
	for _, name := range []string{"ingest", "billing"} {
		if _, err := telemetry.New(telemetry.WithRegisterer(reg), telemetry.WithConstLabels(prometheus.Labels{"supervisor": name})); err == nil {
			t.Errorf("const-labeled %s registered next to an unlabeled one; want the label-names mismatch error", name)
		}
	}
	reg2 := prometheus.NewRegistry()
	for _, name := range []string{"ingest", "billing"} {
		if _, err := telemetry.New(telemetry.WithRegisterer(reg2), telemetry.WithConstLabels(prometheus.Labels{"supervisor": name})); err != nil {
			t.Errorf("supervisor=%s: %v", name, err)
		}
	}
}

func TestInvalidConstLabelsAreAnError(t *testing.T) {
	for _, l := range []prometheus.Labels{{"group": "x"}, {"outcome": "x"}, {"__reserved": "x"}, {"le": "x"}} {
		if _, err := telemetry.New(telemetry.WithConstLabels(l)); err == nil {
			t.Errorf("const labels %v accepted", l)
		}
	}
}

func TestConstLabelsOnEveryMetric(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t, telemetry.WithConstLabels(prometheus.Labels{"supervisor": "ingest"}))
		workload(t, h)
		mfs, err := h.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				if !hasLabels(m, labels("supervisor", "ingest")) {
					t.Errorf("%s%v lacks the const label", mf.GetName(), m.Label)
				}
			}
		}
	})
}

// TestNilOption: a nil Option is an error from New, not ignored.
func TestNilOption(t *testing.T) {
	if _, err := telemetry.New(telemetry.WithTracerProvider(nil), nil); err == nil || !strings.Contains(err.Error(), "option 1 of New is nil") {
		t.Errorf("New with a nil option: %v", err)
	}
}

// TestPeriodicGaugesOfAPanickedTask: a periodic task a panic (or
// runtime.Goexit, outcome error) ended keeps its gauges, its last success
// frozen, so that the stall alert finds work that stopped by accident; a
// periodic task of the pair starting again takes over; one that stopped on
// purpose (ErrStop) takes its gauges away.
func TestPeriodicGaugesOfAPanickedTask(t *testing.T) {
	for _, c := range []struct {
		name    string
		outcome runtime.Outcome
		die     func()
	}{
		{"panic", runtime.Panic, func() { panic("corrupt state") }},
		{"goexit", runtime.Error, goruntime.Goexit},
	} {
		t.Run(c.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				h := newHarness(t)
				lbl := map[string]string{"group": "app", "task": "sync"}
				const last = "taskscope_periodic_last_success_timestamp_seconds"
				unix := func(at time.Time) float64 { return float64(at.UnixNano()) / 1e9 }

				var runs atomic.Int32
				spawned := time.Now()
				a := h.sup.Every("sync", time.Minute, func(context.Context) error {
					if runs.Add(1) == 2 {
						c.die()
					}
					return nil
				})
				time.Sleep(time.Minute)
				<-a.Done()
				if got := a.Result().Outcome; got != c.outcome {
					t.Fatalf("outcome %v, want %v", got, c.outcome)
				}
				time.Sleep(time.Hour)
				wantMetric(t, h.reg, last, lbl, unix(spawned), "an accident ended the task: run 1's end, frozen")
				wantMetric(t, h.reg, "taskscope_periodic_interval_seconds", lbl, 60, "the dead task's period")

				b := h.sup.Every("sync", time.Hour, func(context.Context) error { return runtime.ErrStop })
				<-b.Done()
				if n := len(series(t, h.reg, last)); n != 0 {
					t.Errorf("restarted, then stopped on purpose: %d last-success series, want none", n)
				}

				time.Sleep(time.Hour) // b's last success is no reference for d: its spawn is
				d := h.sup.Every("sync", time.Hour, func(context.Context) error { return errors.New("down") })
				synctest.Wait()
				wantMetric(t, h.reg, last, lbl, unix(time.Now()), "a new task: its spawn")
				d.Cancel(nil)
				<-d.Done()
			})
		})
	}
}

// TestPeriodicGauges: a periodic task's last success is its spawn until a
// run succeeds, then that run's end; the interval is the longest period of
// the pair's live tasks; the gauges are exported while a task of the label
// pair lives, and go with the last one.
func TestPeriodicGauges(t *testing.T) {
	bubble(t, func(t *testing.T) {
		h := newHarness(t)
		lbl := map[string]string{"group": "app", "task": "tick"}
		exported := func() int { return len(series(t, h.reg, "taskscope_periodic_last_success_timestamp_seconds")) }
		unix := func(at time.Time) float64 { return float64(at.UnixNano()) / 1e9 }

		var fail atomic.Bool
		fail.Store(true)
		spawned := time.Now()
		a := h.sup.Every("tick", time.Minute, func(context.Context) error {
			if fail.Load() {
				return errors.New("not yet")
			}
			return nil
		})
		synctest.Wait() // run 1 failed
		wantMetric(t, h.reg, "taskscope_periodic_last_success_timestamp_seconds", lbl, unix(spawned), "no success yet: the spawn")
		wantMetric(t, h.reg, "taskscope_periodic_interval_seconds", lbl, 60, "")

		fail.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait() // run 2 succeeded
		wantMetric(t, h.reg, "taskscope_periodic_last_success_timestamp_seconds", lbl, unix(spawned.Add(time.Minute)), "run 2's end")

		// A reload that starts the new task before it stops the old: the
		// stall alert must wait for the slower one, then for the one left.
		b := h.sup.Every("tick", time.Hour, func(context.Context) error { return nil })
		synctest.Wait()
		wantMetric(t, h.reg, "taskscope_periodic_interval_seconds", lbl, 3600, "the longer of two live periods")
		a.Cancel(nil)
		<-a.Done()
		if exported() != 1 {
			t.Errorf("with one tick task left: %d series, want 1", exported())
		}
		wantMetric(t, h.reg, "taskscope_periodic_interval_seconds", lbl, 3600, "the hourly task is left")
		c := h.sup.Every("tick", time.Second, func(context.Context) error { return nil })
		synctest.Wait()
		b.Cancel(nil)
		<-b.Done()
		wantMetric(t, h.reg, "taskscope_periodic_interval_seconds", lbl, 1, "the hourly task has ended")
		c.Cancel(nil)
		<-c.Done()
		if n := exported(); n != 0 || len(series(t, h.reg, "taskscope_periodic_interval_seconds")) != 0 {
			t.Errorf("no tick task left, yet %d last-success series are exported", n)
		}
	})
}

// TestPeriodicRunDuration: each run of a periodic task is observed in
// taskscope_periodic_run_duration_seconds with its own duration, under
// its outcome; a run aborted at a shutdown deadline with its time to the
// abort. With tracing on, each run's bucket has the run span's trace as
// its exemplar.
func TestPeriodicRunDuration(t *testing.T) {
	for _, traced := range []bool{true, false} {
		t.Run(fmt.Sprint("traced=", traced), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				var opts []telemetry.Option
				if !traced {
					opts = append(opts, telemetry.WithTracerProvider(nil))
				}
				h := newHarness(t, opts...)
				const metric = "taskscope_periodic_run_duration_seconds"
				// Runs of 3 ms, 20 s (failed) and 2 s, in three buckets,
				// then one that ignores its context until a shutdown
				// deadline aborts it 6m1s in, past the last bound (300 s).
				stuck, release := make(chan struct{}), make(chan struct{})
				var run atomic.Int32
				h.sup.Every("job", time.Minute, func(context.Context) error {
					switch run.Add(1) {
					case 1:
						time.Sleep(3 * time.Millisecond)
					case 2:
						time.Sleep(20 * time.Second)
						return errors.New("flaky")
					case 3:
						time.Sleep(2 * time.Second)
					default:
						close(stuck)
						<-release
					}
					return nil
				})
				<-stuck
				time.Sleep(6 * time.Minute)
				if err := h.sup.Shutdown(timeout(t, time.Second)); err == nil {
					t.Fatal("Shutdown returned nil, want an AbortError")
				}
				want := map[string][]time.Duration{
					"success": {3 * time.Millisecond, 2 * time.Second},
					"error":   {20 * time.Second},
					"aborted": {6*time.Minute + time.Second},
				}
				for outcome, ds := range want {
					wantRunBuckets(t, h.reg, metric, outcome, ds)
				}
				if got := labelValues(t, h.reg, metric, "outcome"); len(got) != len(want) {
					t.Errorf("outcomes %v, want those of %v", got, want)
				}
				for _, m := range series(t, h.reg, metric) {
					wantMetric(t, h.reg, "taskscope_periodic_runs_total", labelsOf(m), float64(m.Histogram.GetSampleCount()), "a run counted is a run timed")
				}
				if traced {
					wantRunExemplars(t, h, metric)
				} else if found := exemplars(t, h.reg, metric, nil); len(found) > 0 {
					t.Errorf("exemplars %v with tracing off", found)
				}
				close(release)
				synctest.Wait()
			})
		})
	}
}

// wantRunBuckets fails t unless the series of metric with outcome holds
// exactly the durations ds: its count, sum and classic buckets.
func wantRunBuckets(t *testing.T, g prometheus.Gatherer, metric, outcome string, ds []time.Duration) {
	t.Helper()
	var h *dto.Histogram
	for _, m := range series(t, g, metric) {
		if hasLabels(m, labels("group", "app", "task", "job", "outcome", outcome)) {
			h = m.Histogram
		}
	}
	if h == nil {
		t.Errorf("%s: no series for outcome %s", metric, outcome)
		return
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	if h.GetSampleCount() != uint64(len(ds)) || h.GetSampleSum() != sum.Seconds() {
		t.Errorf("%s{outcome=%q}: count %d, sum %v; want %d, %v", metric, outcome, h.GetSampleCount(), h.GetSampleSum(), len(ds), sum.Seconds())
	}
	for _, b := range h.Bucket {
		var n uint64
		for _, d := range ds {
			if d.Seconds() <= b.GetUpperBound() {
				n++
			}
		}
		if b.GetCumulativeCount() != n {
			t.Errorf("%s{outcome=%q,le=\"%g\"} = %d, want %d (runs of %v)", metric, outcome, b.GetUpperBound(), b.GetCumulativeCount(), n, ds)
		}
	}
}

// wantRunExemplars fails t unless every run span's trace is the exemplar
// of the bucket its run fell in, with the run's duration: each run here has
// a bucket of its own.
func wantRunExemplars(t *testing.T, h *harness, metric string) {
	t.Helper()
	runs := h.spans("run job")
	if len(runs) != 4 {
		t.Fatalf("%d run spans, want 4", len(runs))
	}
	for _, r := range runs {
		outcome := attrString(r, "taskscope.task.outcome")
		d := r.EndTime().Sub(r.StartTime()).Seconds() // the run's time: the bubble's clock stands still between event and span
		want := "trace_id=" + r.SpanContext().TraceID().String()
		var got []string
		for _, m := range series(t, h.reg, metric) {
			if !hasLabels(m, labels("outcome", outcome)) {
				continue
			}
			for _, b := range m.Histogram.Bucket {
				if e := b.GetExemplar(); e != nil && e.GetValue() == d {
					for _, lp := range e.GetLabel() {
						got = append(got, lp.GetName()+"="+lp.GetValue())
					}
				}
			}
		}
		if !slices.Equal(got, []string{want}) {
			t.Errorf("%s run of %vs: exemplars %v, want %s", outcome, d, got, want)
		}
	}
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.Label {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}
