package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// TestResultDuration: Result.Duration is the time from spawn to the end
// (to the abort for aborted tasks) on every path a task's record takes:
// with or without observers, options, an error, a Done channel asked for
// before the end. Snapshots show the spawn time meanwhile.
func TestResultDuration(t *testing.T) {
	const run = 3 * time.Second
	sleep := func(ctx context.Context) error { time.Sleep(run); return nil }
	for _, tc := range []struct {
		name     string
		observed bool
		fn       func(context.Context) error
		opts     []runtime.TaskOption
		waitDone bool          // ask for Done before the task ends
		abortAt  time.Duration // shut down with this deadline
		want     time.Duration
	}{
		{name: "plain", fn: sleep, want: run},
		{name: "plain, Done asked for", fn: sleep, waitDone: true, want: run},
		{name: "error", fn: func(ctx context.Context) error { sleep(ctx); return errors.New("x") }, want: run},
		{name: "option", fn: sleep, opts: []runtime.TaskOption{runtime.WithParent(context.Background())}, want: run},
		{name: "canceled", fn: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, abortAt: time.Hour, want: time.Second}, // canceled by the shutdown
		{name: "aborted", fn: func(context.Context) error { time.Sleep(time.Hour); return nil }, abortAt: 2 * time.Second, want: 2 * time.Second},
		{name: "observed", observed: true, fn: sleep, want: run},
		{name: "observed, Done asked for", observed: true, fn: sleep, waitDone: true, want: run},
		{name: "observed, aborted", observed: true, fn: func(context.Context) error { time.Sleep(time.Hour); return nil }, abortAt: 2 * time.Second, want: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				var opts []runtime.Option
				if tc.observed {
					opts = append(opts, runtime.WithObserver(&runtimetest.Recorder{}))
				}
				sup := runtime.New("app", opts...)
				time.Sleep(time.Minute) // spawn times are not the supervisor's epoch
				spawned := time.Now()
				task := sup.Go("t", tc.fn, tc.opts...)
				var done <-chan struct{}
				if tc.waitDone {
					done = task.Done()
				}
				time.Sleep(time.Second)
				if snap := sup.Snapshot(); len(snap.Tasks) != 1 || !snap.Tasks[0].Started.Equal(spawned) {
					t.Errorf("snapshot %+v, want the task started at %v", snap.Tasks, spawned)
				}
				if tc.abortAt > 0 {
					ctx, cancel := context.WithTimeout(context.Background(), tc.abortAt-time.Second)
					defer cancel()
					_ = sup.Shutdown(ctx)
				}
				if done != nil {
					<-done
				}
				<-task.Done()
				if got := task.Result().Duration; got != tc.want {
					t.Errorf("Duration = %v, want %v", got, tc.want)
				}
				time.Sleep(2 * time.Hour) // an abandoned goroutine returns
			})
		})
	}
}
