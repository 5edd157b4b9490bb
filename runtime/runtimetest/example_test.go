package runtimetest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// A test of code that spawns tasks checks their lifecycle through a
// Recorder passed as an observer; the zero Recorder is ready.
func ExampleRecorder() {
	var rec runtimetest.Recorder
	sup := runtime.New("app", runtime.WithObserver(&rec))
	task := sup.Go("sync", func(context.Context) error { return errors.New("remote gone") })
	_ = sup.Wait(context.Background())

	fmt.Println(rec.Kinds(task.ID()))
	fmt.Println(rec.Outcomes()[runtime.Error], rec.Count(runtime.KindTaskFinished))
	// Output:
	// [taskscope.task.spawned taskscope.task.finished]
	// 1 1
}
