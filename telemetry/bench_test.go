package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// providers are the tracing configurations benchmarked: off (nil), a no-op
// provider (detected as off), and the SDK sampling every span with no
// processor (the span's own cost, without export).
func providers() []struct {
	name string
	tp   trace.TracerProvider
} {
	return []struct {
		name string
		tp   trace.TracerProvider
	}{
		{"tracing=off", nil},
		{"tracing=noop", noop.NewTracerProvider()},
		{"tracing=sdk-sampled", sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))},
	}
}

// BenchmarkObserver measures the observer alone: one spawn and one finish
// with prebuilt events, as the runtime delivers them. The cost per task in
// a real supervisor, in the same run as errgroup and the other peers, is
// measured by the bench module (bench/observers_test.go).
func BenchmarkObserver(b *testing.B) {
	spawn := runtime.Event{Kind: runtime.KindTaskSpawned, Group: "app.g", Task: "work", TaskID: 7, Function: "main.work"}
	fin := spawn
	fin.Kind, fin.Outcome, fin.Duration, fin.Time = runtime.KindTaskFinished, runtime.Success, time.Millisecond, time.Now()
	for _, p := range providers() {
		b.Run(p.name, func(b *testing.B) {
			tel, err := telemetry.New(telemetry.WithTracerProvider(p.tp), telemetry.WithRegisterer(prometheus.NewRegistry()))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				tel.Observe(tel.TaskStarting(ctx, spawn), fin)
			}
		})
	}
}

// BenchmarkSpanAlone is what instrumenting a task by hand costs with the
// SDK: a span like the task span (4 attributes at start, one of them the
// task ID, so built per span; 1 at end). Compare BenchmarkObserver with it.
func BenchmarkSpanAlone(b *testing.B) {
	tr := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())).Tracer("bench")
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, s := tr.Start(ctx, "task work", trace.WithAttributes(
			attribute.String("taskscope.group", "app.g"), attribute.String("taskscope.task.name", "work"),
			attribute.Int64("taskscope.task.id", int64(i)), attribute.String("code.function.name", "main.work")))
		s.SetAttributes(attribute.String("taskscope.task.outcome", "success"))
		s.End()
	}
}
