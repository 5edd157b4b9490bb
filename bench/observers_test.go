package bench

// Observer rows: what each taskscope observer adds per task, measured in the
// same binary and the same run as the peers (BenchmarkSpawn, spawn_test.go),
// so that every row sees the same load drift. Each row is the "taskscope"
// peer (a new runtime.New supervisor per batch, Wait included) with
// observers attached:
//
//	taskscope+nopobs   an observer that does nothing (nopObserver): what
//	                   being observed costs in the runtime itself (the
//	                   task's extras, events, sequence numbers).
//	taskscope+metrics  telemetry.New on a fresh prometheus.NewRegistry(),
//	                   WithTracerProvider(nil): tracing off.
//	taskscope+slogoff  diagnostics.NewLogObserver, JSON handler to io.Discard
//	                   at level Info: lifecycle records (spawned, finished
//	                   with success) are Debug, so disabled.
//	taskscope+stream   diagnostics.NewStream with one subscriber goroutine
//	                   draining it and counting events by kind (started
//	                   before and stopped after the timed loop). At 2 CPUs the subscriber falls behind
//	                   the spawn loop and its buffer drops events: the
//	                   row reports them as dropped/op (events per task).
//	taskscope+noop     telemetry with a go.opentelemetry.io/otel/trace/noop
//	                   tracer provider (metrics on, tracing detected as off).
//	taskscope+all      metrics + slog at the default level (Info, lifecycle
//	                   disabled) + stream with one subscriber + the noop
//	                   tracer provider, in that order (telemetry first, as
//	                   the diagnostics package documents).
//	taskscope+sdk      telemetry with an SDK TracerProvider sampling every
//	                   span (AlwaysSample) into a batch span processor
//	                   WithBlocking and an exporter that counts and discards.
//	span.sdk           no taskscope: errgroup per batch, and per task the
//	                   SDK span taskscope would make, by hand (see spanSDK).
//
// The observers live as long as the benchmark (one registry, one stream,
// one tracer provider) while the supervisors come and go, one per batch, as
// a service that restarts its work would use them. The stream is documented
// as one-supervisor-only because sequence numbers of two supervisors collide;
// that only matters to subscribers resuming with After, which this one does
// not do.
//
// Budgets (the "Benchmarks" section), checked by cmd/benchcheck on
// the medians of one run at batch=100, per CPU count:
//
//   - all observers: taskscope+all ns/op <= 3.0 × errgroup ns/op.
//   - SDK overhead: "taskscope's own cost on top of the span itself stays
//     under 30 %", defined as
//
//     (taskscope+sdk − taskscope) <= 1.3 × (span.sdk − errgroup)
//
//     that is, what turning on SDK tracing adds to a supervised task is at
//     most 1.3× what adding the same span by hand adds to an errgroup task.
//     The left side is taskscope's telemetry (metrics, per-task bookkeeping,
//     the wrapped context) plus the span; the right side is the span alone,
//     in the same shape: started on the spawning goroutine with the same
//     name and the same 4 start attributes (the task ID built per span),
//     the context passed to the task, the outcome attribute set and End
//     called on the task goroutine, exported through the same kind of
//     provider. The hand-written version also pays one closure per task (to
//     carry the span into the task), as any hand instrumentation of
//     errgroup does.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	oteltracenoop "go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"github.com/taskscope/taskscope/diagnostics"
	taskscope "github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// tracing selects the tracer provider of an observer configuration.
type tracing int

const (
	tracingNone tracing = iota // no telemetry tracer provider (nil: off)
	tracingNoop                // go.opentelemetry.io/otel/trace/noop
	tracingSDK                 // SDK, AlwaysSample, blocking batch processor, discarding exporter
)

// obsConfig is one combination of observers.
type obsConfig struct {
	nop     bool    // nopObserver
	metrics bool    // telemetry observer (Prometheus metrics, tracing per tp)
	tp      tracing // its tracer provider (implies metrics when not none)
	slog    bool    // LogObserver, JSON at level Info (lifecycle disabled)
	stream  bool    // Stream with one draining subscriber
}

var observerConfigs = []struct {
	name string
	cfg  obsConfig
}{
	{"taskscope+nopobs", obsConfig{nop: true}},
	{"taskscope+metrics", obsConfig{metrics: true}},
	{"taskscope+slogoff", obsConfig{slog: true}},
	{"taskscope+stream", obsConfig{stream: true}},
	{"taskscope+noop", obsConfig{metrics: true, tp: tracingNoop}},
	{"taskscope+all", obsConfig{metrics: true, tp: tracingNoop, slog: true, stream: true}},
	{"taskscope+sdk", obsConfig{metrics: true, tp: tracingSDK}},
}

func init() {
	for _, c := range observerConfigs {
		cfg := c.cfg
		peers = append(peers, peer{c.name, func(f body) (func(int), stopFunc) {
			o := observe(cfg, io.Discard)
			return o.run(f), func(b *testing.B) {
				o.stop()
				if o.sub != nil && b != nil {
					// At 2 CPUs the subscriber falls behind the spawn loop:
					// the row then includes the drop path, and says so.
					b.ReportMetric(float64(o.sub.Dropped())/float64(b.N), "dropped/op")
				}
			}
		}})
	}
	peers = append(peers, peer{"span.sdk", func(f body) (func(int), stopFunc) {
		s := newSpanSDK()
		return s.run(f), func(*testing.B) { s.stop() }
	}})
}

// discardExporter counts the spans it is given and drops them.
type discardExporter struct{ spans atomic.Int64 }

func (e *discardExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.spans.Add(int64(len(spans)))
	return nil
}

func (e *discardExporter) Shutdown(context.Context) error { return nil }

// sdkProvider is the SDK configuration of the sdk rows: every span sampled,
// exported through a batch processor that blocks rather than drops (so that
// every span is really exported) into a discarding exporter.
func sdkProvider() (*sdktrace.TracerProvider, *discardExporter) {
	exp := &discardExporter{}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBlocking())),
	)
	return tp, exp
}

// observed is one observer configuration, set up for a benchmark or test.
type observed struct {
	opts []taskscope.Option
	reg  *prometheus.Registry      // nil without metrics
	exp  *discardExporter          // nil without the SDK
	sub  *diagnostics.Subscription // nil without a stream
	// received counts the subscriber's events by kind; valid after stop.
	// live is closed at the first event the subscriber reads.
	received eventCounts
	live     chan struct{}
	stop     func()
}

// eventCounts is what the benchmarks' subscriber does with each event:
// it counts it by kind, with a switch rather than a map, whose write per
// event (about 25 ns) would be the consumer's cost, not the stream's.
type eventCounts struct{ spawned, finished, lagged, other int }

func (c *eventCounts) count(kind string) {
	switch kind {
	case taskscope.KindTaskSpawned:
		c.spawned++
	case taskscope.KindTaskFinished:
		c.finished++
	case diagnostics.KindStreamLagged:
		c.lagged++
	default:
		c.other++
	}
}

// observe builds cfg's observers; slog output goes to logOut.
func observe(cfg obsConfig, logOut io.Writer) *observed {
	o := &observed{live: make(chan struct{})}
	var stops []func()
	if cfg.nop {
		o.opts = append(o.opts, taskscope.WithObserver(nopObserver{}))
	}
	if cfg.metrics || cfg.tp != tracingNone {
		o.reg = prometheus.NewRegistry()
		var tp trace.TracerProvider // nil: tracing off
		switch cfg.tp {
		case tracingNoop:
			tp = oteltracenoop.NewTracerProvider()
		case tracingSDK:
			var sdk *sdktrace.TracerProvider
			sdk, o.exp = sdkProvider()
			tp = sdk
			stops = append(stops, func() {
				if err := sdk.Shutdown(context.Background()); err != nil { // flushes
					panic(err)
				}
			})
		}
		tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(o.reg))
		if err != nil {
			panic(err)
		}
		o.opts = append(o.opts, taskscope.WithObserver(tel))
	}
	if cfg.slog {
		// The default handler level is Info; lifecycle records are Debug.
		logger := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
		o.opts = append(o.opts, taskscope.WithObserver(diagnostics.NewLogObserver(logger)))
	}
	if cfg.stream {
		stream := diagnostics.NewStream()
		o.sub = stream.Subscribe(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range o.sub.Events() {
				if o.received == (eventCounts{}) {
					close(o.live)
				}
				o.received.count(ev.Kind)
			}
		}()
		o.opts = append(o.opts, taskscope.WithObserver(stream))
		stops = append(stops, func() {
			o.sub.Close() // Events delivers what is buffered, then ends
			<-done
			stream.Close()
		})
	}
	o.stop = func() {
		for _, s := range stops {
			s()
		}
	}
	return o
}

// run is the "taskscope" peer with o's observers: a new supervisor per
// batch of n tasks, then Wait.
func (o *observed) run(f body) func(n int) {
	fn := f.ctx
	return func(n int) {
		s := taskscope.New("bench", o.opts...)
		for range n {
			s.Go("noop", fn)
		}
		if err := s.Wait(context.Background()); err != nil {
			panic(err)
		}
	}
}

// nopObserver observes nothing, through the pointer interface the
// library's observers use.
type nopObserver struct{}

func (nopObserver) TaskStarting(ctx context.Context, _ taskscope.Event) context.Context { return ctx }
func (nopObserver) Observe(context.Context, taskscope.Event)                            {}
func (nopObserver) TaskStartingEvent(ctx context.Context, _ *taskscope.Event) context.Context {
	return ctx
}
func (nopObserver) ObserveEvent(context.Context, *taskscope.Event) {}

// spanSDK is the span.sdk row: the SDK span alone, on errgroup.
type spanSDK struct {
	tp  *sdktrace.TracerProvider
	exp *discardExporter
	tr  trace.Tracer
	id  int64
}

func newSpanSDK() *spanSDK {
	tp, exp := sdkProvider()
	return &spanSDK{tp: tp, exp: exp, tr: tp.Tracer(telemetry.ScopeName)}
}

// The task span's attributes, as telemetry sets them (spans.go: startTask at
// spawn, endSpan at finish). code.function.name is a constant string of the
// length the runtime reports for a closure in this package.
var (
	attrGroup    = attribute.Key(taskscope.AttrGroup)
	attrTaskName = attribute.Key(taskscope.AttrTaskName)
	attrTaskID   = attribute.Key(taskscope.AttrTaskID)
	attrFunction = attribute.Key("code.function.name")
	attrOutcome  = attribute.Key(taskscope.AttrOutcome)
)

func (s *spanSDK) run(f body) func(n int) {
	fn := f.ctx
	bg := context.Background()
	return func(n int) {
		var g errgroup.Group
		for range n {
			s.id++
			// Started on the spawning goroutine, like telemetry does.
			ctx, span := s.tr.Start(bg, "task noop", trace.WithAttributes(
				attrGroup.String("bench"),
				attrTaskName.String("noop"),
				attrTaskID.Int64(s.id),
				attrFunction.String("github.com/taskscope/taskscope/bench.init.func7"),
			))
			g.Go(func() error {
				err := fn(ctx)
				if span.IsRecording() {
					span.SetAttributes(attrOutcome.String("success"))
				}
				span.End()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			panic(err)
		}
	}
}

func (s *spanSDK) stop() {
	if err := s.tp.Shutdown(context.Background()); err != nil {
		panic(err)
	}
}

// countingWriter counts the writes (log records) it gets.
type countingWriter struct {
	mu     sync.Mutex
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	return len(p), nil
}

// TestObserversReallyObserve checks each observer configuration beyond
// "the tasks run" (TestPeersRunEveryTask covers that for every peer,
// these included): the metrics count every task, the SDK exports one span
// per task, the stream subscriber receives the spawned and finished event
// of every task, and the log observer writes nothing for lifecycle events
// but does write the Warn record of a failed task (so it is wired, and off
// only because of the level).
func TestObserversReallyObserve(t *testing.T) {
	for _, c := range observerConfigs {
		t.Run(c.name, func(t *testing.T) {
			var ran atomic.Int64
			logs := &countingWriter{}
			o := observe(c.cfg, logs)
			run := o.run(counting(&ran))
			total := 0
			for _, n := range []int{1, 100, 100, 37} {
				run(n)
				total += n
			}
			// One failing task: a Warn record.
			s := taskscope.New("bench", o.opts...)
			s.Go("fail", func(context.Context) error { return errors.New("boom") })
			if err := s.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			total++
			// The supervisor is observed: sequence numbers are only issued
			// for observers (the nopobs row has nothing else to check).
			if s.Snapshot().Seq == 0 {
				t.Error("no observer is attached")
			}
			if o.sub != nil {
				select {
				case <-o.live: // the subscriber reads while tasks run, not only at stop
				case <-time.After(10 * time.Second):
					t.Error("the subscriber has read nothing while the tasks ran")
				}
			}
			o.stop()

			if got := ran.Load(); got != int64(total-1) {
				t.Fatalf("%d tasks ran, want %d", got, total-1)
			}
			if o.reg != nil {
				if got := counterSum(t, o.reg, "taskscope_tasks_started_total"); got != float64(total) {
					t.Errorf("taskscope_tasks_started_total = %v, want %d", got, total)
				}
				if got := counterSum(t, o.reg, "taskscope_tasks_finished_total"); got != float64(total) {
					t.Errorf("taskscope_tasks_finished_total = %v, want %d", got, total)
				}
			}
			if o.exp != nil {
				if got := o.exp.spans.Load(); got != int64(total) {
					t.Errorf("exported %d spans, want %d", got, total)
				}
			}
			if o.sub != nil {
				spawned, finished := o.received.spawned, o.received.finished
				dropped := int(o.sub.Dropped())
				if spawned+finished+dropped != 2*total || finished == 0 {
					t.Errorf("subscriber got %d spawned + %d finished events (%d dropped), want %d in all",
						spawned, finished, dropped, 2*total)
				}
				if o.received.other != 0 {
					t.Errorf("subscriber got %d events of other kinds, want none", o.received.other)
				}
				if dropped > 0 {
					t.Logf("subscriber fell behind: %d events dropped, %d lagged notices", dropped, o.received.lagged)
				}
			}
			wantLogs := 0
			if c.cfg.slog {
				wantLogs = 1
			}
			if logs.writes != wantLogs {
				t.Errorf("%d log records written, want %d (lifecycle is Debug, a failed task Warn)", logs.writes, wantLogs)
			}
		})
	}
}

// TestSpanSDKExportsEverySpan checks the span.sdk row: every task runs
// with its span in its context, and every span is exported.
func TestSpanSDKExportsEverySpan(t *testing.T) {
	var ran, traced atomic.Int64
	s := newSpanSDK()
	run := s.run(body{ctx: func(ctx context.Context) error {
		ran.Add(1)
		if trace.SpanFromContext(ctx).IsRecording() {
			traced.Add(1)
		}
		return nil
	}})
	for _, n := range []int{1, 100, 100} {
		run(n)
	}
	s.stop()
	if ran.Load() != 201 || traced.Load() != 201 {
		t.Fatalf("%d tasks ran, %d with a recording span; want 201", ran.Load(), traced.Load())
	}
	if got := s.exp.spans.Load(); got != 201 {
		t.Fatalf("exported %d spans, want 201", got)
	}
}

// counterSum is the sum of every series of the counter family name.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric family %s", name)
	return 0
}
