package runtime_test

import (
	"context"
	"runtime/pprof"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

type valueObserver struct{ key, value string }

type obsKey string

func (o valueObserver) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return context.WithValue(ctx, obsKey(o.key), o.value)
}
func (valueObserver) Observe(context.Context, runtime.Event) {}

func TestPprofLabelsInsideFn(t *testing.T) {
	for _, opts := range [][]runtime.Option{nil, {runtime.WithObserver(valueObserver{"k", "v"})}} {
		bubble(t, func(t *testing.T) {
			sup := runtime.New("svc", opts...)
			var group, task string
			var okG, okT bool
			done := sup.Group("ingest").Go("fetch", func(ctx context.Context) error {
				group, okG = pprof.Label(ctx, runtime.LabelGroup)
				task, okT = pprof.Label(ctx, runtime.LabelTask)
				return nil
			})
			<-done.Done()
			if !okG || !okT || group != "svc.ingest" || task != "fetch" {
				t.Fatalf("labels in fn: group=%q(%v) task=%q(%v), want svc.ingest and fetch", group, okG, task, okT)
			}
		})
	}
}

// TestPprofLabelsPerName: a group that spawns several names, in turns,
// labels each task with its own.
func TestPprofLabelsPerName(t *testing.T) {
	bubble(t, func(t *testing.T) {
		g := runtime.New("svc").Group("mix")
		for _, name := range []string{"a", "b", "a", "c", "b", "b", "a"} {
			var got string
			task := g.Go(name, func(ctx context.Context) error {
				got, _ = pprof.Label(ctx, runtime.LabelTask)
				return nil
			})
			<-task.Done()
			if got != name {
				t.Fatalf("task %q ran under label %q", name, got)
			}
		}
	})
}
