package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// stallingExporter blocks every export until released, like a collector
// that stopped answering.
type stallingExporter struct {
	release chan struct{}
	spans   atomic.Int64
}

func (e *stallingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.spans.Add(int64(len(spans)))
	return nil
}

func (e *stallingExporter) Shutdown(context.Context) error { return nil }

// While the exporter stalls, spans beyond the queue are dropped and every
// one of them is counted: ended = exported + dropped, nothing lost
// silently inside the SDK's batch processor.
func TestExportQueueCountsEveryDrop(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
	exp := &stallingExporter{release: make(chan struct{})}
	q := newExportQueue(exp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if q.capacity != 64-flushMarkerSlots || q.batchSize != 16 {
		t.Fatalf("capacity %d, batch %d: OTEL_BSP_* not honoured", q.capacity, q.batchSize)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	tracer := tp.Tracer("test")

	const ended = 1000
	for range ended {
		_, span := tracer.Start(context.Background(), "work")
		span.End()
	}
	if c := q.counts(); c.dropped == 0 || c.queued+c.dropped != ended || c.pending != int64(c.queued) {
		t.Errorf("while stalled: %+v; want drops, queued+dropped = %d, all queued pending", c, ended)
	}
	close(exp.release)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	c := q.counts()
	if c.exported != c.queued || c.failed != 0 || c.pending != 0 {
		t.Errorf("after shutdown: %+v; want every queued span exported", c)
	}
	if got := uint64(exp.spans.Load()); got != c.exported || got+c.dropped != ended {
		t.Errorf("exporter received %d, books say exported %d and dropped %d of %d", got, c.exported, c.dropped, ended)
	}
}
