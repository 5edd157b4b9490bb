package randomwork_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"

	"github.com/taskscope/taskscope/internal/randomwork"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSeeds(t *testing.T) {
	for _, tc := range []struct {
		env, value string
		want       []uint64
	}{
		{"", "", []uint64{0, 1}},
		{"RANDOMIZED_SEEDS", "3", []uint64{0, 1, 2}},
		{"RANDOMIZED_SEED", "7", []uint64{7}},
	} {
		if tc.env != "" {
			t.Setenv(tc.env, tc.value)
		}
		var got []uint64
		t.Run(tc.env, func(t *testing.T) {
			randomwork.Seeds(t, 2, func(_ *testing.T, seed uint64) { got = append(got, seed) })
		})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s=%s: seeds %v, want %v", tc.env, tc.value, got, tc.want)
		}
	}
}

// TestTree: groups grow under groups of the tree, named as asked; Within
// lists a group and its descendants only.
func TestTree(t *testing.T) {
	sup := runtime.New("app")
	defer sup.Shutdown(t.Context())
	tree := randomwork.NewTree(sup.Group("top"))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 30 {
		if g := tree.Grow(rng, func(name string) string { return name + "x" }); !strings.HasSuffix(g.G.Name(), "x") {
			t.Errorf("Grow made %s, not named as asked", g.G.Name())
		}
	}
	if tree.Len() != 31 {
		t.Fatalf("Len() = %d, want 31", tree.Len())
	}
	root := tree.Pick(rng)
	for root.Parent != nil {
		root = root.Parent
	}
	all := tree.Within(root)
	if len(all) != tree.Len() {
		t.Errorf("Within(root) lists %d groups of %d", len(all), tree.Len())
	}
	for range 10 {
		g := tree.Pick(rng)
		var want []string
		for _, d := range all {
			if d.Within(g) {
				want = append(want, d.G.Name())
			}
		}
		var got []string
		for _, d := range tree.Within(g) {
			got = append(got, d.G.Name())
			if d.G.Name() != g.G.Name() && !strings.HasPrefix(d.G.Name(), g.G.Name()+".") {
				t.Errorf("Within(%s) lists %s", g.G.Name(), d.G.Name())
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("Within(%s) = %v, want %v", g.G.Name(), got, want)
		}
	}
}

// TestBodies: each kind's body does what its name says.
func TestBodies(t *testing.T) {
	sup := runtime.New("app")
	rng := rand.New(rand.NewPCG(1, 2))
	release := make(chan struct{})
	boom := errors.New("boom")
	results := map[randomwork.Kind]runtime.Result{}
	for k := range randomwork.Every {
		task := sup.Go(k.String(), randomwork.Body(k, rng, boom, release))
		if k == randomwork.Polite {
			task.Cancel(nil)
		}
		if k != randomwork.Stubborn {
			<-task.Done()
		}
		results[k] = task.Result()
	}
	close(release)
	if err := sup.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[randomwork.Kind]runtime.Outcome{
		randomwork.OK: runtime.Success, randomwork.Err: runtime.Error, randomwork.Panic: runtime.Panic,
		randomwork.Polite: runtime.Canceled, randomwork.Sleepy: runtime.Success, randomwork.Goexit: runtime.Error,
	} {
		if got := results[k].Outcome; got != want {
			t.Errorf("%s: outcome %v, want %v", k, got, want)
		}
	}
	if !errors.Is(results[randomwork.Err].Err, boom) {
		t.Errorf("err: %v, want boom", results[randomwork.Err].Err)
	}
	ctx, cancel := randomwork.Deadline(rng)
	defer cancel()
	if _, ok := ctx.Deadline(); !ok && ctx.Err() == nil {
		t.Error("Deadline gave a context that never ends")
	}
}

type ctxKey struct{}

// TestOptions: Options gives each option now and then, says which, and
// the options do what Spawn says: LongRunning marks the events, WithParent
// passes the parent's values but not its (already done) cancellation, and
// WithCancelOn cancels a task that waits with a cause wrapping ErrExternal.
func TestOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &runtimetest.Recorder{}
		sup := runtime.New("app", runtime.WithObserver(rec))
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
		cancel()
		rng := rand.New(rand.NewPCG(1, 2))
		type spawned struct {
			task *runtime.Task
			sp   randomwork.Spawn
			val  any
		}
		var tasks []*spawned
		var n randomwork.Spawn
		counts := map[string]int{}
		for i := range 300 {
			opts, sp := randomwork.Options(rng, parent, i%2 == 0)
			if sp.LongRunning && i%2 != 0 {
				t.Fatal("LongRunning chosen while not allowed")
			}
			s := &spawned{sp: sp}
			s.task = sup.Go("t", func(ctx context.Context) error {
				s.val = ctx.Value(ctxKey{})
				if sp.CancelOn {
					<-ctx.Done()
				}
				return nil
			}, opts...)
			tasks = append(tasks, s)
			n.LongRunning = n.LongRunning || sp.LongRunning
			n.Parent = n.Parent || sp.Parent
			n.CancelOn = n.CancelOn || sp.CancelOn
		}
		if n != (randomwork.Spawn{LongRunning: true, Parent: true, CancelOn: true}) {
			t.Fatalf("in 300 spawns, options chosen: %+v", n)
		}
		for _, s := range tasks {
			<-s.task.Done()
			res := s.task.Result()
			switch {
			case s.sp.Parent && s.val != "v", !s.sp.Parent && s.val != nil:
				t.Errorf("task %d (%+v): value %v", s.task.ID(), s.sp, s.val)
			case s.sp.CancelOn && (res.Outcome != runtime.Canceled || !errors.Is(res.Cause, runtime.ErrExternal)):
				t.Errorf("task %d (%+v): %v, cause %v; want canceled by its external context", s.task.ID(), s.sp, res.Outcome, res.Cause)
			case !s.sp.CancelOn && res.Outcome != runtime.Success:
				t.Errorf("task %d (%+v): %v, cause %v", s.task.ID(), s.sp, res.Outcome, res.Cause)
			}
			if errors.Is(res.Cause, randomwork.ErrClientGone) {
				counts["client gone"]++
			}
			if errors.Is(res.Cause, context.DeadlineExceeded) {
				counts["deadline"]++
			}
		}
		if counts["client gone"] == 0 || counts["deadline"] == 0 {
			t.Errorf("external causes seen: %v", counts)
		}
		for _, ev := range rec.Events() {
			if ev.TaskID == 0 {
				continue
			}
			if want := tasks[ev.TaskID-1].sp.LongRunning; ev.LongRunning != want {
				t.Errorf("task %d: %s event LongRunning=%v, want %v", ev.TaskID, ev.Kind, ev.LongRunning, want)
			}
		}
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// An Input reads its bytes in order, then zeros; its errors all differ.
func TestInput(t *testing.T) {
	in := randomwork.NewInput([]byte{7, 9})
	var got []byte
	var more []bool
	for range 4 {
		more = append(more, in.More())
		got = append(got, in.Byte())
	}
	if want := []byte{7, 9, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("bytes = %v, want %v", got, want)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(more, want) {
		t.Errorf("More = %v, want %v", more, want)
	}
	a, b := in.NewErr("task failure"), in.NewErr("task failure")
	if a.Error() != "task failure 1" || b.Error() != "task failure 2" || errors.Is(a, b) {
		t.Errorf("errors %q and %q: want task failure 1 and 2, distinct", a, b)
	}
}
