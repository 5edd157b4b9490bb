package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// TestStressBooksBalance has many goroutines spawn, cancel, wait on and
// shut down groups at once; afterwards every task has exactly one outcome,
// nothing is still registered and every abandoned task's late exit was
// seen. Run under -race, it replaces the original module's loom models.
func TestStressBooksBalance(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			bubble(t, func(t *testing.T) { stress(t, seed) })
		})
	}
}

func stress(t *testing.T, seed uint64) {
	rec := &runtimetest.Recorder{}
	sup := runtime.New("", runtime.WithObserver(rec))
	release := make(chan struct{}) // frees the tasks that ignore cancellation
	var mu sync.Mutex
	var tasks []*runtime.Task
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			g := sup.Group(fmt.Sprint("w", w))
			for range 200 {
				var task *runtime.Task
				switch rng.IntN(7) {
				case 0:
					task = g.Go("ok", func(context.Context) error { return nil })
				case 1:
					task = g.Go("err", func(context.Context) error { return errors.New("x") })
				case 2:
					task = g.Go("panic", panicsWithBoom)
				case 3:
					task = g.Go("polite", blockUntilCanceled)
				case 4:
					task = g.Go("stubborn", stuckOnRelease(release))
				case 5:
					task = g.Every("tick", time.Millisecond, func(context.Context) error { return nil })
				case 6:
					d := time.Duration(rng.IntN(5)) * time.Millisecond
					task = g.Go("sleepy", func(ctx context.Context) error {
						select {
						case <-time.After(d):
						case <-ctx.Done():
						}
						return nil
					})
				}
				mu.Lock()
				tasks = append(tasks, task)
				mu.Unlock()
				switch rng.IntN(20) {
				case 0:
					task.Cancel(nil)
				case 1:
					_ = g.Wait(timeout(t, time.Millisecond))
				case 2:
					_ = sup.Snapshot()
				case 3: // replace the group: shut it down with a short deadline
					_ = g.Shutdown(timeout(t, time.Duration(rng.IntN(3))*time.Millisecond))
					g = sup.Group(fmt.Sprint("w", w))
				}
			}
		}()
	}
	wg.Wait()
	_ = sup.Shutdown(timeout(t, 5*time.Millisecond))
	close(release)
	synctest.Wait()

	if sup.Abandoned() != 0 || len(sup.Active()) != 0 {
		t.Fatalf("after late exits: abandoned=%d active=%v", sup.Abandoned(), sup.Active())
	}
	if snap := sup.Snapshot(); snap.Running+snap.Canceling+snap.Abandoned != 0 || len(snap.Groups) != 0 {
		t.Fatalf("tree not empty after shutdown: %+v", snap)
	}
	finished := map[uint64]int{}
	spawned, aborted, late := 0, 0, 0
	for _, ev := range rec.Events() {
		switch ev.Kind {
		case runtime.KindTaskSpawned:
			spawned++
		case runtime.KindTaskFinished:
			finished[ev.TaskID]++
			if ev.Outcome == runtime.Aborted {
				aborted++
			}
		case runtime.KindTaskLateExit:
			late++
		}
	}
	outcomes := rec.Outcomes()
	total := 0
	for _, n := range outcomes {
		total += n
	}
	if spawned != len(tasks) || total != spawned {
		t.Fatalf("spawned %d (handles %d), outcomes %v sum to %d", spawned, len(tasks), outcomes, total)
	}
	for _, task := range tasks {
		if finished[task.ID()] != 1 {
			t.Fatalf("task %d has %d finished events", task.ID(), finished[task.ID()])
		}
		if task.Result().Outcome == 0 {
			t.Fatalf("task %d has no outcome", task.ID())
		}
	}
	if late != aborted || aborted == 0 {
		t.Fatalf("late exits %d, aborted %d: want equal and non-zero", late, aborted)
	}
	t.Logf("seed %d: %d tasks, outcomes %v", seed, spawned, outcomes)
}

// TestSnapshotPlusEventsReconstructsTheTree takes a snapshot while tasks
// spawn and finish, then checks that applying the events after its Seq
// gives exactly the live set of a later, quiet snapshot.
func TestSnapshotPlusEventsReconstructsTheTree(t *testing.T) {
	bubble(t, func(t *testing.T) {
		rec := &runtimetest.Recorder{}
		sup := runtime.New("", runtime.WithObserver(rec))
		release := make(chan struct{})
		var wg sync.WaitGroup
		snaps := make(chan runtime.GroupSnapshot, 1)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := sup.Group(fmt.Sprint("w", w))
				for i := range 300 {
					if i%3 == 0 {
						g.Go("stay", func(context.Context) error { <-release; return nil })
					} else {
						g.Go("quick", func(context.Context) error { return nil })
					}
					if w == 0 && i == 150 {
						snaps <- sup.Snapshot()
					}
				}
			}()
		}
		snap := <-snaps
		wg.Wait()
		synctest.Wait()
		final := sup.Snapshot()

		live := map[uint64]bool{}
		var collect func(runtime.GroupSnapshot, map[uint64]bool)
		collect = func(s runtime.GroupSnapshot, into map[uint64]bool) {
			for _, task := range s.Tasks {
				if into[task.ID] {
					t.Fatalf("task %d shown twice", task.ID)
				}
				into[task.ID] = true
			}
			for _, c := range s.Groups {
				collect(c, into)
			}
		}
		collect(snap, live)
		for _, ev := range rec.Events() {
			if ev.Seq <= snap.Seq {
				continue
			}
			switch ev.Kind {
			case runtime.KindTaskSpawned:
				if live[ev.TaskID] {
					t.Fatalf("task %d is in the snapshot and spawned after its Seq", ev.TaskID)
				}
				live[ev.TaskID] = true
			case runtime.KindTaskFinished:
				if !live[ev.TaskID] {
					t.Fatalf("task %d finished after the snapshot's Seq but is neither in it nor spawned after it", ev.TaskID)
				}
				delete(live, ev.TaskID)
			}
		}
		want := map[uint64]bool{}
		collect(final, want)
		if len(live) != len(want) || final.Running != 400 {
			t.Fatalf("reconstructed %d live tasks, final snapshot has %d (running %d)", len(live), len(want), final.Running)
		}
		for id := range want {
			if !live[id] {
				t.Fatalf("task %d live in the final snapshot, missing from snapshot+events", id)
			}
		}
		close(release)
		mustWait(t, sup)
	})
}
