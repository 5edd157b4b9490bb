package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/internal/randomwork"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// TestRandomizedInvariants has many goroutines do random operations on a
// random tree of groups (spawns of every kind of task, periodic tasks,
// cancels, Wait and Shutdown with short or expired deadlines, nested
// concurrent shutdowns, snapshots), with a checking observer attached;
// afterwards it replays the event log and checks it against the documented
// contract: Seq, per-task event grammar, results, snapshots, shutdown
// counts. RANDOMIZED_SEEDS=n runs more seeds.
func TestRandomizedInvariants(t *testing.T) {
	randomwork.Seeds(t, 12, randRun)
}

type randTask struct {
	task  *runtime.Task
	kind  randomwork.Kind
	group *randomwork.Group
	err   error            // what fn returns, for randomwork.Err
	sp    randomwork.Spawn // its options
}

type randSnap struct {
	snap  runtime.GroupSnapshot
	group *randomwork.Group
}

type randShutdown struct {
	group *randomwork.Group
	err   error
}

type randState struct {
	t       *testing.T
	sup     *runtime.Supervisor
	obs     *runtimetest.Recorder
	release chan struct{}

	// The recorded events, in delivery order; set by check.
	events []runtime.Event

	mu        sync.Mutex
	tree      *randomwork.Tree
	tasks     []*randTask
	snaps     []randSnap
	shutdowns []randShutdown
}

func (s *randState) failf(format string, args ...any) {
	s.t.Helper()
	s.t.Errorf(format, args...)
}

func (s *randState) pickTask(rng *rand.Rand) *randTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tasks) == 0 {
		return nil
	}
	return s.tasks[rng.IntN(len(s.tasks))]
}

// tasksWithin returns the tasks whose Go has returned, in g's subtree.
func (s *randState) tasksWithin(g *randomwork.Group) []*randTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*randTask
	for _, rt := range s.tasks {
		if rt.group.Within(g) {
			out = append(out, rt)
		}
	}
	return out
}

func (s *randState) spawn(rng *rand.Rand) {
	g := s.tree.Pick(rng)
	k := randomwork.Kind(rng.IntN(int(randomwork.Kinds)))
	opts, sp := randomwork.Options(rng, randParent, k != randomwork.Every)
	rt := &randTask{kind: k, group: g, sp: sp}
	switch k {
	case randomwork.Every:
		rt.task = g.G.Every(k.String(), randomwork.Period(rng), randomwork.Run(rng, false, s.release), opts...)
	default:
		if k == randomwork.Err {
			rt.err = fmt.Errorf("random failure %d", rng.IntN(1000))
		}
		rt.task = g.G.Go(k.String(), randomwork.Body(k, rng, rt.err, s.release), opts...)
	}
	s.mu.Lock()
	s.tasks = append(s.tasks, rt)
	s.mu.Unlock()
}

// randParent is the parent of the tasks spawned WithParent: already
// canceled, which must not reach them.
var randParent = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (s *randState) wait(rng *rand.Rand) {
	g := s.tree.Pick(rng)
	before := s.tasksWithin(g)
	ctx, cancel := randomwork.Deadline(rng)
	defer cancel()
	err := g.G.Wait(ctx)
	if err == nil {
		for _, rt := range before {
			if !isDone(rt.task) {
				s.failf("Wait(%s) = nil while task %d (%s) of its subtree is not done", g.G.Name(), rt.task.ID(), rt.kind)
			}
		}
		return
	}
	var te *runtime.TimeoutError
	if !errors.As(err, &te) {
		s.failf("Wait(%s) = %v, want nil or a *TimeoutError", g.G.Name(), err)
	}
}

func (s *randState) shutdown(rng *rand.Rand, g *randomwork.Group) {
	before := s.tasksWithin(g)
	ctx, cancel := randomwork.Deadline(rng)
	defer cancel()
	err := g.G.Shutdown(ctx)
	var ae0 *runtime.AbortError
	if err != nil && !errors.As(err, &ae0) {
		before = nil // a later call that gave up waiting (its ctx's cause)
	}
	for _, rt := range before {
		if !isDone(rt.task) {
			s.failf("Shutdown(%s) returned (%v) while task %d (%s) of its subtree is not done", g.G.Name(), err, rt.task.ID(), rt.kind)
		}
	}
	if err != nil {
		var ae *runtime.AbortError
		if errors.As(err, &ae) {
			if len(ae.Aborted) == 0 {
				s.failf("Shutdown(%s): AbortError with no tasks", g.G.Name())
			}
		} else if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			s.failf("Shutdown(%s) = %v", g.G.Name(), err)
		}
	}
	s.mu.Lock()
	s.shutdowns = append(s.shutdowns, randShutdown{group: g, err: err})
	s.mu.Unlock()
}

func (s *randState) op(rng *rand.Rand) {
	switch n := rng.IntN(100); {
	case n < 40:
		s.spawn(rng)
	case n < 48:
		s.tree.Grow(rng, func(name string) string { return name })
	case n < 56:
		if rt := s.pickTask(rng); rt != nil {
			var cause error
			if rng.IntN(2) == 0 {
				cause = fmt.Errorf("random task cancel %d", rng.IntN(100))
			}
			rt.task.Cancel(cause)
		}
	case n < 60:
		g := s.tree.Pick(rng)
		if g.Parent != nil || rng.IntN(4) == 0 {
			g.G.Cancel(fmt.Errorf("random group cancel %d", rng.IntN(100)))
		}
	case n < 68:
		s.wait(rng)
	case n < 72:
		g := s.tree.Pick(rng)
		if g.Parent != nil {
			s.shutdown(rng, g)
		}
	case n < 74: // a group and one of its descendants, concurrently
		g := s.tree.Pick(rng)
		if g.Parent == nil {
			return
		}
		desc := s.tree.Within(g)
		d := desc[rng.IntN(len(desc))]
		r1, r2 := rand.New(rand.NewPCG(rng.Uint64(), 1)), rand.New(rand.NewPCG(rng.Uint64(), 2))
		var wg sync.WaitGroup
		wg.Go(func() { s.shutdown(r1, g) })
		wg.Go(func() { s.shutdown(r2, d) })
		wg.Wait()
	case n < 84:
		g := s.tree.Pick(rng)
		snap := g.G.Snapshot()
		s.mu.Lock()
		s.snaps = append(s.snaps, randSnap{snap, g})
		s.mu.Unlock()
	case n < 90:
		g := s.tree.Pick(rng)
		for _, info := range g.G.Active() {
			if info.State != runtime.Running && info.State != runtime.Canceling {
				s.failf("Active(%s) lists task %d in state %v", g.G.Name(), info.ID, info.State)
			}
			if info.Group != g.G.Name() && !strings.HasPrefix(info.Group, g.G.Name()+".") {
				s.failf("Active(%s) lists task %d of group %s", g.G.Name(), info.ID, info.Group)
			}
		}
	default:
		time.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond)
	}
}

func randRun(t *testing.T, seed uint64) {
	obs := &runtimetest.Recorder{}
	sup := runtime.New("random", runtime.WithObserver(obs))
	s := &randState{t: t, sup: sup, obs: obs, release: make(chan struct{})}
	top := sup.Group("top")
	s.tree = randomwork.NewTree(top)
	runWorkers(seed, 6, 150, s.op)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	_ = sup.Shutdown(ctx)
	cancel()
	close(s.release)
	synctest.Wait()
	if n := sup.Abandoned(); n != 0 {
		t.Errorf("Abandoned() = %d after every goroutine returned", n)
	}
	s.check()
}

// spec is what checkTaskEvents and checkTaskResult know of rt.
func (rt *randTask) spec() taskSpec {
	return taskSpec{task: rt.task, groupID: rt.group.G.ID(), every: rt.kind == randomwork.Every, long: rt.sp.LongRunning, cancelOn: rt.sp.CancelOn}
}

func (s *randState) check() {
	t := s.t
	if t.Failed() {
		return
	}
	s.events = s.obs.Events()
	byTask, _ := splitEvents(t, s.events)
	if t.Failed() {
		return
	}
	seen := map[uint64]runtime.Event{}
	groupCancel := map[string]uint64{} // group name → Seq of its cancel_requested
	for _, ev := range s.events {
		seen[ev.Seq] = ev
		if ev.Kind == runtime.KindGroupCancelRequested {
			if _, ok := groupCancel[ev.Group]; ok {
				t.Errorf("group %s: two cancel_requested events", ev.Group)
			}
			groupCancel[ev.Group] = ev.Seq
		}
	}
	logs := map[uint64]*taskLog{}
	for _, rt := range s.tasks {
		sp := rt.spec()
		l := checkTaskEvents(t, sp, byTask[rt.task.ID()])
		logs[rt.task.ID()] = l
		if res, ok := checkTaskResult(t, sp, l); ok {
			rt.checkOutcome(res, l, badTask(t, sp, l))
		}
	}
	if len(byTask) != len(s.tasks) {
		t.Errorf("%d tasks have events, %d were spawned", len(byTask), len(s.tasks))
	}
	if t.Failed() {
		return
	}
	taskGroup := map[uint64]string{}
	for _, rt := range s.tasks {
		taskGroup[rt.task.ID()] = rt.task.Group()
	}
	for _, sn := range s.snaps {
		checkSnapshotLogs(t, sn.snap, logs, snapScope{
			group:         func(gs runtime.GroupSnapshot) bool { return randWithin(gs.Name, sn.snap.Name) },
			task:          func(id uint64) bool { return randWithin(taskGroup[id], sn.snap.Name) },
			groupCanceled: func(id, seq uint64) bool { return randCanceledBy(taskGroup[id], seq, groupCancel) },
		})
	}
	s.checkShutdowns(logs, taskGroup, groupCancel, seen)
	failFast, failed := 0, 0
	for _, g := range s.tree.All() {
		if randomwork.CheckErr(t, g.G, s.events) != nil {
			failed++
		}
		if g.CancelOnError {
			failFast++
		}
	}
	t.Logf("%d tasks, %d groups (%d fail fast, %d failed), %d events, %d snapshots, %d shutdowns",
		len(s.tasks), s.tree.Len(), failFast, failed, len(s.events), len(s.snaps), len(s.shutdowns))
}

// checkOutcome checks rt's Result, beyond checkTaskResult, against its
// kind.
func (rt *randTask) checkOutcome(res runtime.Result, l *taskLog, bad func(format string, args ...any)) {
	o := res.Outcome
	want := map[randomwork.Kind][]runtime.Outcome{
		randomwork.OK:       {runtime.Success, runtime.Canceled},
		randomwork.Err:      {runtime.Error, runtime.Canceled},
		randomwork.Panic:    {runtime.Panic},
		randomwork.Polite:   {runtime.Canceled},
		randomwork.Stubborn: {runtime.Canceled},
		randomwork.Sleepy:   {runtime.Success, runtime.Canceled},
		randomwork.Goexit:   {runtime.Error},
		randomwork.Every:    {runtime.Success, runtime.Canceled, runtime.Panic},
	}[rt.kind]
	// Any task may be aborted at a deadline, even before it starts.
	if want = append(want, runtime.Aborted); !slices.Contains(want, o) {
		bad("outcome %v for kind %s", o, rt.kind)
	}
	switch {
	case o == runtime.Error && rt.kind == randomwork.Err && res.Err != rt.err,
		o == runtime.Error && rt.kind == randomwork.Goexit && res.Err != runtime.ErrGoexit:
		bad("outcome %v with err %v", o, res.Err)
	}
	// A task whose cause is the one its own Cancel gave was canceled by that
	// call, which must have been reported.
	if res.Cause != nil && strings.HasPrefix(res.Cause.Error(), "random task cancel") && l.cancel == nil {
		bad("canceled by Task.Cancel (%v) without a cancel_requested event", res.Cause)
	}
}

func randWithin(group, root string) bool { return group == root || strings.HasPrefix(group, root+".") }

// canceledBy reports whether a cancel_requested event of group or an
// ancestor has a Seq <= seq.
func randCanceledBy(group string, seq uint64, groupCancel map[string]uint64) bool {
	for name := group; ; {
		if s, ok := groupCancel[name]; ok && s <= seq {
			return true
		}
		i := strings.LastIndexByte(name, '.')
		if i < 0 {
			return false
		}
		name = name[:i]
	}
}

func (s *randState) checkShutdowns(logs map[uint64]*taskLog, taskGroup map[uint64]string, groupCancel map[string]uint64, seen map[uint64]runtime.Event) {
	t := s.t
	started := map[string]uint64{}
	for _, ev := range s.events {
		switch ev.Kind {
		case runtime.KindGroupShutdownStarted:
			if _, dup := started[ev.Group]; dup {
				t.Errorf("group %s: second shutdown_started", ev.Group)
			}
			started[ev.Group] = ev.Seq
		case runtime.KindGroupShutdownDone:
			st, ok := started[ev.Group]
			if !ok {
				t.Errorf("group %s: shutdown_finished without shutdown_started", ev.Group)
				continue
			}
			var ae *runtime.AbortError
			if errors.As(ev.Err, &ae) != (ev.Aborted > 0) || (ae != nil && len(ae.Aborted) != ev.Aborted) {
				t.Errorf("group %s: shutdown_finished Aborted=%d err=%v", ev.Group, ev.Aborted, ev.Err)
			}
			// Drained: tasks of the subtree that ended on their own during
			// the shutdown; those that ended after its cancel request (its
			// own, when it made one) were certainly live at the close.
			hi, lo := 0, 0
			cs, hasCancel := groupCancel[ev.Group]
			if !hasCancel || cs < st || !strings.Contains(seen[cs].Err.Error(), "shut down") {
				cs = ev.Seq
			}
			var abortedIDs []uint64
			for id, l := range logs {
				if l.rejected || !randWithin(taskGroup[id], ev.Group) || l.spawned > ev.Seq {
					continue
				}
				if !l.aborted && l.end > st && l.end < ev.Seq {
					hi++
					if l.end > cs && l.spawned < st {
						lo++
					}
				}
				if l.aborted && l.end > st && l.end < ev.Seq {
					abortedIDs = append(abortedIDs, id)
				}
				if l.spawned < st && l.end > ev.Seq {
					t.Errorf("group %s: task %d (spawned %d) ends at %d, after shutdown_finished %d", ev.Group, id, l.spawned, l.end, ev.Seq)
				}
			}
			if ev.Drained < lo || ev.Drained > hi {
				t.Errorf("group %s: shutdown_finished Drained=%d, want between %d and %d (started %d, cancel %d, finished %d)", ev.Group, ev.Drained, lo, hi, st, cs, ev.Seq)
				for id, l := range logs {
					if randWithin(taskGroup[id], ev.Group) && l.spawned < ev.Seq && l.end > st-20 {
						t.Logf("  task %d: %s", id, l.dump())
					}
				}
			}
			if ae != nil {
				for _, info := range ae.Aborted {
					if !slices.Contains(abortedIDs, info.ID) {
						sort.Slice(abortedIDs, func(i, j int) bool { return abortedIDs[i] < abortedIDs[j] })
						t.Errorf("group %s: AbortError lists task %d, aborted events in the shutdown: %v", ev.Group, info.ID, abortedIDs)
					}
				}
			}
		}
	}
	for _, sd := range s.shutdowns {
		var ae *runtime.AbortError
		if errors.As(sd.err, &ae) && ae.Group != sd.group.G.Name() {
			t.Errorf("Shutdown(%s) returned an AbortError of %s", sd.group.G.Name(), ae.Group)
		}
	}
}
