package conformance_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// Example_observability wires every channel into one supervisor: spans and
// metrics (telemetry), logs and the event stream (diagnostics), and the
// HTTP endpoints an operator reads.
func Example_observability() {
	tp := sdktrace.NewTracerProvider() // your SDK provider, with its exporter
	reg := prometheus.NewRegistry()    // yours; taskscope never touches the default one
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	stream := diagnostics.NewStream()

	// The dashboard's goroutine panels compare the tasks with go_goroutines.
	reg.MustRegister(collectors.NewGoCollector())
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(reg),
		telemetry.WithStreamStats(stream)) // taskscope_stream_*: the stream panels, TaskscopeStreamDropping
	if err != nil {
		panic(err)
	}
	sup := runtime.New("app",
		runtime.WithObserver(tel),                                // spans + Prometheus metrics
		runtime.WithObserver(diagnostics.NewLogObserver(logger)), // slog records
		runtime.WithObserver(stream),                             // subscribable event stream
	)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.Handle("/debug/tasks", diagnostics.TasksHandler(sup))      // live task tree (HTML, ?format=json, ?group=app.ingest)
	mux.Handle("/debug/events", diagnostics.EventsHandler(stream)) // SSE, or NDJSON
	srv := &http.Server{Addr: ":8080", Handler: mux}
	// Event streams end only when their client leaves or the stream is
	// closed: without this, srv.Shutdown waits for every open one.
	srv.RegisterOnShutdown(stream.Close)
	// README block ends here.

	sup.Go("fetch", func(ctx context.Context) error { return nil })
	_ = sup.Shutdown(context.Background())
	_ = srv.Shutdown(context.Background()) // never started here: returns at once
	_ = tp.Shutdown(context.Background())
	// Every metric the shipped dashboard and alerts read is there: the
	// stream's (TaskscopeStreamDropping, the stream panels) and the Go
	// collector's go_goroutines (the goroutine panels) included.
	for _, name := range []string{"taskscope_tasks_started_total", "taskscope_stream_dropped_total", "go_goroutines"} {
		n, _ := testutil.GatherAndCount(reg, name)
		fmt.Println(name, n)
	}
	// Output:
	// taskscope_tasks_started_total 1
	// taskscope_stream_dropped_total 1
	// go_goroutines 1
}
