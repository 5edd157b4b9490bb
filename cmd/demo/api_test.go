package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"testing"
	"testing/synctest"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// TestQuote: the per-request handler answers 200 with its parts, 502
// naming the part that failed, nothing to a client that left, and 503
// once the supervisor is shutting down: its spawns are refused, and Err
// says so. A 502 is one trace: the request's server span, with an error
// status, and its parts' task spans as its children.
func TestQuote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		tel, err := telemetry.New(telemetry.WithTracerProvider(tp))
		if err != nil {
			t.Fatal(err)
		}
		sup := runtime.New("demo", runtime.WithObserver(tel))
		h := quote(sup, demoTracer(tp))
		serve := func(ctx context.Context) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/quote", nil))
			return rec
		}
		for i := 1; i <= 10; i++ {
			rec := serve(t.Context())
			switch body := rec.Body.String(); {
			case i < 10 && (rec.Code != http.StatusOK || body != `["price ok","stock ok","reviews ok"]`+"\n"):
				t.Errorf("quote %d: %d %q, want 200 and every part", i, rec.Code, body)
			case i == 10 && (rec.Code != http.StatusBadGateway || body != "quote: part reviews failed\n"):
				t.Errorf("quote %d: %d %q, want 502 naming the reviews part", i, rec.Code, body)
			}
		}
		ended := spans.Ended()
		request := ended[len(ended)-1]
		if request.Name() != "GET /api/quote" || request.Status().Code != codes.Error {
			t.Errorf("the 502's last span is %q with status %v, want its server span with an error", request.Name(), request.Status())
		}
		// semconv's HTTP server span: its required attributes, and a 5xx's
		// status code as error.type; the scope names the semconv version.
		attrs := attribute.NewSet(request.Attributes()...)
		for k, want := range map[attribute.Key]attribute.Value{
			"http.request.method":       attribute.StringValue("GET"),
			"http.route":                attribute.StringValue(quoteRoute),
			"url.path":                  attribute.StringValue("/api/quote"),
			"url.scheme":                attribute.StringValue("http"),
			"http.response.status_code": attribute.IntValue(http.StatusBadGateway),
			"error.type":                attribute.StringValue("502"),
		} {
			if got, _ := attrs.Value(k); got != want {
				t.Errorf("the 502's server span has %s = %v (%v), want %v", k, got.Emit(), got.Type(), want.Emit())
			}
		}
		if got := request.InstrumentationScope().SchemaURL; got != semconv.SchemaURL {
			t.Errorf("the demo's spans have schema URL %q, want %q", got, semconv.SchemaURL)
		}
		parts := 0
		for _, s := range ended {
			if s.Parent().SpanID() == request.SpanContext().SpanID() && s.SpanContext().TraceID() == request.SpanContext().TraceID() {
				parts++
			}
		}
		if parts != 3 {
			t.Errorf("the 502's server span has %d task spans as children, want its 3 parts", parts)
		}

		// A client that leaves mid-request gets nothing, and the handler
		// returns once its parts have stopped, as errgroup's Wait would:
		// none outlives the request.
		left, cancel := context.WithCancel(t.Context())
		served := make(chan *httptest.ResponseRecorder)
		go func() { served <- serve(left) }()
		synctest.Wait() // the parts are running
		cancel()
		if rec := <-served; rec.Body.Len() != 0 {
			t.Errorf("a client that left got %q", rec.Body.String())
		}
		if active := sup.Active(); len(active) != 0 {
			t.Errorf("the handler returned with %d parts still running: %v", len(active), active)
		}

		// Dropped once waited for, the request groups are garbage.
		goruntime.GC()
		if n := len(sup.Snapshot().Groups); n != 0 {
			t.Errorf("%d request groups left in the tree after a GC, want none", n)
		}

		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rec := serve(t.Context()); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("after the shutdown: %d %q, want 503", rec.Code, rec.Body.String())
		}
	})
}
