package runtime_test

import (
	"context"
	"errors"
	goruntime "runtime"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/taskscope/taskscope/runtime"
)

// A group made per request and only waited for, as an errgroup would be,
// is garbage once its tasks are done and nothing holds it: it leaves the
// tree without a Shutdown. A group the application holds, or whose Context
// it holds, stays, and cancellation still reaches it, with its parent's
// cause.
func TestIdleGroupNobodyHoldsIsCollected(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("app")
		kept := sup.Group("kept")
		ctx := sup.Group("by-context").Context()
		busy := sup.Group("busy")
		workerCtx := make(chan context.Context, 1)
		running := busy.Go("worker", func(ctx context.Context) error { workerCtx <- ctx; <-ctx.Done(); return nil })
		for range 100 {
			g := sup.Group("request", runtime.CancelOnError())
			g.Group("stage").Go("fetch", func(context.Context) error { return nil })
			if err := g.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		busy = nil
		synctest.Wait() // the request tasks' goroutines have returned
		goruntime.GC()

		var names []string
		for _, g := range sup.Snapshot().Groups {
			names = append(names, g.Name)
		}
		if want := []string{"app.kept", "app.by-context", "app.busy"}; !slices.Equal(names, want) {
			t.Errorf("groups after a GC = %v, want %v (idle groups nobody holds gone, the others kept)", names, want)
		}

		stop := errors.New("stop")
		sup.Cancel(stop)
		for name, ctx := range map[string]context.Context{"kept": kept.Context(), "by-context": ctx, "busy's task": <-workerCtx} {
			if !errors.Is(context.Cause(ctx), stop) {
				t.Errorf("%s: cause after the root's Cancel = %v, want %v", name, context.Cause(ctx), stop)
			}
		}
		<-running.Done()
	})
}

// A group made under a canceled parent starts canceled, with the parent's
// cause, as a context made from a canceled one does; its own cancellation
// does not reach the parent.
func TestGroupOfACanceledParentStartsCanceled(t *testing.T) {
	stop := errors.New("stop")
	sup := runtime.New("app")
	parent := sup.Group("parent")
	sibling := sup.Group("sibling")
	parent.Cancel(stop)
	child := parent.Group("child")
	if !errors.Is(context.Cause(child.Context()), stop) {
		t.Errorf("child of a canceled group: cause %v, want %v", context.Cause(child.Context()), stop)
	}
	sibling.Group("child").Cancel(errors.New("child's own"))
	if err := sibling.Context().Err(); err != nil {
		t.Errorf("a child's cancel reached its parent: %v", err)
	}
}

// What per-request groups leave behind, once collected, does not grow with
// their number: neither the groups nor their contexts stay reachable from
// the supervisor (a context made from its parent's would be held by it).
func TestPerRequestGroupsDoNotGrowTheHeap(t *testing.T) {
	sup := runtime.New("app")
	request := func() {
		g := sup.Group("request", runtime.CancelOnError())
		<-g.Go("fetch", func(context.Context) error { return nil }).Done()
		_ = g.Context() // a context made by a handler, dropped with the group
	}
	heap := func() uint64 {
		goruntime.GC()
		var m goruntime.MemStats
		goruntime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	request()
	before := heap()
	const n = 20_000
	for range n {
		request()
	}
	grown := int64(heap()) - int64(before)
	goruntime.KeepAlive(sup) // what it holds is what is measured
	if grown > n*32 {
		t.Errorf("the heap grew by %d bytes over %d collected groups (%d each), want at most 32 each", grown, n, grown/n)
	}
}
