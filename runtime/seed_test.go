package runtime_test

// The four behaviours the original Rust module (task_registry.rs) tests.

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

func TestShutdownCancelsSupervisedTasks(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		started := make(chan struct{})
		sup.Go("test.pending", func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return nil
		})
		<-started
		if err := sup.Shutdown(timeout(t, 50*time.Millisecond)); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if a := sup.Active(); len(a) != 0 {
			t.Fatalf("Active after shutdown = %v", a)
		}
	})
}

func TestChildGroupsInheritParentCancellation(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		child := sup.Group("child")
		started := make(chan struct{})
		child.Go("test.pending", func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return nil
		})
		<-started
		sup.Cancel(nil)
		if err := child.Wait(timeout(t, 50*time.Millisecond)); err != nil {
			t.Fatalf("child tasks should stop when parent is cancelled: %v", err)
		}
	})
}

func TestWaitTimesOutAndForcedAbortReportsTasks(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		started, release := make(chan struct{}), make(chan struct{})
		sup.Go("test.pending", func(ctx context.Context) error {
			close(started)
			<-release // ignores cancellation
			return nil
		})
		<-started
		var te *runtime.TimeoutError
		if err := sup.Wait(timeout(t, 10*time.Millisecond)); !errors.As(err, &te) || len(te.Active) != 1 || te.Active[0].Name != "test.pending" {
			t.Fatalf("Wait = %v, want TimeoutError naming test.pending", err)
		}
		var ae *runtime.AbortError
		if err := sup.Shutdown(timeout(t, 10*time.Millisecond)); !errors.As(err, &ae) || len(ae.Aborted) != 1 || ae.Aborted[0].Name != "test.pending" {
			t.Fatalf("Shutdown = %v, want AbortError naming test.pending", err)
		}
		if a := sup.Active(); len(a) != 0 {
			t.Fatalf("Active after abort = %v", a)
		}
		close(release)
	})
}

func TestForcedAbortEmitsDiagnostic(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		started, release := make(chan struct{}), make(chan struct{})
		task := sup.Go("test.pending", func(ctx context.Context) error {
			close(started)
			<-release
			return nil
		})
		<-started
		ctx := expired()
		if err := sup.Shutdown(ctx); err == nil {
			t.Fatal("Shutdown with an expired context returned nil, want AbortError")
		}
		var aborted *runtime.Event
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskAborted && ev.TaskID == task.ID() {
				aborted = &ev
			}
		}
		if aborted == nil {
			t.Fatalf("no %s event; got %v", runtime.KindTaskAborted, rec.Kinds(task.ID()))
		}
		if aborted.Level().String() != "WARN" || aborted.Outcome != runtime.Aborted {
			t.Fatalf("aborted event level %v outcome %v, want WARN aborted", aborted.Level(), aborted.Outcome)
		}
		close(release)
		synctest.Wait()
	})
}
