package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

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
