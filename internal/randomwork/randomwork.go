// Package randomwork is the random concurrent workload of the randomized
// tests (runtime's and telemetry's): seeds, a tree of groups that grows as
// the workload runs, task bodies of every kind, and the deadlines of its
// Waits and Shutdowns. Each test adds operations and checks of its own.
// Input reads the input of the stateful fuzz tests.
package randomwork

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	goruntime "runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// Seeds runs run once per seed, each in a synctest bubble of its own:
// seeds 0 to n-1, or as many as RANDOMIZED_SEEDS says, or only the seed
// RANDOMIZED_SEED names.
func Seeds(t *testing.T, n int, run func(t *testing.T, seed uint64)) {
	if s, err := strconv.Atoi(os.Getenv("RANDOMIZED_SEEDS")); err == nil {
		n = s
	}
	first := uint64(0)
	if s, err := strconv.ParseUint(os.Getenv("RANDOMIZED_SEED"), 10, 64); err == nil {
		first, n = s, 1
	}
	for seed := first; seed < first+uint64(n); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { run(t, seed) })
		})
	}
}

// Group is a group of the tree, with its parent (nil for the root).
type Group struct {
	G             *runtime.Group
	Parent        *Group
	CancelOnError bool // made with runtime.CancelOnError
}

// Within reports whether g is anc or one of its descendants.
func (g *Group) Within(anc *Group) bool {
	for c := g; c != nil; c = c.Parent {
		if c == anc {
			return true
		}
	}
	return false
}

// Tree is the groups the workload made. Safe for concurrent use.
type Tree struct {
	mu     sync.Mutex // guards groups, named
	groups []*Group
	named  int
}

// NewTree returns a tree whose only group is root.
func NewTree(root *runtime.Group) *Tree { return &Tree{groups: []*Group{{G: root}}} }

// Pick returns one of the groups.
func (tr *Tree) Pick(rng *rand.Rand) *Group {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.groups[rng.IntN(len(tr.groups))]
}

// Grow makes a child of a random group, named by name from a fresh name
// ("g1", "g2", ...); a quarter of them cancel on error.
func (tr *Tree) Grow(rng *rand.Rand, name func(string) string) *Group {
	p := tr.Pick(rng)
	tr.mu.Lock()
	tr.named++
	n := tr.named
	tr.mu.Unlock()
	var opts []runtime.GroupOption
	failFast := rng.IntN(4) == 0
	if failFast {
		opts = append(opts, runtime.CancelOnError())
	}
	g := &Group{G: p.G.Group(name(fmt.Sprint("g", n)), opts...), Parent: p, CancelOnError: failFast}
	tr.mu.Lock()
	tr.groups = append(tr.groups, g)
	tr.mu.Unlock()
	return g
}

// Len returns the number of groups.
func (tr *Tree) Len() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.groups)
}

// Kind is a kind of task body.
type Kind int

const (
	OK       Kind = iota // returns nil
	Err                  // returns its error
	Panic                // panics
	Polite               // returns once canceled
	Stubborn             // ignores cancellation until released
	Sleepy               // returns after a few milliseconds, or once canceled
	Goexit               // calls runtime.Goexit
	Every                // periodic: see Run
	Kinds                // the number of kinds
)

var kindNames = [...]string{"ok", "err", "panic", "polite", "stubborn", "sleepy", "goexit", "every"}

func (k Kind) String() string { return kindNames[k] }

// Body returns a task body of kind k (not Every). err is what an Err body
// returns; release ends a Stubborn one.
func Body(k Kind, rng *rand.Rand, err error, release <-chan struct{}) func(context.Context) error {
	switch k {
	case OK:
		return func(context.Context) error { return nil }
	case Err:
		return func(context.Context) error { return err }
	case Panic:
		return func(context.Context) error { panic("random boom") }
	case Polite:
		return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	case Stubborn:
		return func(context.Context) error { <-release; return nil }
	case Sleepy:
		d := time.Duration(rng.IntN(4)) * time.Millisecond
		return func(ctx context.Context) error {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			return nil
		}
	case Goexit:
		return func(context.Context) error { goruntime.Goexit(); return nil }
	}
	panic(fmt.Sprint("randomwork: no plain body of kind ", k))
}

// Run returns the run of a periodic task: it succeeds, fails, stops the
// task after a few runs, panics on its second run, returns once canceled,
// or (with stuck) blocks in its second run until released, to be aborted
// at a shutdown deadline.
func Run(rng *rand.Rand, stuck bool, release <-chan struct{}) func(context.Context) error {
	modes := 5
	if stuck {
		modes = 6
	}
	mode, n := rng.IntN(modes), 0
	return func(ctx context.Context) error {
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
		case 5:
			if n >= 2 {
				<-release
			}
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

// Period is a periodic task's interval: 1 or 2 milliseconds.
func Period(rng *rand.Rand) time.Duration { return time.Duration(1+rng.IntN(2)) * time.Millisecond }

// Deadline returns the context of a Wait or a Shutdown: expired a third of
// the time, otherwise ending within 0 to 2 milliseconds.
func Deadline(rng *rand.Rand) (context.Context, context.CancelFunc) {
	if rng.IntN(3) == 0 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	return context.WithTimeout(context.Background(), time.Duration(rng.IntN(3))*time.Millisecond)
}

// All returns the groups, the root first.
func (tr *Tree) All() []*Group {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]*Group(nil), tr.groups...)
}

// Within returns anc and its descendants among the groups.
func (tr *Tree) Within(anc *Group) []*Group {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []*Group
	for _, g := range tr.groups {
		if g.Within(anc) {
			out = append(out, g)
		}
	}
	return out
}

// Spawn says which options Options chose for one spawn.
type Spawn struct {
	// LongRunning: runtime.LongRunning (telemetry then makes no task span).
	LongRunning bool
	// Parent: runtime.WithParent with the parent context given to Options.
	Parent bool
	// CancelOn: runtime.WithCancelOn with an external context that is
	// already done, expires within 3 ms, or is canceled within 3 ms with a
	// cause of its own.
	CancelOn bool
}

// Options returns random task options for one spawn, and what they are: a
// fifth of the tasks are LongRunning (when longRunning allows it, as it
// should not for a Group.Every task, which needs no such mark), a third
// take their values and span from parent with WithParent (when parent is
// not nil; parent's cancellation does not reach them), and a sixth are
// canceled from outside with WithCancelOn.
func Options(rng *rand.Rand, parent context.Context, longRunning bool) ([]runtime.TaskOption, Spawn) {
	var opts []runtime.TaskOption
	var sp Spawn
	if longRunning && rng.IntN(5) == 0 {
		opts, sp.LongRunning = append(opts, runtime.LongRunning()), true
	}
	if parent != nil && rng.IntN(3) == 0 {
		opts, sp.Parent = append(opts, runtime.WithParent(parent)), true
	}
	if rng.IntN(6) == 0 {
		opts, sp.CancelOn = append(opts, runtime.WithCancelOn(External(rng))), true
	}
	return opts, sp
}

// ErrClientGone is the cause of the external contexts External cancels
// with a cause of their own.
var ErrClientGone = errors.New("randomwork: client went away")

// External returns an external context for runtime.WithCancelOn: already
// done, expiring within 0 to 2 milliseconds (cause
// context.DeadlineExceeded), or canceled within as long with cause
// ErrClientGone. Its timers fire in the synctest bubble's fake time.
func External(rng *rand.Rand) context.Context {
	d := time.Duration(rng.IntN(3)) * time.Millisecond
	switch rng.IntN(3) {
	case 0:
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(ErrClientGone)
		return ctx
	case 1:
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_ = cancel // it expires on its own
		return ctx
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(d, func() { cancel(ErrClientGone) })
	return ctx
}

// CheckErr checks g.Err() against the supervisor's events (all of them,
// from a recorder or a stream) once the workload is over, and returns it.
// When a failure of g's own canceled it, g's cancel_requested event
// carries its *TaskError: Err must be that failure, naming a task of g
// whose finished event has outcome error or panic. Otherwise Err must name
// a task of g whose finished event has an error (any outcome), and be nil
// when none has.
func CheckErr(t testing.TB, g *runtime.Group, events []runtime.Event) *runtime.TaskError {
	t.Helper()
	var want *runtime.TaskError
	finished := map[uint64]runtime.Event{} // g's own tasks' finished events by task ID
	var erred []runtime.Event              // those with an error
	for _, ev := range events {
		var te *runtime.TaskError
		switch {
		case ev.Kind == runtime.KindGroupCancelRequested && ev.GroupID == g.ID() && errors.As(ev.Err, &te) && te.Group == g.Name():
			want = te
		case ev.Kind == runtime.KindTaskFinished && ev.GroupID == g.ID():
			finished[ev.TaskID] = ev
			if ev.Err != nil {
				erred = append(erred, ev)
			}
		}
	}
	err := g.Err()
	got, ok := err.(*runtime.TaskError)
	var fin runtime.Event
	if ok {
		fin = finished[got.TaskID]
	}
	switch {
	case err == nil:
		if len(erred) > 0 {
			t.Errorf("group %s: Err() = nil, but task %d ended with %s", g.Name(), erred[0].TaskID, short(erred[0].Err))
		}
	case !ok:
		t.Errorf("group %s: Err() = %s, not a *TaskError", g.Name(), short(err))
	case want != nil && (got.TaskID != want.TaskID || got.Task != want.Task || got.Group != want.Group):
		t.Errorf("group %s: Err() = %s, its cancel_requested event says %s", g.Name(), short(err), short(want))
	case fin.Err == nil || fin.Task != got.Task:
		t.Errorf("group %s: Err() names task %d (%s), whose finished event is %+v", g.Name(), got.TaskID, got.Task, fin)
	case want != nil && fin.Outcome != runtime.Error && fin.Outcome != runtime.Panic:
		t.Errorf("group %s: Err() names task %d, which canceled the group, with outcome %v", g.Name(), got.TaskID, fin.Outcome)
	}
	return got
}

// short names a *TaskError by its task (its message may hold a stack).
func short(err error) string {
	if te, ok := err.(*runtime.TaskError); ok && te != nil {
		return fmt.Sprintf("*TaskError{%s/%s#%d}", te.Group, te.Task, te.TaskID)
	}
	return fmt.Sprintf("%T %v", err, err)
}
