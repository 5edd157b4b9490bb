package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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
	"github.com/taskscope/taskscope/internal/randomwork"
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

// Task classes, by name prefix: plain tasks have a task span; periodic
// ones (Every) have run spans instead, compared run by run; long-running
// ones (runtime.LongRunning) have no span at all. The classes without a
// task span are compared on the three other channels. Group events
// (cancel requests) form a class of their own.
const (
	plain       = ""
	periodic    = "every."
	longRunning = "service."
	groupEvent  = "group"
)

// classOf is the class of a task name ("" for a group event's).
func classOf(task string) string {
	switch {
	case task == "":
		return groupEvent
	case strings.HasPrefix(task, periodic):
		return periodic
	case strings.HasPrefix(task, longRunning):
		return longRunning
	}
	return plain
}

// reqKey is the key of the value the request context passes to the tasks
// spawned WithParent.
type reqKey struct{}

// TestChannelsAgree: RANDOMIZED_SEEDS=n runs more seeds, RANDOMIZED_SEED=s
// one.
func TestChannelsAgree(t *testing.T) {
	randomwork.Seeds(t, 4, conform)
}

func conform(t *testing.T, seed uint64) {
	o := observe(t, 1<<20)
	defer o.close() // also on t.Fatal

	sup := runtime.New("app", o.options()...)
	tracer := o.tp.Tracer("conformance")
	// The request whose context the tasks spawned WithParent take their
	// span and values from.
	reqCtx, req := tracer.Start(context.WithValue(context.Background(), reqKey{}, "req"), "request")
	w := newWork(t, tracer)
	release := make(chan struct{})
	runWorkload(t, sup, rand.New(rand.NewPCG(seed, 7)), release, reqCtx, w)
	req.End()
	close(release) // the aborted stragglers return: late exits
	synctest.Wait()
	o.close()

	sp := o.check(t, w, req.SpanContext(), "runWorkload", true)
	// Group.Err: the failure that canceled a fail-fast group, as the
	// stream reports it; nil for the groups canceled otherwise first.
	for _, g := range w.groups {
		err := randomwork.CheckErr(t, g, o.streamed)
		switch wantErr, failed := w.failFirst[g], failures(o.streamed, g); {
		case wantErr && err == nil:
			t.Errorf("group %s: Err() = nil after its tasks failed (%d failures)", g.Name(), failed)
		case !wantErr && failed == 0:
			t.Errorf("group %s: no task failed, so its Err() = nil shows nothing", g.Name())
		}
	}
	total := 0
	for _, n := range sp.finished {
		total += n
	}
	runs := 0
	for _, n := range sp.runs {
		runs += n
	}
	t.Logf("seed %d: %d tasks (%v), %d runs, %d spans made in fn (%d of long-running tasks)", seed, total, sp.finished, runs, len(w.childOf), sp.roots)
}

// observed is the four channels of a supervisor made with its options:
// spans (an in-memory recorder behind a TracerProvider that counts End
// calls), Prometheus metrics (a fresh registry), a diagnostics.Stream with
// one subscriber, and slog records (a recording handler).
type observed struct {
	spans    *tracetest.SpanRecorder
	sdk      *sdktrace.TracerProvider
	tp       *endCounter
	reg      *prometheus.Registry
	stream   *diagnostics.Stream
	tel      *telemetry.Telemetry
	logs     *recordingHandler
	logObs   runtime.Observer
	sub      *diagnostics.Subscription
	streamed []runtime.Event // once close has returned
	stopSub  context.CancelFunc
	subDone  chan struct{}
}

// observe attaches the four channels; buffer is the stream's and its
// subscriber's buffer size, large enough for the workload not to drop.
func observe(t *testing.T, buffer int) *observed {
	o := &observed{spans: tracetest.NewSpanRecorder()}
	o.sdk = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	// The SDK ignores a second End, so its recorder cannot see one: count
	// the calls on the way in.
	o.tp = &endCounter{TracerProvider: o.sdk, ends: map[trace.SpanID]int{}}
	o.reg = prometheus.NewPedanticRegistry()
	o.stream = diagnostics.NewStream(diagnostics.WithBufferSize(buffer))
	tel, err := telemetry.New(telemetry.WithTracerProvider(o.tp), telemetry.WithRegisterer(o.reg), telemetry.WithStreamStats(o.stream))
	if err != nil {
		t.Fatal(err)
	}
	o.tel = tel
	o.logs = newRecordingHandler()
	o.logObs = diagnostics.NewLogObserver(slog.New(o.logs))

	subCtx, stopSub := context.WithCancel(context.Background())
	o.stopSub = stopSub
	o.sub = o.stream.Subscribe(subCtx, diagnostics.BufferSize(buffer))
	o.subDone = make(chan struct{})
	go func() {
		defer close(o.subDone)
		for ev := range o.sub.Events() {
			o.streamed = append(o.streamed, ev)
		}
	}()
	return o
}

// options are the supervisor options that attach every observer.
func (o *observed) options() []runtime.Option {
	return []runtime.Option{runtime.WithObserver(o.tel), runtime.WithObserver(o.logObs), runtime.WithObserver(o.stream)}
}

// close ends the subscription and waits until its events are in
// o.streamed; it may be called again.
func (o *observed) close() {
	o.stopSub()
	<-o.subDone
	_ = o.sdk.Shutdown(context.Background())
}

// check compares the channels, once the workload is over and o closed.
// Panic spans must have a stack with frame in it. strict also asks for
// every outcome and cause kind the workload of TestChannelsAgree makes
// sure of; without it, only what the channels report is compared.
func (o *observed) check(t *testing.T, w *work, req trace.SpanContext, frame string, strict bool) tally {
	t.Helper()
	streamed, logs, reg := o.streamed, o.logs, o.reg
	agree := func(what string, channels ...channel) {
		t.Helper()
		agree(t, what, channels...)
		if strict && len(channels[0].c) == 0 {
			t.Errorf("%s: no data", what)
		}
	}
	allCauses := func(what string, c counts, kinds ...string) {
		t.Helper()
		if strict {
			allCauses(t, what, c, kinds...)
		}
	}
	allOutcomes := func(what string, c counts) {
		t.Helper()
		if strict {
			allOutcomes(t, what, c)
		}
	}
	// The stream's LongRunning flag is what the names say (a periodic
	// task's name may say it too).
	for _, ev := range streamed {
		if ev.TaskID != 0 && ev.LongRunning != strings.Contains(ev.Task, longRunning) {
			t.Errorf("%s event of task %s#%d with LongRunning=%v", ev.Kind, ev.Task, ev.TaskID, ev.LongRunning)
		}
	}
	// Plain tasks: spans, metrics, stream and logs agree per group and
	// outcome; spans, stream and logs also on the cause kind of each
	// cancellation, and all four on the cancel requests.
	sp := countSpans(t, o.spans, w, req, frame, strict)
	o.tp.check(t)
	m := countMetrics(t, reg, plain)
	ev := countEvents(streamed, plain)
	lg := countLogs(t, logs, plain)
	agree("finished", channel{"spans", sp.finished}, channel{"metrics", m.finished}, channel{"stream", ev.finished}, channel{"logs", lg.finished})
	agree("finished, by cause", channel{"spans", sp.finishedCause}, channel{"stream", ev.finishedCause}, channel{"logs", lg.finishedCause})
	agree("spawned", channel{"spans", sp.started}, channel{"metrics", m.started}, channel{"stream", ev.started}, channel{"logs", lg.started})
	agree("cancel requests", channel{"spans", sp.cancels}, channel{"metrics", m.cancels}, channel{"stream", ev.cancels}, channel{"logs", lg.cancels})
	agree("periodic runs", channel{"spans", sp.runs}, channel{"metrics", m.runs}, channel{"metrics, run durations", m.runDurations}, channel{"stream", ev.runs}, channel{"logs", lg.runs})
	agree("periodic runs, by cause", channel{"spans", sp.runsCause}, channel{"stream", ev.runsCause}, channel{"logs", lg.runsCause})
	// Periodic and long-running tasks have no task span, but the other
	// three channels do report their spawn, their end and their cancel
	// requests: they agree among themselves. So do group cancel requests.
	for _, class := range []string{periodic, longRunning, groupEvent} {
		m, ev, lg := countMetrics(t, reg, class), countEvents(streamed, class), countLogs(t, logs, class)
		agree(class+" cancel requests", channel{"metrics", m.cancels}, channel{"stream", ev.cancels}, channel{"logs", lg.cancels})
		if class == groupEvent {
			allCauses("group cancel requests", ev.cancels, "fail_fast", "custom", "shutdown")
			continue
		}
		agree(class+" tasks finished", channel{"metrics", m.finished}, channel{"stream", ev.finished}, channel{"logs", lg.finished})
		agree(class+" tasks finished, by cause", channel{"stream", ev.finishedCause}, channel{"logs", lg.finishedCause})
		agree(class+" tasks spawned", channel{"metrics", m.started}, channel{"stream", ev.started}, channel{"logs", lg.started})
		allCauses(class+" tasks finished", ev.finishedCause, "external", "shutdown")
		if class == longRunning {
			allOutcomes("long-running tasks", ev.finished)
		}
	}
	// Every event the stream delivered is a log record and the other way
	// round (the handler enables every level): cancel requests, aborts,
	// late exits, rejections and group events included.
	sameEvents(t, streamed, logs)
	allOutcomes("tasks", sp.finished)
	allOutcomes("periodic runs", sp.runs)
	allCauses("tasks finished", sp.finishedCause, "external", "fail_fast", "shutdown", "canceled", "custom")
	allCauses("task cancel requests", sp.cancels, "external", "canceled", "custom")
	if o.sub.Dropped() != 0 {
		t.Fatalf("the stream dropped %d events with a buffer large enough for all", o.sub.Dropped())
	}
	return sp
}

// work is what the workload tells the checks.
type work struct {
	// inner makes a span in fn of the task id, spawned with options sp.
	inner func(ctx context.Context, id uint64, sp randomwork.Spawn)

	mu      sync.Mutex
	childOf map[trace.SpanID]uint64 // span made in fn → the ID of the task whose fn made it

	spawns    map[uint64]randomwork.Spawn // task ID → its options
	groups    []*runtime.Group            // the fail-fast groups
	failFirst map[*runtime.Group]bool     // those a failure of their own canceled
}

// newWork returns a work whose inner checks the request value in fn's
// context and makes a span there with tracer.
func newWork(t *testing.T, tracer trace.Tracer) *work {
	w := &work{childOf: map[trace.SpanID]uint64{}, spawns: map[uint64]randomwork.Spawn{}}
	w.inner = func(ctx context.Context, id uint64, sp randomwork.Spawn) {
		if got, want := ctx.Value(reqKey{}), map[bool]any{true: "req", false: nil}[sp.Parent]; got != want {
			t.Errorf("task %d (%+v): request value %v in fn's context, want %v", id, sp, got, want)
		}
		_, span := tracer.Start(ctx, "inner")
		w.mu.Lock()
		w.childOf[span.SpanContext().SpanID()] = id
		w.mu.Unlock()
		span.End()
	}
	return w
}

// failures counts the tasks of g that ended with outcome error or panic.
func failures(events []runtime.Event, g *runtime.Group) int {
	n := 0
	for _, ev := range events {
		if ev.Kind == runtime.KindTaskFinished && ev.GroupID == g.ID() && (ev.Outcome == runtime.Error || ev.Outcome == runtime.Panic) {
			n++
		}
	}
	return n
}

// allCauses fails unless c has every cause kind of kinds in its keys (the
// part after "cause=").
func allCauses(t *testing.T, what string, c counts, kinds ...string) {
	t.Helper()
	seen := map[string]bool{}
	for k, n := range c {
		_, cause, _ := strings.Cut(k.outcome, "cause=")
		seen[cause] = seen[cause] || n > 0
	}
	for _, kind := range kinds {
		if !seen[kind] {
			t.Errorf("%s: no %s cause in this workload", what, kind)
		}
	}
}

// runWorkload spawns a random mix of every outcome in nested groups, with
// random task options: long-running tasks (named longRunning+...), tasks
// with req's values and span (WithParent) and tasks canceled from outside
// (WithCancelOn).
func runWorkload(t *testing.T, sup *runtime.Supervisor, rng *rand.Rand, release chan struct{}, req context.Context, w *work) {
	groups := []*runtime.Group{sup.Group("ingest"), sup.Group("pipeline")}
	failfast := sup.Group("failfast", runtime.CancelOnError())
	// Fail-fast groups canceled before any task of theirs fails: their
	// failures (panics: a task that returns an error from a canceled
	// context ends canceled) must not set Err.
	doomed := sup.Group("doomed")
	guarded := doomed.Group("guarded", runtime.CancelOnError())
	halted := sup.Group("halted", runtime.CancelOnError())
	doomed.Cancel(errors.New("doomed from the start"))
	halted.Cancel(nil)
	groups = append(groups, groups[0].Group("kafka"), groups[1].Group("stage").Group("deep"), failfast, guarded, halted)
	w.groups = []*runtime.Group{failfast, guarded, halted}
	w.failFirst = map[*runtime.Group]bool{failfast: true}
	var tasks []*runtime.Task
	// spawn starts a task with random options; a long-running one is
	// named as such.
	add := func(task *runtime.Task, sp randomwork.Spawn) *runtime.Task {
		w.mu.Lock()
		w.spawns[task.ID()] = sp
		w.mu.Unlock()
		tasks = append(tasks, task)
		return task
	}
	spawn := func(g *runtime.Group, name string, fn func(ctx context.Context, sp randomwork.Spawn) error) *runtime.Task {
		opts, sp := randomwork.Options(rng, req, true)
		if sp.LongRunning {
			name = longRunning + name
		}
		return add(g.Go(name, func(ctx context.Context) error { return fn(ctx, sp) }, opts...), sp)
	}
	every := func(g *runtime.Group, name string, fn func(ctx context.Context) error) {
		opts, sp := randomwork.Options(rng, req, false)
		add(g.Every(periodic+name, time.Millisecond, fn, opts...), sp)
	}
	for i := range 300 {
		g := groups[rng.IntN(len(groups))]
		switch rng.IntN(11) {
		case 0, 1:
			id := make(chan uint64, 1) // its own ID, known once Go returns
			id <- spawn(g, "ok", func(ctx context.Context, sp randomwork.Spawn) error { w.inner(ctx, <-id, sp); return nil }).ID()
		case 2:
			spawn(g, "fail", func(context.Context, randomwork.Spawn) error { return errors.New("boom") })
		case 3:
			spawn(g, "crash", func(context.Context, randomwork.Spawn) error { panic("kaboom") })
		case 4:
			var cause error // Cancel(nil): context.Canceled
			if rng.IntN(2) == 0 {
				cause = errors.New("no longer needed")
			}
			spawn(g, "cancelme", func(ctx context.Context, _ randomwork.Spawn) error { <-ctx.Done(); return ctx.Err() }).Cancel(cause)
		case 5:
			d := time.Duration(rng.IntN(10)) * time.Millisecond
			spawn(g, "sleepy", func(ctx context.Context, _ randomwork.Spawn) error {
				select {
				case <-time.After(d):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		case 6:
			n := 1 + rng.IntN(4)
			every(g, "tick", func(ctx context.Context) error {
				if n--; n == 0 {
					return runtime.ErrStop
				}
				if n == 2 {
					return errors.New("run failed")
				}
				return nil
			})
		case 7:
			if i%50 == 0 {
				spawn(g, "stubborn", func(context.Context, randomwork.Spawn) error { <-release; return nil })
			}
		case 8:
			n := rng.IntN(3)
			every(g, "crash", func(context.Context) error {
				if n--; n < 0 {
					panic("run kaboom")
				}
				return nil
			})
		case 9: // its run is in progress at the shutdown: canceled
			every(g, "patient", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		case 10: // a service loop spawned from the request: the spans it makes are roots
			id := make(chan uint64, 1)
			sp := randomwork.Spawn{LongRunning: true, Parent: true, CancelOn: rng.IntN(2) == 0}
			opts := []runtime.TaskOption{runtime.LongRunning(), runtime.WithParent(req)}
			if sp.CancelOn {
				opts = append(opts, runtime.WithCancelOn(randomwork.External(rng)))
			}
			id <- add(g.Go(longRunning+"loop", func(ctx context.Context) error {
				w.inner(ctx, <-id, sp)
				<-ctx.Done()
				return ctx.Err()
			}, opts...), sp).ID()
		}
		if i == 0 { // at least one forced abort with a late exit, of a task, a long-running task and a run
			stubborn := func(context.Context) error { <-release; return nil }
			add(g.Go("stubborn", stubborn), randomwork.Spawn{})
			add(g.Go(longRunning+"stubborn", stubborn, runtime.LongRunning()), randomwork.Spawn{LongRunning: true})
			add(g.Every(periodic+"stubborn", time.Millisecond, stubborn), randomwork.Spawn{})
			// and a long-running task that fails, in a group not canceled
			add(groups[0].Go(longRunning+"fail", func(context.Context) error { return errors.New("boom") }, runtime.LongRunning()), randomwork.Spawn{LongRunning: true})
			// Whatever the draw (each of these is missing from a few seeds
			// in a hundred otherwise): a panic in each fail-fast group
			// canceled first, so that their Err staying nil is checked
			// against a failure; a long-running task that panics; a cancel
			// request of each kind; and a task, a long-running task and a
			// periodic task canceled from outside, and three left to the
			// shutdown.
			crash := func(context.Context) error { panic("kaboom") }
			wait := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
			for _, g := range []*runtime.Group{guarded, halted} {
				add(g.Go("crash", crash), randomwork.Spawn{})
			}
			add(groups[0].Go(longRunning+"crash", crash, runtime.LongRunning()), randomwork.Spawn{LongRunning: true})
			for _, cause := range []error{nil, errors.New("no longer needed")} {
				add(groups[0].Go("cancelme", wait), randomwork.Spawn{}).Cancel(cause)
			}
			gone, leave := context.WithCancelCause(context.Background())
			leave(randomwork.ErrClientGone)
			for _, outside := range []bool{false, true} {
				opts := []runtime.TaskOption{}
				if outside {
					opts = append(opts, runtime.WithCancelOn(gone))
				}
				add(groups[0].Go("patient", wait, opts...), randomwork.Spawn{CancelOn: outside})
				add(groups[0].Every(periodic+"patient", time.Millisecond, wait, opts...), randomwork.Spawn{CancelOn: outside})
				opts = append(opts, runtime.LongRunning())
				add(groups[0].Go(longRunning+"patient", wait, opts...), randomwork.Spawn{LongRunning: true, CancelOn: outside})
			}
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

// tally is what one channel reports about one class of tasks. Keys by
// cause have the outcome "<outcome> cause=<kind>" (finished tasks and
// runs) or "cause=<kind>" (cancel requests).
type tally struct {
	finished, started, runs  counts
	finishedCause, runsCause counts
	cancels                  counts
	runDurations             counts // observations of the run duration histogram: one per run
	roots                    int    // spans made in long-running tasks spawned WithParent: roots of their own traces
}

func newTally() tally {
	return tally{counts{}, counts{}, counts{}, counts{}, counts{}, counts{}, counts{}, 0}
}

func byCause(outcome, kind string) string {
	if outcome == "" {
		return "cause=" + kind
	}
	return outcome + " cause=" + kind
}

// countSpans counts the task spans (plain tasks), with the cancel_requested
// events on them, and the run spans. A task span is a child of req's span
// when its task was spawned WithParent, else a root; a run span is always
// a root, linked to req's span in the first case. A span made in fn is a
// child of its task's span, or, in a long-running task, a root of a trace
// of its own.
func countSpans(t *testing.T, rec *tracetest.SpanRecorder, w *work, req trace.SpanContext, frame string, strict bool) tally {
	c := newTally()
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
		taskID, _ := strconv.ParseUint(attrs["taskscope.task.id"], 10, 64)
		sp := w.spawns[taskID]
		switch {
		case strings.HasPrefix(s.Name(), "task "):
			if class := classOf(attrs["taskscope.task.name"]); class != plain {
				t.Errorf("%s task %s#%d has a task span", class, attrs["taskscope.task.name"], taskID)
			}
			if p := s.Parent(); (sp.Parent && (p.SpanID() != req.SpanID() || p.TraceID() != req.TraceID())) || (!sp.Parent && p.IsValid()) {
				t.Errorf("task span of %s#%d (%+v) has parent %v, want the request's %v if spawned WithParent, else none", s.Name(), taskID, sp, p.SpanID(), req.SpanID())
			}
			taskSpans[id] = attrs["taskscope.task.id"]
			c.started[key{k.group, ""}]++
			c.finished[k]++
			c.finishedCause[key{k.group, byCause(k.outcome, attrs["taskscope.cancel.cause"])}]++
			checkStatus(t, s, k.outcome)
			if k.outcome == "panic" && !hasStackEvent(s, frame) {
				t.Errorf("panic span %s has no exception event with a stack", s.Name())
			}
			for _, ev := range s.Events() {
				if ev.Name != runtime.KindTaskCancelRequested {
					continue
				}
				kind := ""
				for _, a := range ev.Attributes {
					if a.Key == "taskscope.cancel.cause" {
						kind = a.Value.AsString()
					}
				}
				c.cancels[key{k.group, byCause("", kind)}]++
			}
		case strings.HasPrefix(s.Name(), "run "):
			linked := slices.ContainsFunc(s.Links(), func(l sdktrace.Link) bool { return l.SpanContext.SpanID() == req.SpanID() })
			if s.Parent().IsValid() || linked != sp.Parent {
				t.Errorf("run span of %s#%d (%+v) has parent %v and a link to the request: %v; want no parent, a link if spawned WithParent", s.Name(), taskID, sp, s.Parent().SpanID(), linked)
			}
			c.runs[k]++
			c.runsCause[key{k.group, byCause(k.outcome, attrs["taskscope.cancel.cause"])}]++
			checkStatus(t, s, k.outcome)
		}
	}
	inner := 0
	for _, s := range rec.Ended() {
		if s.Name() != "inner" {
			continue
		}
		inner++
		want, ok := w.childOf[s.SpanContext().SpanID()]
		if sp := w.spawns[want]; ok && sp.LongRunning {
			if p := s.Parent(); p.IsValid() || s.SpanContext().TraceID() == req.TraceID() {
				t.Errorf("span made in fn of long-running task %d (%+v) has parent %v in trace %v (the request's: %v), want a root of its own trace", want, sp, p.SpanID(), s.SpanContext().TraceID(), req.TraceID())
			}
			if sp.Parent {
				c.roots++
			}
			continue
		}
		got, isTask := taskSpans[s.Parent().SpanID()]
		if !ok || !isTask || got != fmt.Sprint(want) {
			t.Errorf("span made in fn of task %d has parent %s (a task span: %v, of task %q), not its task's span", want, s.Parent().SpanID(), isTask, got)
		}
	}
	if inner != len(w.childOf) || (strict && (inner == 0 || c.roots == 0)) {
		t.Errorf("%d spans made in fn ended, %d made, %d in long-running tasks spawned WithParent", inner, len(w.childOf), c.roots)
	}
	return c
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

func hasStackEvent(s sdktrace.ReadOnlySpan, frame string) bool {
	for _, ev := range s.Events() {
		for _, a := range ev.Attributes {
			if ev.Name == "exception" && a.Key == "exception.stacktrace" && strings.Contains(a.Value.AsString(), frame) {
				return true
			}
		}
	}
	return false
}

func countMetrics(t *testing.T, reg *prometheus.Registry, class string) tally {
	c := newTally()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := labels(m)
			n := int(m.GetCounter().GetValue())
			mine := classOf(l["task"]) == class
			switch mf.GetName() {
			case "taskscope_tasks_finished_total":
				if mine {
					c.finished[key{l["group"], l["outcome"]}] += n
				}
			case "taskscope_tasks_started_total":
				if mine {
					c.started[key{l["group"], ""}] += n
				}
			case "taskscope_task_cancellations_total":
				if mine {
					c.cancels[key{l["group"], byCause("", l["cause"])}] += n
				}
			case "taskscope_periodic_runs_total":
				c.runs[key{l["group"], l["outcome"]}] += n
			case "taskscope_periodic_run_duration_seconds":
				c.runDurations[key{l["group"], l["outcome"]}] += int(m.GetHistogram().GetSampleCount())
			case "taskscope_tasks_running", "taskscope_tasks_abandoned":
				if v := m.GetGauge().GetValue(); v != 0 {
					t.Errorf("%s%v = %v after everything ended, want 0", mf.GetName(), l, v)
				}
			}
		}
	}
	return c
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func countEvents(events []runtime.Event, class string) tally {
	c := newTally()
	for _, ev := range events {
		mine := classOf(ev.Task) == class
		switch {
		case ev.Kind == runtime.KindTaskFinished && mine:
			c.finished[key{ev.Group, ev.Outcome.String()}]++
			c.finishedCause[key{ev.Group, byCause(ev.Outcome.String(), runtime.CauseKind(ev.Cause))}]++
		case ev.Kind == runtime.KindTaskSpawned && mine:
			c.started[key{ev.Group, ""}]++
		case (ev.Kind == runtime.KindTaskCancelRequested || ev.Kind == runtime.KindGroupCancelRequested) && mine:
			c.cancels[key{ev.Group, byCause("", runtime.CauseKind(ev.Cause))}]++
		case ev.Kind == runtime.KindTaskRunFinished:
			c.runs[key{ev.Group, ev.Outcome.String()}]++
			c.runsCause[key{ev.Group, byCause(ev.Outcome.String(), runtime.CauseKind(ev.Cause))}]++
		}
	}
	return c
}

func countLogs(t *testing.T, h *recordingHandler, class string) tally {
	c := newTally()
	for _, r := range h.all() {
		mine := classOf(r.attrs["taskscope.task.name"]) == class
		k := key{r.attrs["taskscope.group"], r.attrs["taskscope.task.outcome"]}
		cause := r.attrs["taskscope.cancel.cause"]
		switch r.attrs["event"] {
		case runtime.KindTaskFinished:
			if mine {
				c.finished[k]++
				c.finishedCause[key{k.group, byCause(k.outcome, cause)}]++
			}
			if want := levelFor(k.outcome); r.level != want {
				t.Errorf("finished log with outcome %s at %v, want %v", k.outcome, r.level, want)
			}
		case runtime.KindTaskSpawned:
			if mine {
				c.started[key{k.group, ""}]++
			}
			if r.level != slog.LevelDebug {
				t.Errorf("spawned log at %v, want DEBUG", r.level)
			}
		case runtime.KindTaskCancelRequested, runtime.KindGroupCancelRequested:
			if mine {
				c.cancels[key{k.group, byCause("", cause)}]++
			}
			if r.level != slog.LevelInfo {
				t.Errorf("cancel_requested log at %v, want INFO", r.level)
			}
		case runtime.KindTaskAborted:
			if r.level != slog.LevelWarn {
				t.Errorf("aborted log at %v, want WARN", r.level)
			}
		case runtime.KindTaskRunFinished:
			c.runs[k]++
			c.runsCause[key{k.group, byCause(k.outcome, cause)}]++
			if want := levelFor(k.outcome); r.level != want {
				t.Errorf("run_finished log with outcome %s at %v, want %v", k.outcome, r.level, want)
			}
		}
	}
	return c
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
