package runtime_test

import (
	"context"
	"errors"
	goruntime "runtime"
	"testing"
	"testing/synctest"

	"github.com/taskscope/taskscope/runtime"
)

// A task tied by WithCancelOn to a per-request group's Context does not
// keep the group once the task has ended: the group, idle, waited for and
// dropped, is garbage. Before, the watch asked for the Context's Done
// channel, which pinned the group until it was canceled: for ever.
func TestWithCancelOnDoesNotPinTheWatchedGroup(t *testing.T) {
	sup := runtime.New("app")
	for range 100 {
		g := sup.Group("request")
		g.Go("fetch", func(context.Context) error { return nil })
		<-sup.Go("bg", func(context.Context) error { return nil }, runtime.WithCancelOn(g.Context())).Done()
		if err := g.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	goruntime.GC()
	goruntime.GC()
	if n := len(sup.Snapshot().Groups); n != 0 {
		t.Errorf("%d idle, dropped request groups still in the tree, want 0", n)
	}
}

// A task tied by WithCancelOn to a dropped group's Context is canceled
// when an ancestor of that group is canceled, with its cause.
func TestWithCancelOnDroppedGroupReachedByAncestor(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("app")
		parent := sup.Group("parent")
		var task *runtime.Task
		func() {
			task = sup.Group("other").Go("bg", blockUntilCanceled, runtime.WithCancelOn(parent.Group("req").Context()))
		}()
		goruntime.GC()
		goruntime.GC()
		stop := errors.New("stop")
		parent.Cancel(stop)
		synctest.Wait()
		select {
		case <-task.Done():
		default:
			t.Fatal("the task was not canceled when its watched group's parent was")
		}
		if c := task.Result().Cause; !errors.Is(c, runtime.ErrExternal) || !errors.Is(c, stop) {
			t.Fatalf("cause %v, want ErrExternal wrapping %v", c, stop)
		}
		sup.Cancel(nil)
	})
}
