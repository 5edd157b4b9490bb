package runtime_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

// printObserver writes finished events to stderr, so the parent test can
// see that the panic was reported before the process died.
type printObserver struct{}

func (printObserver) TaskStarting(ctx context.Context, _ runtime.Event) context.Context { return ctx }
func (printObserver) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == runtime.KindTaskFinished {
		fmt.Fprintf(os.Stderr, "observed %s %s\n", ev.Task, ev.Outcome)
	}
}

func crashingTask(context.Context) error { panic("crash-value-42") }

// TestCrashPolicy runs a child process whose task panics under the Crash
// policy: the process must die with the original value and stack, after
// observers saw the panic, and before anyone waiting for the task (here a
// Wait followed by a clean exit, as returning from main does) can end the
// program first.
func TestCrashPolicy(t *testing.T) {
	if os.Getenv("TASKSCOPE_CRASH_CHILD") == "1" {
		sup := runtime.New("", runtime.WithObserver(printObserver{}), runtime.WithPanicPolicy(runtime.Crash))
		sup.Go("crasher", crashingTask)
		_ = sup.Wait(context.Background())
		fmt.Fprintln(os.Stderr, "survived")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashPolicy$")
	cmd.Env = append(os.Environ(), "TASKSCOPE_CRASH_CHILD=1")
	out, err := cmd.CombinedOutput()
	s := string(out)
	if err == nil || strings.Contains(s, "survived") {
		t.Fatalf("child survived a panic under Crash policy:\n%s", s)
	}
	obs, pan := strings.Index(s, "observed crasher panic"), strings.Index(s, "panic: crash-value-42")
	if obs < 0 || pan < 0 || obs > pan {
		t.Fatalf("want the observer's report before the re-panic with the original value:\n%s", s)
	}
	if !strings.Contains(s, "crashingTask") {
		t.Fatalf("crash output lacks the panic site:\n%s", s)
	}
}

func TestRecoverPolicyIsDefaultAndInherited(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("", runtime.WithPanicPolicy(runtime.Recover))
		task := sup.Group("child").Go("p", panicsWithBoom)
		<-task.Done()
		if task.Result().Outcome != runtime.Panic {
			t.Fatalf("outcome %v", task.Result().Outcome)
		}
	})
}
