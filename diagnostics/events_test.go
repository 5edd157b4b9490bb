package diagnostics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// pipeResponse is a streaming http.ResponseWriter: what the handler writes
// is read from the other end of a pipe, as from a socket.
type pipeResponse struct {
	header http.Header
	status int
	w      *io.PipeWriter
}

func (p *pipeResponse) Header() http.Header         { return p.header }
func (p *pipeResponse) WriteHeader(code int)        { p.status = code }
func (p *pipeResponse) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeResponse) Flush()                      {}

// serve runs h for a request in the background and returns the response
// and a reader of its body. The request ends (client gone) at cleanup.
func serve(t *testing.T, h http.Handler, target string, header http.Header) (*pipeResponse, *bufio.Reader) {
	t.Helper()
	resp, body, _ := serveUntil(t, h, target, header)
	return resp, body
}

// serveUntil is serve, and returns leave too: it ends the request (the
// client goes) and waits for the handler to return, then or at cleanup.
func serveUntil(t *testing.T, h http.Handler, target string, header http.Header) (*pipeResponse, *bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	maps := req.Header
	for k, v := range header {
		maps[k] = v
	}
	pr, pw := io.Pipe()
	resp := &pipeResponse{header: http.Header{}, w: pw}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(resp, req)
		pw.Close()
	}()
	leave := sync.OnceFunc(func() {
		cancel()
		pr.Close()
		<-done
	})
	t.Cleanup(leave)
	return resp, bufio.NewReader(pr), leave
}

type frame struct {
	comment, id, event, data string
	stream                   string // the id's stream part: id is "seq@stream"
	hasID                    bool
}

// readFrame reads one SSE message or comment, up to its blank line.
func readFrame(t *testing.T, r *bufio.Reader) frame {
	t.Helper()
	var f frame
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading SSE: %v (partial %q)", err, line)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return f
		}
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "":
			f.comment = value
		case "id":
			var tagged bool
			f.id, f.stream, tagged = strings.Cut(value, "@")
			f.hasID = true
			if !tagged || f.stream == "" {
				t.Errorf("SSE id %q does not say which stream it is from", value)
			}
		case "event":
			f.event = value
		case "data":
			f.data = value
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
}

func decode(t *testing.T, data string) diagnostics.EventJSON {
	t.Helper()
	var j diagnostics.EventJSON
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		t.Fatalf("bad JSON %q: %v", data, err)
	}
	return j
}

// TestEventsSSE checks SSE framing, the JSON shape and keep-alives.
func TestEventsSSE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		resp, body := serve(t, diagnostics.EventsHandler(s), "/events", nil)
		if f := readFrame(t, body); f.comment == "" {
			t.Fatalf("first frame %+v, want the opening comment", f)
		}
		if resp.status != http.StatusOK || resp.header.Get("Content-Type") != "text/event-stream" || resp.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("status %d, headers %v", resp.status, resp.header)
		}
		at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
		publish(s,
			runtime.Event{Seq: 1, Time: at, Kind: runtime.KindTaskSpawned, Group: "svc.ingest", GroupID: 7, ParentGroupID: 1, Task: "fetch", TaskID: 3, Function: "pkg.fetch"},
			runtime.Event{Seq: 2, Time: at, Kind: runtime.KindTaskFinished, Group: "svc.ingest", GroupID: 7, ParentGroupID: 1, Task: "fetch", TaskID: 3,
				Outcome: runtime.Error, Err: errors.New("boom\nline two"), Duration: 1500 * time.Millisecond},
		)
		f := readFrame(t, body)
		if f.id != "1" || f.event != runtime.KindTaskSpawned {
			t.Errorf("frame %+v", f)
		}
		if j := decode(t, f.data); j.Seq != 1 || j.ID != f.id+"@"+f.stream || j.Group != "svc.ingest" || j.GroupID != 7 || j.ParentGroupID != 1 || j.Task != "fetch" || j.TaskID != 3 || j.Function != "pkg.fetch" || j.Level != "DEBUG" || !j.Time.Equal(at) {
			t.Errorf("spawned JSON %+v", j)
		}
		f = readFrame(t, body)
		if f.id != "2" || f.event != runtime.KindTaskFinished {
			t.Errorf("frame %+v", f)
		}
		j := decode(t, f.data)
		if j.Outcome != "error" || j.Error != "boom\nline two" || j.ErrorType != "*errors.errorString" || j.DurationSeconds != 1.5 || j.Level != "WARN" {
			t.Errorf("finished JSON %+v", j)
		}
		var raw map[string]any
		_ = json.Unmarshal([]byte(f.data), &raw)
		for _, k := range []string{"id", "seq", "time", "kind", "level", "group", "group_id", "parent_group_id", "task", "task_id", "outcome", "error", "error_type", "duration_seconds"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("JSON lacks %q: %s", k, f.data)
			}
		}

		start := time.Now()
		if f := readFrame(t, body); f.comment != "keep-alive" || time.Since(start) != diagnostics.DefaultKeepAlive {
			t.Errorf("after %v: %+v, want a keep-alive after %v", time.Since(start), f, diagnostics.DefaultKeepAlive)
		}
	})
}

func ids(t *testing.T, body *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, readFrame(t, body).id)
	}
	return out
}

// TestEventsResume: Last-Event-ID (which wins) and ?after= resume from the
// replay ring, then the stream goes on live.
func TestEventsResume(t *testing.T) {
	tests := []struct {
		target, lastID string
		want           []string
	}{
		{"/events", "3", []string{"4", "5"}},
		{"/events?after=2", "", []string{"3", "4", "5"}},
		{"/events?after=1", "4", []string{"5"}},
	}
	for _, tt := range tests {
		t.Run(tt.target+"#"+tt.lastID, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := diagnostics.NewStream()
				publish(s, seqEvents(1, 2, 3, 4, 5)...)
				hdr := http.Header{}
				if tt.lastID != "" {
					hdr.Set("Last-Event-ID", tt.lastID)
				}
				_, body := serve(t, diagnostics.EventsHandler(s), tt.target, hdr)
				readFrame(t, body) // opening comment
				if got := ids(t, body, len(tt.want)); !slices.Equal(got, tt.want) {
					t.Errorf("replayed %v, want %v", got, tt.want)
				}
				publish(s, seqEvents(6)...)
				if got := ids(t, body, 1); got[0] != "6" {
					t.Errorf("live event %v, want 6", got)
				}
			})
		})
	}
}

// TestEventsFilteredResume: a client filtered to warnings hears of none
// while more debug events than the replay ring holds go by. Resuming from
// its last warning, it would be told to resync, though it missed nothing
// it asked for; the keep-alive that follows those events carries a fresher
// cursor (an id: with no data, which an EventSource takes as its
// Last-Event-ID and dispatches nothing for), and from that it resumes with
// no notice. A keep-alive with nothing dropped since carries no id.
func TestEventsFilteredResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		warning := func(seq uint64) runtime.Event {
			return runtime.Event{Seq: seq, Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: seq,
				Outcome: runtime.Error, Err: errors.New("boom")}
		}
		_, body, leave := serveUntil(t, diagnostics.EventsHandler(s), "/events?level=warn", nil)
		readFrame(t, body) // the opening: subscribed
		publish(s, warning(1))
		first := readFrame(t, body)
		if first.id != "1" {
			t.Fatalf("first frame %+v, want the warning", first)
		}
		time.Sleep(diagnostics.DefaultKeepAlive)
		if f := readFrame(t, body); f.comment != "keep-alive" || f.hasID {
			t.Errorf("keep-alive with nothing dropped: %+v, want no id", f)
		}
		n := uint64(2 * diagnostics.DefaultReplaySize)
		publish(s, seqEvents(seqRange(2, 2+n)...)...) // debug: not for this client
		time.Sleep(diagnostics.DefaultKeepAlive)
		// Cursors, then a keep-alive: the last id is the last event's.
		var f frame
		for {
			g := readFrame(t, body)
			if g.data != "" {
				t.Errorf("a frame with data after %d events dropped by the filter: %+v", n, g)
			}
			if g.hasID {
				f = g
			}
			if g.comment == "keep-alive" {
				break
			}
		}
		if f.id != strconv.FormatUint(1+n, 10) {
			t.Errorf("cursor after %d events dropped by the filter: %+v, want the id %d", n, f, 1+n)
		}
		cursor := "1@" + first.stream // what the client has without one
		if f.hasID {
			cursor = f.id + "@" + f.stream
		}
		leave()

		publish(s, seqEvents(seqRange(2+n, 12+n)...)...) // while away: not wanted either
		hdr := http.Header{}
		hdr.Set("Last-Event-ID", cursor)
		_, body = serve(t, diagnostics.EventsHandler(s), "/events?level=warn", hdr)
		readFrame(t, body)
		publish(s, warning(20+n))
		if got := decode(t, readFrame(t, body).data); got.Kind != runtime.KindTaskFinished || got.Seq != 20+n {
			t.Errorf("resumed from %s: %+v, want the next warning (no event a warn filter passes was missed)", cursor, got)
		}
	})
}

// TestEventsFilteredCursorKeepsUpWithBursts: a filtered SSE client gets
// a fresh cursor (an id: with no data) as soon as its filters have
// dropped a good part of the replay size, not only at the next keep-alive:
// a service that publishes more than the replay size of unwanted events
// between two keep-alives (512 per 15 s is 34 a second) would otherwise
// age the client's cursor out of the ring before it reconnects.
func TestEventsFilteredCursorKeepsUpWithBursts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		_, body, leave := serveUntil(t, diagnostics.EventsHandler(s), "/events?level=warn", nil)
		readFrame(t, body) // the opening
		n := uint64(4 * diagnostics.DefaultReplaySize)
		publish(s, seqEvents(seqRange(1, 1+n)...)...) // debug: not for this client
		synctest.Wait()
		start := time.Now()
		var last frame
		for {
			f := readFrame(t, body)
			if time.Since(start) > 0 {
				break // it came with a keep-alive: nothing else was sent
			}
			if f.hasID {
				last = f
			}
		}
		leave()
		if !last.hasID {
			t.Fatalf("no cursor before the keep-alive, %v after a burst of %d dropped events", diagnostics.DefaultKeepAlive, n)
		}
		if seq, _ := strconv.ParseUint(last.id, 10, 64); seq+uint64(diagnostics.DefaultReplaySize) <= n {
			t.Errorf("the last cursor sent, %s, is out of the replay ring after %d events", last.id, n)
		}

		// Resuming from it finds it: no resync notice.
		_, body = serve(t, diagnostics.EventsHandler(s), "/events?level=warn", lastEventID(last.id+"@"+last.stream))
		readFrame(t, body)
		publish(s, runtime.Event{Seq: n + 1, Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: 1,
			Outcome: runtime.Error, Err: errors.New("boom")})
		if f := readFrame(t, body); f.event != runtime.KindTaskFinished {
			t.Errorf("resumed from %s: %+v, want the warning (no resync)", last.id, f)
		}
	})
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

// TestEventsResumeFromAnotherStream: an EventSource reconnecting to a
// restarted process sends the old process's Last-Event-ID. Its sequence
// numbers mean nothing to the new stream, which numbers from 1 again: the
// client is told to resync and gets everything held, not the events after
// its old cursor (with them it would keep the old process's tasks and miss
// the new one's first events). Its own stream's cursor resumes as usual.
func TestEventsResumeFromAnotherStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := diagnostics.NewStream()
		_, body := serve(t, diagnostics.EventsHandler(old), "/events", nil)
		readFrame(t, body)
		publish(old, seqEvents(1, 2, 3)...)
		var last frame
		for range 3 {
			last = readFrame(t, body)
		}

		restarted := diagnostics.NewStream()
		publish(restarted, seqEvents(1, 2, 3, 4, 5)...)
		_, body = serve(t, diagnostics.EventsHandler(restarted), "/events", lastEventID(last.id+"@"+last.stream))
		readFrame(t, body)
		if f := readFrame(t, body); f.event != diagnostics.KindStreamLagged || !decode(t, f.data).Resync {
			t.Errorf("first frame after resuming with another stream's id: %+v, want a resync notice", f)
		}
		var got []string
		for range 5 {
			last = readFrame(t, body)
			got = append(got, last.id)
		}
		if !slices.Equal(got, []string{"1", "2", "3", "4", "5"}) {
			t.Errorf("after the resync notice %v, want everything held", got)
		}

		_, body = serve(t, diagnostics.EventsHandler(restarted), "/events", lastEventID("3@"+last.stream))
		readFrame(t, body)
		if got := ids(t, body, 2); !slices.Equal(got, []string{"4", "5"}) {
			t.Errorf("resuming with the stream's own id 3: %v, want [4 5]", got)
		}
	})
}

// TestEventsNDJSONResumeFromAnotherStream: an NDJSON line carries the
// same cursor as the SSE id, and ?after= takes it back: a client of a
// restarted process is told to resync, a client of the same one resumes.
func TestEventsNDJSONResumeFromAnotherStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		readLine := func(body *bufio.Reader) diagnostics.EventJSON {
			t.Helper()
			line, err := body.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			return decode(t, line)
		}
		old := diagnostics.NewStream()
		_, body := serve(t, diagnostics.EventsHandler(old), "/events?format=ndjson", nil)
		synctest.Wait() // subscribed: NDJSON writes nothing before the first event
		publish(old, seqEvents(1, 2, 3)...)
		var last diagnostics.EventJSON
		for range 3 {
			last = readLine(body)
		}
		seq, stream, ok := strings.Cut(last.ID, "@")
		if seq != "3" || !ok || stream == "" {
			t.Fatalf("last line's id %q, want 3@<stream>", last.ID)
		}

		restarted := diagnostics.NewStream()
		publish(restarted, seqEvents(1, 2, 3, 4, 5)...)
		_, body = serve(t, diagnostics.EventsHandler(restarted), "/events?format=ndjson&after="+url.QueryEscape(last.ID), nil)
		if j := readLine(body); j.Kind != diagnostics.KindStreamLagged || !j.Resync || j.ID != "" {
			t.Errorf("first line after resuming with another stream's id: %+v, want a resync notice without id", j)
		}
		var got []uint64
		for range 5 {
			last = readLine(body)
			got = append(got, last.Seq)
		}
		if !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
			t.Errorf("after the resync notice %v, want everything held", got)
		}

		_, stream, _ = strings.Cut(last.ID, "@")
		// Pasted with a trailing newline, the cursor is still this stream's.
		_, body = serve(t, diagnostics.EventsHandler(restarted), "/events?format=ndjson&after="+url.QueryEscape("3@"+stream+"\n"), nil)
		if got := []uint64{readLine(body).Seq, readLine(body).Seq}; !slices.Equal(got, []uint64{4, 5}) {
			t.Errorf("resuming with the stream's own id 3: %v, want [4 5]", got)
		}
	})
}

func lastEventID(id string) http.Header {
	h := http.Header{}
	h.Set("Last-Event-ID", id)
	return h
}

// TestEventsLagNotice: a client that falls behind gets a lag event with no
// id (EventSource keeps its last id) and the missed count.
func TestEventsLagNotice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream(diagnostics.WithBufferSize(2))
		publish(s, seqEvents(1, 2, 3, 4, 5)...)
		_, body := serve(t, diagnostics.EventsHandler(s), "/events?after=0", nil)
		readFrame(t, body)
		f := readFrame(t, body)
		if f.hasID || f.event != diagnostics.KindStreamLagged {
			t.Errorf("lag frame %+v", f)
		}
		if j := decode(t, f.data); j.Missed != 3 || j.Resync || j.Level != "WARN" || j.Seq != 0 {
			t.Errorf("lag JSON %+v", j)
		}
		if got := ids(t, body, 2); !slices.Equal(got, []string{"4", "5"}) {
			t.Errorf("after the notice %v", got)
		}
	})
}

func TestEventsNDJSON(t *testing.T) {
	for _, tc := range []struct {
		target string
		accept string
	}{{"/events", "application/x-ndjson"}, {"/events?format=ndjson", ""}} {
		t.Run(tc.target, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := diagnostics.NewStream()
				publish(s, seqEvents(1, 2)...)
				hdr := http.Header{}
				if tc.accept != "" {
					hdr.Set("Accept", tc.accept)
				}
				resp, body := serve(t, diagnostics.EventsHandler(s, diagnostics.WithKeepAlive(time.Minute)), tc.target+sep(tc.target)+"after=0", hdr)
				var got []uint64
				for range 2 {
					line, err := body.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, decode(t, line).Seq)
				}
				if !slices.Equal(got, []uint64{1, 2}) || resp.header.Get("Content-Type") != "application/x-ndjson" {
					t.Errorf("got %v, content type %q", got, resp.header.Get("Content-Type"))
				}
				start := time.Now()
				if line, _ := body.ReadString('\n'); line != "\n" || time.Since(start) != time.Minute {
					t.Errorf("keep-alive %q after %v", line, time.Since(start))
				}
			})
		})
	}
}

// TestEventsRepeatedLevel: ?level= is repeatable as ?kind= and ?group=
// are, and repeats widen the filter, as a repeated MinLevel does: the
// lowest level given.
func TestEventsRepeatedLevel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		_, body := serve(t, diagnostics.EventsHandler(s), "/events?level=error&level=warn", nil)
		readFrame(t, body)
		publish(s,
			runtime.Event{Seq: 1, Kind: runtime.KindTaskRunStarted, Group: "svc"},                          // debug
			runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Group: "svc", Outcome: runtime.Canceled}, // info
			runtime.Event{Seq: 3, Kind: runtime.KindTaskFinished, Group: "svc", Outcome: runtime.Error},    // warn
		)
		publish(s, runtime.Event{Seq: 4, Kind: runtime.KindTaskFinished, Group: "svc", Outcome: runtime.Panic}) // error
		var got []string
		for keepAlives := 0; len(got) < 3 && keepAlives < 2; {
			if f := readFrame(t, body); f.event == "" {
				keepAlives++ // the stream has nothing more for this client
			} else {
				got = append(got, f.id)
			}
		}
		if !slices.Equal(got, []string{"3", "4"}) {
			t.Errorf("?level=error&level=warn: %v, want [3 4] (warn and above)", got)
		}
	})
}

func sep(target string) string {
	if strings.Contains(target, "?") {
		return "&"
	}
	return "?"
}

func TestEventsFilters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		_, body := serve(t, diagnostics.EventsHandler(s),
			"/events?kind=taskscope.task.finished,taskscope.task.aborted&group=svc.ingest&level=warn", nil)
		readFrame(t, body)
		publish(s,
			runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "svc.ingest", Outcome: runtime.Success},
			runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Group: "svc.ingester", Outcome: runtime.Error},
			runtime.Event{Seq: 3, Kind: runtime.KindTaskCancelRequested, Group: "svc.ingest"},
			runtime.Event{Seq: 4, Kind: runtime.KindTaskFinished, Group: "svc.ingest.kafka", Outcome: runtime.Error},
			runtime.Event{Seq: 5, Kind: runtime.KindTaskAborted, Group: "svc.ingest", Outcome: runtime.Aborted},
		)
		if got := ids(t, body, 2); !slices.Equal(got, []string{"4", "5"}) {
			t.Errorf("filtered %v, want [4 5]", got)
		}
	})
}

func TestEventsBadRequests(t *testing.T) {
	h := diagnostics.EventsHandler(diagnostics.NewStream())
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // a request taken as valid answers 200 and ends at once
	for _, tc := range []struct {
		method, target, lastID string
		want                   int
	}{
		{http.MethodGet, "/events?level=loud", "", http.StatusBadRequest},
		// Every ?level= is read, not the first alone.
		{http.MethodGet, "/events?level=warn&level=loud", "", http.StatusBadRequest},
		{http.MethodGet, "/events?level=warn&level=debug", "", http.StatusOK},
		{http.MethodGet, "/events?after=x", "", http.StatusBadRequest},
		{http.MethodGet, "/events", "abc", http.StatusBadRequest},
		// A stream's tag without a sequence number is no cursor either
		// (and the header wins over ?after=).
		{http.MethodGet, "/events", "@abc", http.StatusBadRequest},
		{http.MethodGet, "/events?after=2", "@", http.StatusBadRequest},
		{http.MethodGet, "/events?after=@abc", "", http.StatusBadRequest},
		{http.MethodGet, "/events?after=5@", "", http.StatusBadRequest},
		{http.MethodGet, "/events?format=json", "", http.StatusBadRequest}, // a typo must not give SSE
		{http.MethodGet, "/events?format=sse", "", http.StatusOK},
		// A group the runtime cannot name: the empty prefix would match
		// every group, the others none.
		{http.MethodGet, "/events?group=", "", http.StatusBadRequest},
		{http.MethodGet, "/events?group=svc..ingest", "", http.StatusBadRequest},
		{http.MethodGet, "/events?group=.svc", "", http.StatusBadRequest},
		{http.MethodGet, "/events?group=.", "", http.StatusBadRequest},
		{http.MethodGet, "/events?group=svc&group=", "", http.StatusBadRequest},
		{http.MethodGet, "/events?group=svc.ingest.", "", http.StatusOK}, // the same group
		{http.MethodPost, "/events", "", http.StatusMethodNotAllowed},
	} {
		req := httptest.NewRequestWithContext(ctx, tc.method, tc.target, nil)
		if tc.lastID != "" {
			req.Header.Set("Last-Event-ID", tc.lastID)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (Last-Event-ID %q): %d, want %d", tc.method, tc.target, tc.lastID, rec.Code, tc.want)
		}
	}
}

// TestEventsStreamClose: closing the stream ends the response, and a
// request that comes later gets a 503 (an EventSource then stops), not an
// empty stream it would reconnect to at once.
func TestEventsStreamClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		h := diagnostics.EventsHandler(s)
		_, body := serve(t, h, "/events", nil)
		readFrame(t, body)
		s.Close()
		if rest, err := io.ReadAll(body); err != nil || len(rest) != 0 {
			t.Errorf("after Stream.Close: %q, %v", rest, err)
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, "/events", nil))
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("a %s request after Stream.Close: %d, want 503", method, rec.Code)
			}
		}
	})
}

// closeOnHeader closes the stream the first time the handler asks for
// the response header, which it does once it has found the stream open:
// a Stream.Close (from RegisterOnShutdown) racing a request.
type closeOnHeader struct {
	*httptest.ResponseRecorder
	stream *diagnostics.Stream
	closed bool
}

func (c *closeOnHeader) Header() http.Header {
	if !c.closed {
		c.closed = true
		c.stream.Close()
	}
	return c.ResponseRecorder.Header()
}

// TestEventsStreamCloseRacingRequest: a request that subscribes just after
// Stream.Close gets a 503 too, not a 200 with only the opening comment,
// which an EventSource reconnects to.
func TestEventsStreamCloseRacingRequest(t *testing.T) {
	s := diagnostics.NewStream()
	w := &closeOnHeader{ResponseRecorder: httptest.NewRecorder(), stream: s}
	diagnostics.EventsHandler(s).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/events", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("a request subscribing as the stream closed: %d %q, want 503", w.Code, w.Body.String())
	}
}

// trackHandler reports each request h has finished serving.
type trackHandler struct {
	h     http.Handler
	exits chan struct{}
}

// trackedServer serves a new stream's events with opts on a real server,
// tracking the requests it finishes. The server closes with the test.
func trackedServer(t *testing.T, opts ...diagnostics.EventsOption) (*diagnostics.Stream, *trackHandler, *httptest.Server) {
	s := diagnostics.NewStream()
	th := &trackHandler{h: diagnostics.EventsHandler(s, opts...), exits: make(chan struct{}, 16)}
	srv := httptest.NewServer(th)
	t.Cleanup(func() {
		srv.Client().CloseIdleConnections()
		srv.Close()
	})
	return s, th, srv
}

func (th *trackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() { th.exits <- struct{}{} }()
	th.h.ServeHTTP(w, r)
}

// waitExits waits until n more requests have been served. The timer is a
// watchdog that turns a hang into a failure; nothing waits on it otherwise.
func (th *trackHandler) waitExits(t *testing.T, n int) {
	t.Helper()
	watchdog := time.NewTimer(time.Minute)
	defer watchdog.Stop()
	for range n {
		select {
		case <-th.exits:
		case <-watchdog.C:
			t.Fatal("a handler did not return after its client left")
		}
	}
}

// open starts a streaming request against a real server and reads the
// opening comment, so the subscription exists when it returns.
func open(t *testing.T, srv *httptest.Server) (leave func(), status int) {
	t.Helper()
	resp, leave := getEvents(t, srv)
	if resp.StatusCode == http.StatusOK {
		readFrame(t, bufio.NewReader(resp.Body))
	}
	return leave, resp.StatusCode
}

// getEvents starts a streaming request against a real server's /events; leave
// ends it.
func getEvents(t *testing.T, srv *httptest.Server) (resp *http.Response, leave func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return resp, func() { cancel(); resp.Body.Close() }
}

// TestEventsDisconnect: a client going away closes its subscription; no
// goroutine is left behind (goleak checks at the end of the package).
func TestEventsDisconnect(t *testing.T) {
	// No keep-alives: only the request's context can end the handler.
	s, th, srv := trackedServer(t, diagnostics.WithKeepAlive(0))

	cancel, status := open(t, srv)
	if status != http.StatusOK || s.Subscribers() != 1 {
		t.Fatalf("status %d, %d subscribers", status, s.Subscribers())
	}
	cancel()
	th.waitExits(t, 1) // the handler noticed and returned
	if n := s.Subscribers(); n != 0 {
		t.Errorf("%d subscribers after the client left", n)
	}
}

// TestEventsClientCap: streams over the cap get 503; a slot freed by a
// client leaving is reusable.
func TestEventsClientCap(t *testing.T) {
	_, th, srv := trackedServer(t, diagnostics.WithMaxClients(2))

	c1, st1 := open(t, srv)
	c2, st2 := open(t, srv)
	c3, st3 := open(t, srv)
	c3()
	if st1 != http.StatusOK || st2 != http.StatusOK || st3 != http.StatusServiceUnavailable {
		t.Errorf("statuses %d %d %d, want 200 200 503", st1, st2, st3)
	}
	c1()
	th.waitExits(t, 2) // the refused request and c1's
	c4, st4 := open(t, srv)
	if st4 != http.StatusOK {
		t.Errorf("after a client left: %d, want 200", st4)
	}
	c2()
	c4()
	th.waitExits(t, 2)
}

// smallSendBuffer is a listener whose connections have a small kernel send
// buffer: writes to a client that stops reading block after little data.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// TestEventsStalledClient: a client that connects and then reads nothing
// (a hung tab, a stopped `curl | less`, a dead path with a zero window) is
// cut off after the write timeout: its handler returns, its slot is free
// again, and Shutdown after Stream.Close does not wait for it.
func TestEventsStalledClient(t *testing.T) {
	s := diagnostics.NewStream()
	th := &trackHandler{
		h:     diagnostics.EventsHandler(s, diagnostics.WithMaxClients(1), diagnostics.WithWriteTimeout(200*time.Millisecond)),
		exits: make(chan struct{}, 16),
	}
	srv := httptest.NewUnstartedServer(th)
	srv.Listener = smallSendBuffer{srv.Listener}
	srv.Config.RegisterOnShutdown(s.Close)
	srv.Start()
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Closed before srv (cleanups run last first): a handler still
	// blocked writing to it then returns, and srv.Close does not hang.
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("response %v, %v", resp, err)
	}
	readFrame(t, bufio.NewReader(resp.Body)) // subscribed; from now on the client reads nothing

	// Far more than the socket buffers hold (the subscriber's buffer keeps
	// the last DefaultBufferSize events, each about 2 KiB on the wire).
	msg := errors.New(strings.Repeat("x", diagnostics.DefaultMaxMessage))
	for seq := range uint64(diagnostics.DefaultBufferSize) {
		publish(s, runtime.Event{Seq: seq + 1, Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: seq + 1,
			Outcome: runtime.Error, Err: msg})
	}
	th.waitExits(t, 1)
	if n := s.Subscribers(); n != 0 {
		t.Errorf("%d subscribers after the stalled client was cut off", n)
	}
	leave, status := open(t, srv)
	defer leave()
	if status != http.StatusOK {
		t.Errorf("with the stalled client cut off, a new client got %d, want 200 (WithMaxClients(1))", status)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown, which closes the stream: %v", err)
	}
}

// TestEventsStalledClientResumes: a client cut off for stalling (see
// TestEventsStalledClient) resumes with the id of the last whole event it
// read, by Last-Event-ID or ?after=, and gets every event after it exactly
// once: the events the handler had taken from the subscription but could
// not write are replayed (the ring holds them all).
func TestEventsStalledClientResumes(t *testing.T) {
	for _, ndjson := range []bool{false, true} {
		t.Run(fmt.Sprint("ndjson=", ndjson), func(t *testing.T) {
			s := diagnostics.NewStream(diagnostics.WithReplaySize(4096), diagnostics.WithBufferSize(4096))
			th := &trackHandler{
				h:     diagnostics.EventsHandler(s, diagnostics.WithWriteTimeout(200*time.Millisecond)),
				exits: make(chan struct{}, 16),
			}
			srv := httptest.NewUnstartedServer(th)
			srv.Listener = smallSendBuffer{srv.Listener}
			srv.Start()
			t.Cleanup(srv.Close)
			target := "/events"
			if ndjson {
				target += "?format=ndjson"
			}
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", target)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %v", resp, err)
			}
			rd := bufio.NewReader(resp.Body)
			if !ndjson {
				readFrame(t, rd)
			}
			msg := errors.New(strings.Repeat("é\n", diagnostics.DefaultMaxMessage/3))
			const n = 2000
			for seq := uint64(1); seq <= n; seq++ {
				publish(s, runtime.Event{Seq: seq, Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: seq, Outcome: runtime.Error, Err: msg})
			}
			th.waitExits(t, 1) // cut off: the client read nothing yet
			// Now the client reads what reached it, up to the torn event.
			var seen []uint64
			var cursor string
			for {
				var j diagnostics.EventJSON
				if ndjson {
					line, err := rd.ReadString('\n')
					if err != nil {
						break
					}
					if json.Unmarshal([]byte(line), &j) != nil {
						t.Fatalf("bad line %q", line)
					}
				} else {
					f, ok := readWholeFrame(rd)
					if !ok {
						break
					}
					if json.Unmarshal([]byte(f.data), &j) != nil {
						t.Fatalf("bad data %q", f.data)
					}
				}
				seen = append(seen, j.Seq)
				cursor = j.ID
			}
			t.Logf("cut after %d whole events, cursor %s", len(seen), cursor)
			// Resume.
			q := "?after=" + url.QueryEscape(cursor)
			hdr := http.Header{}
			if ndjson {
				q += "&format=ndjson"
			} else {
				q = ""
				hdr.Set("Last-Event-ID", cursor)
			}
			// The same stream on a server of its own, without small buffers
			// and a short write timeout: the resumed client reads on.
			srv2 := httptest.NewServer(diagnostics.EventsHandler(s))
			t.Cleanup(srv2.Close)
			req, _ := http.NewRequestWithContext(t.Context(), "GET", srv2.URL+"/events"+q, nil)
			maps.Copy(req.Header, hdr)
			resp2, err := srv2.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp2.Body.Close()
			rd = bufio.NewReader(resp2.Body)
			if !ndjson {
				readFrame(t, rd)
			}
			for i, s := range seen {
				if s != uint64(i+1) {
					t.Fatalf("before the cut, event %d has Seq %d", i, s)
				}
			}
			// Every event after the cursor, in order, each once. No keep-alive
			// comes while the handler has events to send.
			for len(seen) < n {
				var j diagnostics.EventJSON
				if ndjson {
					line, err := rd.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if json.Unmarshal([]byte(line), &j) != nil {
						t.Fatalf("bad line %q", line)
					}
				} else {
					j = decode(t, readFrame(t, rd).data)
				}
				if want := uint64(len(seen) + 1); j.Seq != want || j.Kind == diagnostics.KindStreamLagged {
					t.Fatalf("resumed from %s: event %d is %s Seq %d, want Seq %d", cursor, len(seen), j.Kind, j.Seq, want)
				}
				seen = append(seen, j.Seq)
			}
			srv2.Client().CloseIdleConnections()
		})
	}
}

func readWholeFrame(r *bufio.Reader) (frame, bool) {
	var f frame
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, false
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if f.data == "" {
				continue
			}
			return f, true
		}
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "id":
			f.id = value
		case "data":
			f.data = value
		}
	}
}

// TestEventsIdleHTTP2: the write deadline covers each write only. On
// HTTP/2 a deadline left set resets the stream when it passes, writing or
// not: an idle stream would die after the write timeout.
func TestEventsIdleHTTP2(t *testing.T) {
	s := diagnostics.NewStream()
	srv := httptest.NewUnstartedServer(diagnostics.EventsHandler(s,
		diagnostics.WithWriteTimeout(100*time.Millisecond), diagnostics.WithKeepAlive(400*time.Millisecond)))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	resp, leave := getEvents(t, srv)
	defer leave()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	body := bufio.NewReader(resp.Body)
	readFrame(t, body) // the opening
	if f := readFrame(t, body); f.comment != "keep-alive" {
		t.Errorf("after an idle spell longer than the write timeout: %+v, want a keep-alive", f)
	}
}

// TestEventJSONRejected: the wire form says when a task never ran, and
// says nothing about it otherwise.
func TestEventJSONRejected(t *testing.T) {
	for _, rejected := range []bool{true, false} {
		b, err := json.Marshal(diagnostics.NewEventJSON(runtime.Event{Kind: runtime.KindTaskFinished, Outcome: runtime.Canceled, Rejected: rejected}))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(b), `"rejected":true`); got != rejected || strings.Contains(string(b), `"rejected":false`) {
			t.Errorf("Rejected %v: wire form %s", rejected, b)
		}
	}
}

// TestEventKindsAreRuntimes: ?kind= accepts every Kind constant the
// runtime package declares (read from its source, so that a kind added
// there and not here fails), and answers a typo with a 400 naming them.
func TestEventKindsAreRuntimes(t *testing.T) {
	files, err := filepath.Glob("../runtime/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, id := range vs.Names {
						if i >= len(vs.Values) || !strings.HasPrefix(id.Name, "Kind") {
							continue
						}
						lit, ok := vs.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							t.Fatalf("%s: %s is not a string literal: read it some other way", name, id.Name)
						}
						k, err := strconv.Unquote(lit.Value)
						if err != nil {
							t.Fatal(err)
						}
						kinds = append(kinds, k)
					}
				}
			}
		}
	}
	if len(kinds) < 10 {
		t.Fatalf("found only %d Kind constants in ../runtime: %v", len(kinds), kinds)
	}
	h := diagnostics.EventsHandler(diagnostics.NewStream())
	for _, k := range append(kinds, "taskscope.task.finishd") {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, endedRequest(t, "/events?kind="+k)) // accepted: 200, and it ends at once
		want := http.StatusOK
		if k == "taskscope.task.finishd" {
			want = http.StatusBadRequest
		}
		if rec.Code != want {
			t.Errorf("?kind=%s: %d, want %d", k, rec.Code, want)
		}
	}
}
