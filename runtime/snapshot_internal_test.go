package runtime

import (
	"context"
	"errors"
	"testing"
)

// TestRunningStateOfAReturnedTask: a task that has returned is shown (until
// its finished event) as canceling if its end found it canceled, or if a
// cancel (its own or its group's) reached it between fn's return and its
// end: the stream reports that cancel (the task's own before its finished
// event, a group's before or after it), and a snapshot must agree, whether or not fn ever made its own
// context. Neither its end nor a use of its context afterwards makes it
// canceling.
func TestRunningStateOfAReturnedTask(t *testing.T) {
	stop := errors.New("stop")
	for _, tc := range []struct {
		name     string
		canceled bool                                     // what fn's return found
		before   func(c *taskContext, cancelGroup func()) // between fn's return and the end
		after    func(c *taskContext)                     // after the end
		want     TaskState
	}{
		{name: "returned", want: Running},
		{name: "returned canceled", canceled: true, want: Canceling},
		{name: "canceled before its end", before: func(c *taskContext, _ func()) { c.activate().cancel(stop) }, want: Canceling},
		{name: "group canceled before its end", before: func(_ *taskContext, cancelGroup func()) { cancelGroup() }, want: Canceling},
		{name: "group canceled before its end, own context made", before: func(c *taskContext, cancelGroup func()) { c.activate(); cancelGroup() }, want: Canceling},
		{name: "context made before its end", before: func(c *taskContext, _ func()) { c.activate() }, want: Running},
		{name: "context used after its end", after: func(c *taskContext) { c.activate() }, want: Running},
	} {
		group, cancel := context.WithCancelCause(context.Background())
		task := &Task{state: stateFinishing, canceled: tc.canceled}
		task.ctx.lab = &taskLabel{ctx: group}
		if tc.before != nil {
			tc.before(&task.ctx, func() { cancel(stop) })
		}
		task.endLocked(tc.canceled, true)
		if tc.after != nil {
			tc.after(&task.ctx)
		}
		if got := task.runningStateLocked(); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		cancel(nil)
	}
}
