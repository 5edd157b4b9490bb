package runtime_test

import (
	"context"
	"errors"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

func TestCancelOnError(t *testing.T) {
	errFirst := errors.New("first failure")
	tests := []struct {
		name     string
		opts     []runtime.GroupOption
		fail     func(context.Context) error
		canceled bool
	}{
		{"error cancels", []runtime.GroupOption{runtime.CancelOnError()}, func(context.Context) error { return errFirst }, true},
		{"panic cancels", []runtime.GroupOption{runtime.CancelOnError()}, panicsWithBoom, true},
		{"success does not", []runtime.GroupOption{runtime.CancelOnError()}, func(context.Context) error { return nil }, false},
		{"opt-in only", nil, func(context.Context) error { return errFirst }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				sup := runtime.New("")
				g := sup.Group("g", tt.opts...)
				var cause error
				sibling := g.Go("sibling", func(ctx context.Context) error {
					<-ctx.Done()
					cause = context.Cause(ctx)
					return nil
				})
				failing := g.Go("failing", tt.fail)
				<-failing.Done()
				if !tt.canceled {
					if g.Context().Err() != nil {
						t.Fatal("group canceled without CancelOnError or on success")
					}
					sup.Cancel(nil)
					mustWait(t, sup)
					return
				}
				<-sibling.Done()
				var te *runtime.TaskError
				if !errors.As(cause, &te) || te.Task != "failing" || te.TaskID != failing.ID() {
					t.Fatalf("sibling's cause = %v, want *TaskError naming the failing task", cause)
				}
				if !errors.Is(cause, failing.Result().Err) {
					t.Fatalf("cause %v does not unwrap to the task's error %v", cause, failing.Result().Err)
				}
				if !errors.Is(context.Cause(g.Context()), failing.Result().Err) {
					t.Fatal("group context cause is not the failing task's error")
				}
			})
		})
	}
}

func TestCancelOnErrorIsPerGroup(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("", runtime.CancelOnError())
		child := sup.Group("child")
		task := child.Go("fails", func(context.Context) error { return errors.New("x") })
		<-task.Done()
		mustWait(t, sup)
		if sup.Context().Err() != nil {
			t.Fatal("a child group's failure canceled the fail-fast parent")
		}
	})
}
