package runtime_test

import (
	"context"
	"errors"
	"testing"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// TestReviewFailureRacingAncestorCancel: a fail-fast failure racing its
// parent's Cancel. Whichever cause stands, Err and the group's
// cancel_requested events must agree with it: Err names the failure only
// if the failure is the group's cause (otherwise the group's first error,
// an earlier one, stands), and the group has an event of its own exactly
// when its own failure canceled it.
func TestReviewFailureRacingAncestorCancel(t *testing.T) {
	const rounds = 3000
	errA, errE, operator := errors.New("a failed"), errors.New("e"), errors.New("operator")
	hits := 0
	for i := range rounds {
		rec := new(runtimetest.Recorder)
		sup := runtime.New("app", runtime.WithObserver(rec))
		p := sup.Group("p")
		c := p.Group("c", runtime.CancelOnError())
		// An earlier, non-failing error: c's first error.
		e := c.Go("e", func(ctx context.Context) error { <-ctx.Done(); return errE })
		e.Cancel(nil)
		<-e.Done()
		start := make(chan struct{})
		a := c.Go("a", func(context.Context) error { <-start; return errA })
		done := make(chan struct{})
		go func() { <-start; p.Cancel(operator); close(done) }()
		close(start)
		<-done
		mustWait(t, sup)

		cause := context.Cause(c.Context())
		var te *runtime.TaskError
		errors.As(c.Err(), &te)
		own := 0
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindGroupCancelRequested && ev.GroupID == c.ID() {
				own++
			}
		}
		switch {
		case te == nil:
			t.Fatalf("round %d: Err() = %v", i, c.Err())
		case te.TaskID == a.ID() && cause != error(te):
			t.Fatalf("round %d: Err() names the failure (%v), but the group's cause is %v (events of its own: %d); its first error was e's", i, te, cause, own)
		case errors.Is(cause, errA) && own != 1:
			t.Fatalf("round %d: the failure canceled the group, %d events of its own", i, own)
		case errors.Is(cause, operator) && own != 0:
			t.Fatalf("round %d: the parent canceled the group, %d events of its own", i, own)
		}
		if errors.Is(cause, errA) {
			hits++
		}
	}
	t.Logf("failure first in %d of %d rounds", hits, rounds)
}
