package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// streamEvent is the part of diagnostics.EventJSON the tests read.
type streamEvent struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Level  string    `json:"level"`
	Group  string    `json:"group"`
	TaskID uint64    `json:"task_id"`
	Missed uint64    `json:"missed"`
	Resync bool      `json:"resync"`
}

const kindLagged = "taskscope.stream.lagged"

// openStream GETs the demo's /debug/events with query and headers
// (key, value, ...); the caller closes the body.
func (s *stack) openStream(ctx context.Context, query string, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.demoURL("/debug/events"+query), nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET /debug/events%s: %s: %s", query, resp.Status, body)
	}
	return resp, nil
}

// sseReader reads Server-Sent Events: id, event and data fields, messages
// ended by a blank line, comments (keep-alives) skipped. As an EventSource,
// it dispatches no message without data (a keep-alive's id: line).
type sseReader struct{ sc *bufio.Scanner }

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	return &sseReader{sc: sc}
}

type sseMessage struct{ id, event, data string }

func (r *sseReader) next() (sseMessage, error) {
	var m sseMessage
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" {
			if m.data != "" {
				return m, nil
			}
			m = sseMessage{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			m.id = value
		case "event":
			m.event = value
		case "data":
			if m.data != "" {
				m.data += "\n"
			}
			m.data += value
		}
	}
	if err := r.sc.Err(); err != nil {
		return m, err
	}
	return m, io.EOF
}

// event decodes an SSE message and checks its framing: event: is the
// kind, id: the seq and the stream (absent on lag notices).
func (m sseMessage) decode() (streamEvent, error) {
	var ev streamEvent
	if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
		return ev, fmt.Errorf("SSE data %q: %w", m.data, err)
	}
	if m.event != ev.Kind {
		return ev, fmt.Errorf("SSE event: %q but data kind %q", m.event, ev.Kind)
	}
	seq, stream, _ := strings.Cut(m.id, "@") // "seq@stream"
	if ev.Seq == 0 && m.id != "" || ev.Seq != 0 && (seq != strconv.FormatUint(ev.Seq, 10) || stream == "") {
		return ev, fmt.Errorf("SSE id: %q for seq %d", m.id, ev.Seq)
	}
	return ev, nil
}

// kindsWatch is an SSE client that stays connected from the start of the
// checks through the demo's shutdown, counting event kinds.
type kindsWatch struct {
	done  chan struct{}
	kinds map[string]int // written by the reader goroutine until done
	err   error
}

func watchKinds(ctx context.Context, t *testing.T, s *stack) *kindsWatch {
	w := &kindsWatch{done: make(chan struct{}), kinds: map[string]int{}}
	resp, err := s.openStream(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("/debug/events Content-Type %q, want text/event-stream", ct)
	}
	go func() {
		defer close(w.done)
		defer resp.Body.Close()
		r := newSSEReader(resp.Body)
		for {
			m, err := r.next()
			if err != nil {
				if err != io.EOF && ctx.Err() == nil && !strings.Contains(err.Error(), "connection reset") {
					w.err = err
				}
				return
			}
			ev, err := m.decode()
			if err != nil {
				w.err = err
				return
			}
			w.kinds[ev.Kind]++
		}
	}()
	// The stream ends when the demo exits; the test's context ends it
	// otherwise.
	t.Cleanup(func() { <-w.done })
	return w
}

// streamKinds are the event kinds the demo's workload produces between
// its start and the end of its shutdown (runtime/event.go).
var streamKinds = []string{
	"taskscope.task.spawned",
	"taskscope.task.cancel_requested",
	"taskscope.task.finished",
	"taskscope.task.aborted",
	"taskscope.task.late_exit",
	"taskscope.task.rejected",
	"taskscope.task.run_started",
	"taskscope.task.run_finished",
	"taskscope.group.cancel_requested",
	"taskscope.group.shutdown_started",
	"taskscope.group.shutdown_finished",
}

// checkKinds runs after the demo has exited: the SSE client connected at
// the start saw every kind of event.
func checkKinds(t *testing.T, w *kindsWatch) {
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-w.done:
	case <-timer.C:
		t.Fatal("the SSE stream did not end within 10s of the demo's exit")
	}
	if w.err != nil {
		t.Errorf("SSE stream: %v", w.err)
	}
	var missing []string
	for _, k := range streamKinds {
		if w.kinds[k] == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the SSE client saw no %v; it saw %v", missing, w.kinds)
	}
	if n := w.kinds[kindLagged]; n > 0 {
		t.Errorf("the SSE client lagged %d times", n)
	}
	t.Logf("SSE event kinds seen from start to shutdown: %v", w.kinds)
}

// checkStream: NDJSON line by line, and an SSE client that disconnects and
// reconnects with Last-Event-ID misses nothing that a client connected the
// whole time saw.
func (s *stack) checkStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const batch = 50 // events to read at each step

	// The continuous client: NDJSON, asked for by Accept header.
	cctx, ccancel := context.WithCancel(ctx)
	resp, err := s.openStream(cctx, "", "Accept", "application/x-ndjson")
	if err != nil {
		ccancel()
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("NDJSON Content-Type %q", ct)
	}
	cEvents := make(chan streamEvent, 1<<16)
	cDone := make(chan error, 1)
	go func() {
		defer resp.Body.Close()
		defer close(cEvents)
		sc := bufio.NewScanner(resp.Body) // a line-by-line reader
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue // keep-alive
			}
			var ev streamEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				cDone <- fmt.Errorf("NDJSON line %q: %w", sc.Text(), err)
				return
			}
			cEvents <- ev
		}
		cDone <- sc.Err()
	}()
	defer func() {
		ccancel()
		for range cEvents { // until the reader has returned
		}
	}()

	cSeqs := map[uint64]bool{}
	var cMax uint64
	// drainC reads the continuous client until it has seen seq >= until.
	drainC := func(until uint64) {
		t.Helper()
		for cMax < until {
			select {
			case ev, ok := <-cEvents:
				if !ok {
					t.Fatalf("NDJSON stream ended: %v", <-cDone)
				}
				if ev.Kind == kindLagged {
					t.Fatalf("the continuous NDJSON client lagged (%+v): the comparison needs it complete", ev)
				}
				if ev.Seq == 0 || ev.Kind == "" || ev.Time.IsZero() {
					t.Fatalf("NDJSON event without seq, kind or time: %+v", ev)
				}
				cSeqs[ev.Seq] = true
				cMax = max(cMax, ev.Seq)
			case <-ctx.Done():
				t.Fatalf("NDJSON client: no seq %d in time (at %d)", until, cMax)
			}
		}
	}

	// sse reads an SSE connection until it has seen seq >= until; it
	// returns the seqs seen, the highest, and its SSE id.
	sse := func(ctx context.Context, until uint64, header ...string) (map[uint64]bool, uint64, string) {
		t.Helper()
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		resp, err := s.openStream(sctx, "", header...)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := newSSEReader(resp.Body)
		seqs := map[uint64]bool{}
		var last uint64
		var lastID string
		for last < until {
			m, err := r.next()
			if err != nil {
				t.Fatalf("SSE: %v", err)
			}
			ev, err := m.decode()
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind == kindLagged {
				t.Fatalf("SSE client with %v lagged: %+v", header, ev)
			}
			seqs[ev.Seq] = true
			if ev.Seq > last {
				last, lastID = ev.Seq, m.id
			}
		}
		return seqs, last, lastID
	}

	drainC(1)
	// First SSE connection: read a batch, then disconnect at X.
	_, x, xID := sse(ctx, cMax+batch)
	// While it is away, the demo goes on.
	drainC(x + batch)
	y := cMax
	// Reconnect from X, as EventSource does, and read past Y.
	got, _, _ := sse(ctx, y+batch, "Last-Event-ID", xID)
	drainC(y + batch)

	var missed []uint64
	want := 0
	for seq := range cSeqs {
		if seq > x && seq <= y {
			want++
			if !got[seq] {
				missed = append(missed, seq)
			}
		}
	}
	slices.Sort(missed)
	if len(missed) > 0 {
		t.Errorf("after reconnecting with Last-Event-ID %d, the SSE client missed %d of the %d events up to %d that the continuous client saw: %v", x, len(missed), want, y, missed)
	}
	if want == 0 {
		t.Errorf("no events between the disconnect (%d) and the reconnect (%d)", x, y)
	}
	t.Logf("reconnect with Last-Event-ID %d: all %d events up to %d replayed (NDJSON client read %d lines)", x, want, y, len(cSeqs))
}
