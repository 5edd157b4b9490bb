package runtime_test

import (
	"context"
	"errors"
	goruntime "runtime"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/taskscope/taskscope/runtime"
)

// A callback registered with context.AfterFunc on a group's Context runs
// when an ancestor cancels the group, with the ancestor's cause, as the
// Context's doc promises, even when nothing else holds the group: a child
// of the root, or a grandchild under a dropped parent (the pin holds the
// chain of parents too).
func TestAfterFuncOnDroppedGroupsContextRunsOnAncestorCancel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group func(sup *runtime.Supervisor) *runtime.Group
	}{
		{"child", func(sup *runtime.Supervisor) *runtime.Group { return sup.Group("watched") }},
		{"grandchild", func(sup *runtime.Supervisor) *runtime.Group { return sup.Group("request").Group("stage") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				sup := runtime.New("app")
				ran := make(chan error, 1)
				func() {
					ctx := tc.group(sup).Context()
					context.AfterFunc(ctx, func() { ran <- context.Cause(ctx) })
				}()
				goruntime.GC()
				goruntime.GC()
				if n := len(sup.Snapshot().Groups); n != 1 {
					t.Errorf("%d groups under the root, want 1, kept by the pinned group", n)
				}
				stop := errors.New("stop")
				sup.Cancel(stop)
				synctest.Wait()
				select {
				case cause := <-ran:
					if !errors.Is(cause, stop) {
						t.Errorf("cause = %v, want %v", cause, stop)
					}
				default:
					t.Fatal("the AfterFunc on a group's Context did not run after the root's Cancel")
				}
			})
		})
	}
}

// A goroutine waiting on a group's Context().Done(), holding nothing but
// the channel, is woken by an ancestor's cancellation.
func TestWaiterOnDroppedGroupsDoneIsWokenByAncestorCancel(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("app")
		woken, giveUp := make(chan struct{}), make(chan struct{})
		defer close(giveUp)
		func() {
			done := sup.Group("watched").Context().Done()
			go func() {
				select {
				case <-done:
					close(woken)
				case <-giveUp:
				}
			}()
		}()
		synctest.Wait()
		goruntime.GC()
		goruntime.GC()
		sup.Cancel(errors.New("stop"))
		synctest.Wait()
		select {
		case <-woken:
		default:
			t.Error("a goroutine waiting on a group's Context().Done() was not woken by the root's Cancel")
		}
	})
}

// The pin lasts until the group is canceled: then nothing can wake a
// waiter any more, and the group is garbage again, as is one whose
// Context's Done was never asked for.
func TestPinnedGroupIsCollectedOnceCanceled(t *testing.T) {
	sup := runtime.New("app")
	var pinned, plain weak.Pointer[runtime.Group]
	ran := make(chan struct{})
	func() {
		g := sup.Group("pinned")
		context.AfterFunc(g.Context(), func() { close(ran) })
		pinned = weak.Make(g)
		h := sup.Group("plain")
		_ = h.Context()
		plain = weak.Make(h)
	}()
	goruntime.GC()
	if pinned.Value() == nil {
		t.Fatal("a group with an AfterFunc on its Context was collected before it was canceled")
	}
	if plain.Value() != nil {
		t.Error("a group whose Context's Done was never asked for was not collected")
	}
	pinned.Value().Cancel(nil)
	<-ran
	goruntime.GC()
	if pinned.Value() != nil {
		t.Error("a canceled group is still held by its pin")
	}
	goruntime.KeepAlive(sup) // what holds the pins
}

// A group made per request whose Context the request used (a timeout made
// from it, an AfterFunc stopped since) stays once waited for and dropped,
// as the doc says, until it is canceled: g.Cancel(nil) after Wait lets it
// go, as errgroup.WithContext's Wait cancels its context.
func TestUsedContextKeepsTheGroupUntilCanceled(t *testing.T) {
	for _, cancelAfterWait := range []bool{false, true} {
		sup := runtime.New("app")
		for range 50 {
			g := sup.Group("request")
			ctx, cancel := context.WithTimeout(g.Context(), time.Hour)
			stop := context.AfterFunc(g.Context(), func() {})
			g.Go("fetch", func(context.Context) error { return ctx.Err() })
			if err := g.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			stop()
			cancel()
			if cancelAfterWait {
				g.Cancel(nil)
			}
		}
		goruntime.GC()
		goruntime.GC()
		want := 50
		if cancelAfterWait {
			want = 0
		}
		if n := len(sup.Snapshot().Groups); n != want {
			t.Errorf("canceled after Wait: %v: %d groups left after a GC, want %d", cancelAfterWait, n, want)
		}
	}
}
