package runtime_test

import (
	"context"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// TestSnapshotOfABigTreeUnderChurn takes a Snapshot of a tree of many
// groups while goroutines serving requests make a group each under the
// same parent, and wait for it or shut it down. Snapshot listed the tree,
// locked it, and started over whenever a group had appeared or left
// meanwhile: the listing takes O(n), so with 50,000 groups it never ended
// (no Snapshot in 5 s, against 0.1 s now).
func TestSnapshotOfABigTreeUnderChurn(t *testing.T) {
	const n = 50_000
	sup := runtime.New("app")
	held := make([]*runtime.Group, n)
	for i := range held {
		held[i] = sup.Group("conn")
	}
	stop := make(chan struct{})
	var started, churned sync.WaitGroup
	for w := range 4 {
		started.Add(1)
		churned.Go(func() {
			untilClosed(stop, func(i int) {
				g := sup.Group("request")
				g.Go("fetch", func(context.Context) error { return nil })
				if w%2 == 0 {
					_ = g.Wait(context.Background())
				} else {
					_ = g.Shutdown(context.Background())
				}
				if i == 100 {
					started.Done()
				}
			})
		})
	}
	started.Wait()
	snapped := make(chan runtime.GroupSnapshot, 1)
	go func() { snapped <- sup.Snapshot() }()
	var snap runtime.GroupSnapshot
	timer := time.NewTimer(5 * time.Second)
	select {
	case snap = <-snapped:
	case <-timer.C:
		t.Error("no Snapshot after 5 s of requests")
	}
	timer.Stop()
	close(stop)
	churned.Wait()
	if snap.Name == "" {
		snap = <-snapped // once the requests stop
	}
	if len(snap.Groups) < n {
		t.Errorf("snapshot of %d child groups, want at least the %d held", len(snap.Groups), n)
	}
	goruntime.KeepAlive(held)
}
