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

	// The recorded events, all and by task in delivery order; set by check.
	events []runtime.Event
	byTask map[uint64][]runtime.Event

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
			if !randIsDone(rt.task) {
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
		if !randIsDone(rt.task) {
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

func randIsDone(t *runtime.Task) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

func randRun(t *testing.T, seed uint64) {
	obs := &runtimetest.Recorder{}
	sup := runtime.New("random", runtime.WithObserver(obs))
	s := &randState{t: t, sup: sup, obs: obs, release: make(chan struct{})}
	top := sup.Group("top")
	s.tree = randomwork.NewTree(top)
	var wg sync.WaitGroup
	for w := range 6 {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for range 150 {
				s.op(rng)
			}
		})
	}
	wg.Wait()
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

type randTaskLog struct {
	spawned, end, late uint64 // Seqs; end is finished or aborted
	finished           *runtime.Event
	aborted, rejected  bool
	runs               []uint64 // Seqs of run_started
	cancelSeq          uint64
}

func (s *randState) check() {
	t := s.t
	if t.Failed() {
		return
	}
	s.events, s.byTask = s.obs.Events(), map[uint64][]runtime.Event{}
	for _, ev := range s.events {
		if ev.TaskID != 0 {
			s.byTask[ev.TaskID] = append(s.byTask[ev.TaskID], ev)
		}
	}
	seen := map[uint64]runtime.Event{}
	groupCancel := map[string]uint64{} // group name → Seq of its cancel_requested
	for _, ev := range s.events {
		if prev, ok := seen[ev.Seq]; ok || ev.Seq == 0 {
			t.Fatalf("Seq %d used twice (or zero): %s and %s", ev.Seq, prev.Kind, ev.Kind)
		}
		seen[ev.Seq] = ev
		if ev.Kind == runtime.KindGroupCancelRequested {
			if _, ok := groupCancel[ev.Group]; ok {
				t.Errorf("group %s: two cancel_requested events", ev.Group)
			}
			groupCancel[ev.Group] = ev.Seq
		}
	}
	logs := map[uint64]*randTaskLog{}
	for id, evs := range s.byTask {
		logs[id] = s.checkTask(id, evs)
	}
	for _, rt := range s.tasks {
		s.checkResult(rt, logs[rt.task.ID()], s.byTask[rt.task.ID()])
	}
	if len(logs) != len(s.tasks) {
		t.Errorf("%d tasks have events, %d were spawned", len(logs), len(s.tasks))
	}
	if t.Failed() {
		return
	}
	taskGroup := map[uint64]string{}
	for _, rt := range s.tasks {
		taskGroup[rt.task.ID()] = rt.task.Group()
	}
	for _, sn := range s.snaps {
		s.checkSnapshot(sn, logs, taskGroup, groupCancel)
	}
	s.checkShutdowns(logs, taskGroup, groupCancel, seen)
	failFast, failed := 0, 0
	for _, g := range s.tree.All() {
		if randomwork.CheckErr(t, g.G, s.events) != nil {
			failed++
			if !g.CancelOnError {
				t.Errorf("group %s without CancelOnError: Err() = %v", g.G.Name(), g.G.Err())
			}
		}
		if g.CancelOnError {
			failFast++
		}
	}
	t.Logf("%d tasks, %d groups (%d fail fast, %d failed), %d events, %d snapshots, %d shutdowns",
		len(s.tasks), s.tree.Len(), failFast, failed, len(s.events), len(s.snaps), len(s.shutdowns))
}

// checkTask checks one task's events, in delivery order, against the
// lifecycle grammar.
func (s *randState) checkTask(id uint64, evs []runtime.Event) *randTaskLog {
	t := s.t
	l := &randTaskLog{}
	bad := func(format string, args ...any) {
		t.Helper()
		var b strings.Builder
		for _, ev := range evs {
			fmt.Fprintf(&b, "\n\t%d %s run=%d outcome=%v", ev.Seq, ev.Kind, ev.Run, ev.Outcome)
		}
		t.Errorf("task %d: "+format+"%s", append(append([]any{id}, args...), b.String())...)
	}
	if len(evs) == 0 || evs[0].Kind != runtime.KindTaskSpawned {
		bad("first event is not spawned")
		return l
	}
	openRun := uint64(0)
	for i, ev := range evs {
		if i > 0 && ev.Seq <= evs[i-1].Seq {
			bad("events out of Seq order")
			return l
		}
		if i > 0 && ev.Kind == runtime.KindTaskSpawned {
			bad("second spawned")
		}
		if l.late != 0 {
			bad("event %s after late_exit", ev.Kind)
		}
		if l.finished != nil && ev.Kind != runtime.KindTaskLateExit {
			bad("event %s after finished", ev.Kind)
		}
		switch ev.Kind {
		case runtime.KindTaskSpawned:
			l.spawned = ev.Seq
			l.rejected = ev.Rejected
		case runtime.KindTaskRejected:
			if !l.rejected || i != 1 {
				bad("unexpected rejected")
			}
		case runtime.KindTaskRunStarted:
			if l.aborted || l.end != 0 {
				bad("run_started after the end")
			}
			if openRun != 0 {
				bad("run_started while run %d open", openRun)
			}
			l.runs = append(l.runs, ev.Seq)
			if ev.Run != uint64(len(l.runs)) {
				bad("run_started numbered %d, want %d", ev.Run, len(l.runs))
			}
			openRun = ev.Run
		case runtime.KindTaskRunFinished:
			if openRun == 0 || ev.Run != openRun {
				bad("run_finished %d with open run %d", ev.Run, openRun)
			}
			if l.aborted != (ev.Outcome == runtime.Aborted) {
				bad("run_finished outcome %v, aborted=%v", ev.Outcome, l.aborted)
			}
			openRun = 0
		case runtime.KindTaskCancelRequested:
			if l.cancelSeq != 0 {
				bad("second cancel_requested")
			}
			if l.end != 0 {
				bad("cancel_requested after the end")
			}
			l.cancelSeq = ev.Seq
		case runtime.KindTaskAborted:
			if l.end != 0 {
				bad("aborted after the end")
			}
			l.aborted, l.end = true, ev.Seq
		case runtime.KindTaskFinished:
			if openRun != 0 {
				bad("finished with run %d open", openRun)
			}
			if l.aborted != (ev.Outcome == runtime.Aborted) {
				bad("finished outcome %v, aborted=%v", ev.Outcome, l.aborted)
			}
			if ev.Rejected != l.rejected {
				bad("finished Rejected=%v", ev.Rejected)
			}
			if l.end == 0 {
				l.end = ev.Seq
			}
			e := ev
			l.finished = &e
		case runtime.KindTaskLateExit:
			if !l.aborted || l.finished == nil {
				bad("late_exit of a task not aborted and finished")
			}
			l.late = ev.Seq
		default:
			bad("unexpected kind %s", ev.Kind)
		}
	}
	if l.finished == nil {
		bad("no finished event")
	}
	if l.aborted && l.late == 0 {
		bad("aborted, no late_exit after every goroutine returned")
	}
	return l
}

func randSameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a == b || a.Error() == b.Error()
}

func (s *randState) checkResult(rt *randTask, l *randTaskLog, evs []runtime.Event) {
	t := s.t
	id := rt.task.ID()
	if !randIsDone(rt.task) {
		t.Errorf("task %d: Done not closed at the end", id)
		return
	}
	if l == nil || l.finished == nil {
		return
	}
	res, fin := rt.task.Result(), l.finished
	if res.Outcome != fin.Outcome || !randSameErr(res.Err, fin.Err) || !randSameErr(res.Cause, fin.Cause) || res.Duration != fin.Duration {
		t.Errorf("task %d (%s): Result %+v, finished event outcome=%v err=%v cause=%v duration=%v",
			id, rt.kind, res, fin.Outcome, fin.Err, fin.Cause, fin.Duration)
	}
	o := res.Outcome
	switch {
	case l.rejected:
		if o != runtime.Canceled || !errors.Is(res.Err, runtime.ErrClosed) {
			t.Errorf("task %d: rejected with %v %v", id, o, res.Err)
		}
		return
	case o == runtime.Aborted:
		if res.Err != runtime.ErrAborted {
			t.Errorf("task %d: aborted with err %v", id, res.Err)
		}
		return
	}
	if (o == runtime.Canceled && res.Cause == nil) || ((o == runtime.Success || (o == runtime.Error && rt.kind != randomwork.Goexit)) && res.Cause != nil) {
		t.Errorf("task %d: outcome %v with cause %v", id, o, res.Cause)
	}
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
	if !slices.Contains(want, o) {
		t.Errorf("task %d (%s): outcome %v", id, rt.kind, o)
	}
	switch {
	case o == runtime.Error && rt.kind == randomwork.Err && res.Err != rt.err,
		o == runtime.Error && rt.kind == randomwork.Goexit && res.Err != runtime.ErrGoexit,
		o == runtime.Success && res.Err != nil:
		t.Errorf("task %d (%s): outcome %v with err %v", id, rt.kind, o, res.Err)
	}
	if o == runtime.Panic {
		var pe *runtime.PanicError
		if !errors.As(res.Err, &pe) {
			t.Errorf("task %d: panic outcome with err %v", id, res.Err)
		}
	}
	// A task whose cause is the one its own Cancel gave was canceled by that
	// call, which must have been reported.
	if res.Cause != nil && strings.HasPrefix(res.Cause.Error(), "random task cancel") && l.cancelSeq == 0 {
		t.Errorf("task %d: canceled by Task.Cancel (%v) without a cancel_requested event", id, res.Cause)
	}
	// Only a task spawned WithCancelOn is canceled from outside.
	if errors.Is(res.Cause, runtime.ErrExternal) && !rt.sp.CancelOn {
		t.Errorf("task %d (%+v): external cause %v", id, rt.sp, res.Cause)
	}
	for _, ev := range evs {
		if ev.Kind == runtime.KindTaskCancelRequested && (ev.Err == nil || ev.Cause == nil) {
			t.Errorf("task %d: cancel_requested without err/cause: %v %v", id, ev.Err, ev.Cause)
		}
		if ev.LongRunning != rt.sp.LongRunning {
			t.Errorf("task %d (%+v): %s event with LongRunning=%v", id, rt.sp, ev.Kind, ev.LongRunning)
		}
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

func (s *randState) checkSnapshot(sn randSnap, logs map[uint64]*randTaskLog, taskGroup map[uint64]string, groupCancel map[string]uint64) {
	t := s.t
	snap := sn.snap
	S := snap.Seq
	listed := map[uint64]runtime.TaskState{}
	var walk func(gs runtime.GroupSnapshot) (r, c, a int)
	walk = func(gs runtime.GroupSnapshot) (r, c, a int) {
		if gs.Seq != S {
			t.Errorf("snapshot %s: nested Seq %d != %d", gs.Name, gs.Seq, S)
		}
		var lastID uint64
		for _, info := range gs.Tasks {
			if info.Group != gs.Name {
				t.Errorf("snapshot %s lists task %d of group %s", gs.Name, info.ID, info.Group)
			}
			if info.ID <= lastID {
				t.Errorf("snapshot %s: tasks not in spawn order (%d after %d)", gs.Name, info.ID, lastID)
			}
			lastID = info.ID
			if _, dup := listed[info.ID]; dup {
				t.Errorf("snapshot %s: task %d listed twice", snap.Name, info.ID)
			}
			listed[info.ID] = info.State
			switch info.State {
			case runtime.Running:
				r++
			case runtime.Canceling:
				c++
			case runtime.Abandoned:
				a++
			}
			l := logs[info.ID]
			if l == nil {
				t.Errorf("snapshot Seq %d lists unknown task %d", S, info.ID)
				continue
			}
			var runs uint64
			for _, rs := range l.runs {
				if rs <= S {
					runs++
				}
			}
			switch {
			case l.rejected || l.spawned > S:
				t.Errorf("snapshot Seq %d lists task %d spawned at %d (rejected=%v)", S, info.ID, l.spawned, l.rejected)
			case info.Runs != runs:
				t.Errorf("snapshot Seq %d: task %d Runs=%d, %d run_started events <= Seq (runs at %v)", S, info.ID, info.Runs, runs, l.runs)
			case info.State == runtime.Abandoned:
				if !l.aborted || l.end > S || (l.late != 0 && l.late <= S) {
					t.Errorf("snapshot Seq %d: task %d abandoned; aborted=%v end=%d late=%d", S, info.ID, l.aborted, l.end, l.late)
				}
			case info.State == runtime.Running || info.State == runtime.Canceling:
				if l.end <= S {
					t.Errorf("snapshot Seq %d: task %d %v but ended at Seq %d", S, info.ID, info.State, l.end)
				}
				// A group cancel is a group event: it only binds a task whose
				// context was done when fn returned (outcome canceled/aborted).
				ctxDone := l.finished != nil && (l.finished.Outcome == runtime.Canceled || l.finished.Outcome == runtime.Aborted)
				if info.State == runtime.Running && ((l.cancelSeq != 0 && l.cancelSeq <= S) || (ctxDone && randCanceledBy(taskGroup[info.ID], S, groupCancel))) {
					t.Errorf("snapshot Seq %d: task %d running after a cancel_requested event (task %d)%s", S, info.ID, l.cancelSeq, s.dump(info.ID))
				}
			default:
				t.Errorf("snapshot: task %d in state %v", info.ID, info.State)
			}
		}
		for _, cg := range gs.Groups {
			cr, cc, ca := walk(cg)
			r, c, a = r+cr, c+cc, a+ca
		}
		if gs.Running != r || gs.Canceling != c || gs.Abandoned != a {
			t.Errorf("snapshot %s: counts %d/%d/%d, tasks say %d/%d/%d", gs.Name, gs.Running, gs.Canceling, gs.Abandoned, r, c, a)
		}
		return r, c, a
	}
	walk(snap)
	// Completeness: every task of the subtree live (or abandoned) at S.
	for id, l := range logs {
		if l.rejected || l.spawned > S || !randWithin(taskGroup[id], snap.Name) {
			continue
		}
		live := l.end > S || (l.aborted && (l.late == 0 || l.late > S))
		if _, ok := listed[id]; live && !ok {
			t.Errorf("snapshot %s Seq %d misses task %d (spawned %d, end %d, late %d)", snap.Name, S, id, l.spawned, l.end, l.late)
		}
	}
}

func (s *randState) checkShutdowns(logs map[uint64]*randTaskLog, taskGroup map[uint64]string, groupCancel map[string]uint64, seen map[uint64]runtime.Event) {
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
						t.Logf("  task %d: %s", id, s.dump(id))
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

func (s *randState) dump(id uint64) string {
	var b strings.Builder
	for _, ev := range s.byTask[id] {
		fmt.Fprintf(&b, "\n\t%d %s %s run=%d outcome=%v err=%v cause=%v", ev.Seq, ev.Kind, ev.Task, ev.Run, ev.Outcome, ev.Err, ev.Cause)
	}
	return b.String()
}
