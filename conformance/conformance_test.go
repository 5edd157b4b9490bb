package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// key is what the channels are compared on.
type key struct{ group, outcome string }

type counts map[key]int

func (c counts) String() string {
	var b strings.Builder
	for k, n := range c {
		fmt.Fprintf(&b, "%s/%s=%d ", k.group, k.outcome, n)
	}
	return b.String()
}

// periodic names the Every tasks, which have run spans instead of a task
// span and are compared run by run.
const periodic = "every."

func TestChannelsAgree(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { conform(t, seed) })
		})
	}
}

func conform(t *testing.T, seed uint64) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	reg := prometheus.NewPedanticRegistry()
	stream := diagnostics.NewStream(diagnostics.WithBufferSize(1 << 20))
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(reg), telemetry.WithStreamStats(stream))
	if err != nil {
		t.Fatal(err)
	}
	logs := &recordingHandler{}
	logObs := diagnostics.NewLogObserver(slog.New(logs))

	subCtx, stopSub := context.WithCancel(context.Background())
	sub := stream.Subscribe(subCtx, diagnostics.BufferSize(1<<20))
	var streamed []runtime.Event
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		for ev := range sub.Events() {
			streamed = append(streamed, ev)
		}
	}()
	defer func() { stopSub(); <-subDone }() // also on t.Fatal

	sup := runtime.New("app", runtime.WithObserver(tel), runtime.WithObserver(logObs), runtime.WithObserver(stream))
	tracer := tp.Tracer("conformance")
	childOf := map[trace.SpanID]trace.SpanID{} // span made in fn → the task span it should nest under
	var childMu sync.Mutex
	release := make(chan struct{})
	runWorkload(t, sup, rand.New(rand.NewPCG(seed, 7)), release, func(ctx context.Context) {
		parent := trace.SpanFromContext(ctx).SpanContext().SpanID()
		_, span := tracer.Start(ctx, "inner")
		childMu.Lock()
		childOf[span.SpanContext().SpanID()] = parent
		childMu.Unlock()
		span.End()
	})
	close(release) // the aborted stragglers return: late exits
	synctest.Wait()
	stopSub()
	<-subDone

	// Tasks: spans, metrics, stream and logs agree per group and outcome.
	spanFinished, spanStarted, runSpans := countSpans(t, spans, childOf)
	metricFinished, metricStarted, metricRuns := countMetrics(t, reg)
	streamFinished, streamStarted, streamRuns := countEvents(streamed)
	logFinished, logStarted, logRuns := countLogs(t, logs)
	agree(t, "finished", spanFinished, metricFinished, streamFinished, logFinished)
	agree(t, "spawned", spanStarted, metricStarted, streamStarted, logStarted)
	agree(t, "periodic runs", runSpans, metricRuns, streamRuns, logRuns)
	allOutcomes(t, "tasks", spanFinished)
	allOutcomes(t, "periodic runs", runSpans)
	if sub.Dropped() != 0 {
		t.Fatalf("the stream dropped %d events with a buffer large enough for all", sub.Dropped())
	}
	total := 0
	for _, n := range spanFinished {
		total += n
	}
	t.Logf("seed %d: %d tasks (%v), %d runs", seed, total, spanFinished, len(runSpans))
}

// runWorkload spawns a random mix of every outcome in nested groups.
func runWorkload(t *testing.T, sup *runtime.Supervisor, rng *rand.Rand, release chan struct{}, inner func(context.Context)) {
	groups := []*runtime.Group{sup.Group("ingest"), sup.Group("pipeline")}
	groups = append(groups, groups[0].Group("kafka"), groups[1].Group("stage").Group("deep"), sup.Group("failfast", runtime.CancelOnError()))
	var tasks []*runtime.Task
	for i := range 300 {
		g := groups[rng.IntN(len(groups))]
		switch rng.IntN(10) {
		case 0, 1:
			tasks = append(tasks, g.Go("ok", func(ctx context.Context) error { inner(ctx); return nil }))
		case 2:
			tasks = append(tasks, g.Go("fail", func(context.Context) error { return errors.New("boom") }))
		case 3:
			tasks = append(tasks, g.Go("crash", func(context.Context) error { panic("kaboom") }))
		case 4:
			task := g.Go("cancelme", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
			task.Cancel(errors.New("no longer needed"))
			tasks = append(tasks, task)
		case 5:
			d := time.Duration(rng.IntN(10)) * time.Millisecond
			tasks = append(tasks, g.Go("sleepy", func(ctx context.Context) error {
				select {
				case <-time.After(d):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}))
		case 6:
			n := 1 + rng.IntN(4)
			tasks = append(tasks, g.Every(periodic+"tick", time.Millisecond, func(ctx context.Context) error {
				if n--; n == 0 {
					return runtime.ErrStop
				}
				if n == 2 {
					return errors.New("run failed")
				}
				return nil
			}))
		case 7:
			if i%50 == 0 {
				tasks = append(tasks, g.Go("stubborn", func(context.Context) error { <-release; return nil }))
			}
		case 8:
			n := rng.IntN(3)
			tasks = append(tasks, g.Every(periodic+"crash", time.Millisecond, func(context.Context) error {
				if n--; n < 0 {
					panic("run kaboom")
				}
				return nil
			}))
		case 9: // its run is in progress at the shutdown: canceled
			tasks = append(tasks, g.Every(periodic+"patient", time.Millisecond, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }))
		}
		if i == 0 { // at least one forced abort with a late exit, of a task and of a run
			tasks = append(tasks,
				g.Go("stubborn", func(context.Context) error { <-release; return nil }),
				g.Every(periodic+"stubborn", time.Millisecond, func(context.Context) error { <-release; return nil }))
		}
	}
	// Let every task that can end on its own do so (in fake time), and
	// the short sleeps and some periodic runs go by, before the shutdown
	// cancels the rest.
	synctest.Wait()
	time.Sleep(5 * time.Millisecond)
	late := sup.Group("late")
	if err := late.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tasks = append(tasks, late.Go("rejected", func(context.Context) error { return nil }))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var ae *runtime.AbortError
	if err := sup.Shutdown(ctx); !errors.As(err, &ae) {
		t.Fatalf("Shutdown = %v, want the stubborn tasks aborted", err)
	}
	for _, task := range tasks {
		<-task.Done()
	}
}

// allOutcomes fails unless c has every outcome: a channel that mishandles
// one cannot agree with the others by never seeing it.
func allOutcomes(t *testing.T, what string, c counts) {
	t.Helper()
	seen := map[string]bool{}
	for k, n := range c {
		seen[k.outcome] = seen[k.outcome] || n > 0
	}
	for _, o := range []runtime.Outcome{runtime.Success, runtime.Error, runtime.Canceled, runtime.Panic, runtime.Aborted} {
		if !seen[o.String()] {
			t.Errorf("%s: no %s outcome in this workload", what, o)
		}
	}
}

func agree(t *testing.T, what string, spans, metrics, stream, logs counts) {
	t.Helper()
	channels := map[string]counts{"metrics": metrics, "stream": stream, "logs": logs}
	for name, c := range channels {
		for k := range merge(spans, c) {
			if spans[k] != c[k] {
				t.Errorf("%s %s/%s: spans %d, %s %d", what, k.group, k.outcome, spans[k], name, c[k])
			}
		}
	}
	if len(spans) == 0 {
		t.Errorf("%s: no data", what)
	}
}

func merge(a, b counts) counts {
	out := counts{}
	for k := range a {
		out[k] = 0
	}
	for k := range b {
		out[k] = 0
	}
	return out
}

func countSpans(t *testing.T, rec *tracetest.SpanRecorder, childOf map[trace.SpanID]trace.SpanID) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	if s, e := len(rec.Started()), len(rec.Ended()); s != e {
		t.Errorf("%d spans started, %d ended: every span must end exactly once", s, e)
	}
	seen := map[trace.SpanID]bool{}
	taskSpans := map[trace.SpanID]bool{}
	for _, s := range rec.Ended() {
		id := s.SpanContext().SpanID()
		if seen[id] {
			t.Errorf("span %s ended twice", s.Name())
		}
		seen[id] = true
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		k := key{attrs["taskscope.group"], attrs["taskscope.task.outcome"]}
		switch {
		case strings.HasPrefix(s.Name(), "task "):
			taskSpans[id] = true
			started[key{k.group, ""}]++
			finished[k]++
			checkStatus(t, s, k.outcome)
			if k.outcome == "panic" && !hasStackEvent(s) {
				t.Errorf("panic span %s has no exception event with a stack", s.Name())
			}
		case strings.HasPrefix(s.Name(), "run "):
			runs[k]++
			checkStatus(t, s, k.outcome)
		}
	}
	for child, parent := range childOf {
		if !taskSpans[parent] {
			t.Errorf("span made in fn (%s) has parent %s, not a task span", child, parent)
		}
	}
	for _, s := range rec.Ended() {
		if s.Name() == "inner" && !taskSpans[s.Parent().SpanID()] {
			t.Errorf("inner span's parent %s is not the task's span", s.Parent().SpanID())
		}
	}
	return finished, started, runs
}

func checkStatus(t *testing.T, s sdktrace.ReadOnlySpan, outcome string) {
	want := codes.Unset
	if outcome == "error" || outcome == "panic" || outcome == "aborted" {
		want = codes.Error
	}
	if s.Status().Code != want {
		t.Errorf("span %s with outcome %s has status %v, want %v", s.Name(), outcome, s.Status().Code, want)
	}
}

func hasStackEvent(s sdktrace.ReadOnlySpan) bool {
	for _, ev := range s.Events() {
		for _, a := range ev.Attributes {
			if ev.Name == "exception" && a.Key == "exception.stacktrace" && strings.Contains(a.Value.AsString(), "runWorkload") {
				return true
			}
		}
	}
	return false
}

func countMetrics(t *testing.T, reg *prometheus.Registry) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := labels(m)
			n := int(m.GetCounter().GetValue())
			periodicTask := strings.HasPrefix(l["task"], periodic)
			switch mf.GetName() {
			case "taskscope_tasks_finished_total":
				if !periodicTask {
					finished[key{l["group"], l["outcome"]}] += n
				}
			case "taskscope_tasks_started_total":
				if !periodicTask {
					started[key{l["group"], ""}] += n
				}
			case "taskscope_periodic_runs_total":
				runs[key{l["group"], l["outcome"]}] += n
			case "taskscope_tasks_running", "taskscope_tasks_abandoned":
				if v := m.GetGauge().GetValue(); v != 0 {
					t.Errorf("%s%v = %v after everything ended, want 0", mf.GetName(), l, v)
				}
			}
		}
	}
	return finished, started, runs
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func countEvents(events []runtime.Event) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	for _, ev := range events {
		periodicTask := strings.HasPrefix(ev.Task, periodic)
		switch {
		case ev.Kind == runtime.KindTaskFinished && !periodicTask:
			finished[key{ev.Group, ev.Outcome.String()}]++
		case ev.Kind == runtime.KindTaskSpawned && !periodicTask:
			started[key{ev.Group, ""}]++
		case ev.Kind == runtime.KindTaskRunFinished:
			runs[key{ev.Group, ev.Outcome.String()}]++
		}
	}
	return finished, started, runs
}

func countLogs(t *testing.T, h *recordingHandler) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	for _, r := range h.all() {
		periodicTask := strings.HasPrefix(r.attrs["taskscope.task.name"], periodic)
		k := key{r.attrs["taskscope.group"], r.attrs["taskscope.task.outcome"]}
		switch r.attrs["event"] {
		case runtime.KindTaskFinished:
			if !periodicTask {
				finished[k]++
			}
			if want := levelFor(k.outcome); r.level != want {
				t.Errorf("finished log with outcome %s at %v, want %v", k.outcome, r.level, want)
			}
		case runtime.KindTaskSpawned:
			if !periodicTask {
				started[key{k.group, ""}]++
			}
		case runtime.KindTaskRunFinished:
			runs[k]++
			if want := levelFor(k.outcome); r.level != want {
				t.Errorf("run_finished log with outcome %s at %v, want %v", k.outcome, r.level, want)
			}
		}
	}
	return finished, started, runs
}

// levelFor is DESIGN.md's table.
func levelFor(outcome string) slog.Level {
	switch outcome {
	case "canceled":
		return slog.LevelInfo
	case "error", "aborted":
		return slog.LevelWarn
	case "panic":
		return slog.LevelError
	}
	return slog.LevelDebug
}

// recordingHandler keeps every record, flattened to string attributes.
type recordingHandler struct {
	mu      sync.Mutex
	records []record
}

type record struct {
	level slog.Level
	attrs map[string]string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}

func (h *recordingHandler) all() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]record(nil), h.records...)
}
