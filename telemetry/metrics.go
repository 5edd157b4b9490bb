package telemetry

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/taskscope/taskscope/runtime"
)

// Metric names. Counters end in _total, durations are in seconds, and no
// label ever carries a task ID.
const (
	nameStarted          = "taskscope_tasks_started_total"
	nameRejected         = "taskscope_tasks_rejected_total"
	nameFinished         = "taskscope_tasks_finished_total"
	nameDuration         = "taskscope_task_duration_seconds"
	nameCancellations    = "taskscope_task_cancellations_total"
	nameCancelLatency    = "taskscope_task_cancel_latency_seconds"
	nameRunning          = "taskscope_tasks_running"
	nameAbandoned        = "taskscope_tasks_abandoned"
	nameShutdownDuration = "taskscope_group_shutdown_duration_seconds"
	namePeriodicRuns     = "taskscope_periodic_runs_total"
	nameRunDuration      = "taskscope_periodic_run_duration_seconds"
	nameLastSuccess      = "taskscope_periodic_last_success_timestamp_seconds"
	nameInterval         = "taskscope_periodic_interval_seconds"
	nameLabelOverflow    = "taskscope_label_overflow_total"
)

// Classic buckets, for dashboards that query _bucket series; the native
// histogram alongside gives the fine resolution. Tasks last from
// microseconds to hours, so the buckets are wide.
var (
	durationBuckets      = []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 60, 300}
	cancelLatencyBuckets = []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30}
	shutdownBuckets      = []float64{.001, .01, .1, .5, 1, 2.5, 5, 10, 30, 60, 120}
)

// metrics holds the vectors. Hot-path code never calls WithLabelValues on
// them: it uses the children a [series] bound once per (group, task).
type metrics struct {
	started, rejected, finished, cancellations, periodicRuns, overflow *prometheus.CounterVec
	duration, runDuration, cancelLatency, shutdownDuration             *histogramVec
	abandoned                                                          *prometheus.GaugeVec
	running, lastSuccess, interval                                     *prometheus.Desc // see scrapeCollector

	overflowGroup, overflowTask, overflowErrorType prometheus.Counter
}

func newMetrics(constLabels prometheus.Labels) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: constLabels}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels}, labels)
	}
	m := &metrics{
		started: counter(nameStarted,
			"Tasks spawned, including spawns rejected by a closed group (those finish at once with outcome canceled).",
			"group", "task"),
		rejected: counter(nameRejected,
			"Tasks spawned on a closed (shut down) group and never run; also counted as started and as finished with outcome canceled.",
			"group", "task"),
		finished: counter(nameFinished,
			"Tasks ended, by outcome (success, error, canceled, panic, aborted); error_type is set for error, panic and aborted.",
			"group", "task", "outcome", "error_type"),
		cancellations: counter(nameCancellations,
			"Cancellation requests, by cause (shutdown, fail_fast, external, deadline, canceled, custom); task is empty for a request to a whole group.",
			"group", "task", "cause"),
		periodicRuns: counter(namePeriodicRuns,
			"Runs of periodic (Every) tasks, by outcome.",
			"group", "task", "outcome"),
		overflow: counter(nameLabelOverflow,
			"Label values folded into \"_other\" because the label, or for task the (group, task) pairs, reached its cap: once per spawned task for group and task, once per failed task for error_type, once per group event for group.",
			"label"),
		duration: newHistogramVec(nameDuration,
			"Run time of a task, from spawn to its end (to the abort for aborted tasks); a periodic task's is its whole life, its runs' are taskscope_periodic_run_duration_seconds.",
			durationBuckets, constLabels, "group", "task", "outcome"),
		runDuration: newHistogramVec(nameRunDuration,
			"Run time of each run of a periodic (Every) task, from its start to its end (to the abort for a run aborted at a shutdown deadline), by outcome. Runs never overlap: the next one starts the task's interval after a run ends, so runs start interval plus run time apart.",
			durationBuckets, constLabels, "group", "task", "outcome"),
		cancelLatency: newHistogramVec(nameCancelLatency,
			"Time from the first cancellation request that reached a task to its return, for tasks that ended canceled and for tasks aborted at a shutdown deadline, observed when their goroutine returns; a long tail means tasks ignore their context.",
			cancelLatencyBuckets, constLabels, "group", "task"),
		shutdownDuration: newHistogramVec(nameShutdownDuration,
			"Duration of group shutdowns; result is clean when every task returned, aborted when some were abandoned at the deadline.",
			shutdownBuckets, constLabels, "group", "result"),
		running: prometheus.NewDesc(nameRunning,
			"Tasks spawned and not yet finished (aborted tasks are not running: see taskscope_tasks_abandoned).",
			[]string{"group", "task"}, constLabels),
		abandoned: gauge(nameAbandoned,
			"Tasks aborted at a shutdown deadline whose goroutines are still running (Go cannot kill goroutines).",
			"group", "task"),
		lastSuccess: prometheus.NewDesc(nameLastSuccess,
			"Unix time of the last successful run of a periodic (Every) task, or of its spawn before its first success; exported while such a task lives, and after a panic ended it until one of the same group and task starts again. Compared with taskscope_periodic_interval_seconds, it finds a periodic task that is stuck in a run or keeps failing.",
			[]string{"group", "task"}, constLabels),
		interval: prometheus.NewDesc(nameInterval,
			"Period of a periodic (Every) task, exported while one lives (or a panic ended it, as the last success); when several of that name live (a reload starting the new one before stopping the old), the longest, so that the stall alert waits for the slowest.",
			[]string{"group", "task"}, constLabels),
	}
	// Pre-created so that a dashboard sees 0, not a missing series.
	m.overflowGroup = m.overflow.WithLabelValues("group")
	m.overflowTask = m.overflow.WithLabelValues("task")
	m.overflowErrorType = m.overflow.WithLabelValues("error_type")
	return m
}

func (m *metrics) collectors(cache *seriesCache) []prometheus.Collector {
	return []prometheus.Collector{
		m.started, m.rejected, m.finished, m.cancellations, m.periodicRuns, m.overflow,
		m.duration, m.runDuration, m.cancelLatency, m.shutdownDuration, m.abandoned,
		scrapeCollector{m.running, m.lastSuccess, m.interval, cache},
	}
}

// scrapeCollector reports, at scrape time, the gauges read from the
// series rather than kept per event, in one pass over them:
//
//   - taskscope_tasks_running, as started minus finished per series. Both
//     counters count each task once, so it cannot drift, and no task pays
//     for a gauge (two float additions, each a compare-and-swap loop on a
//     line the spawner and the finishers share).
//   - the periodic gauges, for the label pairs with a live periodic task
//     (or one a panic ended): the event path only counts live tasks by
//     period and writes the last success, and a stopped task's gauges go
//     without a Delete.
type scrapeCollector struct {
	running, lastSuccess, interval *prometheus.Desc
	cache                          *seriesCache
}

func (c scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.lastSuccess
	ch <- c.interval
}

func (c scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	c.cache.mu.Lock()
	all := slices.Collect(maps.Values(c.cache.series))
	c.cache.mu.Unlock()
	for _, s := range all {
		// Finished first: a task that ends between the two reads is then
		// counted as running, never as less than nothing.
		finished := s.finishedCount()
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, counterValue(s.started)-finished, s.group, s.task)

		if last, interval, exported := s.periodic(); exported {
			ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, last, s.group, s.task)
			ch <- prometheus.MustNewConstMetric(c.interval, prometheus.GaugeValue, interval, s.group, s.task)
		}
	}
}

// finishedCount sums the series' finished children.
func (s *series) finishedCount() float64 {
	var n float64
	for _, c := range s.finished {
		if c != nil {
			n += counterValue(c)
		}
	}
	s.errs.Range(func(_, c any) bool {
		n += counterValue(c.(prometheus.Counter))
		return true
	})
	return n
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0 // a client_golang counter does not fail to write
	}
	return m.GetCounter().GetValue()
}

// outcomeSlots indexes per-outcome children by runtime.Outcome (1..5);
// anything else shares slot 0.
const outcomeSlots = 8

func slot(o runtime.Outcome) int {
	if int(o) < outcomeSlots {
		return int(o)
	}
	return 0
}

// series is every child metric of one (group, task) label pair. The
// children every task touches are bound when the series is made; the rest
// (histograms per outcome, periodic runs, cancel causes) on first use, so
// that a pair does not expose dozens of empty histogram series.
type series struct {
	m           *metrics
	group, task string // label values, after capping

	// Span names, "task <task>" and "run <task>": built from the label, not
	// the raw name, they stay as few as its values, and a folded name's
	// spans are "task _other" (the taskscope.task.name attribute keeps the
	// raw name).
	taskSpanName, runSpanName string

	started   prometheus.Counter
	abandoned prometheus.Gauge
	// finished children for the outcomes whose error_type is fixed; outcome
	// error has one child per error_type, in errs.
	finished [outcomeSlots]prometheus.Counter
	errs     sync.Map // error_type label → prometheus.Counter
	cancels  sync.Map // cause kind → prometheus.Counter

	duration     [outcomeSlots]lazy[*histogram]
	runDurations [outcomeSlots]lazy[*histogram]
	runs         [outcomeSlots]lazy[prometheus.Counter]
	latency      lazy[*histogram]

	// Entries shared by raw names resolved after the cache budget is spent,
	// by folded flags (group | task<<1). Guarded by seriesCache.mu.
	sharedEntries [4]*taskEntry

	// The pair's live periodic tasks, whose gauges are exported while
	// there are any (a stopped task must not look stuck for ever), with
	// their values (see scrapeCollector). A task a panic ended did not
	// stop on purpose: its work is not done any more, so its gauges stay,
	// the last success frozen, until a periodic task of the pair is
	// spawned after it (by Seq: events of concurrent tasks may reach
	// telemetry in another order), and the stall alert finds it.
	// Periodic tasks are few: a lock, no fast path.
	periodicMu  sync.Mutex
	periods     map[time.Duration]int // guarded by periodicMu: live periodic tasks by period
	dead        []deadTask            // guarded by periodicMu: tasks a panic ended after spawnSeq
	spawnSeq    uint64                // guarded by periodicMu: the pair's latest periodic spawn
	lastSuccess float64               // guarded by periodicMu: unix seconds
}

// deadTask is a periodic task a panic ended: its finished event's Seq and
// its period.
type deadTask struct {
	seq    uint64
	period time.Duration
}

func newSeries(m *metrics, group, task string) *series {
	s := &series{
		m: m, group: group, task: task,
		taskSpanName: "task " + task, runSpanName: "run " + task,
		started:   m.started.WithLabelValues(group, task),
		abandoned: m.abandoned.WithLabelValues(group, task),
	}
	for _, o := range []runtime.Outcome{runtime.Success, runtime.Canceled, runtime.Panic, runtime.Aborted} {
		s.finished[o] = m.finished.WithLabelValues(group, task, o.String(), runtime.ErrorType(o, nil))
	}
	return s
}

// shared returns an entry without span names for raw names that are not
// cached. Called with seriesCache.mu held.
func (s *series) shared(groupFolded, taskFolded bool) *taskEntry {
	i := 0
	if groupFolded {
		i |= 1
	}
	if taskFolded {
		i |= 2
	}
	if s.sharedEntries[i] == nil {
		s.sharedEntries[i] = &taskEntry{s: s, groupFolded: groupFolded, taskFolded: taskFolded}
	}
	return s.sharedEntries[i]
}

func (s *series) finishedCounter(o runtime.Outcome, errType string) prometheus.Counter {
	if o != runtime.Error {
		if c := s.finished[slot(o)]; c != nil {
			return c
		}
		return s.m.finished.WithLabelValues(s.group, s.task, o.String(), errType) // not an outcome the runtime reports
	}
	if c, ok := s.errs.Load(errType); ok {
		return c.(prometheus.Counter)
	}
	c, _ := s.errs.LoadOrStore(errType, s.m.finished.WithLabelValues(s.group, s.task, o.String(), errType))
	return c.(prometheus.Counter)
}

func (s *series) durationHistogram(o runtime.Outcome) *histogram {
	return s.outcomeHistogram(&s.duration, s.m.duration, o)
}

func (s *series) runDuration(o runtime.Outcome) *histogram {
	return s.outcomeHistogram(&s.runDurations, s.m.runDuration, o)
}

// outcomeHistogram returns the pair's child of v for outcome o, bound in
// children on first use.
func (s *series) outcomeHistogram(children *[outcomeSlots]lazy[*histogram], v *histogramVec, o runtime.Outcome) *histogram {
	return *children[slot(o)].get(func() *histogram {
		return v.with(s.group, s.task, o.String())
	})
}

func (s *series) cancelLatency() *histogram {
	return *s.latency.get(func() *histogram {
		return s.m.cancelLatency.with(s.group, s.task)
	})
}

func (s *series) periodicRuns(o runtime.Outcome) prometheus.Counter {
	return *s.runs[slot(o)].get(func() prometheus.Counter {
		return s.m.periodicRuns.WithLabelValues(s.group, s.task, o.String())
	})
}

func (s *series) cancellations(cause string) prometheus.Counter {
	if c, ok := s.cancels.Load(cause); ok {
		return c.(prometheus.Counter)
	}
	c, _ := s.cancels.LoadOrStore(cause, s.m.cancellations.WithLabelValues(s.group, s.task, cause))
	return c.(prometheus.Counter)
}

// periodicStarted counts a periodic task of the pair, spawned at ev.Time
// with period ev.Interval, as live. The first one's spawn is the reference
// until a success.
func (s *series) periodicStarted(ev *runtime.Event) {
	s.periodicMu.Lock()
	defer s.periodicMu.Unlock()
	if len(s.periods) == 0 {
		s.lastSuccess = unixSeconds(ev.Time)
	}
	if ev.Seq > s.spawnSeq {
		s.spawnSeq = ev.Seq
		// Restarted: the new task is the one to watch.
		s.dead = slices.DeleteFunc(s.dead, func(d deadTask) bool { return d.seq < ev.Seq })
	}
	if s.periods == nil {
		s.periods = make(map[time.Duration]int)
	}
	s.periods[ev.Interval]++
}

// periodicSucceeded records a successful run that ended at t. The latest
// wins whatever order concurrent runs report in.
func (s *series) periodicSucceeded(t time.Time) {
	s.periodicMu.Lock()
	defer s.periodicMu.Unlock()
	if len(s.periods) > 0 {
		s.lastSuccess = max(s.lastSuccess, unixSeconds(t))
	}
}

// periodicEnded counts the periodic task of the pair ev finishes as
// ended. A panic (or runtime.Goexit, outcome error) ends a periodic task
// only by accident: it is kept as dead, unless a task of the pair was
// spawned after it ended.
func (s *series) periodicEnded(ev *runtime.Event) {
	s.periodicMu.Lock()
	defer s.periodicMu.Unlock()
	if s.periods[ev.Interval]--; s.periods[ev.Interval] <= 0 {
		delete(s.periods, ev.Interval)
	}
	if (ev.Outcome == runtime.Panic || ev.Outcome == runtime.Error) && ev.Seq > s.spawnSeq {
		s.dead = append(s.dead, deadTask{ev.Seq, ev.Interval})
	}
}

// periodic returns the pair's periodic gauges, the last success and the
// longest period in seconds of its live and dead tasks, and whether there
// are any.
func (s *series) periodic() (lastSuccess, interval float64, exported bool) {
	s.periodicMu.Lock()
	defer s.periodicMu.Unlock()
	for p := range s.periods {
		interval = max(interval, p.Seconds())
	}
	for _, d := range s.dead {
		interval = max(interval, d.period.Seconds())
	}
	return s.lastSuccess, interval, len(s.periods) > 0 || len(s.dead) > 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func (s *series) rejected() prometheus.Counter {
	// Rejections are rare (they happen at shutdown): no pre-binding.
	return s.m.rejected.WithLabelValues(s.group, s.task)
}

// lazy holds a value made on first use, without a lock on the fast path.
type lazy[T any] struct{ p atomic.Pointer[T] }

func (l *lazy[T]) get(mk func() T) *T {
	if p := l.p.Load(); p != nil {
		return p
	}
	return l.make(mk)
}

// make is get's slow path, out of line so that get's frame stays small.
//
//go:noinline
func (l *lazy[T]) make(mk func() T) *T {
	v := mk()
	if l.p.CompareAndSwap(nil, &v) {
		return &v
	}
	return l.p.Load()
}
