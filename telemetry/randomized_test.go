package telemetry_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
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

	"github.com/taskscope/taskscope/internal/randomwork"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
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
	randomwork.Seeds(t, 5, randRun)
}

type randTypedErr struct{ kind string }

func (e randTypedErr) Error() string     { return "typed failure " + e.kind }
func (e randTypedErr) ErrorType() string { return e.kind }

type randState struct {
	t       *testing.T
	sup     *runtime.Supervisor
	release chan struct{}

	flood bool // some ops spawn many uniquely named tasks, past the cache budget

	tree *randomwork.Tree

	mu     sync.Mutex
	tasks  []*runtime.Task
	unique int
}

func (s *randState) addTask(task *runtime.Task) {
	s.mu.Lock()
	s.tasks = append(s.tasks, task)
	s.mu.Unlock()
}

// floodSpawn spawns uniquely named tasks failing with unique error types.
func (s *randState) floodSpawn(rng *rand.Rand) {
	g := s.tree.Pick(rng).G
	for range 100 {
		s.mu.Lock()
		s.unique++
		n := s.unique
		s.mu.Unlock()
		err := randTypedErr{fmt.Sprint("ue", n%3000)}
		s.addTask(g.Go(fmt.Sprint("u", n), func(context.Context) error { return err }))
	}
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

// newGroup grows the tree; one group in eight has an invalid UTF-8 name.
func (s *randState) newGroup(rng *rand.Rand) {
	s.tree.Grow(rng, func(name string) string {
		if rng.IntN(8) == 0 {
			return name + "\xff"
		}
		return name
	})
}

func (s *randState) spawn(rng *rand.Rand) {
	s.spawnIn(rng, s.tree.Pick(rng).G, nil, 2)
}

// spawnIn spawns a random task in g; depth bounds spawner tasks, which
// spawn children from their own context (WithParent) when they run.
func (s *randState) spawnIn(rng *rand.Rand, g *runtime.Group, opts []runtime.TaskOption, depth int) {
	var task *runtime.Task
	k := rng.IntN(10)
	if k == 9 && depth == 0 {
		k = 0
	}
	// LongRunning tasks, with no task span, and external cancellation.
	more, _ := randomwork.Options(rng, nil, k != 8)
	opts = append(opts, more...)
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
	case 2:
		kinds := []string{"et0", "et1", "et2", "et3", "et4", "et5", "et6", "et\xff", "et\xfe"}
		err := randTypedErr{kinds[rng.IntN(len(kinds))]}
		task = g.Go(randTaskName(rng, "typed"), func(context.Context) error { return err }, opts...)
	case 8:
		task = g.Every(randTaskName(rng, "every"), randomwork.Period(rng), randomwork.Run(rng, true, s.release), opts...)
	default:
		kind := [...]randomwork.Kind{0: randomwork.OK, 1: randomwork.Err, 3: randomwork.Panic, 4: randomwork.Polite,
			5: randomwork.Stubborn, 6: randomwork.Sleepy, 7: randomwork.Goexit}[k]
		var err error
		if kind == randomwork.Err {
			err = fmt.Errorf("random failure %d", rng.IntN(1000))
		}
		task = g.Go(randTaskName(rng, kind.String()), randomwork.Body(kind, rng, err, s.release), opts...)
	}
	s.addTask(task)
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
		g := s.tree.Pick(rng)
		if g.Parent != nil || rng.IntN(4) == 0 {
			var cause error
			if rng.IntN(2) == 0 {
				cause = fmt.Errorf("random group cancel %d", rng.IntN(100))
			}
			g.G.Cancel(cause)
		}
	case n < 72:
		g := s.tree.Pick(rng)
		ctx, cancel := randomwork.Deadline(rng)
		_ = g.G.Wait(ctx)
		cancel()
	case n < 78:
		g := s.tree.Pick(rng)
		if g.Parent != nil {
			ctx, cancel := randomwork.Deadline(rng)
			_ = g.G.Shutdown(ctx)
			cancel()
		}
	case n < 84:
		_ = s.tree.Pick(rng).G.Snapshot()
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
	pre      *runtimetest.Recorder // before the telemetry
	post     *runtimetest.Recorder // after it
	reg      *prometheus.Registry
	sr       *tracetest.SpanRecorder
	sup      *runtime.Supervisor
	scrapes  []randScrape
	checks   int
	lastSeen map[string]float64 // counters at the previous scrape, for monotonicity
}

func randRun(t *testing.T, seed uint64) {
	rng0 := rand.New(rand.NewPCG(seed, 99))
	h := &randHarness{t: t, cap: 3 + rng0.IntN(10), pre: &runtimetest.Recorder{}, post: &runtimetest.Recorder{},
		reg: prometheus.NewPedanticRegistry(), sr: tracetest.NewSpanRecorder(), lastSeen: map[string]float64{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.sr))
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(h.reg), telemetry.WithMaxLabelValues(h.cap))
	if err != nil {
		t.Fatal(err)
	}
	h.sup = runtime.New("random", runtime.WithObserver(h.pre), runtime.WithObserver(tel), runtime.WithObserver(h.post))
	s := &randState{t: t, sup: h.sup, release: make(chan struct{}), flood: seed%8 == 3}
	top := h.sup.Group("top")
	s.tree = randomwork.NewTree(top)

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
	t.Logf("cap %d: %d events, %d tasks, %d scrapes, %d spans", h.cap, len(h.pre.Events()), len(s.tasks), len(h.scrapes), len(h.sr.Ended()))
}

func (h *randHarness) scrape() {
	lo := len(h.post.Events())
	mfs, err := h.reg.Gather()
	hi := len(h.pre.Events())
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
			if ev.Cause != nil {
				add(randKey("taskscope_task_cancel_latency_seconds", "group", g, "task", tk), 1)
			}
		case runtime.KindTaskCancelRequested:
			add(randKey("taskscope_task_cancellations_total", "group", g, "task", tk, "cause", randCauseKind(ev)), 1)
		case runtime.KindGroupCancelRequested:
			overflow("group", gf)
			add(randKey("taskscope_task_cancellations_total", "group", g, "task", "", "cause", randCauseKind(ev)), 1)
		case runtime.KindTaskRunFinished:
			// Every run counted is timed: the histogram's count per
			// series is the counter's.
			for _, name := range []string{"taskscope_periodic_runs_total", "taskscope_periodic_run_duration_seconds"} {
				add(randKey(name, "group", g, "task", tk, "outcome", ev.Outcome.String()), 1)
			}
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
	all := h.pre.Events()
	post := h.post.Events()
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
			if strings.HasPrefix(k, "taskscope_stream") || isPeriodicGauge(k) {
				continue // the periodic gauges hold times: see quiescent
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
func isPeriodicGauge(k string) bool {
	return strings.HasPrefix(k, "taskscope_periodic_last_success_timestamp_seconds{") ||
		strings.HasPrefix(k, "taskscope_periodic_interval_seconds{")
}

// checkPeriodicGauges checks the periodic gauges at a quiescent point,
// whatever order concurrent events of one label pair reached telemetry
// in: a pair has them exactly while one of its periodic tasks lives or is
// dead (a panic or Goexit ended it, and no task of the pair was spawned
// after, by Seq), the last success no earlier than the pair's first
// periodic spawn and no later than its last event, the interval the
// longest of its live and dead tasks' periods.
// (TestPeriodicGauges checks the values themselves.)
func (h *randHarness) checkPeriodicGauges(events []runtime.Event, f randFold, got map[string]float64, when string) {
	type pair struct {
		first, last float64
		live, dead  map[uint64]float64 // task ID → period
	}
	pairs := map[string]*pair{}
	events = slices.SortedFunc(slices.Values(events), func(a, b runtime.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	for i := range events {
		ev := &events[i]
		if ev.Interval <= 0 || ev.Rejected {
			continue
		}
		g, _ := randLabel(f.groups, ev.Group)
		tk, _ := randLabel(f.tasks, ev.Task)
		k := randKey("", "group", g, "task", tk)
		p := pairs[k]
		if p == nil {
			p = &pair{first: float64(ev.Time.UnixNano()) / 1e9, live: map[uint64]float64{}, dead: map[uint64]float64{}}
			pairs[k] = p
		}
		p.last = max(p.last, float64(ev.Time.UnixNano())/1e9)
		switch ev.Kind {
		case runtime.KindTaskSpawned:
			p.live[ev.TaskID] = ev.Interval.Seconds()
			clear(p.dead)
		case runtime.KindTaskFinished:
			delete(p.live, ev.TaskID)
			if ev.Outcome == runtime.Panic || ev.Outcome == runtime.Error {
				p.dead[ev.TaskID] = ev.Interval.Seconds()
			}
		}
	}
	for k, p := range pairs {
		last, hasLast := got["taskscope_periodic_last_success_timestamp_seconds"+k]
		interval, hasInterval := got["taskscope_periodic_interval_seconds"+k]
		longest := 0.0
		for _, period := range p.live {
			longest = max(longest, period)
		}
		for _, period := range p.dead {
			longest = max(longest, period)
		}
		tasks := len(p.live) + len(p.dead)
		switch {
		case tasks == 0 && (hasLast || hasInterval):
			h.t.Errorf("%s: %s has no live or dead periodic task, but its gauges are exported", when, k)
		case tasks > 0 && (!hasLast || !hasInterval):
			h.t.Errorf("%s: %s has %d live and %d dead periodic task(s), but no gauges", when, k, len(p.live), len(p.dead))
		case tasks > 0 && (last < p.first || last > p.last || interval != longest):
			h.t.Errorf("%s: %s: last success %v outside [%v, %v], or interval %v, want %v, the longest live or dead period", when, k, last, p.first, p.last, interval, longest)
		}
	}
	for k := range got {
		if rest, ok := strings.CutPrefix(k, "taskscope_periodic_interval_seconds"); ok && pairs[rest] == nil {
			h.t.Errorf("%s: %s exported for a pair with no periodic task", when, k)
		}
	}
}

func (h *randHarness) quiescent(when string) {
	t := h.t
	t.Helper()
	h.checks++
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("%s: Gather: %v", when, err)
	}
	h.checkSigns(mfs, when)
	events := h.pre.Events()
	if n := len(h.post.Events()); n != len(events) {
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
	h.checkPeriodicGauges(events, f, got, when)
	bad := 0
	for _, k := range slices.Sorted(mapsKeys(keys)) {
		if isPeriodicGauge(k) {
			continue // checked above
		}
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

	h.checkSpans(when, events, f)
}

// checkSpans compares the ended spans with the events: task spans by
// outcome, run spans by outcome, shutdown spans' counts. Task and run
// spans are named by the task label (folded names give `task _other`),
// shutdown spans by the group label; their taskscope.task.name and
// taskscope.group attributes are the raw names.
func (h *randHarness) checkSpans(when string, events []runtime.Event, f randFold) {
	t := h.t
	h.checkSpansEndedOnce(false)
	want, got := map[string]int{}, map[string]int{}
	for _, ev := range events {
		switch ev.Kind {
		case runtime.KindTaskFinished:
			if ev.Interval == 0 && !ev.LongRunning { // periodic and long-running tasks have no task span
				tk, _ := randLabel(f.tasks, ev.Task)
				want[fmt.Sprintf("task %s name=%s #%d outcome=%s", tk, valid(ev.Task), ev.TaskID, ev.Outcome)]++
			}
		case runtime.KindTaskRunFinished:
			tk, _ := randLabel(f.tasks, ev.Task)
			want[fmt.Sprintf("run %s name=%s #%d run=%d outcome=%s", tk, valid(ev.Task), ev.TaskID, ev.Run, ev.Outcome)]++
		case runtime.KindGroupShutdownDone:
			result := "clean"
			if ev.Aborted > 0 {
				result = "aborted"
			}
			g, _ := randLabel(f.groups, ev.Group)
			want[fmt.Sprintf("shutdown %s group=%s drained=%d aborted=%d result=%s", g, valid(ev.Group), ev.Drained, ev.Aborted, result)]++
		}
	}
	for _, s := range h.sr.Ended() {
		a := map[string]string{}
		for _, kv := range s.Attributes() {
			a[string(kv.Key)] = kv.Value.String()
		}
		switch {
		case strings.HasPrefix(s.Name(), "task "):
			got[fmt.Sprintf("%s name=%s #%s outcome=%s", s.Name(), a[runtime.AttrTaskName], a[runtime.AttrTaskID], a[runtime.AttrOutcome])]++
		case strings.HasPrefix(s.Name(), "run "):
			got[fmt.Sprintf("%s name=%s #%s run=%s outcome=%s", s.Name(), a[runtime.AttrTaskName], a[runtime.AttrTaskID], a[runtime.AttrRun], a[runtime.AttrOutcome])]++
		case strings.HasPrefix(s.Name(), "shutdown "):
			got[fmt.Sprintf("%s group=%s drained=%s aborted=%s result=%s", s.Name(), a[runtime.AttrGroup], a[runtime.AttrShutdownDrained], a[runtime.AttrShutdownAborted], a[runtime.AttrShutdownResult])]++
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
