package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// Wire a supervisor's events to a tracer provider and a Prometheus
// registry. A service passes its SDK provider (or none, for
// otel.GetTracerProvider()) and serves reg with promhttp.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reg := prometheus.NewRegistry()

	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(reg))
	if err != nil {
		panic(err)
	}
	sup := runtime.New("app", runtime.WithObserver(tel))

	<-sup.Go("fetch", func(ctx context.Context) error { return errors.New("upstream down") }).Done()
	if err := sup.Shutdown(context.Background()); err != nil {
		panic(err)
	}

	for _, s := range spans.Ended() {
		fmt.Println("span:", s.Name(), s.Status().Code)
	}
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if mf.GetName() == "taskscope_tasks_finished_total" && m.Counter.GetValue() > 0 {
				var l []string
				for _, lp := range m.Label {
					l = append(l, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
				}
				fmt.Printf("metric: %s{%s} %v\n", mf.GetName(), strings.Join(l, ","), m.Counter.GetValue())
			}
		}
	}
	// Output:
	// span: task fetch Error
	// span: shutdown app Unset
	// metric: taskscope_tasks_finished_total{error_type="*errors.errorString",group="app",outcome="error",task="fetch"} 1
}
