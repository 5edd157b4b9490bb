package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// TestRandomizedTelemetry runs a random concurrent workload (the one of
// runtime's TestRandomizedInvariants, plus capped and invalid label
// values) with a Telemetry attached between two recording observers, and
// checks the metrics and spans against the events: exactly at quiescent
// points (and the gauges against a Snapshot), within the bounds the two
// recorders give at scrapes concurrent with the workload.
// RANDOMIZED_SEEDS=n runs more seeds, RANDOMIZED_SEED=s one.
func TestRandomizedTelemetry(t *testing.T) {
	seeds := 5
	if s, err := strconv.Atoi(os.Getenv("RANDOMIZED_SEEDS")); err == nil {
		seeds = s
	}
	first := uint64(0)
	if s, err := strconv.ParseUint(os.Getenv("RANDOMIZED_SEED"), 10, 64); err == nil {
		first, seeds = s, 1
	}
	for seed := first; seed < first+uint64(seeds); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { randRun(t, seed) })
		})
	}
}

// randRecorder records every event, in delivery order.
type randRecorder struct {
	mu     sync.Mutex
	events []runtime.Event
}

func (o *randRecorder) add(ev runtime.Event) {
	ev.Stack = nil
	o.mu.Lock()
	o.events = append(o.events, ev)
	o.mu.Unlock()
}

func (o *randRecorder) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	o.add(ev)
	return ctx
}
func (o *randRecorder) Observe(_ context.Context, ev runtime.Event) { o.add(ev) }

func (o *randRecorder) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.events)
}

func (o *randRecorder) prefix(n int) []runtime.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.events[:n:n]
}

type randTypedErr struct{ kind string }

func (e randTypedErr) Error() string     { return "typed failure " + e.kind }
func (e randTypedErr) ErrorType() string { return e.kind }

type randGroup struct {
	g      *runtime.Group
	parent *randGroup
}

type randState struct {
	t       *testing.T
	sup     *runtime.Supervisor
	release chan struct{}

	flood bool // some ops spawn many uniquely named tasks, past the cache budget

	mu       sync.Mutex
	groups   []*randGroup
	tasks    []*runtime.Task
	nextName int
	unique   int
}

func (s *randState) addTask(task *runtime.Task) {
	s.mu.Lock()
	s.tasks = append(s.tasks, task)
	s.mu.Unlock()
}

// floodSpawn spawns uniquely named tasks failing with unique error types.
func (s *randState) floodSpawn(rng *rand.Rand) {
	g := s.pickGroup(rng).g
	for range 100 {
		s.mu.Lock()
		s.unique++
		n := s.unique
		s.mu.Unlock()
		err := randTypedErr{fmt.Sprint("ue", n%3000)}
		s.addTask(g.Go(fmt.Sprint("u", n), func(context.Context) error { return err }))
	}
}

func (s *randState) pickGroup(rng *rand.Rand) *randGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[rng.IntN(len(s.groups))]
}

func (s *randState) pickTask(rng *rand.Rand) *runtime.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tasks) == 0 {
		return nil
	}
	return s.tasks[rng.IntN(len(s.tasks))]
}

var randBadNames = []string{"bad\xff", "bad\xfe", "ok"}

// taskName is a fixed literal, a name built per spawn (a new string each
// time), or invalid UTF-8 (two raw names, one label value).
func randTaskName(rng *rand.Rand, kind string) string {
	switch rng.IntN(6) {
	case 0:
		return strconv.Itoa(rng.IntN(10)) + "dyn"
	case 1:
		return randBadNames[rng.IntN(len(randBadNames))]
	}
	return kind
}

func (s *randState) newGroup(rng *rand.Rand) {
	p := s.pickGroup(rng)
	s.mu.Lock()
	s.nextName++
	name := fmt.Sprint("g", s.nextName)
	s.mu.Unlock()
	if rng.IntN(8) == 0 {
		name += "\xff"
	}
	var opts []runtime.GroupOption
	if rng.IntN(4) == 0 {
		opts = append(opts, runtime.CancelOnError())
	}
	g := &randGroup{g: p.g.Group(name, opts...), parent: p}
	s.mu.Lock()
	s.groups = append(s.groups, g)
	s.mu.Unlock()
}

func (s *randState) spawn(rng *rand.Rand) {
	s.spawnIn(rng, s.pickGroup(rng).g, nil, 2)
}

// spawnIn spawns a random task in g; depth bounds spawner tasks, which
// spawn children from their own context (WithParent) when they run.
func (s *randState) spawnIn(rng *rand.Rand, g *runtime.Group, opts []runtime.TaskOption, depth int) {
	var task *runtime.Task
	if rng.IntN(6) == 0 {
		ext, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(4))*time.Millisecond)
		_ = cancel // expires on its own
		opts = append(opts, runtime.WithCancelOn(ext))
	}
	k := rng.IntN(10)
	if k == 9 && depth == 0 {
		k = 0
	}
	switch k {
	case 9:
		seed := rng.Uint64()
		n := 1 + rng.IntN(2)
		task = g.Go(randTaskName(rng, "spawner"), func(ctx context.Context) error {
			r := rand.New(rand.NewPCG(seed, 5))
			for range n {
				s.spawnIn(r, g, []runtime.TaskOption{runtime.WithParent(ctx)}, depth-1)
			}
			return nil
		}, opts...)
	case 0:
		task = g.Go(randTaskName(rng, "ok"), func(context.Context) error { return nil }, opts...)
	case 1:
		err := fmt.Errorf("random failure %d", rng.IntN(1000))
		task = g.Go(randTaskName(rng, "err"), func(context.Context) error { return err }, opts...)
	case 2:
		kinds := []string{"et0", "et1", "et2", "et3", "et4", "et5", "et6", "et\xff", "et\xfe"}
		err := randTypedErr{kinds[rng.IntN(len(kinds))]}
		task = g.Go(randTaskName(rng, "typed"), func(context.Context) error { return err }, opts...)
	case 3:
		task = g.Go(randTaskName(rng, "panic"), func(context.Context) error { panic("random boom") }, opts...)
	case 4:
		task = g.Go(randTaskName(rng, "polite"), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, opts...)
	case 5:
		rel := s.release
		task = g.Go(randTaskName(rng, "stubborn"), func(context.Context) error { <-rel; return nil }, opts...)
	case 6:
		d := time.Duration(rng.IntN(4)) * time.Millisecond
		task = g.Go(randTaskName(rng, "sleepy"), func(ctx context.Context) error {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			return nil
		}, opts...)
	case 7:
		task = g.Go(randTaskName(rng, "goexit"), func(context.Context) error { goruntime.Goexit(); return nil }, opts...)
	case 8:
		mode := rng.IntN(6)
		n := 0
		rel := s.release
		task = g.Every(randTaskName(rng, "every"), time.Duration(1+rng.IntN(2))*time.Millisecond, func(ctx context.Context) error {
			n++
			switch mode {
			case 0:
				return nil
			case 1:
				return errors.New("run failed")
			case 2:
				if n >= 3 {
					return runtime.ErrStop
				}
				return nil
			case 3:
				if n >= 2 {
					panic("random every boom")
				}
				return nil
			case 4:
				if n >= 2 {
					<-rel // stuck in a run: aborted at a shutdown deadline
				}
				return nil
			}
			<-ctx.Done()
			return ctx.Err()
		}, opts...)
	}
	s.addTask(task)
}

func randDeadline(rng *rand.Rand) (context.Context, context.CancelFunc) {
	if rng.IntN(3) == 0 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	return context.WithTimeout(context.Background(), time.Duration(rng.IntN(3))*time.Millisecond)
}

func (s *randState) op(rng *rand.Rand) {
	switch n := rng.IntN(100); {
	case n < 45:
		s.spawn(rng)
	case n < 53:
		s.newGroup(rng)
	case n < 62:
		if task := s.pickTask(rng); task != nil {
			var cause error
			switch rng.IntN(3) {
			case 0:
				cause = fmt.Errorf("random task cancel %d", rng.IntN(100))
			case 1:
				cause = context.DeadlineExceeded
			}
			task.Cancel(cause)
		}
	case n < 66:
		g := s.pickGroup(rng)
		if g.parent != nil || rng.IntN(4) == 0 {
			var cause error
			if rng.IntN(2) == 0 {
				cause = fmt.Errorf("random group cancel %d", rng.IntN(100))
			}
			g.g.Cancel(cause)
		}
	case n < 72:
		g := s.pickGroup(rng)
		ctx, cancel := randDeadline(rng)
		_ = g.g.Wait(ctx)
		cancel()
	case n < 78:
		g := s.pickGroup(rng)
		if g.parent != nil {
			ctx, cancel := randDeadline(rng)
			_ = g.g.Shutdown(ctx)
			cancel()
		}
	case n < 84:
		_ = s.pickGroup(rng).g.Snapshot()
	case n < 86 && s.flood:
		s.floodSpawn(rng)
	default:
		time.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond)
	}
}

// randScrape is a scrape concurrent with the workload, with the events the
// telemetry had certainly seen before it (lo: the recorder after it) and
// those it may have seen by its end (hi: the recorder before it).
type randScrape struct {
	mfs    []*dto.MetricFamily
	lo, hi int
}

type randHarness struct {
	t        *testing.T
	cap      int
	pre      *randRecorder // before the telemetry
	post     *randRecorder // after it
	reg      *prometheus.Registry
	sr       *tracetest.SpanRecorder
	sup      *runtime.Supervisor
	scrapes  []randScrape
	checks   int
	lastSeen map[string]float64 // counters at the previous scrape, for monotonicity
}

func randRun(t *testing.T, seed uint64) {
	rng0 := rand.New(rand.NewPCG(seed, 99))
	h := &randHarness{t: t, cap: 3 + rng0.IntN(10), pre: &randRecorder{}, post: &randRecorder{},
		reg: prometheus.NewPedanticRegistry(), sr: tracetest.NewSpanRecorder(), lastSeen: map[string]float64{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.sr))
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(h.reg), telemetry.WithMaxLabelValues(h.cap))
	if err != nil {
		t.Fatal(err)
	}
	h.sup = runtime.New("random", runtime.WithObserver(h.pre), runtime.WithObserver(tel), runtime.WithObserver(h.post))
	s := &randState{t: t, sup: h.sup, release: make(chan struct{}), flood: seed%8 == 3}
	top := h.sup.Group("top")
	s.groups = []*randGroup{{g: top}}

	// Concurrent scrapes.
	stop := make(chan struct{})
	var scraper sync.WaitGroup
	scraper.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 77))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rng.IntN(3)) * time.Millisecond):
			}
			h.scrape()
			if rng.IntN(4) == 0 {
				goruntime.Gosched()
			}
		}
	})

	for round := range 4 {
		var wg sync.WaitGroup
		for w := range 5 {
			rng := rand.New(rand.NewPCG(seed, uint64(round*10+w)))
			wg.Go(func() {
				for range 40 {
					s.op(rng)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		h.quiescent(fmt.Sprint("round ", round))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	_ = h.sup.Shutdown(ctx)
	cancel()
	synctest.Wait()
	h.quiescent("after the final shutdown")
	close(s.release)
	synctest.Wait()
	h.quiescent("after the late exits")
	close(stop)
	scraper.Wait()
	h.checkScrapes()
	h.checkSpansEndedOnce(true)
	if problems, err := testutil.GatherAndLint(h.reg); err != nil || len(problems) > 0 {
		t.Errorf("GatherAndLint: %v %v", problems, err)
	}
	t.Logf("cap %d: %d events, %d tasks, %d scrapes, %d spans", h.cap, len(h.pre.events), len(s.tasks), len(h.scrapes), len(h.sr.Ended()))
}

func (h *randHarness) scrape() {
	lo := h.post.len()
	mfs, err := h.reg.Gather()
	hi := h.pre.len()
	if err != nil {
		h.t.Errorf("Gather: %v", err)
		return
	}
	h.checkSigns(mfs, "concurrent scrape")
	h.scrapes = append(h.scrapes, randScrape{mfs, lo, hi})
}

// checkSigns: gauges never negative, counters never decrease.
func (h *randHarness) checkSigns(mfs []*dto.MetricFamily, when string) {
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			k := mf.GetName() + randLabelKey(m)
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				if v := m.GetGauge().GetValue(); v < 0 {
					h.t.Errorf("%s: %s = %v", when, k, v)
				}
			case dto.MetricType_COUNTER:
				v := m.GetCounter().GetValue()
				if v < h.lastSeen[k] {
					h.t.Errorf("%s: counter %s went from %v to %v", when, k, h.lastSeen[k], v)
				}
				h.lastSeen[k] = v
			case dto.MetricType_HISTOGRAM:
				k += "#count"
				v := float64(m.GetHistogram().GetSampleCount())
				if v < h.lastSeen[k] {
					h.t.Errorf("%s: histogram %s went from %v to %v", when, k, h.lastSeen[k], v)
				}
				h.lastSeen[k] = v
			}
		}
	}
}

func randLabelKey(m *dto.Metric) string {
	var parts []string
	for _, lp := range m.Label {
		parts = append(parts, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func randKey(name string, kv ...string) string {
	var parts []string
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+strconv.Quote(kv[i+1]))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// values flattens families into name{labels} → value (counters, gauges,
// histogram sample counts).
func randValues(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			k := mf.GetName() + randLabelKey(m)
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[k] = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[k] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[k] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// randFold maps raw names to label values as the caps did: it learns the
// kept values from the exposition (a value's fate never changes), and
// checks that nothing was folded while a cap had room.
type randFold struct {
	groups, tasks, errTypes map[string]bool
}

func valid(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func (h *randHarness) fold(mfs []*dto.MetricFamily) randFold {
	f := randFold{map[string]bool{}, map[string]bool{}, map[string]bool{}}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			ls := map[string]string{}
			for _, lp := range m.Label {
				ls[lp.GetName()] = lp.GetValue()
			}
			if g, ok := ls["group"]; ok && g != "_other" {
				f.groups[g] = true
			}
			if tk, ok := ls["task"]; ok && tk != "_other" && tk != "" {
				f.tasks[tk] = true
			}
			if et, ok := ls["error_type"]; ok && ls["outcome"] == "error" && et != "_other" {
				f.errTypes[et] = true
			}
		}
	}
	for what, set := range map[string]map[string]bool{"group": f.groups, "task": f.tasks, "error_type": f.errTypes} {
		if len(set) > h.cap {
			h.t.Errorf("%d distinct %s label values, cap %d: %v", len(set), what, h.cap, slices.Sorted(mapsKeys(set)))
		}
	}
	return f
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func randLabel(kept map[string]bool, raw string) (string, bool) {
	if v := valid(raw); kept[v] {
		return v, false
	}
	return "_other", true
}

func randCauseKind(ev *runtime.Event) string {
	c := ev.Cause
	if c == nil {
		c = ev.Err
	}
	return runtime.CauseKind(c)
}

// expected computes every counter and histogram count the telemetry should
// expose after events, and the running and abandoned gauges.
func (h *randHarness) expected(events []runtime.Event, f randFold) map[string]float64 {
	want := map[string]float64{}
	add := func(k string, d float64) { want[k] += d }
	overflow := func(label string, folded bool) {
		if folded {
			add(randKey("taskscope_label_overflow_total", "label", label), 1)
		}
	}
	for _, l := range []string{"group", "task", "error_type"} {
		add(randKey("taskscope_label_overflow_total", "label", l), 0)
	}
	for i := range events {
		ev := &events[i]
		g, gf := randLabel(f.groups, ev.Group)
		tk, tf := randLabel(f.tasks, ev.Task)
		switch ev.Kind {
		case runtime.KindTaskSpawned:
			overflow("group", gf)
			overflow("task", tf)
			add(randKey("taskscope_tasks_started_total", "group", g, "task", tk), 1)
			add(randKey("taskscope_tasks_running", "group", g, "task", tk), 1)
			add(randKey("taskscope_tasks_abandoned", "group", g, "task", tk), 0)
			for _, o := range []string{"success", "canceled", "panic", "aborted"} {
				et := runtime.ErrorType(map[string]runtime.Outcome{"success": runtime.Success, "canceled": runtime.Canceled, "panic": runtime.Panic, "aborted": runtime.Aborted}[o], nil)
				add(randKey("taskscope_tasks_finished_total", "group", g, "task", tk, "outcome", o, "error_type", et), 0)
			}
		case runtime.KindTaskRejected:
			add(randKey("taskscope_tasks_rejected_total", "group", g, "task", tk), 1)
		case runtime.KindTaskFinished:
			et := runtime.ErrorType(ev.Outcome, ev.Err)
			if ev.Outcome == runtime.Error {
				l, folded := randLabel(f.errTypes, et)
				overflow("error_type", folded)
				et = l
			}
			add(randKey("taskscope_tasks_finished_total", "group", g, "task", tk, "outcome", ev.Outcome.String(), "error_type", et), 1)
			add(randKey("taskscope_tasks_running", "group", g, "task", tk), -1)
			if !ev.Rejected {
				add(randKey("taskscope_task_duration_seconds", "group", g, "task", tk, "outcome", ev.Outcome.String()), 1)
				if ev.Outcome == runtime.Canceled {
					add(randKey("taskscope_task_cancel_latency_seconds", "group", g, "task", tk), 1)
				}
			}
		case runtime.KindTaskAborted:
			add(randKey("taskscope_tasks_abandoned", "group", g, "task", tk), 1)
		case runtime.KindTaskLateExit:
			add(randKey("taskscope_tasks_abandoned", "group", g, "task", tk), -1)
		case runtime.KindTaskCancelRequested:
			add(randKey("taskscope_task_cancellations_total", "group", g, "task", tk, "cause", randCauseKind(ev)), 1)
		case runtime.KindGroupCancelRequested:
			overflow("group", gf)
			add(randKey("taskscope_task_cancellations_total", "group", g, "task", "", "cause", randCauseKind(ev)), 1)
		case runtime.KindTaskRunFinished:
			add(randKey("taskscope_periodic_runs_total", "group", g, "task", tk, "outcome", ev.Outcome.String()), 1)
		case runtime.KindGroupShutdownDone:
			overflow("group", gf)
			result := "clean"
			if ev.Aborted > 0 {
				result = "aborted"
			}
			add(randKey("taskscope_group_shutdown_duration_seconds", "group", g, "result", result), 1)
		}
	}
	return want
}

// checkScrapes checks each concurrent scrape against the events the
// telemetry had seen before it (lo) and may have seen by its end (hi).
func (h *randHarness) checkScrapes() {
	final, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	f := h.fold(final)
	all := h.pre.prefix(h.pre.len())
	post := h.post.prefix(h.post.len())
	bad := 0
	for i, sc := range h.scrapes {
		lo := h.expected(post[:sc.lo], f)
		hi := h.expected(all[:sc.hi], f)
		got := randValues(sc.mfs)
		// Bounds of the gauges: running is started − finished, abandoned is
		// aborted − late exits; each term has its bounds.
		lower := map[string]float64{}
		upper := map[string]float64{}
		for k, v := range lo {
			lower[k], upper[k] = v, v
		}
		for k, v := range hi {
			lower[k], upper[k] = min(lower[k], v), max(upper[k], v)
		}
		gaugeBounds(post[:sc.lo], all[:sc.hi], f, lower, upper)
		keys := map[string]bool{}
		for k := range got {
			keys[k] = true
		}
		for k := range hi {
			keys[k] = true
		}
		for k := range keys {
			if strings.HasPrefix(k, "taskscope_stream") {
				continue
			}
			v := got[k]
			if v < lower[k] || v > upper[k] {
				if bad < 10 {
					h.t.Errorf("scrape %d (events %d..%d): %s = %v, want within [%v, %v]", i, sc.lo, sc.hi, k, v, lower[k], upper[k])
				}
				bad++
			}
		}
	}
}

// gaugeBounds widens the gauges' bounds: running in [started_lo −
// finished_hi, started_hi − finished_lo], abandoned likewise.
func gaugeBounds(lo, hi []runtime.Event, f randFold, lower, upper map[string]float64) {
	count := func(evs []runtime.Event, kind string) map[string]float64 {
		out := map[string]float64{}
		for _, ev := range evs {
			if ev.Kind == kind {
				g, _ := randLabel(f.groups, ev.Group)
				tk, _ := randLabel(f.tasks, ev.Task)
				out[randKey("", "group", g, "task", tk)]++
			}
		}
		return out
	}
	for _, p := range [][3]string{
		{"taskscope_tasks_running", runtime.KindTaskSpawned, runtime.KindTaskFinished},
		{"taskscope_tasks_abandoned", runtime.KindTaskAborted, runtime.KindTaskLateExit},
	} {
		incLo, incHi := count(lo, p[1]), count(hi, p[1])
		decLo, decHi := count(lo, p[2]), count(hi, p[2])
		for k := range incHi {
			lower[p[0]+k] = incLo[k] - decHi[k]
			upper[p[0]+k] = incHi[k] - decLo[k]
		}
	}
}

// quiescent checks everything exactly, with the workload stopped and every
// goroutine of the bubble blocked.
func (h *randHarness) quiescent(when string) {
	t := h.t
	t.Helper()
	h.checks++
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("%s: Gather: %v", when, err)
	}
	h.checkSigns(mfs, when)
	events := h.pre.prefix(h.pre.len())
	if n := h.post.len(); n != len(events) {
		t.Fatalf("%s: recorders saw %d and %d events", when, len(events), n)
	}
	f := h.fold(mfs)
	want := h.expected(events, f)
	got := randValues(mfs)
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	bad := 0
	for _, k := range slices.Sorted(mapsKeys(keys)) {
		if got[k] != want[k] {
			if bad < 15 {
				t.Errorf("%s: %s = %v, events say %v", when, k, got[k], want[k])
			}
			bad++
		}
	}
	// started = finished + running per label pair.
	started := map[string]float64{}
	for k, v := range got {
		if rest, ok := strings.CutPrefix(k, "taskscope_tasks_started_total"); ok {
			started[rest] += v
		}
		if rest, ok := strings.CutPrefix(k, "taskscope_tasks_running"); ok {
			started[rest] -= v
		}
	}
	for _, mf := range mfs {
		if mf.GetName() != "taskscope_tasks_finished_total" {
			continue
		}
		for _, m := range mf.Metric {
			var g, tk string
			for _, lp := range m.Label {
				switch lp.GetName() {
				case "group":
					g = lp.GetValue()
				case "task":
					tk = lp.GetValue()
				}
			}
			started[randKey("", "group", g, "task", tk)] -= m.GetCounter().GetValue()
		}
	}
	for k, v := range started {
		if v != 0 {
			t.Errorf("%s: %s: started - running - finished = %v", when, k, v)
		}
	}

	// Gauges against a snapshot of the whole tree.
	snap := h.sup.Snapshot()
	if snap.Seq != uint64(len(events)) {
		t.Errorf("%s: snapshot Seq %d, %d events", when, snap.Seq, len(events))
	}
	snapRunning, snapAbandoned := map[string]float64{}, map[string]float64{}
	var walk func(gs runtime.GroupSnapshot)
	walk = func(gs runtime.GroupSnapshot) {
		for _, ti := range gs.Tasks {
			g, _ := randLabel(f.groups, ti.Group)
			tk, _ := randLabel(f.tasks, ti.Name)
			k := randKey("", "group", g, "task", tk)
			switch ti.State {
			case runtime.Running, runtime.Canceling:
				snapRunning[k]++
			case runtime.Abandoned:
				snapAbandoned[k]++
			}
		}
		for _, c := range gs.Groups {
			walk(c)
		}
	}
	walk(snap)
	totalAbandoned := 0.0
	for k, v := range got {
		if rest, ok := strings.CutPrefix(k, "taskscope_tasks_running"); ok && v != snapRunning[rest] {
			t.Errorf("%s: running%s = %v, snapshot says %v", when, rest, v, snapRunning[rest])
		}
		if rest, ok := strings.CutPrefix(k, "taskscope_tasks_abandoned"); ok {
			totalAbandoned += v
			if v != snapAbandoned[rest] {
				t.Errorf("%s: abandoned%s = %v, snapshot says %v", when, rest, v, snapAbandoned[rest])
			}
		}
	}
	for k, v := range snapRunning {
		if _, ok := got["taskscope_tasks_running"+k]; !ok && v != 0 {
			t.Errorf("%s: snapshot has %v running in %s, no series", when, v, k)
		}
	}
	if n := h.sup.Abandoned(); float64(n) != totalAbandoned {
		t.Errorf("%s: Abandoned() = %d, gauges sum to %v", when, n, totalAbandoned)
	}

	h.checkSpans(when, events)
}

// checkSpans compares the ended spans with the events: task spans by
// outcome, run spans by outcome, shutdown spans' counts.
func (h *randHarness) checkSpans(when string, events []runtime.Event) {
	t := h.t
	h.checkSpansEndedOnce(false)
	want, got := map[string]int{}, map[string]int{}
	for _, ev := range events {
		switch ev.Kind {
		case runtime.KindTaskFinished:
			if ev.Interval == 0 {
				want[fmt.Sprintf("task %s #%d outcome=%s", valid(ev.Task), ev.TaskID, ev.Outcome)]++
			}
		case runtime.KindTaskRunFinished:
			want[fmt.Sprintf("run %s #%d run=%d outcome=%s", valid(ev.Task), ev.TaskID, ev.Run, ev.Outcome)]++
		case runtime.KindGroupShutdownDone:
			result := "clean"
			if ev.Aborted > 0 {
				result = "aborted"
			}
			want[fmt.Sprintf("shutdown %s drained=%d aborted=%d result=%s", valid(ev.Group), ev.Drained, ev.Aborted, result)]++
		}
	}
	for _, s := range h.sr.Ended() {
		a := map[string]string{}
		for _, kv := range s.Attributes() {
			a[string(kv.Key)] = kv.Value.Emit()
		}
		switch {
		case strings.HasPrefix(s.Name(), "task "):
			got[fmt.Sprintf("%s #%s outcome=%s", s.Name(), a[runtime.AttrTaskID], a[runtime.AttrOutcome])]++
		case strings.HasPrefix(s.Name(), "run "):
			got[fmt.Sprintf("%s #%s run=%s outcome=%s", s.Name(), a[runtime.AttrTaskID], a[runtime.AttrRun], a[runtime.AttrOutcome])]++
		case strings.HasPrefix(s.Name(), "shutdown "):
			got[fmt.Sprintf("%s drained=%s aborted=%s result=%s", s.Name(), a[runtime.AttrShutdownDrained], a[runtime.AttrShutdownAborted], a[runtime.AttrShutdownResult])]++
		default:
			t.Errorf("%s: unexpected span %q", when, s.Name())
		}
	}
	bad := 0
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range []map[string]int{want, got} {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}) {
		if want[k] != got[k] {
			if bad < 10 {
				t.Errorf("%s: %d ended spans %q, events say %d", when, got[k], k, want[k])
			}
			bad++
		}
	}
}

func (h *randHarness) checkSpansEndedOnce(all bool) {
	ids := map[string]int{}
	for _, s := range h.sr.Ended() {
		ids[s.SpanContext().SpanID().String()]++
	}
	for id, n := range ids {
		if n != 1 {
			h.t.Errorf("span %s ended %d times", id, n)
		}
	}
	if all {
		started := h.sr.Started()
		for _, s := range started {
			if ids[s.SpanContext().SpanID().String()] != 1 {
				h.t.Errorf("span %q never ended", s.Name())
			}
		}
		if len(started) != len(ids) {
			h.t.Errorf("%d spans started, %d ended", len(started), len(ids))
		}
	}
}
