package runtime_test

import (
	"context"
	"errors"
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
		// The abandoned consumer stays in the bubble: the last cleanup
		// releases it and waits for its return, or the bubble would end
		// with it blocked (see the package doc).
		release := make(chan struct{})
		t.Cleanup(func() { close(release); synctest.Wait() })
		sup := runtime.New("svc")
		t.Cleanup(func() { err = sup.Shutdown(t.Context()) })
		sup.Go("consumer", func(ctx context.Context) error { <-ctx.Done(); <-release; return nil })
	})
	var ae *runtime.AbortError
	if !errors.As(err, &ae) || len(ae.Aborted) != 1 {
		t.Errorf("Shutdown(t.Context()) in t.Cleanup: %v, want the consumer aborted", err)
	}
}
