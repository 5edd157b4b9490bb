package diagnostics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/internal/randomwork"
	"github.com/taskscope/taskscope/runtime"
)

// TestConvergence checks the "snapshot, then follow the stream" contract:
// clients that render a snapshot, subscribe After its Seq, apply the
// events (in their JSON form) idempotently by task ID and re-snapshot on
// every lag or resync notice hold, whenever the supervisor is quiet, what a
// fresh snapshot shows, and never miss an event without a notice. The
// workload is randomwork's; one client's buffer is tiny, so that it lags.
// RANDOMIZED_SEEDS=n runs more seeds.
func TestConvergence(t *testing.T) {
	randomwork.Seeds(t, 6, convRun)
}

// convTask and convGroup are what a client knows of a task and a group.
type convTask struct {
	Name, Group, State string
	Runs               uint64
	Last               convLastRun
}

// convLastRun is a periodic task's last run: a snapshot's last_run, or
// what a run_finished event says (zero before the first run ends).
type convLastRun struct {
	Run                   uint64
	Outcome, Error, Ended string
	DurationSeconds       float64
}

type convGroup struct{ Closed, Canceled bool }

// convModel is a client's picture of the tree, built from wire forms only.
// canceled and closed are the groups whose subtrees an event canceled or
// closed: a group first seen later under one of them inherits the flag.
type convModel struct {
	tasks            map[uint64]convTask
	groups           map[string]*convGroup
	canceled, closed map[string]bool
}

func within(group, root string) bool { return group == root || strings.HasPrefix(group, root+".") }

func newConvModel(s diagnostics.SnapshotJSON) *convModel {
	m := &convModel{tasks: map[uint64]convTask{}, groups: map[string]*convGroup{}, canceled: map[string]bool{}, closed: map[string]bool{}}
	var walk func(g diagnostics.GroupJSON)
	walk = func(g diagnostics.GroupJSON) {
		m.groups[g.Name] = &convGroup{Closed: g.Closed, Canceled: g.Canceled}
		for _, t := range g.Tasks {
			task := convTask{Name: t.Name, Group: t.Group, State: t.State, Runs: t.Runs}
			if r := t.LastRun; r != nil {
				task.Last = convLastRun{r.Run, r.Outcome, r.Error, r.Ended.Format(time.RFC3339Nano), r.DurationSeconds}
			}
			m.tasks[t.ID] = task
		}
		for _, c := range g.Groups {
			walk(c)
		}
	}
	walk(s.Root)
	return m
}

func (m *convModel) group(name string) *convGroup {
	if g := m.groups[name]; g != nil {
		return g
	}
	g := &convGroup{}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		*g = *m.group(name[:i])
	}
	for r := range m.canceled {
		g.Canceled = g.Canceled || within(name, r)
	}
	for r := range m.closed {
		g.Closed = g.Closed || within(name, r)
	}
	m.groups[name] = g
	return g
}

// setState sets a known task's state.
func (m *convModel) setState(id uint64, state string) {
	if t, ok := m.tasks[id]; ok {
		t.State = state
		m.tasks[id] = t
	}
}

// apply applies one event as the tasks page does.
func (m *convModel) apply(ev diagnostics.EventJSON) {
	switch ev.Kind {
	case runtime.KindTaskSpawned:
		if ev.Rejected {
			return
		}
		state, g := "running", m.group(ev.Group)
		if ev.Cause != "" { // spawned into a canceled group
			state, g.Canceled = "canceling", true
		}
		m.tasks[ev.TaskID] = convTask{Name: ev.Task, Group: ev.Group, State: state}
	case runtime.KindTaskCancelRequested:
		if m.tasks[ev.TaskID].State == "running" {
			m.setState(ev.TaskID, "canceling")
		}
	case runtime.KindTaskRunStarted:
		if t, ok := m.tasks[ev.TaskID]; ok {
			t.Runs = ev.Run
			m.tasks[ev.TaskID] = t
		}
	case runtime.KindTaskRunFinished:
		if t, ok := m.tasks[ev.TaskID]; ok {
			t.Last = convLastRun{ev.Run, ev.Outcome, ev.Error, ev.Time.Format(time.RFC3339Nano), ev.DurationSeconds}
			m.tasks[ev.TaskID] = t
		}
	case runtime.KindTaskAborted:
		m.setState(ev.TaskID, "abandoned")
	case runtime.KindTaskFinished:
		if ev.Outcome == runtime.Aborted.String() {
			m.setState(ev.TaskID, "abandoned")
		} else {
			delete(m.tasks, ev.TaskID)
		}
	case runtime.KindTaskLateExit:
		delete(m.tasks, ev.TaskID)
	case runtime.KindGroupCancelRequested:
		m.canceled[ev.Group] = true
		for name, g := range m.groups {
			g.Canceled = g.Canceled || within(name, ev.Group)
		}
		for id, t := range m.tasks {
			if t.State == "running" && within(t.Group, ev.Group) {
				m.setState(id, "canceling")
			}
		}
	case runtime.KindGroupShutdownStarted:
		m.closed[ev.Group] = true
		for name, g := range m.groups {
			g.Closed = g.Closed || within(name, ev.Group)
		}
	}
}

// diff lists how m differs from truth: tasks, their states, runs and last
// runs, and the flags of the groups that hold tasks.
func (m *convModel) diff(truth *convModel) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(truth.tasks)) {
		if got, ok := m.tasks[id]; got != truth.tasks[id] {
			out = append(out, fmt.Sprintf("task %d = %+v (known %v), want %+v", id, got, ok, truth.tasks[id]))
		}
		g := truth.tasks[id].Group
		if got := m.groups[g]; got == nil || *got != *truth.groups[g] {
			out = append(out, fmt.Sprintf("group %s = %+v, want %+v", g, got, *truth.groups[g]))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(m.tasks)) {
		if _, ok := truth.tasks[id]; !ok {
			out = append(out, fmt.Sprintf("task %d %+v should be gone", id, m.tasks[id]))
		}
	}
	return out
}

func roundTrip[T any](t *testing.T, v any) T {
	var out T
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		t.Error(err)
	}
	return out
}

// convClient follows the stream. Its fields are read by the test only
// after synctest.Wait (the client is then blocked on an empty buffer, so
// it has applied everything published) or once run has returned.
type convClient struct {
	buffer, yields int
	m              *convModel
	base           uint64          // Seq of the last snapshot
	seen           map[uint64]bool // Seqs applied since, above base
	lags, resyncs  int
	errs           []string
	reported       bool // errs were reported (by the test goroutine)
}

func (c *convClient) run(t *testing.T, ctx context.Context, sup *runtime.Supervisor, s *diagnostics.Stream) {
	for same := 0; ; same++ {
		snap := roundTrip[diagnostics.SnapshotJSON](t, diagnostics.NewSnapshotJSON(sup.Snapshot(), time.Now()))
		if snap.Seq != c.base {
			same = 0
		} else if same == 100 { // it would spin for ever: fake time stands still
			c.errs = append(c.errs, fmt.Sprintf("100 lag notices in a row with no new event (Seq %d)", c.base))
			return
		}
		c.m, c.base, c.seen = newConvModel(snap), snap.Seq, map[uint64]bool{}
		for range c.yields { // rendering: the workload goes on
			goruntime.Gosched()
		}
		sub := s.Subscribe(ctx, diagnostics.After(c.base), diagnostics.BufferSize(c.buffer))
		lagged := false
		for ev := range sub.Events() {
			j := roundTrip[diagnostics.EventJSON](t, diagnostics.NewEventJSON(ev))
			if lagged = j.Kind == diagnostics.KindStreamLagged; lagged {
				if j.Seq != 0 || (j.Missed == 0 && !j.Resync) {
					c.errs = append(c.errs, fmt.Sprintf("malformed notice %+v", j))
				}
				c.lags++
				if j.Resync {
					c.resyncs++
				}
				break
			}
			c.m.apply(j)
			if j.Seq > c.base {
				c.seen[j.Seq] = true
			}
		}
		sub.Close()
		if !lagged {
			return // ctx is done
		}
	}
}

// yielder is an observer placed before the stream, as a slow telemetry
// observer would be: it widens the window between an event's Seq and its
// publication.
type yielder struct{}

func (yielder) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	yielder{}.Observe(ctx, ev)
	return ctx
}

func (yielder) Observe(context.Context, runtime.Event) {
	if rand.IntN(2) == 0 {
		for range rand.IntN(6) {
			goruntime.Gosched()
		}
	}
}

func convRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 100))
	// Not smaller: when more events than the ring holds reach the stream
	// after the one with a snapshot's Seq, After(that Seq) starts with a
	// resync notice even at rest, and a client re-snapshotting gets it again.
	replay := []int{24, 64, 512}[rng.IntN(3)]
	stream := diagnostics.NewStream(diagnostics.WithReplaySize(replay))
	var opts []runtime.Option
	if rng.IntN(2) == 0 {
		opts = append(opts, runtime.WithObserver(yielder{}))
	}
	sup := runtime.New("svc", append(opts, runtime.WithObserver(stream))...)
	ctx, stopClients := context.WithCancel(context.Background())
	var cwg sync.WaitGroup
	clients := []*convClient{{buffer: 1024}, {buffer: 1 + rng.IntN(4)}, {buffer: 32, yields: 50}}
	for _, c := range clients {
		cwg.Go(func() { c.run(t, ctx, sup, stream) })
	}

	tree := randomwork.NewTree(sup.Group("top"))
	release := make(chan struct{})
	var mu sync.Mutex
	var tasks []*runtime.Task
	// At quiet points every client must agree with a fresh snapshot: after
	// each phase of the workload (stuck tasks stuck, some abandoned), once
	// they are released, and after the final shutdown, with the
	// subscriptions closed and drained.
	check := func(when string) {
		t.Helper()
		truthJSON := roundTrip[diagnostics.SnapshotJSON](t, diagnostics.NewSnapshotJSON(sup.Snapshot(), time.Now()))
		truth := newConvModel(truthJSON)
		if p := stream.Published(); p != truthJSON.Seq {
			t.Errorf("%s: %d events published, snapshot Seq %d", when, p, truthJSON.Seq)
		}
		for i, c := range clients {
			if len(c.errs) > 0 { // reported once, and not checked further
				if !c.reported {
					t.Errorf("%s: client %d (buffer %d): %s", when, i, c.buffer, strings.Join(c.errs, "; "))
				}
				c.reported = true
				continue
			}
			var missed []uint64
			for s := c.base + 1; s <= truthJSON.Seq; s++ {
				if !c.seen[s] {
					missed = append(missed, s)
				}
			}
			if len(missed) > 0 {
				t.Errorf("%s: client %d (buffer %d, snapshot Seq %d): no notice, yet missed Seqs %v", when, i, c.buffer, c.base, missed[:min(len(missed), 20)])
			}
			if d := c.m.diff(truth); len(d) > 0 {
				t.Errorf("%s: client %d (buffer %d, snapshot Seq %d) differs from a snapshot at Seq %d:\n\t%s",
					when, i, c.buffer, c.base, truthJSON.Seq, strings.Join(d[:min(len(d), 10)], "\n\t"))
			}
		}
		states := map[string]int{}
		for _, task := range truth.tasks {
			states[task.State]++
		}
		t.Logf("%s: Seq %d, tasks %v, %d groups", when, truthJSON.Seq, states, tree.Len())
	}
	for phase := range 3 {
		var wg sync.WaitGroup
		for w := range 4 {
			rng := rand.New(rand.NewPCG(seed, uint64(10*phase+w)))
			wg.Go(func() {
				for range 50 {
					convOp(rng, tree, release, &mu, &tasks)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		check(fmt.Sprint("phase ", phase))
	}
	close(release)
	synctest.Wait()
	check("released")
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Errorf("final Shutdown: %v", err)
	}
	synctest.Wait()
	stopClients()
	cwg.Wait()
	check("shut down")
	t.Logf("replay %d, dropped %d, lags (resyncs) per client: %d (%d), %d (%d), %d (%d)", replay, stream.Dropped(),
		clients[0].lags, clients[0].resyncs, clients[1].lags, clients[1].resyncs, clients[2].lags, clients[2].resyncs)
}

// convOp is one random operation of the workload.
func convOp(rng *rand.Rand, tree *randomwork.Tree, release chan struct{}, mu *sync.Mutex, tasks *[]*runtime.Task) {
	g := tree.Pick(rng)
	switch n := rng.IntN(100); {
	case n < 45:
		k := randomwork.Kind(rng.IntN(int(randomwork.Kinds)))
		// Canceled from outside (maybe at once), long-running.
		opts, _ := randomwork.Options(rng, nil, k != randomwork.Every)
		var task *runtime.Task
		if k == randomwork.Every {
			task = g.G.Every("every", randomwork.Period(rng), randomwork.Run(rng, true, release), opts...)
		} else {
			task = g.G.Go(k.String(), randomwork.Body(k, rng, fmt.Errorf("fail %d", rng.IntN(9)), release), opts...)
		}
		mu.Lock()
		*tasks = append(*tasks, task)
		mu.Unlock()
	case n < 55:
		tree.Grow(rng, func(name string) string { return name })
	case n < 65:
		mu.Lock()
		var task *runtime.Task
		if len(*tasks) > 0 {
			task = (*tasks)[rng.IntN(len(*tasks))]
		}
		mu.Unlock()
		if task != nil {
			task.Cancel(nil)
		}
	case n < 68:
		if g.Parent != nil {
			g.G.Cancel(fmt.Errorf("cancel %d", rng.IntN(9)))
		}
	case n < 78:
		dctx, cancel := randomwork.Deadline(rng)
		_ = g.G.Wait(dctx)
		cancel()
	case n < 84:
		if g.Parent != nil {
			dctx, cancel := randomwork.Deadline(rng)
			_ = g.G.Shutdown(dctx)
			cancel()
		}
	default:
		time.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond)
	}
}
