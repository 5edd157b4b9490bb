package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// auditState is a tree of uniquely named groups, the tasks spawned in it
// and the snapshots taken, shared by the workers of one lock-audit run.
type auditState struct {
	release chan struct{}
	top     *runtime.Group

	mu     sync.Mutex
	groups []*runtime.Group
	tasks  []taskSpec
	snaps  []runtime.GroupSnapshot
	named  atomic.Int64
}

func (s *auditState) pick(rng *rand.Rand) *runtime.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[rng.IntN(len(s.groups))]
}

func (s *auditState) add(sp taskSpec) {
	s.mu.Lock()
	s.tasks = append(s.tasks, sp)
	s.mu.Unlock()
}

// body returns a plain task's fn: it returns, fails, panics, waits for its
// cancellation, ignores it until released, or spawns a child tied to its
// own context (WithCancelOn) in another group and returns.
func (s *auditState) body(rng *rand.Rand, g *runtime.Group) func(context.Context) error {
	switch rng.IntN(7) {
	case 0:
		return func(context.Context) error { return nil }
	case 1:
		return func(context.Context) error { return errors.New("audit failure") }
	case 2:
		return func(context.Context) error { panic("audit boom") }
	case 3:
		return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	case 4:
		release := s.release
		return func(context.Context) error { <-release; return nil }
	case 5:
		other := s.pick(rng)
		return func(ctx context.Context) error {
			c := other.Go("child", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, runtime.WithCancelOn(ctx))
			s.add(taskSpec{task: c, groupID: other.ID(), cancelOn: true})
			return nil
		}
	}
	return func(ctx context.Context) error {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Microsecond):
		}
		return nil
	}
}

func (s *auditState) op(rng *rand.Rand) {
	switch n := rng.IntN(100); {
	case n < 10:
		p := s.pick(rng)
		var opts []runtime.GroupOption
		if rng.IntN(3) == 0 {
			opts = append(opts, runtime.CancelOnError())
		}
		g := p.Group("g"+strconv.FormatInt(s.named.Add(1), 10), opts...)
		if rng.IntN(3) == 0 {
			_ = g.Context().Done() // pins it until canceled
		}
		s.mu.Lock()
		s.groups = append(s.groups, g)
		s.mu.Unlock()
	case n < 40:
		g := s.pick(rng)
		var opts []runtime.TaskOption
		cancelOn := false
		if rng.IntN(5) == 0 {
			opts, cancelOn = append(opts, runtime.WithCancelOn(s.pick(rng).Context())), true
		}
		s.add(taskSpec{task: g.Go("plain", s.body(rng, g), opts...), groupID: g.ID(), cancelOn: cancelOn})
	case n < 50:
		g := s.pick(rng)
		mode, release := rng.IntN(4), s.release
		var runs atomic.Int64
		s.add(taskSpec{task: g.Every("every", 50*time.Microsecond, func(ctx context.Context) error {
			r := runs.Add(1)
			switch mode {
			case 1:
				return errors.New("run failed")
			case 2:
				if r >= 3 {
					return runtime.ErrStop
				}
			case 3:
				if r >= 2 {
					<-release
				}
			}
			return nil
		}), groupID: g.ID(), every: true})
	case n < 58:
		s.mu.Lock()
		var tk *runtime.Task
		if len(s.tasks) > 0 {
			tk = s.tasks[rng.IntN(len(s.tasks))].task
		}
		s.mu.Unlock()
		if tk != nil {
			tk.Cancel(fmt.Errorf("audit cancel %d", rng.IntN(100)))
		}
	case n < 62:
		if g := s.pick(rng); g != s.top || rng.IntN(4) == 0 {
			g.Cancel(errors.New("audit group cancel"))
		}
	case n < 70:
		g := s.pick(rng)
		if g == s.top {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(3))*100*time.Microsecond)
		if rng.IntN(2) == 0 {
			// A descendant shut down at once, with a deadline passed, and
			// a group made and spawned on under the closing group.
			var wg sync.WaitGroup
			wg.Go(func() { _ = g.Shutdown(ctx) })
			wg.Go(func() {
				late := g.Group("late" + strconv.FormatInt(s.named.Add(1), 10))
				s.add(taskSpec{task: late.Go("late", func(context.Context) error { return nil }), groupID: late.ID()})
				_ = late.Shutdown(expired())
			})
			wg.Wait()
		} else {
			_ = g.Shutdown(ctx)
		}
		cancel()
	case n < 85:
		g := s.pick(rng)
		snap := g.Snapshot()
		s.mu.Lock()
		s.snaps = append(s.snaps, snap)
		s.mu.Unlock()
	case n < 92:
		_ = s.pick(rng).Active()
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Microsecond)
		_ = s.pick(rng).Wait(ctx)
		cancel()
	}
}

// auditRounds is how many supervisors TestLockAuditChurn runs through
// (LOCK_AUDIT_ROUNDS overrides it, for hunting).
var auditRounds = func() int {
	if n, err := strconv.Atoi(os.Getenv("LOCK_AUDIT_ROUNDS")); err == nil {
		return n
	}
	return 4
}()

// TestLockAuditChurn: workers make groups (fail-fast ones, pinned ones),
// spawn plain and periodic tasks (some stuck until released, some tied
// to another group's context or to a task's own context with
// WithCancelOn), cancel tasks and groups, shut groups down with passed or
// short deadlines (a descendant made and shut down meanwhile), take
// snapshots, list Active and Wait, all at once. Nothing deadlocks; every
// task has the events of its lifecycle, one finished event and a closed
// Done; every snapshot agrees with the events at its Seq; once every
// abandoned goroutine has returned, Abandoned is 0 and the tree empty.
// Rounds alternate observed and unobserved supervisors (the one-step end
// of unobserved tasks). Each round runs in a synctest bubble, so that
// synctest.Wait tells when every abandoned goroutine has reported.
func TestLockAuditChurn(t *testing.T) {
	for round := range auditRounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) { auditRun(t, uint64(round), round%2 == 0) })
		if t.Failed() {
			return
		}
	}
}

func auditRun(t *testing.T, seed uint64, observed bool) {
	synctest.Test(t, func(t *testing.T) { auditBubble(t, seed, observed) })
}

func auditBubble(t *testing.T, seed uint64, observed bool) {
	rec := &runtimetest.Recorder{}
	var opts []runtime.Option
	if observed {
		opts = append(opts, runtime.WithObserver(rec))
	}
	sup := runtime.New("la", opts...)
	s := &auditState{release: make(chan struct{})}
	s.top = sup.Group("top")
	s.groups = []*runtime.Group{s.top}
	runWorkers(seed, 4, 250, s.op)
	_ = sup.Shutdown(expired())
	close(s.release)
	synctest.Wait() // every abandoned goroutine has returned and reported
	if n := sup.Abandoned(); n != 0 {
		t.Errorf("Abandoned() = %d once every goroutine returned", n)
	}
	if snap := sup.Snapshot(); len(snap.Groups) != 0 || len(snap.Tasks) != 0 {
		t.Errorf("after Shutdown and every late exit: %d groups, %d tasks", len(snap.Groups), len(snap.Tasks))
	}
	if len(sup.Active()) != 0 {
		t.Errorf("Active lists %d tasks at the end", len(sup.Active()))
	}
	if !observed {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sp := range s.tasks {
			if !isDone(sp.task) {
				t.Errorf("task %d (%s) not done at the end", sp.task.ID(), sp.task.Name())
			}
		}
		return
	}
	evs := rec.Events()
	byTask, _ := splitEvents(t, evs)
	logs := map[uint64]*taskLog{}
	taskGroup := map[uint64]string{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.tasks {
		l := checkTaskEvents(t, sp, byTask[sp.task.ID()])
		logs[sp.task.ID()] = l
		taskGroup[sp.task.ID()] = sp.task.Group()
		checkTaskResult(t, sp, l)
		if t.Failed() {
			return
		}
	}
	if len(byTask) != len(s.tasks) {
		t.Errorf("%d tasks have events, %d were spawned", len(byTask), len(s.tasks))
	}
	within := func(group, root string) bool { return group == root || strings.HasPrefix(group, root+".") }
	for _, snap := range s.snaps {
		checkSnapshotLogs(t, snap, logs, snapScope{
			group: func(gs runtime.GroupSnapshot) bool { return within(gs.Name, snap.Name) },
			task:  func(id uint64) bool { return within(taskGroup[id], snap.Name) },
		})
		if t.Failed() {
			return
		}
	}
	t.Logf("%d groups, %d tasks, %d snapshots, %d events", len(s.groups), len(s.tasks), len(s.snaps), len(evs))
}
