package diagnostics_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// TestProgrammingErrorsPanicAtTheCall: a nil option, context, stream or supervisor
// panics in the constructor, naming what was nil, not with a nil
// dereference later (for the handlers: on every request).
func TestProgrammingErrorsPanicAtTheCall(t *testing.T) {
	s := diagnostics.NewStream()
	var nilCtx context.Context
	tests := []struct {
		name, want string
		call       func()
	}{
		{"NewStream nil option", "nil StreamOption", func() { diagnostics.NewStream(nil) }},
		{"Subscribe nil option", "nil SubscribeOption", func() { s.Subscribe(context.Background(), nil).Close() }},
		{"Subscribe nil context", "Subscribe(nil context)", func() { s.Subscribe(nilCtx).Close() }},
		{"Kinds with a typo", `Kinds("taskscope.task.finish"): no such event kind`, func() { diagnostics.Kinds(runtime.KindTaskSpawned, "taskscope.task.finish") }},
		{"GroupPrefix empty", `GroupPrefix(""): no group has that name`, func() { diagnostics.GroupPrefix("") }},
		{"GroupPrefix dot", `GroupPrefix("."): no group has that name`, func() { diagnostics.GroupPrefix(".") }},
		{"GroupPrefix empty part", `GroupPrefix("app..ingest"): no group has that name`, func() { diagnostics.GroupPrefix("app..ingest") }},
		{"NewLogObserver nil option", "nil LogOption", func() { diagnostics.NewLogObserver(nil, nil) }},
		{"WithMinLevel nil pointer", "WithMinLevel(nil *slog.LevelVar)", func() { diagnostics.WithMinLevel((*slog.LevelVar)(nil)) }},
		{"EventsHandler nil option", "nil EventsOption", func() { diagnostics.EventsHandler(s, nil) }},
		{"EventsHandler nil stream", "EventsHandler(nil Stream)", func() { diagnostics.EventsHandler(nil) }},
		{"TasksHandler nil option", "nil TasksOption", func() { diagnostics.TasksHandler(runtime.New("svc"), nil) }},
		{"TasksHandler nil supervisor", "TasksHandler(nil Supervisor)", func() { diagnostics.TasksHandler(nil) }},
		{"WithEventsURL empty", `WithEventsURL(""): not a URL`, func() { diagnostics.WithEventsURL("") }},
		{"WithEventsURL unparsable", `WithEventsURL("http://[::1"): not a URL`, func() { diagnostics.WithEventsURL("http://[::1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tt.want) {
					t.Fatalf("panic %v, want one mentioning %q", r, tt.want)
				}
			}()
			tt.call()
		})
	}
	// None of those panics may leave the stream locked: every task
	// goroutine publishes through it. A regression hangs here.
	s.Observe(context.Background(), runtime.Event{Seq: 1, Kind: runtime.KindTaskSpawned})
	if got := s.Published(); got != 1 {
		t.Errorf("Published() = %d after the panics, want 1", got)
	}
}

// TestMalformedQuery: a query the handlers cannot parse (a bad %-escape, a
// ";" between parameters) is a 400 saying so. r.URL.Query drops the pairs
// it cannot read, so ?level=warn%zz served every level, ?after=5; no
// resume, ?format=json; the HTML page.
func TestMalformedQuery(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	for _, tc := range []struct {
		h      http.Handler
		target string
	}{
		{diagnostics.EventsHandler(diagnostics.NewStream()), "/events?level=warn%zz"},
		{diagnostics.EventsHandler(diagnostics.NewStream()), "/events?kind=taskscope.task.finished&after=5;"},
		{diagnostics.EventsHandler(diagnostics.NewStream()), "/events?group=svc.ingest%"},
		{diagnostics.TasksHandler(sup), "/tasks?format=json;"},
		{diagnostics.TasksHandler(sup), "/tasks?group=svc%2"},
	} {
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, endedRequest(t, tc.target))
		if body := rec.Body.String(); rec.Code != http.StatusBadRequest || !strings.Contains(body, "bad query") {
			t.Errorf("%s: %d %.60q, want 400 saying the query is bad", tc.target, rec.Code, body)
		}
	}
}

// TestErrorResponsesNameThePackage: every refusal of a request says where
// it comes from, as the package's errors do: a client (or a log of its
// responses) sees "taskscope/diagnostics: bad level: ...", whatever part
// of the request was wrong.
func TestErrorResponsesNameThePackage(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	events := diagnostics.EventsHandler(diagnostics.NewStream())
	tasks := diagnostics.TasksHandler(sup)
	many := "/events?group=g"
	for i := range 64 {
		many += "&group=g" + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		h              http.Handler
		method, target string
		code           int
	}{
		{events, http.MethodGet, "/events?level=loud", http.StatusBadRequest},
		{events, http.MethodGet, "/events?kind=taskscope.task.finish", http.StatusBadRequest},
		{events, http.MethodGet, "/events?group=app..ingest", http.StatusBadRequest},
		{events, http.MethodGet, many, http.StatusBadRequest},
		{events, http.MethodGet, "/events?after=x", http.StatusBadRequest},
		{events, http.MethodGet, "/events?format=xml", http.StatusBadRequest},
		{events, http.MethodGet, "/events?level=warn%zz", http.StatusBadRequest},
		{events, http.MethodPost, "/events", http.StatusMethodNotAllowed},
		{tasks, http.MethodGet, "/tasks?format=xml", http.StatusBadRequest},
		{tasks, http.MethodGet, "/tasks?group=.", http.StatusBadRequest},
		{tasks, http.MethodPost, "/tasks", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		req := endedRequest(t, tc.target)
		req.Method = tc.method
		tc.h.ServeHTTP(rec, req)
		if body := rec.Body.String(); rec.Code != tc.code || !strings.HasPrefix(body, "taskscope/diagnostics: ") {
			t.Errorf("%s %s: %d %.60q, want %d starting with the package's prefix", tc.method, tc.target, rec.Code, body, tc.code)
		}
	}
}

// TestTooManyClientsNamesThePackage: the 503 of a client over the cap
// says where it comes from, as the handlers' other refusals do.
func TestTooManyClientsNamesThePackage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := diagnostics.EventsHandler(diagnostics.NewStream(), diagnostics.WithMaxClients(1))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/events", nil))
		}()
		synctest.Wait() // the first client holds the only slot
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/events", nil))
		if body := rec.Body.String(); rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "taskscope/diagnostics: ") {
			t.Errorf("a client over the cap: %d %q, want 503 starting with the package's prefix", rec.Code, body)
		}
		cancel()
		<-done
	})
}
