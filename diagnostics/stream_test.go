package diagnostics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

func lagged(t *testing.T, ev runtime.Event) *diagnostics.LaggedError {
	t.Helper()
	var le *diagnostics.LaggedError
	if ev.Kind != diagnostics.KindStreamLagged || !errors.As(ev.Err, &le) {
		t.Fatalf("event %s (%v) is not a lag notice", ev.Kind, ev.Err)
	}
	return le
}

// TestStreamOrderPerTask: with a real supervisor, each task's events reach
// a subscriber in order: spawned first, one finished last, Seq increasing.
func TestStreamOrderPerTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		sub := s.Subscribe(t.Context(), diagnostics.BufferSize(1<<16))
		sup := runtime.New("svc", runtime.WithObserver(s))
		g := sup.Group("work")
		for i := range 200 {
			task := g.Go(fmt.Sprint("t", i%7), func(ctx context.Context) error {
				if i%3 == 0 {
					<-ctx.Done()
					return ctx.Err()
				}
				if i%5 == 0 {
					return errors.New("failed")
				}
				return nil
			})
			if i%3 == 0 {
				task.Cancel(nil)
			}
		}
		if err := sup.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		evs := collect(sub)
		perTask := map[uint64][]runtime.Event{}
		for _, ev := range evs {
			perTask[ev.TaskID] = append(perTask[ev.TaskID], ev)
		}
		if len(perTask) != 200 {
			t.Fatalf("events for %d tasks, want 200", len(perTask))
		}
		for id, list := range perTask {
			if list[0].Kind != runtime.KindTaskSpawned || list[len(list)-1].Kind != runtime.KindTaskFinished {
				t.Errorf("task %d: kinds %v", id, kinds(list))
			}
			if !slices.IsSortedFunc(list, func(a, b runtime.Event) int { return int(a.Seq) - int(b.Seq) }) {
				t.Errorf("task %d: seqs out of order %v", id, seqs(list))
			}
			n := 0
			for _, ev := range list {
				if ev.Kind == runtime.KindTaskFinished {
					n++
				}
			}
			if n != 1 {
				t.Errorf("task %d: %d finished events", id, n)
			}
		}
	})
}

func kinds(evs []runtime.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Kind)
	}
	return out
}

func TestStreamFilters(t *testing.T) {
	evs := []runtime.Event{
		{Seq: 1, Kind: runtime.KindTaskSpawned, Group: "runtime.ingest", TaskID: 1},
		{Seq: 2, Kind: runtime.KindTaskFinished, Group: "runtime.ingest", TaskID: 1, Outcome: runtime.Error, Err: errors.New("x")},
		{Seq: 3, Kind: runtime.KindTaskFinished, Group: "runtime.ingest.kafka", TaskID: 2, Outcome: runtime.Panic, Err: &runtime.PanicError{Value: 1}},
		{Seq: 4, Kind: runtime.KindTaskFinished, Group: "runtime.ingester", TaskID: 3, Outcome: runtime.Error, Err: errors.New("y")},
		{Seq: 5, Kind: runtime.KindGroupCancelRequested, Group: "runtime", Cause: context.Canceled},
		{Seq: 6, Kind: runtime.KindTaskFinished, Group: "runtime", TaskID: 4, Outcome: runtime.Success},
		{Seq: 7, Kind: runtime.KindGroupShutdownStarted, Group: "runtime.ingester"},
		{Seq: 8, Kind: runtime.KindGroupCancelRequested, Group: "runtime.ingest.kafka", Cause: context.Canceled},
	}
	tests := []struct {
		name string
		opts []diagnostics.SubscribeOption
		want []uint64
	}{
		{"none", nil, []uint64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"kinds", []diagnostics.SubscribeOption{diagnostics.Kinds(runtime.KindTaskSpawned, runtime.KindGroupCancelRequested)}, []uint64{1, 5, 8}},
		{"kinds repeated", []diagnostics.SubscribeOption{diagnostics.Kinds(runtime.KindTaskSpawned), diagnostics.Kinds(runtime.KindGroupCancelRequested)}, []uint64{1, 5, 8}},
		{"level warn", []diagnostics.SubscribeOption{diagnostics.MinLevel(slog.LevelWarn)}, []uint64{2, 3, 4}},
		{"level error", []diagnostics.SubscribeOption{diagnostics.MinLevel(slog.LevelError)}, []uint64{3}},
		// The root's cancel (5) is its descendants' too; the task of the
		// root (6) and the shutdown of a sibling (7) are not.
		{"group prefix", []diagnostics.SubscribeOption{diagnostics.GroupPrefix("runtime.ingest")}, []uint64{1, 2, 3, 5, 8}},
		{"group exact leaf", []diagnostics.SubscribeOption{diagnostics.GroupPrefix("runtime.ingest.kafka")}, []uint64{3, 5, 8}},
		{"group root", []diagnostics.SubscribeOption{diagnostics.GroupPrefix("runtime")}, []uint64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"two groups", []diagnostics.SubscribeOption{diagnostics.GroupPrefix("runtime.ingester"), diagnostics.GroupPrefix("runtime.ingest.kafka")}, []uint64{3, 4, 5, 7, 8}},
		{"group events", []diagnostics.SubscribeOption{diagnostics.GroupPrefix("runtime.ingest"), diagnostics.Kinds(runtime.KindGroupCancelRequested, runtime.KindGroupShutdownStarted)}, []uint64{5, 8}},
		{"combined", []diagnostics.SubscribeOption{diagnostics.GroupPrefix("runtime.ingest"), diagnostics.Kinds(runtime.KindTaskFinished), diagnostics.MinLevel(slog.LevelWarn)}, []uint64{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := diagnostics.NewStream()
			sub := s.Subscribe(t.Context(), tt.opts...)
			publish(s, evs...)
			if got := seqs(collect(sub)); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStreamDropOldest: a full buffer drops its oldest events and the
// reader gets one lag notice with the exact count, then the newest events.
func TestStreamDropOldest(t *testing.T) {
	s := diagnostics.NewStream()
	sub := s.Subscribe(t.Context(), diagnostics.BufferSize(4))
	other := s.Subscribe(t.Context())
	publish(s, seqEvents(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)...)
	if sub.Dropped() != 6 || s.Dropped() != 6 {
		t.Errorf("Dropped() = %d, stream %d; want 6", sub.Dropped(), s.Dropped())
	}
	evs := collect(sub)
	if le := lagged(t, evs[0]); le.Missed != 6 || le.Resync {
		t.Errorf("lag notice %+v, want Missed 6", le)
	}
	if got := seqs(evs[1:]); !slices.Equal(got, []uint64{7, 8, 9, 10}) {
		t.Errorf("after the notice: %v", got)
	}
	if got := seqs(collect(other)); len(got) != 10 || other.Dropped() != 0 {
		t.Errorf("other subscriber got %v, dropped %d", got, other.Dropped())
	}
}

// TestStreamLagPosition: the notice sits where the gap is, after what was
// already read and before the events that survived.
func TestStreamLagPosition(t *testing.T) {
	s := diagnostics.NewStream()
	sub := s.Subscribe(t.Context(), diagnostics.BufferSize(3))
	publish(s, seqEvents(1, 2, 3)...)
	for ev := range sub.Events() {
		if ev.Seq != 1 {
			t.Fatalf("first event %d", ev.Seq)
		}
		break // leaves the subscription open
	}
	publish(s, seqEvents(4, 5)...) // drops 2
	evs := collect(sub)
	if le := lagged(t, evs[0]); le.Missed != 1 {
		t.Errorf("Missed = %d, want 1", le.Missed)
	}
	if got := seqs(evs[1:]); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("got %v, want [3 4 5]", got)
	}
	if l := diagnostics.NewEventJSON(evs[0]).Level; l != "WARN" {
		t.Errorf("lag notice JSON level %q, want WARN", l)
	}
}

// TestStreamSlowSubscriber: one subscriber never reads while 100,000 tasks
// run through a real supervisor. It ends up with one lag notice carrying
// the exact number it lost; a reading subscriber loses nothing.
func TestStreamSlowSubscriber(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	s := diagnostics.NewStream()
	stalled := s.Subscribe(t.Context()) // default buffer, never read until the end
	// The reader's buffer holds the whole burst, so that any loss could
	// only come from the stalled subscriber interfering.
	reader := s.Subscribe(t.Context(), diagnostics.BufferSize(2*n))
	var wg sync.WaitGroup
	var got []runtime.Event
	wg.Go(func() {
		for ev := range reader.Events() {
			got = append(got, ev)
		}
	})
	sup := runtime.New("svc", runtime.WithObserver(s))
	for range n {
		sup.Go("t", func(context.Context) error { return nil })
	}
	if err := sup.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	reader.Close()
	wg.Wait()

	total := uint64(2 * n) // spawned + finished
	if s.Published() != total {
		t.Fatalf("published %d, want %d", s.Published(), total)
	}
	if uint64(len(got)) != total || reader.Dropped() != 0 {
		t.Errorf("reader got %d events, dropped %d; want %d, 0", len(got), reader.Dropped(), total)
	}
	for _, ev := range got {
		if ev.Kind == diagnostics.KindStreamLagged {
			t.Fatal("reader got a lag notice")
		}
	}
	evs := collect(stalled)
	want := total - diagnostics.DefaultBufferSize
	if le := lagged(t, evs[0]); le.Missed != want {
		t.Errorf("stalled: Missed = %d, want %d", le.Missed, want)
	}
	if stalled.Dropped() != want || len(evs) != diagnostics.DefaultBufferSize+1 {
		t.Errorf("stalled: Dropped %d, %d events; want %d, %d", stalled.Dropped(), len(evs), want, diagnostics.DefaultBufferSize+1)
	}
	// Every subscriber sees one arrival order: the stalled one kept exactly
	// the newest arrivals.
	if kept, newest := seqs(evs[1:]), seqs(got[len(got)-len(evs)+1:]); !slices.Equal(kept, newest) {
		t.Errorf("stalled: kept events are not the newest %d arrivals", len(kept))
	}
}

// TestStreamOneArrivalOrder: events published concurrently reach every
// subscriber, and the replay ring, in one and the same order; After
// depends on it.
func TestStreamOneArrivalOrder(t *testing.T) {
	const publishers, each = 8, 4000
	s := diagnostics.NewStream(diagnostics.WithReplaySize(publishers * each))
	a := s.Subscribe(t.Context(), diagnostics.BufferSize(publishers*each))
	b := s.Subscribe(t.Context(), diagnostics.BufferSize(publishers*each))
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				s.Observe(context.Background(), seqEvents(uint64(p*each + i + 1))[0])
			}
		})
	}
	wg.Wait()
	fromA, fromB := seqs(collect(a)), seqs(collect(b))
	fromRing := seqs(collect(s.Subscribe(t.Context(), diagnostics.After(0), diagnostics.BufferSize(publishers*each))))
	if len(fromA) != publishers*each || !slices.Equal(fromA, fromB) || !slices.Equal(fromA, fromRing) {
		t.Errorf("subscribers and ring disagree on the arrival order (%d, %d, %d events)", len(fromA), len(fromB), len(fromRing))
	}
}

// TestSubscriptionContextDone: canceling the context ends Events after
// what was buffered has been delivered, and unregisters the subscription.
func TestSubscriptionContextDone(t *testing.T) {
	s := diagnostics.NewStream()
	ctx, cancel := context.WithCancel(t.Context())
	sub := s.Subscribe(ctx)
	publish(s, seqEvents(1, 2, 3)...)
	cancel()
	var got []uint64
	for ev := range sub.Events() {
		got = append(got, ev.Seq)
	}
	if !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("got %v, want [1 2 3]", got)
	}
	if n := s.Subscribers(); n != 0 {
		t.Errorf("Subscribers() = %d after the context ended", n)
	}
	publish(s, seqEvents(4)...)
	if n := len(collect(sub)); n != 0 {
		t.Errorf("closed subscription got %d more events", n)
	}
}

// TestSubscriptionCloseWakesReader: a reader blocked in Events returns on
// Close; a subscription made with a done context starts closed.
func TestSubscriptionCloseWakesReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		sub := s.Subscribe(t.Context())
		done := make(chan []uint64)
		go func() {
			var got []uint64
			for ev := range sub.Events() {
				got = append(got, ev.Seq)
			}
			done <- got
		}()
		synctest.Wait()
		publish(s, seqEvents(1)...)
		synctest.Wait()
		sub.Close()
		if got := <-done; !slices.Equal(got, []uint64{1}) {
			t.Errorf("got %v", got)
		}
		if s.Subscribers() != 0 {
			t.Errorf("Subscribers() = %d", s.Subscribers())
		}

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		dead := s.Subscribe(ctx)
		publish(s, seqEvents(2)...)
		if n := len(collect(dead)); n != 0 || s.Subscribers() != 0 {
			t.Errorf("subscription on a done context: %d events, %d subscribers", n, s.Subscribers())
		}
	})
}

func TestStreamClose(t *testing.T) {
	s := diagnostics.NewStream()
	a := s.Subscribe(t.Context())
	publish(s, seqEvents(1)...)
	s.Close()
	if s.Subscribers() != 0 {
		t.Errorf("Subscribers() = %d after Close", s.Subscribers())
	}
	if got := seqs(collect(a)); !slices.Equal(got, []uint64{1}) {
		t.Errorf("buffered events after Stream.Close: %v", got)
	}
	b := s.Subscribe(t.Context(), diagnostics.After(0))
	publish(s, seqEvents(2)...)
	if n := len(collect(b)); n != 0 {
		t.Errorf("subscription after Close got %d events", n)
	}
}

// TestReplayAfter: events 5..8 arrive as 5 7 6 8 (two tasks racing). After
// serves a snapshot watermark and a reconnect cursor alike.
func TestReplayAfter(t *testing.T) {
	tests := []struct {
		after uint64
		want  []uint64
		why   string
	}{
		{7, []uint64{6, 8}, "cursor 7: 6 arrived after it, whatever its seq"},
		{6, []uint64{7, 8}, "watermark 6: 7 has a higher seq though it arrived before 6"},
		{5, []uint64{7, 6, 8}, "everything after 5, in arrival order"},
		{8, nil, "nothing newer"},
		{0, []uint64{5, 7, 6, 8}, "from the start"},
		{3, []uint64{5, 7, 6, 8}, "a seq before anything held, nothing evicted"},
	}
	for _, tt := range tests {
		s := diagnostics.NewStream()
		publish(s, seqEvents(5, 7, 6, 8)...)
		sub := s.Subscribe(t.Context(), diagnostics.After(tt.after))
		publish(s, seqEvents(9)...) // live, right after the replay
		if got := seqs(collect(sub)); !slices.Equal(got, append(tt.want, 9)) {
			t.Errorf("After(%d) = %v, want %v then 9 (%s)", tt.after, got, tt.want, tt.why)
		}
	}
}

// TestReplayResync: when the ring no longer holds what After needs, the
// subscription starts with a resync notice, then what is held.
func TestReplayResync(t *testing.T) {
	tests := []struct {
		arrival []uint64
		after   uint64
		resync  bool
		missed  uint64
		want    []uint64
	}{
		// Ring of 2 after 5 7 6 8 holds 6 8; 5 and 7 were evicted, 7 last.
		{[]uint64{5, 7, 6, 8}, 7, false, 0, []uint64{6, 8}}, // the cursor was the last evicted: all held came after it
		{[]uint64{5, 7, 6, 8}, 6, true, 1, []uint64{6, 8}},  // 7 (> 6) is gone
		{[]uint64{5, 7, 6, 8}, 4, true, 2, []uint64{6, 8}},  // 5 and 7 are gone
		{[]uint64{5, 7, 6, 8}, 8, false, 0, nil},
		// 10 12 11 13 14 leaves 13 14; the cursor 12 was evicted and so was
		// 11, which arrived after it: a client that saw 12 never saw 11.
		{[]uint64{10, 12, 11, 13, 14}, 12, true, 1, []uint64{13, 14}},
		// Missed is estimated from sequence numbers: 1 and 2 are gone.
		{[]uint64{1, 2, 3, 4}, 0, true, 2, []uint64{3, 4}},
	}
	for _, tt := range tests {
		s := diagnostics.NewStream(diagnostics.WithReplaySize(2))
		publish(s, seqEvents(tt.arrival...)...)
		evs := collect(s.Subscribe(t.Context(), diagnostics.After(tt.after)))
		name := fmt.Sprintf("%v After(%d)", tt.arrival, tt.after)
		if tt.resync {
			if len(evs) == 0 {
				t.Fatalf("%s: no events", name)
			}
			if le := lagged(t, evs[0]); !le.Resync || le.Missed != tt.missed {
				t.Errorf("%s: notice %+v, want Resync, Missed %d", name, le, tt.missed)
			}
			evs = evs[1:]
		}
		if got := seqs(evs); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", name, got, tt.want)
		}
	}

	// Without a ring, any newer event means resync.
	s := diagnostics.NewStream(diagnostics.WithReplaySize(0))
	publish(s, seqEvents(1, 2)...)
	evs := collect(s.Subscribe(t.Context(), diagnostics.After(1)))
	if len(evs) != 1 || !lagged(t, evs[0]).Resync {
		t.Errorf("no ring: %v", kinds(evs))
	}
}

// TestReplayFromSnapshot starts from a real supervisor's snapshot: the
// snapshot plus the events after its Seq describe the tree exactly.
func TestReplayFromSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := diagnostics.NewStream()
		sup := runtime.New("svc", runtime.WithObserver(s))
		block := make(chan struct{})
		wait := func(ctx context.Context) error { <-block; return nil }
		a := sup.Go("a", wait)
		sup.Go("b", func(context.Context) error { return nil })
		synctest.Wait()
		snap := sup.Snapshot()
		c := sup.Go("c", wait) // after the snapshot
		close(block)
		synctest.Wait()

		live := map[uint64]bool{}
		for _, ti := range snap.Tasks {
			live[ti.ID] = true
		}
		if !live[a.ID()] || len(live) != 1 {
			t.Fatalf("snapshot tasks %v, want only a", snap.Tasks)
		}
		for _, ev := range collect(s.Subscribe(t.Context(), diagnostics.After(snap.Seq))) {
			if ev.Seq <= snap.Seq {
				t.Errorf("replayed event %d at or before the snapshot's %d", ev.Seq, snap.Seq)
			}
			switch ev.Kind {
			case runtime.KindTaskSpawned:
				live[ev.TaskID] = true
			case runtime.KindTaskFinished:
				delete(live, ev.TaskID)
			}
		}
		if len(live) != 0 {
			t.Errorf("tasks left live after applying the stream: %v (c is %d)", live, c.ID())
		}
	})
}

// TestPayloadCaps: stacks and messages are cut when published; errors.Is
// and errors.As still see the original chain.
func TestPayloadCaps(t *testing.T) {
	s := diagnostics.NewStream(diagnostics.WithMaxStack(100), diagnostics.WithMaxMessage(50))
	sub := s.Subscribe(t.Context())
	stack := []byte(strings.Repeat("frame\n", 10_000))
	sentinel := errors.New("sentinel")
	publish(s,
		runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Outcome: runtime.Panic, Stack: stack, Err: &runtime.PanicError{Value: "v", Stack: stack}},
		runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Outcome: runtime.Error, Err: fmt.Errorf("%s: %w", strings.Repeat("é", 100), sentinel), Cause: context.Canceled},
	)
	evs := collect(sub)
	if n := len(evs[0].Stack); n > 140 || !strings.HasPrefix(string(evs[0].Stack), "frame\n") || !strings.Contains(string(evs[0].Stack), "truncated") {
		t.Errorf("stack of %d bytes: %q", n, evs[0].Stack)
	}
	var pe *runtime.PanicError
	if !errors.As(evs[0].Err, &pe) || len(pe.Stack) > 140 || pe.Value != "v" {
		t.Errorf("PanicError not found or not capped: %v", pe)
	}
	msg := evs[1].Err.Error()
	if len(msg) > 90 || !strings.Contains(msg, "truncated") || !strings.HasPrefix(msg, "é") {
		t.Errorf("message %q", msg)
	}
	if !errors.Is(evs[1].Err, sentinel) || !errors.Is(evs[1].Cause, context.Canceled) {
		t.Error("capped errors lost their chain")
	}
	if strings.ContainsRune(msg, '\uFFFD') {
		t.Errorf("message cut inside a rune: %q", msg)
	}

	// At the caps exactly, nothing is cut (nor marked as cut).
	sub = s.Subscribe(t.Context())
	atCap, atCapMsg := []byte(strings.Repeat("f", 100)), strings.Repeat("m", 50)
	publish(s, runtime.Event{Seq: 3, Kind: runtime.KindTaskAborted, Outcome: runtime.Aborted, Stack: atCap, Err: errors.New(atCapMsg)})
	sub.Close()
	evs = collect(sub)
	if string(evs[0].Stack) != string(atCap) {
		t.Errorf("stack of exactly the cap published as %q, want it whole", evs[0].Stack)
	}
	if got := evs[0].Err.Error(); got != atCapMsg {
		t.Errorf("message of exactly the cap published as %q, want it whole", got)
	}
}

// TestPayloadCapsOfZero: a cap of 0 (or less) keeps only the mark, which
// says how much was cut; it is not "no limit".
func TestPayloadCapsOfZero(t *testing.T) {
	for _, n := range []int{0, -1} {
		s := diagnostics.NewStream(diagnostics.WithMaxStack(n), diagnostics.WithMaxMessage(n))
		sub := s.Subscribe(t.Context())
		publish(s, runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Outcome: runtime.Panic, Stack: []byte("frame\n"), Err: errors.New("boom")})
		evs := collect(sub)
		if got, want := string(evs[0].Stack), " …[truncated 6 bytes]"; got != want {
			t.Errorf("cap %d: stack %q, want %q", n, got, want)
		}
		if got, want := evs[0].Err.Error(), " …[truncated 4 bytes]"; got != want {
			t.Errorf("cap %d: message %q, want %q", n, got, want)
		}
	}
}

// TestPayloadCapsNotUTF8: a cut backs off to the start of a character it
// would split, and no further. In bytes that are no UTF-8 (an error
// quoting a binary payload), there is no character to keep whole: the cut
// is at the cap, not wherever the run of continuation bytes began, which
// left nothing but the mark, however large the cap.
func TestPayloadCapsNotUTF8(t *testing.T) {
	binary := "read frame " + strings.Repeat("\x80", 100)
	for _, tt := range []struct{ msg, want string }{
		{binary, binary[:21] + " …[truncated 90 bytes]"},
		{"ab" + strings.Repeat("é", 20), "ab" + strings.Repeat("é", 9) + " …[truncated 22 bytes]"},                // é is 2 bytes: 21 is in the middle of one
		{"a" + strings.Repeat("€", 10), "a" + strings.Repeat("€", 6) + " …[truncated 12 bytes]"},                  // € is 3 bytes: 21 is in the middle of one
		{strings.Repeat("x", 19) + "\x80\x80\x80\x80", strings.Repeat("x", 19) + "\x80\x80 …[truncated 2 bytes]"}, // stray bytes after the last character: cut at the cap
	} {
		s := diagnostics.NewStream(diagnostics.WithMaxMessage(21), diagnostics.WithMaxStack(21))
		sub := s.Subscribe(t.Context())
		publish(s, runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Outcome: runtime.Error, Err: errors.New(tt.msg), Stack: []byte(tt.msg)})
		evs := collect(sub)
		if got := evs[0].Err.Error(); got != tt.want {
			t.Errorf("message %q cut to %q, want %q", tt.msg, got, tt.want)
		}
		if got := string(evs[0].Stack); got != tt.want {
			t.Errorf("stack %q cut to %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestStreamStats(t *testing.T) {
	s := diagnostics.NewStream()
	a := s.Subscribe(t.Context(), diagnostics.BufferSize(1))
	b := s.Subscribe(t.Context())
	if s.Subscribers() != 2 {
		t.Errorf("Subscribers() = %d", s.Subscribers())
	}
	publish(s, seqEvents(1, 2, 3)...)
	if s.Published() != 3 || s.Dropped() != 2 {
		t.Errorf("Published %d Dropped %d, want 3 2", s.Published(), s.Dropped())
	}
	a.Close()
	b.Close()
	b.Close()
	if s.Subscribers() != 0 {
		t.Errorf("Subscribers() = %d after Close", s.Subscribers())
	}
}

func BenchmarkStreamPublish(b *testing.B) {
	ev := runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Group: "runtime.ingest", Task: "fetch", TaskID: 7, Outcome: runtime.Success}
	ctx := context.Background()
	for _, n := range []int{0, 1, 4} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			s := diagnostics.NewStream()
			for range n {
				defer s.Subscribe(ctx).Close() // never read: measures the drop path too
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Observe(ctx, ev)
			}
		})
	}
}

// TestSubscribeRacingStreamClose: a Subscribe that races with Stream.Close
// still lets go of its context once closed. With a context not made by
// package context, the watch is a goroutine, which goleak sees.
func TestSubscribeRacingStreamClose(t *testing.T) {
	ctx := ownContext{done: make(chan struct{})}
	defer close(ctx.done)
	ignore := goleak.IgnoreCurrent()
	for range 2000 {
		s := diagnostics.NewStream()
		var wg sync.WaitGroup
		wg.Go(s.Close)
		sub := s.Subscribe(ctx)
		wg.Wait()
		sub.Close()
	}
	if err := goleak.Find(ignore); err != nil {
		t.Error(err)
	}
}

// ownContext is a context not built by package context (as some
// frameworks have): context.AfterFunc watches it with a goroutine.
type ownContext struct{ done chan struct{} }

func (ownContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c ownContext) Done() <-chan struct{}     { return c.done }
func (c ownContext) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}
func (ownContext) Value(any) any { return nil }

// TestStreamResumeFromAnotherProcess: a cursor far beyond anything
// published (a client of a process that restarted) gets a resync notice;
// one slightly ahead (a snapshot's Seq, before its events are published)
// resumes normally.
func TestStreamResumeFromAnotherProcess(t *testing.T) {
	s := diagnostics.NewStream()
	publish(s, seqEvents(1, 2, 3, 4, 5)...)
	restarted := s.Subscribe(t.Context(), diagnostics.After(5_000_000))
	publish(s, seqEvents(6)...)
	restarted.Close()
	evs := collect(restarted)
	if len(evs) == 0 || !lagged(t, evs[0]).Resync {
		t.Fatalf("a cursor from another process got %v, want a resync notice first", seqs(evs))
	}
	ahead := s.Subscribe(t.Context(), diagnostics.After(8))
	publish(s, seqEvents(7, 8, 9)...)
	ahead.Close()
	for _, ev := range collect(ahead) {
		if ev.Kind == diagnostics.KindStreamLagged {
			t.Errorf("a cursor slightly ahead got a lag notice: %v", ev.Err)
		}
	}

	// "Far beyond" is more than 65536 past the highest Seq published (9).
	for _, c := range []struct {
		after  uint64
		resync bool
	}{
		{9 + 1<<16, false},
		{9 + 1<<16 + 1, true},
	} {
		sub := s.Subscribe(t.Context(), diagnostics.After(c.after))
		sub.Close()
		evs := collect(sub)
		if got := len(evs) > 0 && lagged(t, evs[0]).Resync; got != c.resync {
			t.Errorf("After(9+%d): resync %v, want %v (events %v)", c.after-9, got, c.resync, seqs(evs))
		}
	}
}

// holdFirst is an observer placed before the stream that holds the first
// event of one kind until released, as a slow observer or a preemption
// would.
type holdFirst struct {
	kind              string
	reached, released chan struct{}
	once              sync.Once
}

func newHoldFirst(kind string) *holdFirst {
	return &holdFirst{kind: kind, reached: make(chan struct{}), released: make(chan struct{})}
}

func (h *holdFirst) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	h.Observe(ctx, ev)
	return ctx
}

func (h *holdFirst) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == h.kind {
		h.once.Do(func() { close(h.reached); <-h.released })
	}
}

// TestStreamSpawnAfterGroupCancel: the runtime decides that a spawned task
// starts uncanceled, then its group is canceled and the group's
// cancel_requested event reaches the stream before the task's spawned
// event. A client applying the stream in order would show the task
// running for good; the stream's spawned event carries the cause instead.
func TestStreamSpawnAfterGroupCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stream := diagnostics.NewStream()
		hold := newHoldFirst(runtime.KindTaskSpawned)
		sup := runtime.New("svc", runtime.WithObserver(hold), runtime.WithObserver(stream))
		sub := stream.Subscribe(t.Context())
		g := sup.Group("g")
		go g.Go("x", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		<-hold.reached
		g.Cancel(nil)
		close(hold.released)
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, ev := range collect(sub) {
			kinds = append(kinds, ev.Kind)
			if ev.Kind == runtime.KindTaskSpawned && ev.Cause == nil {
				t.Errorf("spawned event without a cause after %v: the task would show running", kinds)
			}
		}
		if !slices.Contains(kinds, runtime.KindGroupCancelRequested) {
			t.Fatalf("no group cancel request in %v", kinds)
		}
	})
}

// TestAfterReplayFitsBuffer: events of other tasks that reached the stream
// after the one with the snapshot's Seq are replayed (as possible
// duplicates); when there are more of them than the subscription's buffer
// holds, dropping them must not make a lag notice, or a client following
// the documented recovery (re-snapshot, subscribe After its Seq) gets the
// same notice on every attempt while the supervisor is quiet, for ever.
func TestAfterReplayFitsBuffer(t *testing.T) {
	s := diagnostics.NewStream(diagnostics.WithReplaySize(8))
	publish(s, seqEvents(3, 1, 2)...) // Seq 3 reached the stream first
	for attempt := range 3 {          // the snapshot's Seq stays 3: nothing happens
		got := collect(s.Subscribe(t.Context(), diagnostics.After(3), diagnostics.BufferSize(1)))
		for _, ev := range got {
			var lag *diagnostics.LaggedError
			if errors.As(ev.Err, &lag) {
				t.Fatalf("attempt %d: After(3) with nothing missed gives %v (events %v)", attempt, lag, seqs(got))
			}
		}
	}
}

// TestLaggedErrorMessages: a resync notice for a cursor of another stream
// (nothing counted) does not claim "about 0 events missed"; one that
// counts says its count is before the subscriber's filters (an SRE read
// 41255 missed on a stream filtered to warnings).
func TestLaggedErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  diagnostics.LaggedError
		want string
	}{
		{diagnostics.LaggedError{Missed: 3}, "lagged: 3 events dropped"},
		{diagnostics.LaggedError{Missed: 1}, "lagged: 1 event dropped"},
		{diagnostics.LaggedError{Missed: 3, Resync: true}, "about 3 events of every kind missed, before filters"},
		{diagnostics.LaggedError{Resync: true}, "not known to this stream"},
	} {
		if got := tc.err.Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, want it to say %q", tc.err, got, tc.want)
		}
	}
}
