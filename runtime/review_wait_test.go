package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// TestReviewWaitDeadlineWithCauseIsATimeout: a Wait whose deadline passed
// timed out, whatever cause the deadline carries (WithTimeoutCause): it
// must not read "wait canceled" at info.
func TestReviewWaitDeadlineWithCauseIsATimeout(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		release := make(chan struct{})
		sup.Go("slow", func(context.Context) error { <-release; return nil })
		budget := errors.New("request budget spent")
		ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, budget)
		defer cancel()
		err := sup.Wait(ctx)
		close(release)
		mustWait(t, sup)
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("ctx.Err() = %v", ctx.Err())
		}
		if err == nil || !strings.Contains(err.Error(), "wait timed out") {
			t.Errorf("Wait = %v, want 'wait timed out': the deadline passed", err)
		}
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindGroupWaitTimedOut && ev.Level() != slog.LevelWarn {
				t.Errorf("wait_timed_out event at %v, want WARN: the deadline passed", ev.Level())
			}
		}
	})
}
