package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
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
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	// The SDK ignores a second End, so its recorder cannot see one: count
	// the calls on the way in.
	tp := &endCounter{TracerProvider: sdk, ends: map[trace.SpanID]int{}}
	reg := prometheus.NewPedanticRegistry()
	stream := diagnostics.NewStream(diagnostics.WithBufferSize(1 << 20))
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(reg), telemetry.WithStreamStats(stream))
	if err != nil {
		t.Fatal(err)
	}
	logs := newRecordingHandler()
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
	childOf := map[trace.SpanID]uint64{} // span made in fn → the ID of the task whose fn made it
	var childMu sync.Mutex
	release := make(chan struct{})
	runWorkload(t, sup, rand.New(rand.NewPCG(seed, 7)), release, func(ctx context.Context, id uint64) {
		_, span := tracer.Start(ctx, "inner")
		childMu.Lock()
		childOf[span.SpanContext().SpanID()] = id
		childMu.Unlock()
		span.End()
	})
	close(release) // the aborted stragglers return: late exits
	synctest.Wait()
	stopSub()
	<-subDone

	// Tasks: spans, metrics, stream and logs agree per group and outcome.
	spanFinished, spanStarted, runSpans := countSpans(t, spans, childOf)
	tp.check(t)
	metricFinished, metricStarted, metricRuns := countMetrics(t, reg, false)
	streamFinished, streamStarted, streamRuns := countEvents(streamed, false)
	logFinished, logStarted, logRuns := countLogs(t, logs, false)
	agree(t, "finished", channel{"spans", spanFinished}, channel{"metrics", metricFinished}, channel{"stream", streamFinished}, channel{"logs", logFinished})
	agree(t, "spawned", channel{"spans", spanStarted}, channel{"metrics", metricStarted}, channel{"stream", streamStarted}, channel{"logs", logStarted})
	agree(t, "periodic runs", channel{"spans", runSpans}, channel{"metrics", metricRuns}, channel{"stream", streamRuns}, channel{"logs", logRuns})
	// Periodic tasks have no task span, but the other three channels do
	// report their spawn and their end: they agree among themselves.
	pMetricFinished, pMetricStarted, _ := countMetrics(t, reg, true)
	pStreamFinished, pStreamStarted, _ := countEvents(streamed, true)
	pLogFinished, pLogStarted, _ := countLogs(t, logs, true)
	agree(t, "periodic tasks finished", channel{"metrics", pMetricFinished}, channel{"stream", pStreamFinished}, channel{"logs", pLogFinished})
	agree(t, "periodic tasks spawned", channel{"metrics", pMetricStarted}, channel{"stream", pStreamStarted}, channel{"logs", pLogStarted})
	// Every event the stream delivered is a log record and the other way
	// round (the handler enables every level): cancel requests, aborts,
	// late exits, rejections and group events included.
	sameEvents(t, streamed, logs)
	allOutcomes(t, "tasks", spanFinished)
	allOutcomes(t, "periodic runs", runSpans)
	if sub.Dropped() != 0 {
		t.Fatalf("the stream dropped %d events with a buffer large enough for all", sub.Dropped())
	}
	total := 0
	for _, n := range spanFinished {
		total += n
	}
	runs := 0
	for _, n := range runSpans {
		runs += n
	}
	t.Logf("seed %d: %d tasks (%v), %d runs", seed, total, spanFinished, runs)
}

// runWorkload spawns a random mix of every outcome in nested groups.
func runWorkload(t *testing.T, sup *runtime.Supervisor, rng *rand.Rand, release chan struct{}, inner func(context.Context, uint64)) {
	groups := []*runtime.Group{sup.Group("ingest"), sup.Group("pipeline")}
	groups = append(groups, groups[0].Group("kafka"), groups[1].Group("stage").Group("deep"), sup.Group("failfast", runtime.CancelOnError()))
	var tasks []*runtime.Task
	for i := range 300 {
		g := groups[rng.IntN(len(groups))]
		switch rng.IntN(10) {
		case 0, 1:
			id := make(chan uint64, 1) // its own ID, known once Go returns
			task := g.Go("ok", func(ctx context.Context) error { inner(ctx, <-id); return nil })
			id <- task.ID()
			tasks = append(tasks, task)
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

// channel is one channel's counts, named for the failure messages.
type channel struct {
	name string
	c    counts
}

// agree compares every channel with the first one.
func agree(t *testing.T, what string, channels ...channel) {
	t.Helper()
	first := channels[0]
	for _, ch := range channels[1:] {
		for k := range merge(first.c, ch.c) {
			if first.c[k] != ch.c[k] {
				t.Errorf("%s %s/%s: %s %d, %s %d", what, k.group, k.outcome, first.name, first.c[k], ch.name, ch.c[k])
			}
		}
	}
	if len(first.c) == 0 {
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

func countSpans(t *testing.T, rec *tracetest.SpanRecorder, childOf map[trace.SpanID]uint64) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	if s, e := len(rec.Started()), len(rec.Ended()); s != e {
		t.Errorf("%d spans started, %d ended: every span must end exactly once", s, e)
	}
	seen := map[trace.SpanID]bool{}
	taskSpans := map[trace.SpanID]string{} // task span → its taskscope.task.id
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
			taskSpans[id] = attrs["taskscope.task.id"]
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
	inner := 0
	for _, s := range rec.Ended() {
		if s.Name() != "inner" {
			continue
		}
		inner++
		want, ok := childOf[s.SpanContext().SpanID()]
		got, isTask := taskSpans[s.Parent().SpanID()]
		if !ok || !isTask || got != fmt.Sprint(want) {
			t.Errorf("span made in fn of task %d has parent %s (a task span: %v, of task %q), not its task's span", want, s.Parent().SpanID(), isTask, got)
		}
	}
	if inner != len(childOf) || inner == 0 {
		t.Errorf("%d spans made in fn ended, %d made", inner, len(childOf))
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

func countMetrics(t *testing.T, reg *prometheus.Registry, periodicTasks bool) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := labels(m)
			n := int(m.GetCounter().GetValue())
			periodicTask := strings.HasPrefix(l["task"], periodic) != periodicTasks
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

func countEvents(events []runtime.Event, periodicTasks bool) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	for _, ev := range events {
		periodicTask := strings.HasPrefix(ev.Task, periodic) != periodicTasks
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

func countLogs(t *testing.T, h *recordingHandler, periodicTasks bool) (finished, started, runs counts) {
	finished, started, runs = counts{}, counts{}, counts{}
	for _, r := range h.all() {
		periodicTask := strings.HasPrefix(r.attrs["taskscope.task.name"], periodic) != periodicTasks
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
			if r.level != slog.LevelDebug {
				t.Errorf("spawned log at %v, want DEBUG", r.level)
			}
		case runtime.KindTaskCancelRequested:
			if r.level != slog.LevelInfo {
				t.Errorf("cancel_requested log at %v, want INFO", r.level)
			}
		case runtime.KindTaskAborted:
			if r.level != slog.LevelWarn {
				t.Errorf("aborted log at %v, want WARN", r.level)
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

// levelFor is the level per outcome, written out independently of
// runtime.Event.Level so that a change there shows.
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

// recordingHandler keeps every record, flattened to string attributes
// under the keys a real handler would write: WithGroup prefixes them and
// WithAttrs adds attributes, as slog.JSONHandler and TextHandler do.
type recordingHandler struct {
	store  *recordStore
	prefix string
	attrs  []slog.Attr // from WithAttrs, keys already prefixed
}

type recordStore struct {
	mu      sync.Mutex
	records []record
}

type record struct {
	level slog.Level
	attrs map[string]string
}

func newRecordingHandler() *recordingHandler { return &recordingHandler{store: &recordStore{}} }

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		h2.attrs = append(h2.attrs, slog.Attr{Key: h.prefix + a.Key, Value: a.Value})
	}
	return &h2
}
func (h *recordingHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, attrs: map[string]string{}}
	for _, a := range h.attrs {
		flatten(rec.attrs, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		flatten(rec.attrs, h.prefix, a)
		return true
	})
	h.store.mu.Lock()
	h.store.records = append(h.store.records, rec)
	h.store.mu.Unlock()
	return nil
}

// flatten writes a under prefix, groups as dotted keys.
func flatten(into map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			flatten(into, p, g)
		}
		return
	}
	into[prefix+a.Key] = v.String()
}

func (h *recordingHandler) all() []record {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	return append([]record(nil), h.store.records...)
}

// sameEvents fails unless the stream's events and the log records are the
// same multiset of (kind, group, task, outcome).
func sameEvents(t *testing.T, events []runtime.Event, h *recordingHandler) {
	t.Helper()
	type ek struct{ kind, group, groupID, task, outcome string }
	diff := map[ek]int{}
	for _, ev := range events {
		o := ""
		if ev.Outcome != 0 {
			o = ev.Outcome.String()
		}
		diff[ek{ev.Kind, ev.Group, strconv.FormatUint(ev.GroupID, 10), ev.Task, o}]++
	}
	for _, r := range h.all() {
		diff[ek{r.attrs["event"], r.attrs["taskscope.group"], r.attrs["taskscope.group.id"], r.attrs["taskscope.task.name"], r.attrs["taskscope.task.outcome"]}]--
	}
	for k, n := range diff {
		if n != 0 {
			t.Errorf("%s %s#%s/%s %s: %+d more stream events than log records", k.kind, k.group, k.groupID, k.task, k.outcome, n)
		}
	}
	if len(events) == 0 {
		t.Error("no stream events")
	}
}

// endCounter is a TracerProvider that counts End calls per span.
type endCounter struct {
	trace.TracerProvider
	mu      sync.Mutex
	started int
	ends    map[trace.SpanID]int
}

func (p *endCounter) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &countingTracer{Tracer: p.TracerProvider.Tracer(name, opts...), p: p}
}

// check fails unless every span started through p was ended exactly once.
func (p *endCounter) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ends) != p.started {
		t.Errorf("%d spans started, %d ended", p.started, len(p.ends))
	}
	for id, n := range p.ends {
		if n != 1 {
			t.Errorf("span %s ended %d times", id, n)
		}
	}
}

type countingTracer struct {
	trace.Tracer
	p *endCounter
}

func (tr *countingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, s := tr.Tracer.Start(ctx, name, opts...)
	tr.p.mu.Lock()
	tr.p.started++
	tr.p.mu.Unlock()
	cs := &countingSpan{Span: s, p: tr.p}
	return trace.ContextWithSpan(ctx, cs), cs
}

type countingSpan struct {
	trace.Span
	p *endCounter
}

func (s *countingSpan) End(opts ...trace.SpanEndOption) {
	s.p.mu.Lock()
	s.p.ends[s.SpanContext().SpanID()]++
	s.p.mu.Unlock()
	s.Span.End(opts...)
}
