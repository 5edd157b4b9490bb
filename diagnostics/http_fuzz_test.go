package diagnostics_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// ---- A reference Accept negotiation (RFC 9110, sections 5.6 and 12.5.1).

type acceptRange struct {
	typ, sub string
	q        float64
}

var qvalue = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// acceptParser reads an Accept header strictly: a list of media ranges,
// each with parameters of tokens or quoted strings (ASCII only, no
// parameter twice) and the weight last. ok is false for anything else.
type acceptParser struct {
	s string
	i int
}

func (p *acceptParser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *acceptParser) token() string {
	j := p.i
	for p.i < len(p.s) && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[j:p.i]
}

func (p *acceptParser) quoted() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false
	}
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), true
		case c == '\\' && p.i+1 < len(p.s) && (p.s[p.i+1] == '\t' || p.s[p.i+1] >= 0x20 && p.s[p.i+1] < 0x7f):
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case c == '\t' || c == ' ' || c == 0x21 || c >= 0x23 && c <= 0x5b || c >= 0x5d && c <= 0x7e:
			b.WriteByte(c)
			p.i++
		default:
			return "", false
		}
	}
	return "", false
}

func parseAccept(h string) (ranges []acceptRange, ok bool) {
	p := &acceptParser{s: h}
	for {
		p.ows()
		if p.i == len(p.s) {
			return ranges, true
		}
		if p.s[p.i] == ',' { // empty list elements are allowed
			p.i++
			continue
		}
		typ := p.token()
		if typ == "" || p.i == len(p.s) || p.s[p.i] != '/' {
			return nil, false
		}
		p.i++
		sub := p.token()
		if sub == "" || typ == "*" && sub != "*" {
			return nil, false
		}
		r := acceptRange{typ: strings.ToLower(typ), sub: strings.ToLower(sub), q: 1}
		seen, weighted := map[string]bool{}, false
		for {
			p.ows()
			if p.i == len(p.s) || p.s[p.i] == ',' {
				break
			}
			if p.s[p.i] != ';' || weighted {
				return nil, false
			}
			p.i++
			p.ows()
			name := strings.ToLower(p.token())
			if name == "" || seen[name] || p.i == len(p.s) || p.s[p.i] != '=' {
				return nil, false
			}
			seen[name] = true
			p.i++
			if name == "q" {
				v := p.token()
				if !qvalue.MatchString(v) {
					return nil, false
				}
				r.q, _ = strconv.ParseFloat(v, 64)
				weighted = true
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == '"' {
				if _, ok := p.quoted(); !ok {
					return nil, false
				}
			} else if p.token() == "" {
				return nil, false
			}
		}
		ranges = append(ranges, r)
	}
}

// refPrefers is the documented negotiation of EventsHandler and
// TasksHandler on a well-formed Accept header: the alternative type is
// served when it is listed by name with a q above 0 (the highest, if
// listed twice) and the default type's q (from the most specific range
// covering it, the highest of those) is not higher. ok is false for a
// header that is not well-formed, on which nothing is checked.
func refPrefers(accept, alt, def string) (want, ok bool) {
	ranges, ok := parseAccept(accept)
	if !ok {
		return false, false
	}
	defTyp, defSub, _ := strings.Cut(def, "/")
	altTyp, altSub, _ := strings.Cut(alt, "/")
	altQ, defQ, defSpec := 0.0, 0.0, -1
	for _, r := range ranges {
		if r.typ == altTyp && r.sub == altSub {
			altQ = max(altQ, r.q)
		}
		spec := -1
		switch {
		case r.typ == defTyp && r.sub == defSub:
			spec = 2
		case r.typ == defTyp && r.sub == "*":
			spec = 1
		case r.typ == "*" && r.sub == "*":
			spec = 0
		}
		if spec > defSpec {
			defQ, defSpec = r.q, spec
		} else if spec == defSpec && spec >= 0 {
			defQ = max(defQ, r.q)
		}
	}
	return altQ > 0 && altQ >= defQ, true
}

// ---- A ResponseWriter that ends the request at the first keep-alive.

// endingWriter records a response. A keep-alive comes only when the
// subscription has delivered all it held: the writer then ends the request
// (the client goes away), so that the handler returns.
type endingWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	end    context.CancelFunc
}

func (w *endingWriter) Header() http.Header { return w.header }
func (w *endingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *endingWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if s := string(b); s == "\n" || strings.HasPrefix(s, ": keep-alive\n") { // with an id: when the filters dropped events
		w.end()
		return len(b), nil
	}
	return w.body.Write(b)
}
func (w *endingWriter) Flush() {}

// fuzzEvents are published before each request: several kinds, levels
// and groups.
var fuzzEvents = []runtime.Event{
	{Seq: 1, Kind: runtime.KindTaskSpawned, Group: "svc", GroupID: 1, Task: "a", TaskID: 1},
	{Seq: 2, Kind: runtime.KindTaskSpawned, Group: "svc.ingest", GroupID: 2, ParentGroupID: 1, Task: "b", TaskID: 2},
	{Seq: 3, Kind: runtime.KindTaskFinished, Group: "svc.ingest", GroupID: 2, Task: "b", TaskID: 2, Outcome: runtime.Error, Err: errors.New("boom")},
	{Seq: 4, Kind: runtime.KindGroupCancelRequested, Group: "svc", GroupID: 1, Cause: context.Canceled},
	{Seq: 5, Kind: runtime.KindTaskFinished, Group: "svc.ingester", GroupID: 3, Task: "c", TaskID: 3, Outcome: runtime.Panic, Err: &runtime.PanicError{Value: "v"}},
	{Seq: 6, Kind: runtime.KindTaskFinished, Group: "svc", GroupID: 1, Task: "a", TaskID: 1, Outcome: runtime.Success},
	{Seq: 7, Kind: runtime.KindGroupShutdownDone, Group: "svc.ingest.kafka", GroupID: 4, ParentGroupID: 2},
}

var fuzzKinds = []string{
	runtime.KindTaskSpawned, runtime.KindTaskCancelRequested, runtime.KindTaskFinished,
	runtime.KindTaskAborted, runtime.KindTaskLateExit, runtime.KindTaskRejected,
	runtime.KindTaskRunStarted, runtime.KindTaskRunFinished,
	runtime.KindGroupCancelRequested, runtime.KindGroupShutdownStarted,
	runtime.KindGroupShutdownDone, runtime.KindGroupWaitTimedOut,
	runtime.KindObserverPanicked, diagnostics.KindStreamLagged,
}

// eventsRequest is what the reference reading of a request to
// EventsHandler makes of it, as its documentation describes it.
type eventsRequest struct {
	bad      bool // a 400
	kinds    []string
	groups   []string
	minLevel slog.Level
	after    *uint64
	tagged   string // the cursor's stream, if it has one
	format   string
}

var cursorRE = regexp.MustCompile(`^([0-9]+)(@(.+))?$`)

func readEventsRequest(r *http.Request) eventsRequest {
	var e eventsRequest
	e.minLevel = math.MinInt
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return eventsRequest{bad: true}
	}
	for _, v := range q["kind"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.TrimSpace(k); k == "" {
				continue
			}
			if !slices.Contains(fuzzKinds, k) {
				return eventsRequest{bad: true}
			}
			e.kinds = append(e.kinds, k)
		}
	}
	for _, g := range q["group"] {
		g = strings.TrimSuffix(g, ".")
		if slices.Contains(strings.Split(g, "."), "") {
			return eventsRequest{bad: true}
		}
		e.groups = append(e.groups, g)
	}
	if distinct(e.groups) > 64 {
		return eventsRequest{bad: true}
	}
	for _, l := range q["level"] { // each read; the lowest wins
		if l == "" {
			continue
		}
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(l)); err != nil {
			return eventsRequest{bad: true}
		}
		if e.minLevel == math.MinInt || lvl < e.minLevel {
			e.minLevel = lvl
		}
	}
	cursor := q.Get("after")
	if h := r.Header.Get("Last-Event-ID"); h != "" {
		cursor = h
	}
	if cursor = strings.TrimSpace(cursor); cursor != "" {
		m := cursorRE.FindStringSubmatch(cursor)
		if m == nil {
			return eventsRequest{bad: true}
		}
		seq, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return eventsRequest{bad: true}
		}
		e.after, e.tagged = &seq, m[3]
	}
	switch e.format = q.Get("format"); e.format {
	case "", "sse", "ndjson":
	default:
		return eventsRequest{bad: true}
	}
	return e
}

// distinct counts the different names in names: the handlers serve at
// most 64 ?group= names.
func distinct(names []string) int {
	return len(slices.Compact(slices.Sorted(slices.Values(names))))
}

func isIn(group, prefix string) bool {
	return group == prefix || strings.HasPrefix(group, prefix+".")
}

// expected returns the seqs of fuzzEvents the request gets, with 0 for a
// lag notice, given the id of the stream.
func (e eventsRequest) expected(streamID string) []uint64 {
	var out []uint64
	after := uint64(0)
	if e.after != nil {
		after = *e.after
		if e.tagged != "" && e.tagged != streamID || after > uint64(len(fuzzEvents))+1<<16 {
			out, after = append(out, 0), 0 // resync, then everything held
		}
	}
	for _, ev := range fuzzEvents {
		if e.after == nil || ev.Seq <= after {
			continue
		}
		if e.kinds != nil && !slices.Contains(e.kinds, ev.Kind) || ev.Level() < e.minLevel {
			continue
		}
		if e.groups != nil && !slices.ContainsFunc(e.groups, func(p string) bool {
			return isIn(ev.Group, p) || ev.TaskID == 0 && isIn(p, ev.Group)
		}) {
			continue
		}
		out = append(out, ev.Seq)
	}
	return out
}

type servedEvent struct {
	kind, id string
	j        diagnostics.EventJSON
}

// serveEvents runs one request to h and returns the response and the
// events it carries (nil unless a 200).
func serveEvents(t *testing.T, h http.Handler, method, rawQuery string, header http.Header) (*endingWriter, []servedEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := (&http.Request{Method: method, URL: &url.URL{Path: "/events", RawQuery: rawQuery}, Header: header, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	w := &endingWriter{header: http.Header{}, end: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, r)
		if w.status == 0 {
			w.status = http.StatusOK // as a server sends it
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatalf("%s ?%s %v: the handler did not return once its client went away", method, rawQuery, header)
	}
	if w.status != http.StatusOK || method == http.MethodHead {
		return w, nil
	}
	var evs []servedEvent
	sc := bufio.NewScanner(bytes.NewReader(w.body.Bytes()))
	sc.Buffer(nil, 1<<20)
	var cur servedEvent
	ndjson := w.header.Get("Content-Type") == "application/x-ndjson"
	for sc.Scan() {
		line := sc.Text()
		if ndjson {
			if line == "" {
				continue
			}
			var ev servedEvent
			if err := json.Unmarshal([]byte(line), &ev.j); err != nil {
				t.Fatalf("NDJSON line %q: %v", line, err)
			}
			ev.kind, ev.id = ev.j.Kind, ev.j.ID
			evs = append(evs, ev)
			continue
		}
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "":
			if line == "" && cur.kind != "" {
				evs, cur = append(evs, cur), servedEvent{}
			}
		case "id":
			cur.id = value
		case "event":
			cur.kind = value
		case "data":
			if err := json.Unmarshal([]byte(value), &cur.j); err != nil {
				t.Fatalf("SSE data %q: %v", value, err)
			}
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return w, evs
}

// FuzzEventsRequest sends EventsHandler arbitrary methods, queries,
// Last-Event-ID and Accept headers, and checks the answer against a
// reference reading of its documentation: a 405 for a method other than
// GET or HEAD, a 400 with a text message for a request it cannot read,
// otherwise a 200 stream in the format asked for (on a well-formed Accept,
// as refPrefers negotiates), carrying exactly the held events the filters
// and the cursor select; never a 5xx. Each event's id resumes: sent back
// as Last-Event-ID, it gets a 200 with the events after it, with no lag
// notice.
func FuzzEventsRequest(f *testing.F) {
	f.Add(uint8(0), "", "", "")
	f.Add(uint8(0), "after=0", "", "application/x-ndjson")
	f.Add(uint8(0), "after=2&kind=taskscope.task.finished,taskscope.group.shutdown_finished&group=svc.ingest.", "", "")
	f.Add(uint8(0), "level=warn&after=0&format=sse", "3", "text/event-stream;q=0.5, application/x-ndjson;q=0.4")
	f.Add(uint8(0), "after=0&group=svc..x", "1@zz", "*/*")
	f.Add(uint8(1), "after=1&format=ndjson", "", "")
	f.Add(uint8(2), "after=x", "", "")
	f.Add(uint8(0), "after=0", " 4@x ", `application/x-ndjson, text/event-stream;a="b,c";q=0.9`)
	f.Add(uint8(0), "level=INFO%2B2;after=0", "", "text/*;q=0.2, application/x-ndjson;q=0.1")
	f.Add(uint8(0), "level=error&level=warn&after=0", "", "")
	f.Add(uint8(0), "level=warn&level=loud&after=0", "", "")
	// A comma inside a quoted parameter value does not end the media range.
	f.Add(uint8(0), "after=0", "", `application/x-ndjson;q=0.5, text/event-stream;a="b,c";q=0.9`)
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete, "get"}
	f.Fuzz(func(t *testing.T, m uint8, rawQuery, lastEventID, accept string) {
		method := methods[int(m)%len(methods)]
		header := http.Header{}
		if lastEventID != "" {
			header.Set("Last-Event-ID", lastEventID)
		}
		if accept != "" {
			header.Set("Accept", accept)
		}
		s := diagnostics.NewStream()
		publish(s, fuzzEvents...)
		h := diagnostics.EventsHandler(s, diagnostics.WithKeepAlive(time.Millisecond))
		w, evs := serveEvents(t, h, method, rawQuery, header)
		if w.status >= 500 || w.status < 200 {
			t.Fatalf("%s ?%s %v: %d %q", method, rawQuery, header, w.status, w.body.String())
		}
		if w.status >= 400 {
			if ct := w.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || strings.TrimSpace(w.body.String()) == "" {
				t.Errorf("%s ?%s %v: %d with %q %q, want a text message", method, rawQuery, header, w.status, ct, w.body.String())
			}
		}
		if method != http.MethodGet && method != http.MethodHead {
			if w.status != http.StatusMethodNotAllowed {
				t.Errorf("%s: %d, want 405", method, w.status)
			}
			return
		}
		r := &http.Request{URL: &url.URL{RawQuery: rawQuery}, Header: header}
		ref := readEventsRequest(r)
		if ref.bad {
			if w.status != http.StatusBadRequest {
				t.Errorf("?%s %v: %d, want 400 (%q)", rawQuery, header, w.status, w.body.String())
			}
			return
		}
		if w.status != http.StatusOK {
			t.Fatalf("?%s %v: %d %q, want 200", rawQuery, header, w.status, w.body.String())
		}
		ct := w.header.Get("Content-Type")
		switch want, ok := refPrefers(strings.Join(header.Values("Accept"), ","), "application/x-ndjson", "text/event-stream"); {
		case ref.format == "ndjson", ref.format == "" && ok && want:
			if ct != "application/x-ndjson" {
				t.Errorf("?%s Accept %q: %q, want NDJSON", rawQuery, accept, ct)
			}
		case ref.format == "sse", ref.format == "" && ok:
			if ct != "text/event-stream" {
				t.Errorf("?%s Accept %q: %q, want SSE", rawQuery, accept, ct)
			}
		}
		if method == http.MethodHead {
			if w.body.Len() != 0 {
				t.Errorf("HEAD: body %q", w.body.String())
			}
			return
		}
		var streamID string
		var got []uint64
		for _, ev := range evs {
			if ev.kind != ev.j.Kind {
				t.Errorf("SSE event: %q, data's kind %q", ev.kind, ev.j.Kind)
			}
			if ev.id != ev.j.ID {
				t.Errorf("id %q, data's id %q", ev.id, ev.j.ID)
			}
			got = append(got, ev.j.Seq)
			if ev.j.Seq == 0 {
				if ev.id != "" || ev.kind != diagnostics.KindStreamLagged || !ev.j.Resync {
					t.Errorf("event without a seq: %+v", ev)
				}
				continue
			}
			seq, sid, ok := strings.Cut(ev.id, "@")
			if !ok || sid == "" || seq != strconv.FormatUint(ev.j.Seq, 10) || streamID != "" && sid != streamID {
				t.Errorf("id %q of event %d", ev.id, ev.j.Seq)
			}
			streamID = sid
		}
		if streamID != "" {
			if want := ref.expected(streamID); !slices.Equal(got, want) {
				t.Errorf("?%s %v: events %v, want %v", rawQuery, header, got, want)
			}
		} else if len(got) > 1 || len(got) == 1 && ref.after == nil {
			t.Errorf("?%s %v: events %v", rawQuery, header, got)
		}
		// Each id resumes the stream: the events after it, no lag notice.
		for _, ev := range evs {
			if ev.id == "" {
				continue
			}
			hdr := http.Header{}
			hdr.Set("Last-Event-ID", ev.id)
			w2, evs2 := serveEvents(t, h, http.MethodGet, "", hdr)
			var got2, want2 []uint64
			for _, e := range evs2 {
				got2 = append(got2, e.j.Seq)
			}
			for _, e := range fuzzEvents {
				if e.Seq > ev.j.Seq {
					want2 = append(want2, e.Seq)
				}
			}
			if w2.status != http.StatusOK || !slices.Equal(got2, want2) {
				t.Errorf("Last-Event-ID %q: %d, events %v, want 200, %v", ev.id, w2.status, got2, want2)
			}
		}
	})
}

// FuzzTasksRequest sends TasksHandler arbitrary methods, queries and
// Accept headers, and checks the answer against a reference reading of
// its documentation: a 405 for a method other than GET or HEAD, a 400 with
// a text message for a query that does not parse, an unknown ?format= or a
// ?group= that is no dotted group name, otherwise a 200 in the format
// asked for (on a well-formed Accept, as refPrefers negotiates); never a
// 5xx. The JSON form keeps, under ?group=, only the groups asked for
// (whole) and those on the way to them (without tasks of their own).
func FuzzTasksRequest(f *testing.F) {
	sup := runtime.New("svc")
	ingest := sup.Group("ingest")
	block := func(ctx context.Context) error { <-ctx.Done(); return nil }
	sup.Go("root", block)
	ingest.Go("fetch", block)
	ingest.Group("kafka").Go("consume", block)
	sup.Group("ingester").Go("other", block)
	f.Cleanup(func() {
		if err := sup.Shutdown(context.Background()); err != nil {
			f.Error(err)
		}
	})
	h := diagnostics.TasksHandler(sup)

	f.Add(uint8(0), "", "")
	f.Add(uint8(0), "format=json&group=svc.ingest.", "")
	f.Add(uint8(1), "group=svc.ingest&group=svc.nothing", "application/json")
	f.Add(uint8(0), "group=svc..x", "text/html;q=0.5, application/json;q=0.6")
	f.Add(uint8(0), "format=xml", "*/*;q=0.1, application/json;q=0.1")
	f.Add(uint8(2), "", "")
	f.Add(uint8(0), "", `text/html;level="1,2";q=0.8, application/json;q=0.4`)
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut}
	f.Fuzz(func(t *testing.T, m uint8, rawQuery, accept string) {
		method := methods[int(m)%len(methods)]
		header := http.Header{}
		if accept != "" {
			header.Set("Accept", accept)
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: "/tasks", RawQuery: rawQuery}, Header: header}
		r = r.WithContext(t.Context())
		w := &endingWriter{header: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status >= 500 || w.status < 200 {
			t.Fatalf("%s ?%s %v: %d %q", method, rawQuery, header, w.status, w.body.String())
		}
		if w.status >= 400 {
			if ct := w.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || strings.TrimSpace(w.body.String()) == "" {
				t.Errorf("%s ?%s: %d with %q %q, want a text message", method, rawQuery, w.status, ct, w.body.String())
			}
		}
		if method != http.MethodGet && method != http.MethodHead {
			if w.status != http.StatusMethodNotAllowed {
				t.Errorf("%s: %d, want 405", method, w.status)
			}
			return
		}
		q, err := url.ParseQuery(rawQuery)
		bad := err != nil
		format := q.Get("format")
		bad = bad || format != "" && format != "html" && format != "json"
		var groups []string
		for _, g := range q["group"] {
			g = strings.TrimSuffix(g, ".")
			bad = bad || slices.Contains(strings.Split(g, "."), "")
			groups = append(groups, g)
		}
		bad = bad || distinct(groups) > 64
		if bad {
			if w.status != http.StatusBadRequest {
				t.Errorf("?%s: %d, want 400", rawQuery, w.status)
			}
			return
		}
		if w.status != http.StatusOK {
			t.Fatalf("?%s %v: %d %q, want 200", rawQuery, header, w.status, w.body.String())
		}
		ct := w.header.Get("Content-Type")
		wantJSON, ok := refPrefers(strings.Join(header.Values("Accept"), ","), "application/json", "text/html")
		switch {
		case format == "json", format == "" && ok && wantJSON:
			if ct != "application/json" {
				t.Fatalf("?%s Accept %q: %q, want JSON", rawQuery, accept, ct)
			}
		case format == "html", format == "" && ok:
			if ct != "text/html; charset=utf-8" {
				t.Fatalf("?%s Accept %q: %q, want HTML", rawQuery, accept, ct)
			}
		}
		if ct != "application/json" {
			return
		}
		var snap diagnostics.SnapshotJSON
		if err := json.Unmarshal(w.body.Bytes(), &snap); err != nil {
			t.Fatalf("JSON: %v", err)
		}
		var walk func(g diagnostics.GroupJSON) (running int)
		walk = func(g diagnostics.GroupJSON) (running int) {
			matched := groups == nil || slices.ContainsFunc(groups, func(p string) bool { return isIn(g.Name, p) })
			onPath := slices.ContainsFunc(groups, func(p string) bool { return isIn(p, g.Name) })
			if !matched && !onPath && (g.Name != snap.Root.Name || len(g.Groups) > 0) {
				// The root stays whatever ?group= matches, bare.
				t.Errorf("?%s: group %q shown", rawQuery, g.Name)
			}
			if !matched && len(g.Tasks) > 0 {
				t.Errorf("?%s: group %q, only on the way, shows its tasks", rawQuery, g.Name)
			}
			running = len(g.Tasks)
			for _, c := range g.Groups {
				running += walk(c)
			}
			if g.Running != running {
				t.Errorf("?%s: group %q counts %d running, shows %d", rawQuery, g.Name, g.Running, running)
			}
			return running
		}
		walk(snap.Root)
	})
}
