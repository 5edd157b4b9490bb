package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskscope/taskscope/runtime"
)

// errReviewsDown is what the reviews part of every tenth quote fails with.
// Its error type names the failure class: a plain errors.New would be
// labelled *errors.errorString on the dashboards, like any other.
var errReviewsDown = &demoError{"reviews: upstream unavailable", "upstream_unavailable"}

// quoteRoute is where quote is mounted, for GET.
const quoteRoute = "/api/quote"

// quote serves GET /api/quote the way a service's handler uses taskscope,
// as it would an errgroup: a group per request, its parts fanned out as
// tasks, Wait, then Err. It answers 200 with the parts; 502 naming the
// part that failed (the reviews of every tenth quote), not its error; 503
// once the supervisor is shutting down, since its groups then refuse
// spawns and Err says so (errors.Is ErrClosed), rather than 200 for work
// never done.
// The parts stop when the client leaves (WithCancelOn), the handler
// returns once they have, and the group, dropped once waited for, is
// garbage: no Shutdown per request.
//
// Each request is a server span of tracer, and its parts' task spans are
// its children (WithParent): a 502 is one trace, from the request to the
// part that failed, which the part's log record leads to by its trace_id.
func quote(sup *runtime.Supervisor, tracer trace.Tracer) http.Handler {
	var served atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		// The HTTP server span's required attributes (semconv): method,
		// url.path, url.scheme; http.route, as the span name has it.
		ctx, span := tracer.Start(r.Context(), http.MethodGet+" "+quoteRoute, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodGet, semconv.HTTPRoute(quoteRoute),
				semconv.URLPath(r.URL.Path), semconv.URLScheme(scheme)))
		defer span.End()
		status := http.StatusOK // 0: none sent
		defer func() {
			if status != 0 {
				span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			}
			if status >= 500 {
				// semconv: a 5xx server span has error status and, as
				// error.type, the status code.
				span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
			}
		}()
		g := sup.Group("api")
		var parts [3]string
		for i, name := range []string{"price", "stock", "reviews"} {
			g.Go(name, func(ctx context.Context) error {
				if err := sleep(ctx, time.Duration(5+5*i)*time.Millisecond); err != nil {
					return err
				}
				if name == "reviews" && n%10 == 0 {
					return errReviewsDown
				}
				parts[i] = name + " ok"
				return nil
			}, runtime.WithCancelOn(r.Context()), runtime.WithParent(ctx))
		}
		// Wait for the parts themselves, as errgroup's Wait does: given
		// r.Context(), Wait would return when the client leaves, before the
		// parts have even heard of it, and they would outlive the handler
		// (and whatever it releases as it returns). WithCancelOn stops them.
		_ = g.Wait(context.Background())
		if r.Context().Err() != nil {
			status = 0 // the client left: nobody reads an answer
			span.AddEvent("client left")
			return
		}
		switch err := g.Err(); {
		case errors.Is(err, runtime.ErrClosed):
			status = http.StatusServiceUnavailable
			http.Error(w, "shutting down", status)
			span.SetStatus(codes.Error, "shutting down")
		case err != nil:
			// Name the part, not the error: its text may be a panic's
			// stack or an upstream's internals, which the task's log
			// record and span already carry.
			var te *runtime.TaskError
			errors.As(err, &te)
			status = http.StatusBadGateway
			http.Error(w, "quote: part "+te.Task+" failed", status)
			span.SetStatus(codes.Error, "part "+te.Task+" failed")
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(parts)
		}
	})
}
