package runtime_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

func TestNames(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		if sup.Name() != "runtime" {
			t.Fatalf("root name %q, want runtime", sup.Name())
		}
		kafka := sup.Group("ingest").Group("kafka")
		if kafka.Name() != "runtime.ingest.kafka" {
			t.Fatalf("name %q, want runtime.ingest.kafka", kafka.Name())
		}
		task := kafka.Go("", func(context.Context) error { return nil })
		<-task.Done()
		if task.Name() != runtime.DefaultTaskName || task.Name() != "task.default" {
			t.Fatalf("empty task name became %q", task.Name())
		}
		if named := runtime.New("svc"); named.Name() != "svc" {
			t.Fatalf("New(svc).Name() = %q", named.Name())
		}
	})
}

func TestGroupAlwaysCreatesNewChild(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		a, b := sup.Group("request"), sup.Group("request")
		if a == b {
			t.Fatal("Group returned the same child twice")
		}
		release := make(chan struct{})
		a.Go("x", func(context.Context) error { <-release; return nil })
		b.Go("x", func(context.Context) error { <-release; return nil })
		snap := sup.Snapshot()
		if len(snap.Groups) != 2 || snap.Groups[0].Name != "runtime.request" || snap.Groups[1].Name != "runtime.request" {
			t.Fatalf("snapshot groups = %+v, want two runtime.request", snap.Groups)
		}
		if snap.Running != 2 || len(snap.Groups[0].Tasks) != 1 || len(snap.Groups[1].Tasks) != 1 {
			t.Fatalf("snapshot counts = %+v", snap)
		}
		close(release)
		mustWait(t, sup)
	})
}

func TestChildOfClosedGroupIsClosed(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		g := sup.Group("g")
		if err := g.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		task := g.Group("late").Go("x", func(context.Context) error {
			t.Error("fn ran in a child of a closed group")
			return nil
		})
		<-task.Done()
		if r := task.Result(); r.Outcome != runtime.Canceled || !errors.Is(r.Err, runtime.ErrClosed) {
			t.Fatalf("result %+v, want canceled with ErrClosed", r)
		}
	})
}

func TestDrainedChildIsDetached(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		keep := sup.Group("keep")
		for range 100 {
			req := sup.Group("request")
			req.Go("work", func(context.Context) error { return nil })
			if err := req.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		snap := sup.Snapshot()
		if len(snap.Groups) != 1 || snap.Groups[0].Name != keep.Name() {
			t.Fatalf("after 100 short-lived groups, children = %+v, want only %s", snap.Groups, keep.Name())
		}
		// A group that is only canceled (not shut down) stays attached.
		c := sup.Group("canceled")
		c.Cancel(nil)
		if n := len(sup.Snapshot().Groups); n != 2 {
			t.Fatalf("canceled group detached: %d children, want 2", n)
		}
	})
}

// TestTaskIDs: IDs are unique in the supervisor, rejected tasks included,
// even with groups spawning concurrently, and grow with spawn order within
// a group.
func TestTaskIDs(t *testing.T) {
	sup := runtime.New("")
	const groups, perGroup = 8, 300
	ids := make([][]uint64, groups)
	var wg sync.WaitGroup
	for i := range groups {
		g := sup.Group("g")
		wg.Go(func() {
			for j := range perGroup {
				if i == 0 && j == perGroup/2 {
					if err := g.Shutdown(context.Background()); err != nil {
						t.Error(err)
					}
				}
				ids[i] = append(ids[i], g.Go("t", func(context.Context) error { return nil }).ID())
			}
		})
	}
	wg.Wait()
	if err := sup.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, group := range ids {
		for j, id := range group {
			if id == 0 || seen[id] {
				t.Fatalf("group %d task %d: ID %d is zero or was already used", i, j, id)
			}
			seen[id] = true
			if j > 0 && id <= group[j-1] {
				t.Fatalf("group %d: ID %d after %d", i, id, group[j-1])
			}
		}
	}
}

// TestGroupIDsTellSiblingsApart: two sibling groups of one name have
// different IDs, and every event about either (its tasks' and its own)
// and the snapshot carry its ID and its parent's, so that a consumer can
// tell them apart and place them.
func TestGroupIDsTellSiblingsApart(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		a, b := sup.Group("twin"), sup.Group("twin")
		if a.ID() == b.ID() || a.ID() == sup.ID() || a.ID() == 0 {
			t.Fatalf("IDs root %d, twins %d and %d: want distinct and non-zero", sup.ID(), a.ID(), b.ID())
		}
		release := make(chan struct{})
		ta := a.Go("work", blockUntilCanceled)
		tb := b.Go("work", func(context.Context) error { <-release; return nil })
		snap := sup.Snapshot()
		if len(snap.Groups) != 2 || snap.ID != sup.ID() || snap.Groups[0].ID != a.ID() || snap.Groups[1].ID != b.ID() {
			t.Errorf("snapshot IDs: root %d, groups %+v; want %d, then %d and %d", snap.ID, snap.Groups, sup.ID(), a.ID(), b.ID())
		}
		a.Cancel(nil)
		mustWait(t, a)
		aEvents := len(rec.Events()) // a's group events come before b's shutdown
		mustAbort(t, b, 1)
		close(release)
		mustWait(t, sup) // b's task exits late

		owner := map[uint64]uint64{ta.ID(): a.ID(), tb.ID(): b.ID()}
		perGroup := map[uint64][]string{}
		for i, ev := range rec.Events() {
			want := owner[ev.TaskID]
			if ev.TaskID == 0 {
				want = map[bool]uint64{true: a.ID(), false: b.ID()}[i < aEvents]
			}
			if ev.GroupID != want || ev.ParentGroupID != sup.ID() {
				t.Errorf("%s of task %d in %s: GroupID %d, ParentGroupID %d; want %d, %d", ev.Kind, ev.TaskID, ev.Group, ev.GroupID, ev.ParentGroupID, want, sup.ID())
			}
			perGroup[ev.GroupID] = append(perGroup[ev.GroupID], ev.Kind)
		}
		for id, n := range map[uint64]int{a.ID(): 3, b.ID(): 6} {
			if len(perGroup[id]) < n {
				t.Errorf("group %d: events %v, want at least %d", id, perGroup[id], n)
			}
		}
	})
}
