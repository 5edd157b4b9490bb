package runtime_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// Cancels of nested groups with different causes race with the making of
// groups and tasks under them (under GC pressure, with parents dropped):
// as with contexts made from their parents', every group ends with its own
// cause or its parent's, each task with its group's, and a task's Result
// and finished event agree.
func TestRacingNestedCancelsKeepCausesConsistent(t *testing.T) {
	for round := range 50 {
		sup, rec := recorded()
		type node struct {
			g      *runtime.Group
			parent *node
			own    error
		}
		var mu sync.Mutex
		var nodes []*node
		var tasks []*runtime.Task
		add := func(n *node) {
			mu.Lock()
			nodes = append(nodes, n)
			mu.Unlock()
		}
		root := &node{g: sup.Group("a")}
		add(root)
		mid := &node{g: root.g.Group("b"), parent: root}
		add(mid)
		var wg sync.WaitGroup
		start := make(chan struct{})
		// Makers: groups under mid and under new groups, with tasks.
		for w := range 2 {
			wg.Go(func() {
				<-start
				p := mid
				for i := range 20 {
					c := &node{g: p.g.Group(fmt.Sprintf("w%d-%d", w, i)), parent: p}
					add(c)
					task := c.g.Go("t", blockUntilCanceled)
					mu.Lock()
					tasks = append(tasks, task)
					mu.Unlock()
					if i%3 == 0 {
						p = c
					}
					if i%7 == 0 {
						goruntime.GC()
					}
				}
			})
		}
		causes := []error{errors.New("root"), errors.New("mid"), errors.New("sup")}
		wg.Go(func() { <-start; root.own = causes[0]; root.g.Cancel(causes[0]) })
		wg.Go(func() { <-start; mid.own = causes[1]; mid.g.Cancel(causes[1]) })
		close(start)
		wg.Wait()
		sup.Cancel(causes[2])
		for _, task := range tasks {
			<-task.Done()
		}
		for _, n := range nodes {
			got := context.Cause(n.g.Context())
			parentCause := context.Cause(sup.Context())
			if n.parent != nil {
				parentCause = context.Cause(n.parent.g.Context())
			}
			if got == nil || got != n.own && got != parentCause {
				t.Fatalf("round %d: %s cause %v, want its own (%v) or its parent's (%v)", round, n.g.Name(), got, n.own, parentCause)
			}
		}
		groupCause := map[string]error{}
		for _, n := range nodes {
			groupCause[n.g.Name()] = context.Cause(n.g.Context())
		}
		finished := map[uint64]runtime.Event{}
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskFinished {
				finished[ev.TaskID] = ev
			}
		}
		for _, task := range tasks {
			res := task.Result()
			if res.Outcome != runtime.Canceled || res.Cause != groupCause[task.Group()] {
				t.Fatalf("round %d: %s/%s: %v with cause %v, want Canceled with its group's cause %v", round, task.Group(), task.Name(), res.Outcome, res.Cause, groupCause[task.Group()])
			}
			if ev := finished[task.ID()]; ev.Cause != res.Cause || ev.Outcome != res.Outcome {
				t.Fatalf("round %d: finished event (%v, %v) disagrees with Result (%v, %v)", round, ev.Outcome, ev.Cause, res.Outcome, res.Cause)
			}
		}
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// What holds a group only weakly does not lose what a Shutdown of an
// ancestor needs: groups kept by an Every task, by a task that will be
// abandoned, by a grandchild's task, or held only through their Context,
// all dropped by the application and collected at will, are closed,
// canceled with the shutdown's cause, drained or aborted, and the
// abandoned one stays in the tree until its goroutine returns.
func TestShutdownReachesGroupsHeldOnlyByTheirTasksOrContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		release := make(chan struct{})
		ctx := sup.Group("by-context").Context()
		func() {
			sup.Group("periodic").Every("tick", time.Second, func(context.Context) error { return nil })
			sup.Group("stuck").Go("ignores", func(context.Context) error { <-release; return nil })
			sup.Group("outer").Group("inner").Go("waits", blockUntilCanceled)
		}()
		time.Sleep(3 * time.Second) // a few ticks
		goruntime.GC()
		goruntime.GC()
		var names []string
		for _, g := range sup.Snapshot().Groups {
			names = append(names, g.Name)
		}
		if want := []string{"runtime.by-context", "runtime.periodic", "runtime.stuck", "runtime.outer"}; !slices.Equal(names, want) {
			t.Errorf("groups = %v, want %v", names, want)
		}
		err := sup.Shutdown(timeout(t, time.Second))
		var ae *runtime.AbortError
		if !errors.As(err, &ae) || len(ae.Aborted) != 1 || ae.Aborted[0].Group != "runtime.stuck" {
			t.Fatalf("Shutdown = %v, want the stuck task aborted", err)
		}
		if !errors.Is(context.Cause(ctx), runtime.ErrClosed) {
			t.Errorf("cause of the group held by its Context = %v, want one wrapping ErrClosed", context.Cause(ctx))
		}
		goruntime.GC()
		s := sup.Snapshot()
		if len(s.Groups) != 1 || s.Groups[0].Name != "runtime.stuck" || s.Abandoned != 1 {
			t.Errorf("after Shutdown: %+v, want only the stuck group, with its abandoned task", s.Groups)
		}
		close(release)
		synctest.Wait()
		goruntime.GC()
		if n := len(sup.Snapshot().Groups); n != 0 || sup.Abandoned() != 0 {
			t.Errorf("after the late exit: %d groups, %d abandoned, want none", n, sup.Abandoned())
		}
		if n := rec.Count(runtime.KindTaskLateExit); n != 1 {
			t.Errorf("%d late_exit events, want 1", n)
		}
	})
}
