package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/lmittmann/tint"
	"go.opentelemetry.io/otel/trace"
)

// newLogger returns the demo's logger on w: tint for people (format
// "text"), slog's JSON handler for machines (format "json").
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	switch format {
	case "text":
		color := colorful(w)
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level:       level,
			NoColor:     !color,
			ReplaceAttr: redErrors(color),
		})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	}
	return nil, fmt.Errorf("unknown -log-format %q (want text or json)", format)
}

// colorful reports whether w is a terminal and NO_COLOR (no-color.org) is
// unset: tint does not detect either by itself, and escape codes in a file
// or a container log are noise.
func colorful(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// redErrors colours error-valued attributes red, so the reason a task
// failed stands out of a busy terminal.
func redErrors(color bool) func([]string, slog.Attr) slog.Attr {
	if !color {
		return nil
	}
	return func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindAny {
			if _, ok := a.Value.Any().(error); ok {
				return tint.Attr(9, a)
			}
		}
		return a
	}
}

// traceIDs finds the span in a task's context for
// diagnostics.WithTraceIDs, so log lines carry trace_id and span_id and
// lead to the trace (in zpages or the tracing backend).
func traceIDs(ctx context.Context) (traceID, spanID string, ok bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", "", false
	}
	return sc.TraceID().String(), sc.SpanID().String(), true
}

// otelLogger is the OpenTelemetry SDK's own log (otel.SetLogger) on the
// demo's logger, tagged component=opentelemetry. The SDK reports there
// what is not an export error: a malformed OTEL_EXPORTER_OTLP_* variable
// (the setting is then ignored), dropped span attributes or events.
// Without it they went through stdr to the process's stderr, in a format
// of their own, in the middle of a JSON log stream.
//
// logr's verbosity V(n) is slog level -n; the SDK logs errors as errors,
// warnings at V(1), state at V(4) and debugging at V(8). otelLevels maps
// them to Warn, Debug and below Debug (never shown).
func otelLogger(logger *slog.Logger) logr.Logger {
	h := logger.Handler().WithAttrs([]slog.Attr{slog.String("component", "opentelemetry")})
	return logr.FromSlogHandler(otelLevels{h})
}

type otelLevels struct{ slog.Handler }

func otelLevel(l slog.Level) slog.Level {
	switch {
	case l >= slog.LevelInfo: // errors, and V(0) (the SDK does not use it)
		return l
	case l > slog.LevelDebug: // V(1) to V(3): warnings
		return slog.LevelWarn
	case l > 2*slog.LevelDebug: // V(4) to V(7): the SDK's state
		return slog.LevelDebug
	}
	return l
}

func (h otelLevels) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, otelLevel(l))
}

func (h otelLevels) Handle(ctx context.Context, r slog.Record) error {
	r.Level = otelLevel(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h otelLevels) WithAttrs(attrs []slog.Attr) slog.Handler {
	return otelLevels{h.Handler.WithAttrs(attrs)}
}

func (h otelLevels) WithGroup(name string) slog.Handler { return otelLevels{h.Handler.WithGroup(name)} }

// otelErrors is the OpenTelemetry error handler (otel.SetErrorHandler):
// export failures, one per batch (about one a second here) while the
// collector is down. It logs the first, then at most one per every, with
// the number it held back since the last: an outage is in the log at once
// and stays there, without a line per batch. The exporter's counters
// (/metrics, and the report at exit) count every failure.
type otelErrors struct {
	logger *slog.Logger
	every  time.Duration

	mu   sync.Mutex
	last time.Time // guarded by mu: when the last record was written
	held int       // guarded by mu: errors not logged since
}

func (h *otelErrors) Handle(err error) {
	h.mu.Lock()
	now := time.Now()
	if !h.last.IsZero() && now.Sub(h.last) < h.every {
		h.held++
		h.mu.Unlock()
		return
	}
	held := h.held
	h.last, h.held = now, 0
	h.mu.Unlock()
	h.logger.Warn("opentelemetry", "component", "opentelemetry", "error", err, "suppressed", held)
}
