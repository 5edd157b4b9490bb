package runtime_test

import (
	"context"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

func noop(context.Context) error { return nil }

// TestSpawnAllocations holds the budget of at most 3 allocations per
// spawned and completed task without observers (the bench module compares
// the time against errgroup, conc and suture).
func TestSpawnAllocations(t *testing.T) {
	const batch = 100
	sup := runtime.New("")
	ctx := context.Background()
	perBatch := testing.AllocsPerRun(50, func() {
		for range batch {
			sup.Go("noop", noop)
		}
		if err := sup.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if perTask := perBatch / batch; perTask > 3 {
		t.Fatalf("%.2f allocations per task, budget 3", perTask)
	} else {
		t.Logf("%.2f allocations per task", perTask)
	}
}

func BenchmarkGoWait(b *testing.B) {
	const batch = 100
	sup := runtime.New("")
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sup.Go("noop", noop)
		if i%batch == batch-1 {
			_ = sup.Wait(ctx)
		}
	}
	_ = sup.Wait(ctx)
}

// BenchmarkGoWaitParallelGroups spawns on one group per goroutine: groups
// must not contend with each other.
func BenchmarkGoWaitParallelGroups(b *testing.B) {
	sup := runtime.New("")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		g := sup.Group("p")
		ctx := context.Background()
		i := 0
		for pb.Next() {
			g.Go("noop", noop)
			if i++; i%100 == 0 {
				_ = g.Wait(ctx)
			}
		}
		_ = g.Wait(ctx)
	})
}
