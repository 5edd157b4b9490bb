package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// Claims of the docs that no other test states outright.

// Task.Cancel: "Canceling an ended task does nothing; canceling twice keeps
// the first cause."
func TestTaskCancelAfterEndOrTwice(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		ended := sup.Go("ended", func(context.Context) error { return nil })
		<-ended.Done()
		ended.Cancel(errors.New("late"))
		if n := len(eventsOf(rec, ended.ID(), runtime.KindTaskCancelRequested)); n != 0 {
			t.Errorf("a cancel of an ended task emitted %d cancel_requested events", n)
		}
		if r := ended.Result(); r.Outcome != runtime.Success || r.Cause != nil {
			t.Errorf("ended task's result after a cancel = %+v, want success with no cause", r)
		}

		first := errors.New("first")
		twice := sup.Go("twice", blockUntilCanceled)
		twice.Cancel(first)
		twice.Cancel(errors.New("second"))
		<-twice.Done()
		if r := twice.Result(); r.Outcome != runtime.Canceled || r.Cause != first {
			t.Errorf("result = %+v, want canceled with the first cause", r)
		}
	})
}

// Task.Result: "Before Task.Done is closed it returns the zero Result."
func TestResultIsZeroBeforeDone(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		release := make(chan struct{})
		task := sup.Go("t", func(context.Context) error {
			<-release
			return errors.New("failed")
		})
		if r := task.Result(); r != (runtime.Result{}) {
			t.Errorf("Result before Done = %+v, want the zero Result", r)
		}
		close(release)
		<-task.Done()
		if r := task.Result(); r.Outcome != runtime.Error {
			t.Errorf("Result after Done = %+v", r)
		}
	})
}

// Every: "On a closed group, as with Go, nothing runs: the task is already
// done with outcome Canceled"; and "the first run always starts, with a
// canceled context if need be".
func TestEveryOnClosedOrCanceledGroup(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		closed := sup.Group("closed")
		mustWait(t, closed)
		if err := closed.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		task := closed.Every("tick", time.Second, func(context.Context) error {
			t.Error("a periodic task of a closed group ran")
			return nil
		})
		select {
		case <-task.Done():
		default:
			t.Fatal("a periodic task of a closed group is not done at once")
		}
		if r := task.Result(); r.Outcome != runtime.Canceled || !errors.Is(r.Err, runtime.ErrClosed) || r.Cause != r.Err {
			t.Errorf("result = %+v, want canceled with an error wrapping ErrClosed, also its Cause", r)
		}

		canceled := sup.Group("canceled")
		canceled.Cancel(nil)
		runs := 0
		task = canceled.Every("tick", time.Second, func(ctx context.Context) error {
			runs++
			return ctx.Err()
		})
		<-task.Done()
		if runs != 1 || task.Result().Outcome != runtime.Canceled {
			t.Errorf("%d runs, outcome %v; want the first run only, canceled", runs, task.Result().Outcome)
		}
	})
}

// Spawner: "*Supervisor and *Group implement it".
var _, _ runtime.Spawner = (*runtime.Supervisor)(nil), (*runtime.Group)(nil)

// WithPanicPolicy: "given twice, the last stands": Crash then Recover
// recovers (under Crash this test binary would die).
func TestRepeatedPanicPolicyTakesTheLast(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		g := sup.Group("g", runtime.WithPanicPolicy(runtime.Crash), runtime.WithPanicPolicy(runtime.Recover))
		task := g.Go("boom", func(context.Context) error { panic("boom") })
		<-task.Done()
		if o := task.Result().Outcome; o != runtime.Panic {
			t.Errorf("outcome %v, want panic", o)
		}
	})
}
