package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// TestErrorMessagesOfManyTasksAreBounded: the message of an AbortError or
// a TimeoutError lists the first tasks and says how many more there are.
// It goes into log records, span statuses and the event stream; listing
// all of them made a 3.5 MB message for a shutdown that aborted 100,000
// tasks. The slices keep them all, and %+v prints every one.
func TestErrorMessagesOfManyTasksAreBounded(t *testing.T) {
	const n = 100_000
	now := time.Now()
	tasks := make([]runtime.TaskInfo, n)
	for i := range tasks {
		tasks[i] = runtime.TaskInfo{ID: uint64(i + 1), Name: "worker", Group: "app.wide", Started: now, Stack: "stuck here\n"}
	}
	few := tasks[:3]
	for _, c := range []struct {
		name      string
		err, few  error
		wantStart string
	}{
		{"AbortError", &runtime.AbortError{Group: "app.wide", Aborted: tasks}, &runtime.AbortError{Group: "app.wide", Aborted: few},
			"taskscope: group app.wide: shutdown aborted 100000 task(s): app.wide/worker#1 (age "},
		{"TimeoutError", &runtime.TimeoutError{Group: "app.wide", Active: tasks, Cause: context.DeadlineExceeded}, &runtime.TimeoutError{Group: "app.wide", Active: few, Cause: context.DeadlineExceeded},
			"taskscope: group app.wide: wait timed out with 100000 active task(s): app.wide/worker#1 (age "},
	} {
		msg := c.err.Error()
		if !strings.HasPrefix(msg, c.wantStart) {
			t.Errorf("%s: message starts %.200q, want %q", c.name, msg, c.wantStart)
		}
		if len(msg) > 5<<10 {
			t.Errorf("%s: message of %d tasks is %d bytes", c.name, n, len(msg))
		}
		listed := strings.Count(msg, "app.wide/worker#")
		if want := fmt.Sprintf(", and %d more", n-listed); !strings.HasSuffix(msg, want) {
			t.Errorf("%s: message ends %q, want %q", c.name, msg[max(len(msg)-60, 0):], want)
		}
		// A few tasks are all listed, with nothing more said.
		if m := c.few.Error(); strings.Count(m, "app.wide/worker#") != 3 || strings.Contains(m, "more") {
			t.Errorf("%s: message of 3 tasks is %q", c.name, m)
		}
	}
	full := fmt.Sprintf("%+v", &runtime.AbortError{Group: "app.wide", Aborted: tasks})
	if got := strings.Count(full, "stuck here"); got != n {
		t.Errorf("%%+v prints %d stacks, want %d", got, n)
	}
}
