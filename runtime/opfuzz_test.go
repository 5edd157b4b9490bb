package runtime_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/internal/randomwork"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// FuzzOps interprets its input as a sequence of operations on a
// supervisor (spawns of every kind of task and option, sub-groups, task
// and group cancels, Wait and Shutdown with short or expired deadlines,
// fake sleeps, snapshots, Active), in a synctest bubble, and checks the
// outcome against the documented contract: the event log's grammar and
// Seq numbers, results against finished events, causes, snapshots against
// the events up to their Seq, Wait and Shutdown promises, Group.Err.
//
//	go test -run XXX -fuzz FuzzOps -fuzztime 5m -parallel 1 ./runtime
func FuzzOps(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 4, 0, 0, 5, 0, 0, 7, 0, 0})
	// Sub-groups (fail fast), failing and blocking tasks, cancels, a wait.
	f.Add([]byte{3, 0, 1, 0, 1, 1, 0, 0, 4, 0, 1, 1, 0, 0, 6, 1, 3, 10, 0, 11, 0, 8, 2})
	// Periodic tasks with every run behaviour, a snapshot, a shutdown.
	f.Add([]byte{2, 0, 2, 0, 2, 3, 2, 0, 1, 0, 6, 4, 8, 3, 10, 0, 4, 0, 0, 8, 1, 7, 0, 0})
	// Stubborn tasks aborted at an expired deadline, then released.
	f.Add([]byte{0, 0, 5, 0, 0, 0, 5, 1, 2, 0, 6, 0, 0, 7, 0, 0, 13, 0, 10, 0, 13, 1, 9})
	// Nested groups, a reused name, external contexts, background shutdowns.
	f.Add([]byte{3, 0, 0, 0, 3, 1, 0, 1, 3, 0, 0, 0, 0, 2, 4, 1, 0, 3, 6, 3, 12, 0, 15, 1, 2, 15, 2, 0, 10, 0, 9, 7, 0, 1, 11, 0})
	// Every tasks canceled between runs, with cancel-on contexts and parents.
	f.Add([]byte{2, 0, 0, 7, 2, 6, 5, 2, 0, 1, 3, 0, 1, 5, 8, 3, 4, 0, 1, 8, 3, 4, 1, 0, 12, 1, 8, 2, 10, 0, 5, 0, 1, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) { runOps(t, data) })
	})
}

// opMaxOps bounds the operations one input runs.
const opMaxOps = 64

type opKey struct{}

type opGroup struct {
	g        opGroupAPI
	id       uint64
	parent   int // index in opState.groups; -1 for the root
	failFast bool
	closed   bool // a Shutdown of it returned
}

// opGroupAPI is what *runtime.Group and *runtime.Supervisor share.
type opGroupAPI interface {
	Go(name string, fn func(ctx context.Context) error, opts ...runtime.TaskOption) *runtime.Task
	Every(name string, interval time.Duration, fn func(ctx context.Context) error, opts ...runtime.TaskOption) *runtime.Task
	Group(name string, opts ...runtime.GroupOption) *runtime.Group
	Cancel(cause error)
	Wait(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Snapshot() runtime.GroupSnapshot
	Active() []runtime.TaskInfo
	Err() error
	ID() uint64
	Name() string
}

type opTask struct {
	task     *runtime.Task
	group    int
	every    bool
	behave   byte   // Go tasks: the body; Every tasks: unused
	pattern  []byte // Every tasks: run behaviours
	err      error  // what a failing body returns
	release  chan struct{}
	cancelOn bool
	parent   bool
	long     bool

	mu      sync.Mutex
	ctx     context.Context // the context fn got, kept to check it ends
	seen    error           // the cause fn saw, when it waited for its context
	badVal  bool            // WithParent's value not visible
	started bool

	unlisted bool // Active missed it while it was not done
}

type opSnap struct {
	snap  runtime.GroupSnapshot
	group int
}

type opState struct {
	*randomwork.Input // the fuzz input, decoded into operations

	t       *testing.T
	sup     *runtime.Supervisor
	rec     *runtimetest.Recorder
	groups  []*opGroup
	tasks   []*opTask
	exts    []context.Context
	extStop []context.CancelCauseFunc
	parent  context.Context
	snaps   []opSnap
	bg      sync.WaitGroup

	abortMu sync.Mutex
	abortBy map[uint64]string // task ID → the group whose Shutdown's AbortError listed it
}

func (s *opState) pickGroup() int { return int(s.Byte()) % len(s.groups) }

func (s *opState) pickTask() *opTask {
	b := s.Byte()
	if len(s.tasks) == 0 {
		return nil
	}
	return s.tasks[int(b)%len(s.tasks)]
}

// within reports whether group i is group j or one of its descendants.
func (s *opState) within(i, j int) bool {
	for ; i >= 0; i = s.groups[i].parent {
		if i == j {
			return true
		}
	}
	return false
}

// closed reports whether a Shutdown of group i or of an ancestor has
// returned: the group is closed.
func (s *opState) closed(i int) bool {
	for ; i >= 0; i = s.groups[i].parent {
		if s.groups[i].closed {
			return true
		}
	}
	return false
}

// checkSpawn checks that a task spawned on a closed group was rejected.
func (s *opState) checkSpawn(ot *opTask) {
	if !s.closed(ot.group) {
		return
	}
	res := ot.task.Result()
	if !isDone(ot.task) || res.Outcome != runtime.Canceled || !errors.Is(res.Err, runtime.ErrClosed) {
		s.t.Errorf("task %d spawned on closed group %s: done=%v, %+v", ot.task.ID(), s.groups[ot.group].g.Name(), isDone(ot.task), res)
	}
}

func (s *opState) groupIndex(id uint64) int {
	for i, g := range s.groups {
		if g.id == id {
			return i
		}
	}
	return -1
}

func runOps(t *testing.T, data []byte) {
	rec := &runtimetest.Recorder{}
	s := &opState{t: t, Input: randomwork.NewInput(data), rec: rec, abortBy: map[uint64]string{}}
	rootOpts := []runtime.Option{runtime.WithObserver(rec)}
	if len(data) > 0 && data[0]&0x80 != 0 {
		rootOpts = append(rootOpts, runtime.CancelOnError())
	}
	s.sup = runtime.New("fz", rootOpts...)
	s.groups = []*opGroup{{g: s.sup, id: s.sup.ID(), parent: -1, failFast: len(rootOpts) > 1}}
	for range 3 {
		ctx, cancel := context.WithCancelCause(context.Background())
		s.exts, s.extStop = append(s.exts, ctx), append(s.extStop, cancel)
	}
	pctx, pcancel := context.WithCancel(context.WithValue(context.Background(), opKey{}, "parent"))
	pcancel() // canceled: that must not reach the tasks spawned WithParent
	s.parent = pctx

	for n := 0; n < opMaxOps && s.More() && !t.Failed(); n++ {
		s.op()
	}
	s.finish()
}

func (s *opState) taskOpts(ot *opTask) []runtime.TaskOption {
	b := s.Byte()
	var opts []runtime.TaskOption
	if b&1 != 0 {
		opts = append(opts, runtime.WithCancelOn(s.exts[int(b>>4)%len(s.exts)]))
		ot.cancelOn = true
	}
	if b&2 != 0 {
		opts = append(opts, runtime.WithParent(s.parent))
		ot.parent = true
	}
	if b&4 != 0 {
		opts = append(opts, runtime.LongRunning())
		ot.long = true
	}
	if b&8 != 0 {
		opts = append(opts, runtime.WithCancelOn(s.exts[int(b>>6)%len(s.exts)]))
		ot.cancelOn = true
	}
	return opts
}

// body runs behaviour b for task ot (one run of an Every task, or a Go
// task's fn).
func (ot *opTask) body(ctx context.Context, b byte) error {
	ot.mu.Lock()
	if !ot.started {
		ot.started, ot.ctx = true, ctx
		if ot.parent && ctx.Value(opKey{}) != "parent" {
			ot.badVal = true
		}
	}
	ot.mu.Unlock()
	switch b % 9 {
	case 0:
		return nil
	case 1:
		return ot.err
	case 2:
		panic(ot.err)
	case 3:
		goruntime.Goexit()
	case 4: // well-behaved: waits for its context
		<-ctx.Done()
		ot.mu.Lock()
		ot.seen = context.Cause(ctx)
		ot.mu.Unlock()
		return ctx.Err()
	case 5: // stubborn: ignores its context until released
		<-ot.release
		return nil
	case 6:
		time.Sleep(time.Duration(1+b/9%4) * time.Millisecond)
		return nil
	case 7:
		return runtime.ErrStop
	case 8: // sleeps, or less if canceled, then fails
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Millisecond):
		}
		return ot.err
	}
	return nil
}

func (s *opState) op() {
	t := s.t
	switch op := s.Byte() % 16; op {
	case 0, 1: // Go
		gi := s.pickGroup()
		ot := &opTask{group: gi, behave: s.Byte(), release: make(chan struct{})}
		ot.err = s.NewErr("task failure")
		opts := s.taskOpts(ot)
		if ot.behave%9 == 7 {
			ot.behave = 0 // ErrStop means nothing special to Go
		}
		ot.task = s.groups[gi].g.Go(fmt.Sprintf("go%d", ot.behave%9), func(ctx context.Context) error { return ot.body(ctx, ot.behave) }, opts...)
		s.tasks = append(s.tasks, ot)
		s.checkSpawn(ot)
	case 2: // Every
		gi := s.pickGroup()
		interval := time.Duration(1+s.Byte()%5) * time.Millisecond
		ot := &opTask{group: gi, every: true, pattern: []byte{s.Byte(), s.Byte(), s.Byte()}, release: make(chan struct{})}
		ot.err = s.NewErr("run failure")
		opts := s.taskOpts(ot)
		var run int
		var mu sync.Mutex
		ot.task = s.groups[gi].g.Every("every", interval, func(ctx context.Context) error {
			mu.Lock()
			b := ot.pattern[run%len(ot.pattern)]
			run++
			mu.Unlock()
			return ot.body(ctx, b)
		}, opts...)
		s.tasks = append(s.tasks, ot)
		s.checkSpawn(ot)
	case 3: // a sub-group
		pi := s.pickGroup()
		b := s.Byte()
		var opts []runtime.GroupOption
		if b&1 != 0 {
			opts = append(opts, runtime.CancelOnError())
		}
		if b&2 != 0 {
			opts = append(opts, runtime.WithPanicPolicy(runtime.Recover))
		}
		name := []string{"a", "b", "c"}[int(b>>2)%3] // names repeat
		g := s.groups[pi].g.Group(name, opts...)
		s.groups = append(s.groups, &opGroup{g: g, id: g.ID(), parent: pi, failFast: b&1 != 0})
	case 4: // Task.Cancel
		ot := s.pickTask()
		b := s.Byte()
		if ot == nil {
			return
		}
		var cause error
		if b&1 != 0 {
			cause = s.NewErr("task cancel")
		}
		ot.task.Cancel(cause)
	case 5: // Group.Cancel
		gi := s.pickGroup()
		var cause error
		if s.Byte()&1 != 0 {
			cause = s.NewErr("group cancel")
		}
		s.groups[gi].g.Cancel(cause)
	case 6: // Wait with a timeout
		gi := s.pickGroup()
		d := time.Duration(s.Byte()%8) * time.Millisecond
		s.wait(gi, d)
	case 7: // Shutdown with a deadline
		gi := s.pickGroup()
		d := time.Duration(s.Byte()%4) * time.Millisecond
		s.shutdown(gi, d)
	case 8:
		time.Sleep(time.Duration(1+s.Byte()%4) * time.Millisecond)
	case 9:
		synctest.Wait()
	case 10: // Snapshot
		gi := s.pickGroup()
		before := s.doneTasks()
		snap := s.groups[gi].g.Snapshot()
		s.snaps = append(s.snaps, opSnap{snap, gi})
		// A task done before the call has ended, and its end event has
		// a Seq the snapshot reflects.
		for _, info := range snapTasks(snap) {
			if before[info.ID] && info.State != runtime.Abandoned {
				t.Errorf("Snapshot(%s) lists task %d, done before the call, as %v", s.groups[gi].g.Name(), info.ID, info.State)
			}
		}
	case 11: // Active
		gi := s.pickGroup()
		before := s.doneTasks()
		active := s.groups[gi].g.Active()
		listed := map[uint64]bool{}
		for _, info := range active {
			listed[info.ID] = true
			if info.State != runtime.Running && info.State != runtime.Canceling {
				t.Errorf("Active lists task %d in state %v", info.ID, info.State)
			}
			if before[info.ID] {
				t.Errorf("Active(%s) lists task %d, done before the call", s.groups[gi].g.Name(), info.ID)
			}
		}
		for _, ot := range s.tasks {
			inside := s.within(ot.group, gi)
			if listed[ot.task.ID()] && !inside {
				t.Errorf("Active(%s) lists task %d of %s", s.groups[gi].g.Name(), ot.task.ID(), ot.task.Group())
			}
			if inside && !listed[ot.task.ID()] && !isDone(ot.task) {
				// Only a task that an abort is reporting (not running
				// any more, but not done yet) may be missing.
				ot.unlisted = true
			}
		}
	case 12: // an external context ends
		i := int(s.Byte()) % len(s.exts)
		s.extStop[i](s.NewErr("external"))
	case 13: // a stubborn task is released
		if ot := s.pickTask(); ot != nil {
			select {
			case <-ot.release:
			default:
				close(ot.release)
			}
		}
	case 14: // Result of a done task agrees with its finished event
		if ot := s.pickTask(); ot != nil && isDone(ot.task) {
			if s.finishedOf(ot.task.ID()) == nil {
				t.Errorf("task %d: Done closed before its finished event was delivered", ot.task.ID())
			}
		}
	case 15: // Shutdown in the background, overlapping what comes next
		gi := s.pickGroup()
		d := time.Duration(s.Byte()%4) * time.Millisecond
		g, before := s.groups[gi].g, s.subtreeTasks(gi)
		s.bg.Go(func() { s.shutdownOf(g, before, d) })
	}
}

// doneTasks returns the IDs of the tasks whose Done is closed.
func (s *opState) doneTasks() map[uint64]bool {
	done := map[uint64]bool{}
	for _, ot := range s.tasks {
		if isDone(ot.task) {
			done[ot.task.ID()] = true
		}
	}
	return done
}

func snapTasks(g runtime.GroupSnapshot) []runtime.TaskInfo {
	out := slices.Clone(g.Tasks)
	for _, c := range g.Groups {
		out = append(out, snapTasks(c)...)
	}
	return out
}

func (s *opState) finishedOf(id uint64) *runtime.Event {
	for _, ev := range s.rec.Events() {
		if ev.TaskID == id && ev.Kind == runtime.KindTaskFinished {
			return &ev
		}
	}
	return nil
}

// subtreeTasks returns the tasks spawned so far in group gi's subtree.
func (s *opState) subtreeTasks(gi int) []*opTask {
	var out []*opTask
	for _, ot := range s.tasks {
		if s.within(ot.group, gi) {
			out = append(out, ot)
		}
	}
	return out
}

func (s *opState) wait(gi int, d time.Duration) {
	t := s.t
	g := s.groups[gi].g
	before := s.subtreeTasks(gi)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := g.Wait(ctx)
	if err == nil {
		// Idle: every task ended, finished events delivered.
		for _, ot := range before {
			if !isDone(ot.task) {
				t.Errorf("Wait(%s) = nil, task %d not done", g.Name(), ot.task.ID())
			} else if s.finishedOf(ot.task.ID()) == nil {
				t.Errorf("Wait(%s) = nil, task %d has no finished event", g.Name(), ot.task.ID())
			}
		}
		return
	}
	var te *runtime.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(%s) = %v, want nil or a *TimeoutError", g.Name(), err)
		return
	}
	for _, info := range te.Active {
		i := slices.IndexFunc(s.tasks, func(ot *opTask) bool { return ot.task.ID() == info.ID })
		if i < 0 || !s.within(s.tasks[i].group, gi) {
			t.Errorf("Wait(%s): TimeoutError lists task %d, not of its subtree", g.Name(), info.ID)
		}
	}
}

func (s *opState) shutdown(gi int, d time.Duration) {
	s.shutdownOf(s.groups[gi].g, s.subtreeTasks(gi), d)
	s.groups[gi].closed = true
}

// shutdownOf shuts g down with a deadline d away (0: expired) and checks
// that the tasks of its subtree spawned before, before, are then done.
func (s *opState) shutdownOf(g opGroupAPI, before []*opTask, d time.Duration) {
	t := s.t
	var ctx context.Context
	var cancel context.CancelFunc
	if d == 0 {
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), d)
	}
	defer cancel()
	err := g.Shutdown(ctx)
	var ae *runtime.AbortError
	switch {
	case err == nil || errors.As(err, &ae):
		// This call (or the first one, whose result it returns) drained
		// the subtree: every task of it is done.
		for _, ot := range before {
			if !isDone(ot.task) {
				t.Errorf("Shutdown(%s) = %v, task %d not done", g.Name(), err, ot.task.ID())
			} else if s.finishedOf(ot.task.ID()) == nil {
				t.Errorf("Shutdown(%s) = %v, task %d has no finished event", g.Name(), err, ot.task.ID())
			}
		}
		if ae != nil {
			if len(ae.Aborted) == 0 || !errors.Is(err, runtime.ErrAborted) {
				t.Errorf("Shutdown(%s): AbortError %v with no tasks", g.Name(), err)
			}
			for _, info := range ae.Aborted {
				if info.State != runtime.Abandoned {
					t.Errorf("Shutdown(%s): aborted task %d in state %v", g.Name(), info.ID, info.State)
				}
				// A task is aborted once, by one Shutdown, and only that
				// call's AbortError lists it (later calls return the same
				// error: the first one's).
				s.abortMu.Lock()
				if by, dup := s.abortBy[info.ID]; dup && by != ae.Group {
					t.Errorf("task %d listed by the AbortErrors of %s and %s", info.ID, by, ae.Group)
				}
				s.abortBy[info.ID] = ae.Group
				s.abortMu.Unlock()
				if info.Group != g.Name() && !strings.HasPrefix(info.Group, g.Name()+".") {
					t.Errorf("Shutdown(%s): AbortError lists task %d, not of its subtree", g.Name(), info.ID)
				}
			}
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// A later call that gave up waiting for the first.
	default:
		t.Errorf("Shutdown(%s) = %v", g.Name(), err)
	}
}

func (s *opState) finish() {
	t := s.t
	s.shutdown(0, 3*time.Millisecond)
	for _, ot := range s.tasks {
		select {
		case <-ot.release:
		default:
			close(ot.release)
		}
	}
	for _, stop := range s.extStop {
		stop(nil)
	}
	s.bg.Wait()
	// Abandoned goroutines may be asleep: let fake time pass until they
	// have all returned.
	for i := 0; i < 100 && s.sup.Abandoned() > 0; i++ {
		time.Sleep(time.Millisecond)
	}
	synctest.Wait()
	if t.Failed() {
		return
	}
	if n := s.sup.Abandoned(); n != 0 {
		t.Errorf("Abandoned() = %d after every goroutine returned", n)
	}
	if a := s.sup.Active(); len(a) != 0 {
		t.Errorf("Active() = %v at the end", a)
	}
	if snap := s.sup.Snapshot(); len(snapTasks(snap)) != 0 || snap.Running+snap.Canceling+snap.Abandoned != 0 {
		t.Errorf("Snapshot() at the end lists %v", snapTasks(snap))
	}
	s.check()
}

// spec is what checkTaskEvents and checkTaskResult know of ot.
func (s *opState) spec(ot *opTask) taskSpec {
	return taskSpec{task: ot.task, groupID: s.groups[ot.group].id, every: ot.every, long: ot.long, cancelOn: ot.cancelOn}
}

func (s *opState) check() {
	t := s.t
	events := s.rec.Events()
	byTask, groupCancels := splitEvents(t, events)
	if len(byTask) != len(s.tasks) {
		t.Errorf("%d tasks have events, %d were spawned", len(byTask), len(s.tasks))
	}
	logs := map[uint64]*taskLog{}
	aborts, lates := 0, 0
	for _, ot := range s.tasks {
		sp := s.spec(ot)
		l := checkTaskEvents(t, sp, byTask[ot.task.ID()])
		logs[ot.task.ID()] = l
		if l.aborted {
			aborts++
		}
		if l.late != 0 {
			lates++
		}
		s.checkAborted(ot, sp, l)
		if res, ok := checkTaskResult(t, sp, l); ok {
			s.checkOutcome(ot, res, badTask(t, sp, l))
		}
	}
	t.Logf("%d tasks, %d groups, %d events, %d aborted, %d snapshots", len(s.tasks), len(s.groups), len(events), aborts, len(s.snaps))
	if aborts != lates {
		t.Errorf("%d aborted tasks, %d late exits", aborts, lates)
	}
	if t.Failed() {
		return
	}
	for _, sn := range s.snaps {
		s.checkSnapshot(sn, logs, groupCancels)
	}
	for gi := range s.groups {
		s.checkErr(gi, logs, groupCancels)
	}
}

// checkAborted checks that a task an AbortError listed, or that Active
// missed while it was not done, was aborted.
func (s *opState) checkAborted(ot *opTask, sp taskSpec, l *taskLog) {
	bad := badTask(s.t, sp, l)
	if _, listed := s.abortBy[ot.task.ID()]; listed && !l.aborted {
		bad("listed by an AbortError, but not aborted")
	}
	if ot.unlisted && !l.aborted {
		bad("Active missed it while it was not done, and it was not aborted")
	}
}

// checkOutcome checks ot's Result, beyond checkTaskResult, against what
// its body did.
func (s *opState) checkOutcome(ot *opTask, res runtime.Result, bad func(format string, args ...any)) {
	o := res.Outcome
	if o == runtime.Panic && !errors.Is(res.Err, ot.err) {
		bad("panic outcome with err %v, fn panicked with %v", res.Err, ot.err)
	}
	if !ot.every {
		var want []runtime.Outcome
		switch ot.behave % 9 {
		case 0, 6:
			want = []runtime.Outcome{runtime.Success, runtime.Canceled}
		case 1, 8:
			want = []runtime.Outcome{runtime.Error, runtime.Canceled}
		case 2:
			want = []runtime.Outcome{runtime.Panic}
		case 3:
			want = []runtime.Outcome{runtime.Error}
		case 4:
			want = []runtime.Outcome{runtime.Canceled}
		case 5:
			want = []runtime.Outcome{runtime.Success, runtime.Canceled}
		}
		// Any task may be aborted at a deadline, even before it starts.
		if want = append(want, runtime.Aborted); !slices.Contains(want, o) {
			bad("outcome %v for behaviour %d", o, ot.behave%9)
		}
		if o == runtime.Error && ot.behave%9 == 3 && res.Err != runtime.ErrGoexit {
			bad("Goexit with err %v", res.Err)
		}
		if o == runtime.Error && ot.behave%9 != 3 && res.Err != ot.err {
			bad("error outcome with err %v, fn returned %v", res.Err, ot.err)
		}
	}
	ot.mu.Lock()
	defer ot.mu.Unlock()
	if ot.badVal {
		bad("WithParent's value not visible to fn")
	}
	if ot.started {
		// Once fn has returned its context is canceled too.
		if ot.ctx.Err() == nil {
			bad("fn's context not done after the end")
		}
		if ot.seen != nil && context.Cause(ot.ctx) != ot.seen {
			bad("fn's context cause changed from %v to %v", ot.seen, context.Cause(ot.ctx))
		}
		if !ot.every && ot.seen != nil && (o == runtime.Canceled || o == runtime.Aborted) && res.Cause != ot.seen {
			bad("Result.Cause %v, fn saw %v", res.Cause, ot.seen)
		}
	}
}

func (s *opState) checkSnapshot(sn opSnap, logs map[uint64]*taskLog, cancels map[uint64][]runtime.Event) {
	taskGroup := map[uint64]int{}
	for _, ot := range s.tasks {
		taskGroup[ot.task.ID()] = ot.group
	}
	checkSnapshotLogs(s.t, sn.snap, logs, snapScope{
		group: func(gs runtime.GroupSnapshot) bool {
			gi := s.groupIndex(gs.ID)
			return gi >= 0 && s.within(gi, sn.group)
		},
		task: func(id uint64) bool { return s.within(taskGroup[id], sn.group) },
		groupCanceled: func(id, seq uint64) bool {
			for i := taskGroup[id]; i >= 0; i = s.groups[i].parent {
				if evs := cancels[s.groups[i].id]; len(evs) > 0 && evs[0].Seq <= seq {
					return true
				}
			}
			return false
		},
	})
}

// checkErr checks Group.Err: the *TaskError of the failure that canceled
// a CancelOnError group when one did, otherwise of one of the group's own
// tasks whose finished event has an error (the first to record it), nil
// when none has.
func (s *opState) checkErr(gi int, logs map[uint64]*taskLog, cancels map[uint64][]runtime.Event) {
	t := s.t
	g := s.groups[gi]
	err := g.g.Err()
	var ownTE *runtime.TaskError // the group's cancel_requested event's, if a failure of its own
	for _, ev := range cancels[g.id] {
		var te *runtime.TaskError
		if errors.As(ev.Err, &te) {
			ownTE = te
		}
	}
	if ownTE != nil && !g.failFast {
		t.Errorf("group %s without CancelOnError: its cancel event names failure %v", g.g.Name(), ownTE)
	}
	var erred, failed []*taskLog // own tasks that ended with an error; those that failed
	for _, ot := range s.tasks {
		l := logs[ot.task.ID()]
		if ot.group != gi || l.finished == nil || l.finished.Err == nil {
			continue
		}
		erred = append(erred, l)
		if o := l.finished.Outcome; o == runtime.Error || o == runtime.Panic {
			failed = append(failed, l)
		}
	}
	te, ok := err.(*runtime.TaskError)
	switch {
	case err == nil:
		if len(erred) > 0 {
			t.Errorf("group %s: Err() = nil, but task %d ended with %v", g.g.Name(), erred[0].finished.TaskID, erred[0].finished.Err)
		}
		return
	case !ok:
		t.Errorf("group %s: Err() = %T %v, not a *TaskError", g.g.Name(), err, err)
		return
	}
	l := logs[te.TaskID]
	if l == nil || !slices.Contains(erred, l) {
		t.Errorf("group %s: Err() names task %d, not one of its own that ended with an error", g.g.Name(), te.TaskID)
		return
	}
	if !sameErr(te.Err, l.finished.Err) {
		t.Errorf("group %s: Err() wraps %v, the task's error is %v", g.g.Name(), te.Err, l.finished.Err)
	}
	if ownTE == nil {
		return
	}
	if te.TaskID != ownTE.TaskID || !slices.Contains(failed, l) {
		t.Errorf("group %s: Err() = %v (outcome %v), its cancel_requested event names %v", g.g.Name(), err, l.finished.Outcome, ownTE)
		return
	}
	first := slices.MinFunc(failed, func(a, b *taskLog) int { return int(a.finished.Seq) - int(b.finished.Seq) })
	if first != l {
		t.Errorf("group %s: Err() names task %d, but task %d failed first (Seq %d < %d)%s%s", g.g.Name(), te.TaskID, first.finished.TaskID, first.finished.Seq, l.finished.Seq, first.dump(), l.dump())
	}
	// The group's event follows the failing task's finished event.
	ev := cancels[g.id][0]
	if ev.Seq < l.finished.Seq {
		t.Errorf("group %s: cancel_requested (Seq %d) before the failure's finished event (Seq %d)", g.g.Name(), ev.Seq, l.finished.Seq)
	}
}
