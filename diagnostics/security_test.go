package diagnostics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// hostile is text an attacker may get into a task or group name, an error
// message or a panic value (an error wrapping a request path or a header):
// SSE field injection, line terminators of every kind (SSE ends a line at
// CR, LF or CRLF; JavaScript source at U+2028 and U+2029), NUL, invalid
// UTF-8, and HTML and script breakers.
var hostile = []string{
	"a\nevent: taskscope.task.finished\ndata: {\"forged\":true}\n\n",
	"b\r\nid: 999@forged\r\n\r\n",
	"c\rdata: forged\r\r",
	"retry: 1\n\nevent: x",
	":comment\n\ndata:x",
	"d\u2028e\u2029f\u0085g",
	"nul\x00byte",
	"bad\xffutf8\xc3",
	"</script><script>alert(1)</script><!--",
	`<img src=x onerror="alert(1)">`,
	`"quoted" 'single' \backslash`,
}

// sseEvent is one message as the WHATWG EventSource parser dispatches it.
type sseEvent struct{ id, event, data string }

// parseSSE reads body as a browser does (HTML Living Standard, 9.2.6): a
// line ends at CRLF, LF or CR; a blank line dispatches; ':' is a comment;
// "field: value" with one optional space; data lines join with LF. It
// returns every dispatched message (no event type means "message").
func parseSSE(body []byte) []sseEvent {
	var out []sseEvent
	var cur sseEvent
	var data []string
	s := string(body)
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break // an unterminated last line is never dispatched
		}
		line := s[:i]
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		switch {
		case line == "":
			if data != nil {
				cur.data = strings.Join(data, "\n")
				if cur.event == "" {
					cur.event = "message"
				}
				out = append(out, cur)
			}
			cur.event, data = "", nil // id persists, as lastEventId does
		case line[0] == ':':
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				cur.event = value
			case "data":
				data = append(data, value)
			case "id":
				if !strings.Contains(value, "\x00") {
					cur.id = value
				}
			}
		}
	}
	return out
}

// hostileEvents publishes to a stream one event per hostile text, the text
// in every string field a client sees, and returns what each field must
// read once decoded: the text as JSON carries it (invalid UTF-8 as
// U+FFFD).
func hostileEvents(t *testing.T) (*diagnostics.Stream, []string) {
	t.Helper()
	s := diagnostics.NewStream()
	var want []string
	for i, h := range hostile {
		publish(s, runtime.Event{
			Seq: uint64(i + 1), Kind: runtime.KindTaskFinished,
			Group: "svc." + h, GroupID: uint64(i + 2), ParentGroupID: 1,
			Task: h, TaskID: uint64(i + 10), Function: h,
			Outcome: runtime.Panic, Err: &runtime.PanicError{Value: h, Stack: []byte(h)}, Stack: []byte(h),
			Cause: errors.New(h),
		})
		want = append(want, strings.ToValidUTF8(h, "\uFFFD"))
	}
	return s, want
}

// checkHostileJSON checks that j carries want in every text field, and
// nothing forged.
func checkHostileJSON(t *testing.T, i int, j diagnostics.EventJSON, want string) {
	t.Helper()
	if j.Kind != runtime.KindTaskFinished || j.Seq != uint64(i+1) || j.Task != want || j.Group != "svc."+want ||
		j.Function != want || j.Error != "taskscope: panic: "+want || j.Stack != want || j.Cause != want {
		t.Errorf("event %d: %+v, want every text field to read %q", i, j, want)
	}
}

// TestEventsHostileTextCannotBreakFraming: names, messages, panic values
// and stacks holding SSE syntax, line terminators, NUL and invalid UTF-8
// neither end an SSE message early nor forge a field, an event or an id,
// as a browser's EventSource parses them; an NDJSON line stays one
// line, and the body is valid UTF-8.
func TestEventsHostileTextCannotBreakFraming(t *testing.T) {
	for _, format := range []string{"sse", "ndjson"} {
		t.Run(format, func(t *testing.T) {
			s, want := hostileEvents(t)
			w, _ := serveEvents(t, diagnostics.EventsHandler(s, diagnostics.WithKeepAlive(time.Millisecond)), http.MethodGet, "after=0&format="+format, http.Header{})
			body := w.body.Bytes()
			if !utf8.Valid(body) || bytes.ContainsAny(body, "\r\x00\u2028\u2029") {
				t.Errorf("the body holds invalid UTF-8, a raw CR, NUL or U+2028/U+2029 (JSON allows them raw; ECMAScript before 2019 does not):\n%q", body)
			}
			var got []diagnostics.EventJSON
			if format == "sse" {
				msgs := parseSSE(body)
				for _, m := range msgs {
					var j diagnostics.EventJSON
					if err := json.Unmarshal([]byte(m.data), &j); err != nil {
						t.Fatalf("SSE message %+v: %v", m, err)
					}
					if m.event != j.Kind || m.id != j.ID || !strings.HasSuffix(m.id, "@"+strings.SplitN(j.ID, "@", 2)[1]) {
						t.Errorf("SSE message's event %q / id %q, its data's kind %q / id %q", m.event, m.id, j.Kind, j.ID)
					}
					got = append(got, j)
				}
			} else {
				for line := range strings.SplitSeq(strings.TrimRight(string(body), "\n"), "\n") {
					var j diagnostics.EventJSON
					if err := json.Unmarshal([]byte(line), &j); err != nil {
						t.Fatalf("NDJSON line %q: %v", line, err)
					}
					got = append(got, j)
				}
			}
			if len(got) != len(hostile) {
				t.Fatalf("%d events for %d published:\n%s", len(got), len(hostile), body)
			}
			for i, j := range got {
				checkHostileJSON(t, i, j, want[i])
			}
		})
	}
}

// TestTasksPageEscapesHostileNames: the server-rendered page shows hostile
// group and task names, and a hostile ?group=, as text: no tag, attribute
// or script of theirs reaches the markup, and the embedded snapshot (in a
// script element) is still the JSON form, whole.
func TestTasksPageEscapesHostileNames(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("svc", runtime.WithObserver(stream))
	release := make(chan struct{})
	for _, h := range hostile {
		name := strings.ReplaceAll(h, ".", "·") // a group name has no dot
		sup.Group(name).Go(h, func(context.Context) error { <-release; return nil })
	}
	defer func() {
		close(release)
		_ = sup.Shutdown(context.Background())
	}()
	h := diagnostics.TasksHandler(sup)
	for _, filter := range []string{"", "group=svc%3Cscript%3Ealert(1)%3C%2Fscript%3E", "group=svc.%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"} {
		target := "/debug/tasks"
		if filter != "" {
			target += "?" + filter
		}
		rec := get(h, target)
		page := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", target, rec.Code, page)
		}
		for _, bad := range []string{"<img", "<script>alert", "</script><script", "<!--", "\x00"} {
			if n := strings.Count(page, bad); n != 0 {
				t.Errorf("%s: the page holds %q %d times, unescaped", target, bad, n)
			}
		}
		// Exactly the template's own two script elements.
		if n := strings.Count(strings.ToLower(page), "<script"); n != 2 {
			t.Errorf("%s: %d <script tags, want the page's 2", target, n)
		}
		if n := strings.Count(strings.ToLower(page), "</script"); n != 2 {
			t.Errorf("%s: %d </script tags, want the page's 2", target, n)
		}
		if filter == "" {
			_, rest, _ := strings.Cut(page, `<script id="snapshot" type="application/json">`)
			embedded, _, _ := strings.Cut(rest, `</script>`)
			var snap diagnostics.SnapshotJSON
			if err := json.Unmarshal([]byte(embedded), &snap); err != nil {
				t.Fatalf("embedded snapshot: %v\n%s", err, embedded)
			}
			var names []string
			for _, g := range snap.Root.Groups {
				for _, task := range g.Tasks {
					names = append(names, task.Name)
				}
			}
			var want []string
			for _, h := range hostile {
				want = append(want, strings.ToValidUTF8(h, "\uFFFD"))
			}
			if !slices.Equal(names, want) {
				t.Errorf("embedded task names %q, want %q", names, want)
			}
		}
	}
}

// TestGroupFiltersAreCapped: each ?group= name of an event client is
// matched against every event published, on the publishing task's
// goroutine under the stream's lock, so the handlers take at most 64
// distinct names (repeats are one) and answer 400 beyond. Without the cap,
// 64 clients with 9,990 names each (90 KB queries) made each publish take
// about 2 ms instead of 2 µs.
func TestGroupFiltersAreCapped(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	names := func(n int) string {
		var q []string
		for i := range n {
			q = append(q, fmt.Sprintf("group=svc.g%d", i))
		}
		return strings.Join(q, "&")
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{names(64), http.StatusOK},
		{names(64) + "&" + names(64), http.StatusOK}, // repeats
		{names(65), http.StatusBadRequest},
		{strings.Repeat("group=svc&", 9000) + "group=svc", http.StatusOK},
	} {
		for name, h := range map[string]http.Handler{
			"events": diagnostics.EventsHandler(diagnostics.NewStream()),
			"tasks":  diagnostics.TasksHandler(sup),
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, endedRequest(t, "/x?"+tc.query))
			if rec.Code != tc.want {
				t.Errorf("%s with %d bytes of ?group=: %d %.80q, want %d", name, len(tc.query), rec.Code, rec.Body.String(), tc.want)
			}
		}
	}
}

// TestResponseHeaders: every response of both handlers says nosniff and
// has no CORS header; the page carries a strict Content-Security-Policy
// whose nonce, fresh for each response, is that of the page's own script
// and style, and whose connect-src admits the stream's origin, never more
// than a source list can hold.
func TestResponseHeaders(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	stream := diagnostics.NewStream()
	check := func(what string, h http.Header) {
		t.Helper()
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q, want nosniff", what, got)
		}
		for k := range h {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: CORS header %s: %q", what, k, h.Get(k))
			}
		}
	}
	tasks := diagnostics.TasksHandler(sup)
	json := get(tasks, "/debug/tasks?format=json")
	check("JSON", json.Header())
	rec := httptest.NewRecorder()
	diagnostics.EventsHandler(stream).ServeHTTP(rec, endedRequest(t, "/debug/events"))
	check("events", rec.Header())
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("events: Content-Type %q", ct)
	}
	for _, m := range []string{http.MethodOptions, http.MethodPost} {
		for name, h := range map[string]http.Handler{"tasks": tasks, "events": diagnostics.EventsHandler(stream)} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(m, "/x", nil))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s %s: %d, want 405 without CORS", m, name, rec.Code)
			}
		}
	}

	nonces := map[string]bool{}
	for range 2 {
		rec := get(tasks, "/debug/tasks")
		check("page", rec.Header())
		if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("page: Content-Type %q", ct)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		m := regexp.MustCompile(`^default-src 'none'; script-src 'nonce-([A-Z2-7]{26})'; style-src 'nonce-([A-Z2-7]{26})'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'$`).FindStringSubmatch(csp)
		if m == nil || m[1] != m[2] {
			t.Fatalf("page: Content-Security-Policy %q", csp)
		}
		nonces[m[1]] = true
		page := rec.Body.String()
		if strings.Count(page, `<script nonce="`+m[1]+`">`) != 1 || strings.Count(page, `<style nonce="`+m[1]+`">`) != 1 || strings.Count(page, "<script") != 2 {
			t.Errorf("page: its script and style do not carry the nonce %s", m[1])
		}
	}
	if len(nonces) != 2 {
		t.Error("the nonce is the same in two responses")
	}

	for eventsURL, want := range map[string]string{
		"/ops/events":                     "connect-src 'self';",
		"https://ops.example:8443/events": "connect-src 'self' https://ops.example:8443;",
		"//ops.example/events":            "connect-src 'self' ops.example;",
		"http://[::1]:9/e":                "connect-src 'self' http://[::1]:9;",
		"https://x'unsafe-inline'/e":      "connect-src 'self';",
		"https://a,b/e":                   "connect-src 'self';",
		"https://user:pw@ops.example/e":   "connect-src 'self' https://ops.example;",
		"javascript:alert(1)":             "connect-src 'self';",
	} {
		csp := get(diagnostics.TasksHandler(sup, diagnostics.WithEventsURL(eventsURL)), "/debug/tasks").Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, want) || strings.Count(csp, ";") != 7 {
			t.Errorf("WithEventsURL(%q): CSP %q, want %q", eventsURL, csp, want)
		}
	}
	// One that does not parse as a URL never reaches the header: it is
	// refused at the call.
	func() {
		defer func() {
			if recover() == nil {
				t.Error(`WithEventsURL("https://x;script-src *") was accepted`)
			}
		}()
		diagnostics.WithEventsURL("https://x;script-src *")
	}()
}
