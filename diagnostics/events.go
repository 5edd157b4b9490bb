package diagnostics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// Defaults of [EventsHandler].
const (
	DefaultKeepAlive    = 15 * time.Second
	DefaultMaxClients   = 64
	DefaultWriteTimeout = 10 * time.Second
)

// EventsOption configures [EventsHandler]. An option given more than once
// takes its last value.
type EventsOption interface{ applyEvents(*eventsHandler) }

type eventsOption func(*eventsHandler)

func (f eventsOption) applyEvents(h *eventsHandler) { f(h) }

// WithKeepAlive sets how often an idle stream sends a keep-alive (an SSE
// comment, or an empty line in NDJSON), so that proxies do not close it
// (default [DefaultKeepAlive]; 0 or less disables them).
func WithKeepAlive(d time.Duration) EventsOption {
	return eventsOption(func(h *eventsHandler) { h.keepAlive = max(d, 0) })
}

// WithMaxClients caps the concurrent streams the handler serves (default
// [DefaultMaxClients]; 0 or less means no cap). Requests over the cap get
// 503 with Retry-After.
func WithMaxClients(n int) EventsOption {
	return eventsOption(func(h *eventsHandler) { h.maxClients = int64(max(n, 0)) })
}

// WithWriteTimeout sets how long one write to a client (the opening, an
// event, a keep-alive) may take (default [DefaultWriteTimeout]; 0 or less
// means no limit). A client that accepts nothing for that long is
// disconnected: a stalled client must not keep its slot (see
// [WithMaxClients]) nor make http.Server.Shutdown wait after
// [Stream.Close]. The deadline covers each write alone, so an idle stream
// is not cut.
func WithWriteTimeout(d time.Duration) EventsOption {
	return eventsOption(func(h *eventsHandler) { h.writeTimeout = max(d, 0) })
}

type eventsHandler struct {
	stream       *Stream
	keepAlive    time.Duration
	writeTimeout time.Duration
	maxClients   int64
	clients      atomic.Int64
}

// EventsHandler serves s's events as a never-ending HTTP response:
// Server-Sent Events by default, NDJSON (one [EventJSON] per line) for
// "Accept: application/x-ndjson" or ?format=ndjson. The application mounts
// it, typically next to [TasksHandler]:
//
//	mux.Handle("GET /debug/events", diagnostics.EventsHandler(stream))
//	mux.Handle("GET /debug/tasks", diagnostics.TasksHandler(sup))
//
// An SSE message's event: field is the event's kind (such as
// taskscope.task.finished, or taskscope.stream.lagged for a lag notice), so
// a browser's EventSource delivers it to addEventListener(kind, ...), not
// to onmessage. Each event's cursor is its Seq and the stream's identity, as
// "seq@stream" (none on lag notices): the SSE message's id:, and the "id"
// of its [EventJSON] (the SSE data:, or the NDJSON line). A client resumes
// with the Last-Event-ID header (sent by EventSource on reconnect) or
// ?after=, either holding the last cursor it saw, or a bare seq such as a
// snapshot's; it subscribes with [After], and the header wins. Lost events
// are reported in-band as [KindStreamLagged] events; one with
// "resync":true means the client must re-fetch the snapshot. A cursor from
// another stream (the process restarted since, and its sequence numbers
// began again) gets one at once.
//
// The replay ring behind resuming holds events of every kind (see [After]),
// so a filtered client's cursor ages with the events it does not want. An
// SSE keep-alive that comes after such events carries an id: line too,
// and no data: the cursor of the last event the filters dropped, sent
// once the client has been sent every event before it. So does a message
// of its own (an id: line alone) whenever the filters have dropped a
// quarter of the replay size in a row, so that a busy service (more than
// the replay size of events between two keep-alives) does not age the
// cursor out of the ring before the client reconnects. An EventSource
// dispatches nothing for it but resumes from it, as from an event's id.
// NDJSON keep-alives stay empty lines: an NDJSON client resumes from the
// last event it received.
//
// Filters: ?kind= (repeatable, or comma-separated), ?group= (a group and
// its descendants, as [GroupPrefix]; repeatable, up to 64 names), ?level=
// (debug, info, warn, error; repeatable, as [MinLevel]: the lowest). A
// ?kind= that names no event kind this
// version knows (a typo, or a kind of a newer version), a ?group= that is
// no dotted group name (empty, or "app..ingest"), more than 64 ?group=
// names, and a ?level=, ?after=, ?format= or
// Last-Event-ID it cannot read (or a query that does not parse: a bad
// %-escape, a ";" between parameters), is a 400; a request after
// [Stream.Close] is a 503, which makes an EventSource stop rather than
// reconnect. A method other than GET or HEAD is a 405; HEAD gets the
// headers only. Behind a ResponseWriter that cannot flush, the handler
// answers 500 rather than a stream that never arrives.
//
// Each client is an ordinary [Subscription]: a slow client lags and is
// told so, it never slows the supervisor. The response ends when the client
// goes away (the subscription is closed with the request), or when the
// stream is closed ([Stream.Close]), or when the client accepts nothing
// for the write timeout ([WithWriteTimeout]), which frees its slot. The
// handler sets its own write deadline for each write, so a server-wide
// WriteTimeout does not cut the stream, and flushes after each event,
// through http.ResponseController; it starts no goroutine of its own.
//
// Responses are marked X-Content-Type-Options: nosniff and carry no CORS
// headers: a page of another origin cannot read the stream.
//
// The stream is for operators: its events carry error messages, panic
// values and panic stacks (function names, source file paths), each task's
// function name, and whatever text the application put in names and
// errors. Mount it, as pprof, on an internal or authenticated listener,
// never on the public one (an internal listener is no authentication: a
// web page open in a browser on that network can rebind its own name to
// the listener's address and read it, unless the Host is checked); the
// stream's [WithMaxStack] and [WithMaxMessage] bound (or, at 0, drop)
// stacks and messages. The handler authenticates nobody, and its client
// cap ([WithMaxClients]) is shared by all clients: one client can take
// every slot.
//
// A nil s or a nil option panics.
func EventsHandler(s *Stream, opts ...EventsOption) http.Handler {
	if s == nil {
		panic("taskscope/diagnostics: EventsHandler(nil Stream)")
	}
	h := &eventsHandler{stream: s, keepAlive: DefaultKeepAlive, writeTimeout: DefaultWriteTimeout, maxClients: DefaultMaxClients}
	for _, o := range opts {
		mustOption(o, "EventsOption")
		o.applyEvents(h)
	}
	return h
}

func (h *eventsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q, ok := readQuery(w, r)
	if !ok {
		return
	}
	opts, err := subscribeOptionsFrom(r, q, h.stream.id)
	if err != nil {
		badRequest(w, err)
		return
	}
	ndjson, err := wantsFormat(r, q, "sse", "ndjson", "text/event-stream", "application/x-ndjson")
	if err != nil {
		badRequest(w, err)
		return
	}
	if h.stream.isClosed() {
		refuseClosed(w)
		return
	}
	if n := h.clients.Add(1); h.maxClients > 0 && n > h.maxClients {
		h.clients.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "taskscope/diagnostics: too many event stream clients", http.StatusServiceUnavailable)
		return
	}
	defer h.clients.Add(-1)

	hdr := w.Header()
	if ndjson {
		hdr.Set("Content-Type", "application/x-ndjson")
	} else {
		hdr.Set("Content-Type", "text/event-stream")
	}
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream
	if r.Method == http.MethodHead {
		return
	}

	if !canFlush(w) {
		// An answer of 200 with no events would make an EventSource
		// reconnect forever without saying why.
		http.Error(w, "taskscope/diagnostics: streaming is not supported by this ResponseWriter (it cannot flush)", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	sub := h.stream.Subscribe(ctx, opts...)
	defer sub.Close()
	if h.stream.isClosed() { // closed since the check above: sub started closed
		refuseClosed(w)
		return
	}

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a server-wide WriteTimeout would cut the stream
	w.WriteHeader(http.StatusOK)
	var opening []byte
	if !ndjson {
		opening = []byte(": taskscope event stream\n\n")
	}
	if h.send(w, rc, opening) != nil {
		return
	}

	var tick <-chan time.Time
	if h.keepAlive > 0 {
		t := time.NewTicker(h.keepAlive)
		defer t.Stop()
		tick = t.C
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	var ev runtime.Event
	var sent uint64 // the Seq of the last cursor sent
	for {
		res := sub.next(&ev, tick)
		if res == gotClosed || ctx.Err() != nil {
			return
		}
		buf.Reset()
		switch {
		case res == gotCursor && ndjson:
			continue
		case res == gotTick && ndjson:
			buf.WriteByte('\n')
		case res == gotTick, res == gotCursor:
			if res == gotTick {
				buf.WriteString(": keep-alive\n")
			}
			if seq, ok := sub.cursor(); ok && seq != sent {
				// Events the filters dropped since the last one sent:
				// an id with no data moves the client's Last-Event-ID
				// past them and dispatches no event.
				buf.WriteString("id: ")
				buf.WriteString(h.cursorID(seq))
				buf.WriteByte('\n')
				sent = seq
			} else if res == gotCursor {
				continue
			}
			buf.WriteByte('\n')
		case ndjson:
			_ = enc.Encode(h.eventJSON(ev)) // ends with '\n'
		default:
			writeSSE(&buf, enc, h.eventJSON(ev))
			if ev.Seq != 0 { // not a lag notice
				sent = ev.Seq
			}
		}
		if h.send(w, rc, buf.Bytes()) != nil {
			return
		}
	}
}

// send writes b to the client and flushes it, within the write timeout.
// The deadline is lifted again once the write is done: on HTTP/2 a
// deadline that passes resets the stream even when no write is under way,
// and an idle stream must live.
func (h *eventsHandler) send(w http.ResponseWriter, rc *http.ResponseController, b []byte) (err error) {
	if h.writeTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(h.writeTimeout))
	}
	if len(b) > 0 {
		_, err = w.Write(b)
	}
	if err == nil {
		err = rc.Flush()
	}
	if h.writeTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Time{})
	}
	return err
}

// refuseClosed answers a request that came after [Stream.Close]: an empty
// 200 would make an EventSource reconnect at once, and again; a 503 makes
// it stop.
func refuseClosed(w http.ResponseWriter) {
	http.Error(w, "taskscope/diagnostics: the event stream is closed (the server is shutting down)", http.StatusServiceUnavailable)
}

// eventJSON is ev's wire form with its cursor, "seq@stream" (none on lag
// notices, which have no Seq).
func (h *eventsHandler) eventJSON(ev runtime.Event) EventJSON {
	j := NewEventJSON(ev)
	if ev.Seq != 0 {
		j.ID = h.cursorID(ev.Seq)
	}
	return j
}

// cursorID is the cursor of the event with Seq seq: "seq@stream".
func (h *eventsHandler) cursorID(seq uint64) string {
	return strconv.FormatUint(seq, 10) + "@" + h.stream.id
}

// writeSSE frames j as one SSE message. JSON has no raw newlines, so the
// data fits on one data: line.
func writeSSE(buf *bytes.Buffer, enc *json.Encoder, j EventJSON) {
	if j.ID != "" {
		buf.WriteString("id: ")
		buf.WriteString(j.ID)
		buf.WriteByte('\n')
	}
	buf.WriteString("event: ")
	buf.WriteString(j.Kind)
	buf.WriteString("\ndata: ")
	_ = enc.Encode(j)
	buf.Truncate(buf.Len() - 1) // Encode's newline
	buf.WriteString("\n\n")
}

// wantsFormat reports whether r, with query q, asks for the alternative
// representation alt rather than def: by ?format= (def or alt; anything
// else is an error, so that a typo does not silently give the other one),
// else by its Accept header, where they are the media types defType and
// altType.
func wantsFormat(r *http.Request, q url.Values, def, alt, defType, altType string) (bool, error) {
	switch f := q.Get("format"); f {
	case alt:
		return true, nil
	case def:
		return false, nil
	case "":
		// Several Accept lines are one list (RFC 9110, section 5.3).
		return prefers(strings.Join(r.Header.Values("Accept"), ","), altType, defType), nil
	default:
		return false, fmt.Errorf("unknown format %q: want %s or %s", f, def, alt)
	}
}

// prefers reports whether an Accept header asks for alt rather than def:
// alt is listed by name with a q above 0, and def, by name or through a
// range that covers it, has no higher q. A q of 0 means "not acceptable"
// (RFC 9110, section 12.4.2).
func prefers(accept, alt, def string) bool {
	altQ, defQ, defSpec := 0.0, 0.0, -1
	defType, _, _ := strings.Cut(def, "/")
	for _, a := range splitList(accept) {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(a))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v <= 1 {
				q = v
			}
		}
		spec := -1
		switch mt {
		case alt:
			altQ = max(altQ, q)
		case def:
			spec = 2
		case defType + "/*":
			spec = 1
		case "*/*":
			spec = 0
		}
		if spec > defSpec {
			defQ, defSpec = q, spec
		} else if spec == defSpec && spec >= 0 {
			defQ = max(defQ, q)
		}
	}
	return altQ > 0 && altQ >= defQ
}

// splitList splits an HTTP list (such as an Accept header) at its commas,
// but not at those inside a quoted string, a parameter's value (RFC 9110,
// section 5.6.4): text/html;level="1,2";q=0.8 is one media range.
func splitList(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++ // a quoted pair: the next byte is literal
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// eventKinds lists every event kind a stream carries, for ?kind= and
// [Kinds]: a typo there is a 400 (a panic), not a stream that stays
// silent. TestEventKindsAreRuntimes
// keeps it equal to runtime's Kind constants.
var eventKinds = []string{
	runtime.KindTaskSpawned, runtime.KindTaskCancelRequested, runtime.KindTaskFinished,
	runtime.KindTaskAborted, runtime.KindTaskLateExit, runtime.KindTaskRejected,
	runtime.KindTaskRunStarted, runtime.KindTaskRunFinished,
	runtime.KindGroupCancelRequested, runtime.KindGroupShutdownStarted,
	runtime.KindGroupShutdownDone, runtime.KindGroupWaitTimedOut,
	runtime.KindObserverPanicked, KindStreamLagged,
}

// subscribeOptionsFrom reads the filters and the resume point of a
// request with query q.
func subscribeOptionsFrom(r *http.Request, q url.Values, streamID string) ([]SubscribeOption, error) {
	var opts []SubscribeOption
	var kinds []string
	for _, k := range q["kind"] {
		for k := range strings.SplitSeq(k, ",") {
			if k = strings.TrimSpace(k); k != "" {
				if !slices.Contains(eventKinds, k) {
					return nil, fmt.Errorf("unknown kind %q: want one of %s", k, strings.Join(eventKinds, ", "))
				}
				kinds = append(kinds, k)
			}
		}
	}
	if len(kinds) > 0 {
		opts = append(opts, Kinds(kinds...))
	}
	groups, err := groupsFrom(q)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		opts = append(opts, GroupPrefix(g))
	}
	for _, l := range q["level"] { // repeated, as MinLevel: the lowest
		if l == "" {
			continue
		}
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(l)); err != nil {
			return nil, errors.New("bad level: want debug, info, warn or error")
		}
		opts = append(opts, MinLevel(lvl))
	}
	// A cursor is "seq@stream" (an event's id) or a bare seq, such as a
	// snapshot's.
	cursor, src := q.Get("after"), "after"
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		cursor, src = id, "Last-Event-ID"
	}
	after, stream, tagged := strings.Cut(strings.TrimSpace(cursor), "@")
	if after != "" || tagged {
		seq, err := strconv.ParseUint(after, 10, 64)
		if err != nil || (tagged && stream == "") { // "@stream" and "5@" are as malformed as "abc"
			return nil, errors.New("bad " + src + ": want an event sequence number, or an event's seq@stream id")
		}
		if tagged && stream != streamID {
			seq = math.MaxUint64 // another stream's cursor: resync
		}
		opts = append(opts, After(seq))
	}
	return opts, nil
}

// readQuery answers a request the handlers do not serve, a method other
// than GET or HEAD (405) or a query that does not parse (400: a bad
// %-escape, or ";" between parameters), and returns the query otherwise.
// r.URL.Query drops the pairs it cannot read, so that ?level=warn%zz would
// be no filter at all, or ?format=json; the other format, rather than a 400.
func readQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "taskscope/diagnostics: method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		badRequest(w, fmt.Errorf("bad query: %w", err))
		return nil, false
	}
	return q, true
}

// badRequest answers 400 with err, prefixed as the package's errors are:
// the client learns which part of the request was wrong, and from whom.
func badRequest(w http.ResponseWriter, err error) {
	http.Error(w, "taskscope/diagnostics: "+err.Error(), http.StatusBadRequest)
}

// maxGroupFilters caps the distinct ?group= names of one request. Each
// name of an event client is matched against every event the supervisor
// publishes, on the publishing task's goroutine and under the stream's
// lock: 64 clients with 10,000 names each (a 90 KB query) made every
// publish take 2 ms instead of 2 µs, stalling every task spawn and exit of
// the application.
const maxGroupFilters = 64

// groupsFrom reads a request's ?group= values (repeatable) as
// [GroupPrefix] takes them, a trailing "." dropped, without repeats. One
// that names no group (see groupName) is an error, not a filter that
// matches every group or none. So are more than maxGroupFilters distinct
// names.
func groupsFrom(q url.Values) ([]string, error) {
	var groups []string
	for _, g := range q["group"] {
		name, ok := groupName(g)
		if !ok {
			return nil, fmt.Errorf("bad group %q: want a group's dotted name, such as app.ingest", g)
		}
		if slices.Contains(groups, name) {
			continue
		}
		if len(groups) == maxGroupFilters {
			return nil, fmt.Errorf("too many groups: at most %d ?group= names", maxGroupFilters)
		}
		groups = append(groups, name)
	}
	return groups, nil
}

// canFlush reports whether w, or a ResponseWriter it wraps (as
// http.ResponseController looks for them), can flush.
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}
