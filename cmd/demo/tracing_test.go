package main

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/sdk/resource"
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

// TestResource: service.name and service.version of the demo, the
// version from the build; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// win over both.
func TestResource(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	attrs := func(r *resource.Resource) map[string]string {
		m := map[string]string{}
		for _, kv := range r.Attributes() {
			m[string(kv.Key)] = kv.Value.String()
		}
		return m
	}
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	res, err := newResource(context.Background(), "v1.2.3", discard)
	if err != nil {
		t.Fatal(err)
	}
	if a := attrs(res); a["service.name"] != "taskscope-demo" || a["service.version"] != "v1.2.3" || a["telemetry.sdk.language"] != "go" {
		t.Errorf("resource %v: want service.name taskscope-demo, service.version v1.2.3, the SDK's attributes", a)
	}
	res, err = newResource(context.Background(), "", discard)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := attrs(res)["service.version"]; ok {
		t.Errorf("service.version %q from an unknown version", v)
	}

	t.Setenv("OTEL_SERVICE_NAME", "checkout")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=2026.11,deployment.environment.name=staging")
	res, err = newResource(context.Background(), "v1.2.3", discard)
	if err != nil {
		t.Fatal(err)
	}
	if a := attrs(res); a["service.name"] != "checkout" || a["service.version"] != "2026.11" || a["deployment.environment.name"] != "staging" {
		t.Errorf("resource %v: the environment does not win", a)
	}
}

func TestBuildVersion(t *testing.T) {
	revision := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4fb5290abc"}}}
	for _, c := range []struct {
		stamped string
		bi      *debug.BuildInfo
		want    string
	}{
		{"", nil, ""},
		{"v0.5.0-3-g1a2b3c4-dirty", nil, "v0.5.0-3-g1a2b3c4-dirty"},
		{"v0.5.0", revision, "v0.5.0"}, // the stamp wins over the build info
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.1"}}, "v0.4.1"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, ""},
		{"", revision, "4fb5290abc"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4fb5290abc"}, {Key: "vcs.modified", Value: "true"}}}, "4fb5290abc-dirty"},
	} {
		if got := buildVersion(c.stamped, c.bi, c.bi != nil); got != c.want {
			t.Errorf("buildVersion(%q, %+v) = %q, want %q", c.stamped, c.bi, got, c.want)
		}
	}
}

// TestExportTargetHidesSecrets: the export target is shown on the landing
// page and at startup; a token in the endpoint's userinfo or query is not.
func TestExportTargetHidesSecrets(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	for endpoint, want := range map[string]string{
		"http://collector:4318": "otlp (grpc) to http://collector:4318",
		"collector:4317":        "otlp (grpc) to collector:4317",
		"https://user:s3cret@otlp.example/v1?api-key=k3y": "otlp (grpc) to https://xxxxx@otlp.example/v1?xxxxx",
		"https://t0ken@otlp.example":                      "otlp (grpc) to https://xxxxx@otlp.example",
		"http://[bad":                                     "otlp (grpc) to an endpoint that does not parse as a URL",
		// gRPC endpoints are often host:port, with no scheme: url.Parse
		// reads the host as a scheme and the rest as opaque, userinfo
		// included.
		"user:s3cret@collector:4317": "otlp (grpc) to xxxxx@collector:4317",
		"collector:4317?api-key=k3y": "otlp (grpc) to collector:4317?xxxxx",
		"t0ken@collector:4317":       "otlp (grpc) to xxxxx@collector:4317",
		"localhost:4317/v1/traces":   "otlp (grpc) to localhost:4317/v1/traces",
	} {
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
		if got := exportTarget(); got != want {
			t.Errorf("%s: %q, want %q", endpoint, got, want)
		}
	}
}
