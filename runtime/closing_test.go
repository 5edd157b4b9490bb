package runtime_test

import (
	"context"
	"errors"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

// pauseAtShutdownStarted is an observer that holds a Shutdown between
// closing its subtree and canceling it, for the test to act in between.
type pauseAtShutdownStarted struct {
	started, proceed chan struct{}
}

func (p *pauseAtShutdownStarted) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return ctx
}

func (p *pauseAtShutdownStarted) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == runtime.KindGroupShutdownStarted {
		close(p.started)
		<-p.proceed
	}
}

// A group made under a group that a Shutdown has closed but not yet
// canceled is closed, and its context ends with its parent's, with the
// shutdown's cause, as a context made from the parent's would.
func TestGroupMadeUnderAClosingGroupIsCanceledWithIt(t *testing.T) {
	p := &pauseAtShutdownStarted{started: make(chan struct{}), proceed: make(chan struct{})}
	sup := runtime.New("app", runtime.WithObserver(p))
	parent := sup.Group("parent")
	shut := make(chan error)
	go func() { shut <- parent.Shutdown(context.Background()) }()
	<-p.started
	late := parent.Group("late")
	close(p.proceed)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if !late.Snapshot().Closed {
		t.Error("a group made under a closed group is not closed")
	}
	if !errors.Is(context.Cause(late.Context()), runtime.ErrClosed) {
		t.Errorf("cause of a group made under a closing group, after the Shutdown = %v, want one wrapping ErrClosed", context.Cause(late.Context()))
	}
	if cause := context.Cause(late.Context()); cause != context.Cause(parent.Context()) {
		t.Errorf("cause = %v, want the parent's, %v", cause, context.Cause(parent.Context()))
	}
}
