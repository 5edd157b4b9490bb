package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskscope/taskscope/runtime"
)

// TestReportIsAboutTheFinalShutdown: a job's flush task aborted by an
// earlier job shutdown, still lingering when the final shutdown begins, is
// not the final report's business: no "late exit:" or "still running:"
// line for it (the report's "N aborted" would disagree with them).
func TestReportIsAboutTheFinalShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { reportIsAboutTheFinalShutdown(t) })
}

func reportIsAboutTheFinalShutdown(t *testing.T) {
	b := newBooks("demo")
	sup := runtime.New("demo", runtime.WithObserver(b))
	job := sup.Group("job")
	job.Go("flush", func(ctx context.Context) error { return flushOnStop(ctx, 400*time.Millisecond) })
	time.Sleep(10 * time.Millisecond)
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_ = job.Shutdown(sctx) // flush aborted here, before the final shutdown
	cancel()

	r := shutdown(context.Background(), sup, b, 100*time.Millisecond) // final shutdown: nothing of its own to abort
	var out strings.Builder
	r.write(&out)
	inAborted := map[uint64]bool{}
	for _, a := range r.aborted {
		inAborted[a.ID] = true
	}
	for _, e := range r.lateExits {
		if !inAborted[e.id] {
			t.Errorf("late exit %s/%s id=%d listed, but the final shutdown aborted %d tasks and not this one", e.group, e.task, e.id, len(r.aborted))
		}
	}
	for _, ev := range r.stillRunning {
		if !inAborted[ev.TaskID] {
			t.Errorf("still running %s/%s id=%d listed, but not aborted by the final shutdown", ev.Group, ev.Task, ev.TaskID)
		}
	}
	time.Sleep(time.Second) // the earlier abort's goroutine returns
	synctest.Wait()
}

// TestExportBatchFillsBeforeTheQueue: with OTEL_BSP_MAX_QUEUE_SIZE=1024
// (and the demo's batch of 1024), a batch must still fill well before the
// queue does, or the processor exports only on its timer and a burst
// overflows the queue (spans dropped with a healthy exporter).
func TestExportBatchFillsBeforeTheQueue(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1024")
	q := newExportQueue(tracetest.NewInMemoryExporter(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer q.Shutdown(context.Background())
	if q.batchSize > q.capacity/2 {
		t.Errorf("batch size %d > admitted capacity %d: size-triggered exports never happen", q.batchSize, q.capacity)
	}
}

// TestDemoErrorTypesAreDistinct: each of the demo's failures has an
// error.type of its own, a failure class rather than a Go type (which
// every errors.New shares: *errors.errorString), so a dashboard grouped by
// it tells them apart.
func TestDemoErrorTypesAreDistinct(t *testing.T) {
	seen := map[string][]string{}
	for _, e := range []error{errSegmentLocked, errDownstream, errChecksum, errReportBudget, errReviewsDown, &validationError{1}} {
		ty := runtime.ErrorType(runtime.Error, e)
		if strings.ContainsAny(ty, "*.") {
			t.Errorf("%q: error.type %q is a Go type, not a failure class: give it an ErrorType method", e, ty)
		}
		seen[ty] = append(seen[ty], e.Error())
	}
	for ty, errs := range seen {
		if len(errs) > 1 {
			t.Errorf("error.type %q shared by %d distinct failures: %q", ty, len(errs), errs)
		}
	}
}
