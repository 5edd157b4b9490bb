package diagnostics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

func bigPanic() *runtime.PanicError {
	return &runtime.PanicError{Value: "boom", Stack: []byte(strings.Repeat("goroutine 1 [running]:\n", 4000))}
}

// A fail_fast cause (*TaskError wrapping the sibling's *PanicError) and an
// error wrapping a panic get their stacks capped too, not only a panic's
// own error: the full stack must not stay behind the capped wrapper.
func TestStreamCapsNestedPanicStacks(t *testing.T) {
	s := diagnostics.NewStream()
	sub := s.Subscribe(t.Context())
	pe := bigPanic()
	publish(s, runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "g", Task: "t", TaskID: 1,
		Outcome: runtime.Error, Err: fmt.Errorf("child group: %w", pe),
		Cause: &runtime.TaskError{Group: "g", Task: "sib", TaskID: 2, Err: pe}})
	evs := collect(sub)
	var got *runtime.PanicError
	if errors.As(evs[0].Err, &got) && len(got.Stack) > diagnostics.DefaultMaxStack+64 {
		t.Errorf("Err: nested PanicError stack is %d bytes, cap is %d", len(got.Stack), diagnostics.DefaultMaxStack)
	}
	if errors.As(evs[0].Cause, &got) && len(got.Stack) > diagnostics.DefaultMaxStack+64 {
		t.Errorf("Cause: nested PanicError stack is %d bytes, cap is %d", len(got.Stack), diagnostics.DefaultMaxStack)
	}
}

// The wire form of an error that merely wraps a panic keeps the error's own
// message: a fail_fast cause says which task failed, a joined error keeps
// its other members. Only a panic's own error reads "taskscope: panic: …".
func TestEventJSONKeepsWrapperText(t *testing.T) {
	pe := &runtime.PanicError{Value: "boom", Stack: []byte("stack")}
	j := diagnostics.NewEventJSON(runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "g", Task: "t", TaskID: 1,
		Outcome: runtime.Error, Err: errors.Join(errors.New("db down"), fmt.Errorf("child: %w", pe)),
		Cause: &runtime.TaskError{Group: "g", Task: "sib", TaskID: 2, Err: pe}})
	if !strings.Contains(j.Error, "db down") {
		t.Errorf("Error = %q: lost the joined error's text", j.Error)
	}
	if !strings.Contains(j.Cause, "sib") {
		t.Errorf("Cause = %q: lost which task failed (cause_kind %s)", j.Cause, j.CauseKind)
	}
}

// Same in the log observer: an error-outcome event whose error wraps a
// panic is logged with the error's own text, not as an exception with only
// the panic value.
func TestLogKeepsWrapperText(t *testing.T) {
	rec := &recorder{level: slog.LevelDebug}
	o := diagnostics.NewLogObserver(slog.New(rec))
	pe := &runtime.PanicError{Value: "boom", Stack: []byte("stack")}
	o.Observe(context.Background(), runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "g", Task: "t", TaskID: 1,
		Outcome: runtime.Error, Err: errors.Join(errors.New("db down"), fmt.Errorf("child: %w", pe))})
	r := rec.records()[0]
	var all []string
	r.Attrs(func(a slog.Attr) bool { all = append(all, a.String()); return true })
	if s := strings.Join(all, " "); !strings.Contains(s, "db down") {
		t.Errorf("record attrs %s: the error's message is not logged", s)
	}
}

// With a real supervisor: in a CancelOnError group where one task panics,
// the sibling's finished event carries the panic stack in its Cause capped,
// and its wire form names the failing task.
func TestFailFastPanicCauseNamesTheTask(t *testing.T) {
	s := diagnostics.NewStream()
	sub := s.Subscribe(t.Context(), diagnostics.Kinds(runtime.KindTaskFinished))
	sup := runtime.New("svc", runtime.WithObserver(s))
	g := sup.Group("work", runtime.CancelOnError())
	started := make(chan struct{})
	g.Go("sib", func(ctx context.Context) error { close(started); <-ctx.Done(); return ctx.Err() })
	<-started
	g.Go("bad", func(context.Context) error { panic(strings.Repeat("x", 10)) })
	_ = sup.Wait(context.Background())
	for _, ev := range collect(sub) {
		if ev.Task != "sib" {
			continue
		}
		var pe *runtime.PanicError
		if errors.As(ev.Cause, &pe) {
			t.Logf("sib's Cause carries a PanicError with a %d-byte stack (cap %d with WithMaxStack)", len(pe.Stack), diagnostics.DefaultMaxStack)
		}
		j := diagnostics.NewEventJSON(ev)
		if !strings.Contains(j.Cause, "bad") {
			t.Errorf("sib cause on the wire = %q (cause_kind %s): does not say task bad failed", j.Cause, j.CauseKind)
		}
	}
}

// noFlushWriter is a ResponseWriter from a middleware that does not expose
// Flush (nor Unwrap), so the response cannot be streamed.
type noFlushWriter struct {
	h      http.Header
	status int
	body   strings.Builder
}

func (w *noFlushWriter) Header() http.Header { return w.h }
func (w *noFlushWriter) WriteHeader(c int)   { w.status = c }
func (w *noFlushWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.body.Write(b)
}

// flushErrorWriter flushes only through FlushError, which
// http.ResponseController tries before http.Flusher.
type flushErrorWriter struct{ noFlushWriter }

func (*flushErrorWriter) FlushError() error { return nil }

// Behind a writer that cannot flush, the handler answers with an error,
// not 200 and an empty stream (an EventSource would reconnect forever,
// and nothing would say streaming is unsupported). A writer that
// http.ResponseController can flush, through either method, streams.
func TestEventsNeedAFlusher(t *testing.T) {
	h := diagnostics.EventsHandler(diagnostics.NewStream())
	for _, tc := range []struct {
		name   string
		w      http.ResponseWriter
		stream bool
	}{
		{"no flusher", &noFlushWriter{h: http.Header{}}, false},
		{"FlushError only", &flushErrorWriter{noFlushWriter{h: http.Header{}}}, true},
	} {
		h.ServeHTTP(tc.w, endedRequest(t, "/events?format=ndjson"))
		if ct := tc.w.Header().Get("Content-Type"); (ct == "application/x-ndjson") != tc.stream {
			t.Errorf("%s: Content-Type %q, want streaming %v", tc.name, ct, tc.stream)
		}
	}
}

// TestContentNegotiation: the handlers serve their alternative format only
// when the Accept header prefers it: q=0 means "not acceptable" (RFC 9110,
// section 12.4.2), and a higher q for the default format keeps it.
func TestContentNegotiation(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	events, tasks := diagnostics.EventsHandler(diagnostics.NewStream()), diagnostics.TasksHandler(sup)
	for _, tc := range []struct {
		h      http.Handler
		accept string
		want   string
	}{
		{events, "", "text/event-stream"},
		{events, "application/x-ndjson", "application/x-ndjson"},
		{events, "text/event-stream, application/x-ndjson;q=0", "text/event-stream"},
		{events, "application/x-ndjson; q=0.0, */*", "text/event-stream"},
		{events, "text/event-stream, application/x-ndjson;q=0.5", "text/event-stream"},
		{events, "text/event-stream;q=0.5, application/x-ndjson", "application/x-ndjson"},
		{tasks, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"},
		{tasks, "application/json", "application/json"},
		{tasks, "text/html, application/json;q=0", "text/html"},
		{tasks, "application/json;q=0, */*;q=0.1", "text/html"},
		{tasks, "text/html, application/json;q=0.9", "text/html"},
		{tasks, "*/*;q=0.1, application/json", "application/json"},
	} {
		rec := httptest.NewRecorder()
		req := endedRequest(t, "/")
		req.Header.Set("Accept", tc.accept)
		tc.h.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.want) {
			t.Errorf("Accept %q: Content-Type %q, want %s", tc.accept, ct, tc.want)
		}
	}
}

// TestContentNegotiationAcrossAcceptLines: an Accept sent as several
// header lines is one list (RFC 9110, section 5.3), read whole, not only
// its first line.
func TestContentNegotiationAcrossAcceptLines(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	for _, tc := range []struct {
		h     http.Handler
		lines []string
		want  string
	}{
		{diagnostics.EventsHandler(diagnostics.NewStream()), []string{"text/plain", "application/x-ndjson"}, "application/x-ndjson"},
		{diagnostics.EventsHandler(diagnostics.NewStream()), []string{"application/x-ndjson", "text/event-stream"}, "application/x-ndjson"},
		{diagnostics.EventsHandler(diagnostics.NewStream()), []string{"application/x-ndjson", "text/event-stream;q=0.1, */*;q=0.9"}, "application/x-ndjson"},
		{diagnostics.EventsHandler(diagnostics.NewStream()), []string{"application/x-ndjson;q=0.5", "text/event-stream"}, "text/event-stream"},
		{diagnostics.TasksHandler(sup), []string{"text/plain;q=0.5", "application/json"}, "application/json"},
		{diagnostics.TasksHandler(sup), []string{"application/json;q=0.5", "text/html"}, "text/html"},
	} {
		rec := httptest.NewRecorder()
		req := endedRequest(t, "/")
		req.Header["Accept"] = tc.lines
		tc.h.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.want) {
			t.Errorf("Accept lines %q: Content-Type %q, want %s", tc.lines, ct, tc.want)
		}
	}
}

// GroupPrefix with a trailing dot ("work.", as ?group=work.) means the
// group: it matches it and its descendants.
func TestGroupPrefixTrailingDot(t *testing.T) {
	s := diagnostics.NewStream()
	sub := s.Subscribe(t.Context(), diagnostics.GroupPrefix("svc.work."))
	publish(s,
		runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "svc.work", Task: "t", TaskID: 1},
		runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Group: "svc.work.db", Task: "t", TaskID: 2})
	if evs := collect(sub); len(evs) == 0 {
		t.Errorf("GroupPrefix(%q) matched none of svc.work, svc.work.db", "svc.work.")
	}
}

// classified is an application error with an error type of its own.
type classified struct{ err error }

func (e *classified) Error() string     { return "dependency: " + e.err.Error() }
func (e *classified) Unwrap() error     { return e.err }
func (e *classified) ErrorType() string { return "dependency_failed" }

// TestStreamKeepsErrorTypeOfCutPanics: when the stream copies an error's
// chain to cut a wrapped panic's stack, error_type stays what logs and
// telemetry say (the wrapper's own ErrorType, or its chain's).
func TestStreamKeepsErrorTypeOfCutPanics(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("child: %w", bigPanic()),
		&classified{err: bigPanic()},
	} {
		want := runtime.ErrorType(runtime.Error, err)
		s := diagnostics.NewStream()
		sub := s.Subscribe(t.Context())
		publish(s, runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "g", Task: "t", TaskID: 1,
			Outcome: runtime.Error, Err: err})
		if got := diagnostics.NewEventJSON(collect(sub)[0]).ErrorType; got != want {
			t.Errorf("error_type on the stream = %q, want %q", got, want)
		}
	}
}

// endedRequest is a GET whose client has gone already: the events handler
// answers it with its headers and ends at once.
func endedRequest(t *testing.T, target string) *http.Request {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
}
