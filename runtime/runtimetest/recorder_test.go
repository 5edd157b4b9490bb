package runtimetest_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

func TestRecorder(t *testing.T) {
	rec := &runtimetest.Recorder{}
	sup := runtime.New("", runtime.WithObserver(rec))
	ok := sup.Go("ok", func(context.Context) error { return nil })
	bad := sup.Go("bad", func(context.Context) error { return errors.New("x") })
	if err := sup.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{runtime.KindTaskSpawned, runtime.KindTaskFinished}
	for _, task := range []*runtime.Task{ok, bad} {
		if got := rec.Kinds(task.ID()); !slices.Equal(got, want) {
			t.Fatalf("task %s: %v, want %v", task.Name(), got, want)
		}
	}
	if o := rec.Outcomes(); o[runtime.Success] != 1 || o[runtime.Error] != 1 {
		t.Fatalf("Outcomes = %v", o)
	}
	if rec.Count(runtime.KindTaskSpawned) != 2 || len(rec.Events()) != 4 {
		t.Fatalf("Count/Events: %d, %d", rec.Count(runtime.KindTaskSpawned), len(rec.Events()))
	}
}
