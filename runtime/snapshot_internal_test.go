package runtime

import (
	"context"
	"errors"
	"testing"
)

// TestRunningStateOfAReturnedTask: a task that has returned is shown (until
// its finished event) as canceling if its end found it canceled, or if a
// Cancel reached it between fn's return and its end: that cancel_requested
// event comes before the finished one, and a snapshot after it must agree.
// Neither its end nor a use of its context afterwards makes it canceling.
func TestRunningStateOfAReturnedTask(t *testing.T) {
	for _, tc := range []struct {
		name     string
		canceled bool                 // what the end recorded
		before   func(c *taskContext) // between fn's return and the end
		after    func(c *taskContext) // after the end
		want     TaskState
	}{
		{name: "returned", want: Running},
		{name: "returned canceled", canceled: true, want: Canceling},
		{name: "canceled before its end", before: func(c *taskContext) { c.activate().cancel(errors.New("stop")) }, want: Canceling},
		{name: "context made before its end", before: func(c *taskContext) { c.activate() }, want: Running},
		{name: "context used after its end", after: func(c *taskContext) { c.activate() }, want: Running},
	} {
		task := &Task{state: stateFinishing, canceled: tc.canceled}
		task.ctx.lab = &taskLabel{ctx: context.Background()}
		if tc.before != nil {
			tc.before(&task.ctx)
		}
		task.ctx.end(tc.canceled)
		if tc.after != nil {
			tc.after(&task.ctx)
		}
		if got := task.runningStateLocked(); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
