package runtime_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// The package doc's "Testing with synctest", as a service's test meets it.

// "A t.Cleanup that shuts the supervisor down runs inside the bubble, in
// fake time: give it a context.WithTimeout of context.Background(), not
// t.Context(), which is done before cleanups run and would abort every
// task at once."
func TestSynctestShutdownInCleanup(t *testing.T) {
	// consumer takes a second of fake time to stop once canceled.
	consumer := func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(time.Second)
		return nil
	}
	var err error
	var took time.Duration
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("svc")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			err = sup.Shutdown(ctx)
			took = time.Since(start)
		})
		sup.Go("consumer", consumer)
		sup.Every("poll", time.Minute, func(context.Context) error { return nil })
		time.Sleep(time.Hour)
	})
	if err != nil || took != time.Second {
		t.Errorf("Shutdown in t.Cleanup with a fresh timeout: %v after %v, want nil after 1s", err, took)
	}

	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("svc")
		t.Cleanup(func() { err = sup.Shutdown(t.Context()) })
		sup.Go("consumer", consumer)
	})
	var ae *runtime.AbortError
	if !errors.As(err, &ae) || len(ae.Aborted) != 1 {
		t.Errorf("Shutdown(t.Context()) in t.Cleanup: %v, want the consumer aborted", err)
	}
}

// "A supervisor's contexts and wait channels belong to the bubble whose
// goroutine first uses them: one made outside (a package-level supervisor)
// or kept for another bubble ends the test binary with a fatal error
// ("close of synctest channel from outside bubble", or receive, or
// select)". Which one depends on who first asks for a context's Done
// channel, and when.
func TestSynctestSupervisorSharedByBubbles(t *testing.T) {
	if os.Getenv("TASKSCOPE_SYNCTEST_CHILD") == "1" {
		sup := runtime.New("svc") // a package-level supervisor, in effect
		synctest.Test(t, func(t *testing.T) {
			task := sup.Go("a", blockUntilCanceled)
			task.Cancel(nil)
			<-task.Done()
		})
		synctest.Test(t, func(t *testing.T) {
			sup.Go("b", blockUntilCanceled)
			_ = sup.Shutdown(context.Background())
		})
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSynctestSupervisorSharedByBubbles$")
	cmd.Env = append(os.Environ(), "TASKSCOPE_SYNCTEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "fatal error: ") || !strings.Contains(string(out), " synctest channel from outside bubble") {
		t.Fatalf("a supervisor used by two bubbles: %v, want the fatal error the doc names:\n%s", err, out)
	}
}
