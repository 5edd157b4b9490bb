package runtime_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// A task tied by WithCancelOn to a request's context with a deadline sees
// that deadline, as a goroutine of errgroup.WithContext(ctx) does: a gRPC
// client fn calls forwards it (grpc-timeout), a driver sets its socket
// timeout from it, and a context fn derives with a longer timeout keeps
// the request's. When it passes, ctx.Err() is context.Canceled and the
// cause wraps ErrExternal and DeadlineExceeded (see WithCancelOn).
func TestWithCancelOnDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("app")
		req, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		later, cancelLater := context.WithTimeout(context.Background(), time.Hour)
		defer cancelLater()
		want, _ := req.Deadline()

		var deadline, derived time.Time
		var hasDeadline bool
		var fnErr, cause error
		task := sup.Go("call", func(ctx context.Context) error {
			deadline, hasDeadline = ctx.Deadline()
			child, cancel := context.WithTimeout(ctx, time.Minute) // a client's own timeout
			defer cancel()
			derived, _ = child.Deadline()
			<-ctx.Done()
			fnErr, cause = ctx.Err(), context.Cause(ctx)
			return fnErr
		}, runtime.WithCancelOn(later), runtime.WithCancelOn(req))
		<-task.Done()

		if !hasDeadline || !deadline.Equal(want) {
			t.Errorf("ctx.Deadline() = %v, %v; want the earliest WithCancelOn deadline %v, true", deadline, hasDeadline, want)
		}
		if !derived.Equal(want) {
			t.Errorf("a context derived with a longer timeout has deadline %v, want the request's %v", derived, want)
		}
		if fnErr != context.Canceled || !errors.Is(cause, runtime.ErrExternal) || !errors.Is(cause, context.DeadlineExceeded) {
			t.Errorf("after the deadline: ctx.Err() = %v, cause %v; want context.Canceled, a cause wrapping ErrExternal and DeadlineExceeded", fnErr, cause)
		}
		if res := task.Result(); res.Outcome != runtime.Canceled || !errors.Is(res.Cause, context.DeadlineExceeded) {
			t.Errorf("Result = %v, cause %v; want canceled, cause wrapping DeadlineExceeded", res.Outcome, res.Cause)
		}
		_ = sup.Shutdown(context.Background())
	})
}

// Tasks without a WithCancelOn context that has a deadline have none: a
// plain task, one tied to a context without a deadline, a periodic one.
func TestWithCancelOnNoDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("app")
		ext, cancel := context.WithCancel(context.Background())
		defer cancel()
		for name, opts := range map[string][]runtime.TaskOption{
			"plain":                 nil,
			"WithCancelOn":          {runtime.WithCancelOn(ext)},
			"WithParent (deadline)": {runtime.WithParent(timeout(t, time.Hour))},
			"LongRunning":           {runtime.LongRunning()},
		} {
			var has bool
			<-sup.Go("t", func(ctx context.Context) error { _, has = ctx.Deadline(); return nil }, opts...).Done()
			if has {
				t.Errorf("%s: task has a deadline", name)
			}
		}
		var has bool
		<-sup.Every("tick", time.Second, func(ctx context.Context) error { _, has = ctx.Deadline(); return runtime.ErrStop }).Done()
		if has {
			t.Error("periodic task has a deadline")
		}
		_ = sup.Shutdown(context.Background())
	})
}
