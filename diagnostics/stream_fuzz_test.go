package diagnostics_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// FuzzStream is a stateful fuzz test of Stream and Subscription. The input
// is read as a sequence of operations: publish (events of a few tasks and
// groups, with Seqs increasing per task but arriving slightly out of Seq
// order across tasks), Subscribe (buffer size, Kinds, MinLevel,
// GroupPrefix, After a watermark, a delivered event's Seq, or a seq far
// ahead; on a done ctx), read k events, Subscription.Close, cancel a
// subscription's ctx, Stream.Close. Readers run in a synctest bubble, one
// goroutine each, fed read credits; synctest.Wait after every operation
// makes each run deterministic.
//
// Invariants (from the doc comments):
//   - Published counts the events published; Subscribers counts the open
//     subscriptions; Stream.Dropped is the sum of the subscriptions'
//     Dropped, past and present.
//   - Per subscription, the expected sequence E is the replay (every event
//     held that has Seq > after or arrived after the event with Seq ==
//     after; on a resync, everything held) then the live events published
//     while it was open, filtered by its options. What it delivers is a
//     subsequence of E (arrival order, filters, no event twice), with the
//     same fields as published.
//   - Nothing is lost unreported: the events of E skipped between two
//     delivered ones equal the Missed of the lag notices in between (a
//     resync notice's Missed also counts drops before it was read, on top
//     of its estimate); everything skipped is counted in Dropped, which is
//     the sum of the lag notices' Missed (beyond a resync's estimate).
//   - A resync notice comes first, and exactly when the replay ring no
//     longer holds an event either reading of After needs, or after is
//     more than 65536 beyond the highest Seq published (then Missed is 0
//     beyond drops; otherwise it is at least 1).
//   - Replayed duplicates (Seq <= after) get room beyond the buffer: a
//     replay with no more than BufferSize events of Seq > after drops
//     nothing. A subscription whose E fits its buffer never lags.
//   - Events ends once the subscription is closed (Close, ctx done,
//     Stream.Close) and drained; a subscription on a closed stream or with
//     a done ctx yields nothing.
func FuzzStream(f *testing.F) {
	f.Add([]byte{0x00, 0x00, 0x40, 0x01, 0x00, 0x10, 0x02, 0x20, 0x00, 0x05, 0x00, 0x03})
	f.Add([]byte{0x23, 0x11, 0x00, 0x05, 0x01, 0x00, 0x05, 0x02, 0x01, 0x40, 0x00, 0x00, 0x00, 0x01, 0x00, 0x20, 0x00, 0x30, 0x00, 0x40, 0x50, 0x00, 0x01, 0x60, 0x00, 0x03, 0x70, 0x00, 0x08})
	f.Add([]byte{0x12, 0x00, 0x40, 0x00, 0x00, 0x00, 0x20, 0x02, 0x11, 0x21, 0x01, 0x22, 0x02, 0x30, 0x01, 0x31, 0x00, 0x41, 0x07, 0x01, 0x22, 0x00, 0x23, 0x05, 0x50, 0x00, 0x10, 0x52, 0x01, 0x04, 0x60, 0x02, 0x80, 0x00, 0x20, 0x01, 0x21, 0x03, 0x50, 0x01, 0x10})
	f.Add([]byte{0x31, 0x02, 0x20, 0x02, 0x05, 0x21, 0x02, 0x07, 0x22, 0x01, 0x03, 0x23, 0x00, 0x01, 0x24, 0x02, 0x02, 0x40, 0x03, 0x00, 0x40, 0x04, 0x00, 0x40, 0x02, 0x10, 0x25, 0x02, 0x04, 0x50, 0x00, 0x02, 0x41, 0x05, 0x01, 0x26, 0x01, 0x00, 0x90, 0x26, 0x00, 0x00, 0x40, 0x01, 0x00, 0x50, 0x01, 0x30})
	f.Add([]byte{0x05, 0x01, 0x20, 0x02, 0x01, 0x21, 0x02, 0x02, 0x22, 0x02, 0x03, 0x40, 0x00, 0x00, 0x20, 0x01, 0x00, 0x21, 0x00, 0x00, 0x70, 0x00, 0x41, 0x06, 0x00, 0x20, 0x02, 0x00, 0x60, 0x01, 0xa0, 0x41, 0x00, 0x00, 0x50, 0x01, 0x05})
	// Arrival 2 3 5 1 4, After the watermark 5 with a buffer of 1: 1 and 4
	// are replayed for the cursor reading, with room of their own.
	f.Add([]byte{0x05, 0x02, 0x01, 0x02, 0x01, 0x01, 0x03, 0x01, 0x02, 0x04, 0x05, 0x02, 0x00, 0x00, 0x00, 0x00, 0x40, 0x10, 0x00, 0xe0, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) { runStreamFuzz(t, data) })
	})
}

type fuzzInput struct {
	data []byte
	ops  int
}

func (in *fuzzInput) byte() byte {
	if len(in.data) == 0 {
		return 0
	}
	b := in.data[0]
	in.data = in.data[1:]
	return b
}

// pubEv is one published event, with its index in publication order.
type pubEv struct {
	ev  runtime.Event
	idx int
}

type fuzzFilter struct {
	kinds    map[string]bool
	minLevel slog.Level
	prefixes []string
}

func (f *fuzzFilter) match(ev *runtime.Event) bool {
	if ev.Level() < f.minLevel || (f.kinds != nil && !f.kinds[ev.Kind]) {
		return false
	}
	if f.prefixes == nil {
		return true
	}
	in := func(g, p string) bool { return g == p || strings.HasPrefix(g, p+".") }
	for _, p := range f.prefixes {
		p = strings.TrimSuffix(p, ".")
		if in(ev.Group, p) || (ev.TaskID == 0 && in(p, ev.Group)) {
			return true
		}
	}
	return false
}

type fuzzSub struct {
	sub    *diagnostics.Subscription
	cancel context.CancelFunc
	filter fuzzFilter
	buffer int
	after  *uint64
	open   bool // registered with the stream, per the model
	// Model: expected publication indexes, in order; whether a resync is
	// expected, and whether it is for a seq far ahead.
	expect     []int
	resync     bool
	far        bool
	replayNew  int // replayed events with Seq > after
	startDrops uint64

	// Reader.
	credits chan int
	done    chan struct{}
	mu      sync.Mutex
	got     []runtime.Event
}

func (s *fuzzSub) delivered() []runtime.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]runtime.Event(nil), s.got...)
}

func (s *fuzzSub) finished() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

var (
	fuzzStreamGroups = []string{"app", "app.ingest", "app.ingest.kafka", "app.ingester", "other"}
	fuzzStreamPrefix = []string{"app", "app.ingest", "app.ingest.", "app.ingester", "other", "app.ingest.kafka", "nope"}
	fuzzStreamKinds  = []string{runtime.KindTaskSpawned, runtime.KindTaskFinished, runtime.KindTaskAborted, runtime.KindTaskCancelRequested, runtime.KindGroupCancelRequested, runtime.KindGroupShutdownDone}
	fuzzStreamLevels = []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
)

const fuzzTasks = 5

func runStreamFuzz(t *testing.T, data []byte) {
	in := &fuzzInput{data: data}
	cfg := in.byte()
	var opts []diagnostics.StreamOption
	replaySize := diagnostics.DefaultReplaySize
	if cfg&0x0f < 12 {
		replaySize = int(cfg & 0x07)
		opts = append(opts, diagnostics.WithReplaySize(replaySize))
	}
	defBuffer := diagnostics.DefaultBufferSize
	if cfg>>4 < 12 {
		defBuffer = int(cfg>>4&3) + 1
		opts = append(opts, diagnostics.WithBufferSize(defBuffer))
	}
	s := diagnostics.NewStream(opts...)

	var (
		pub       []pubEv
		nextSeq   uint64  = 1
		pending   []pubEv // issued, not yet published (the reordering window)
		subs      []*fuzzSub
		closed    bool
		maxSeq    uint64
		openCount int
	)
	maxSeqPub := func() uint64 { return maxSeq }

	issue := func(b byte) {
		task := uint64(b % (fuzzTasks + 1)) // 0: a group event
		ev := runtime.Event{Seq: nextSeq, TaskID: task}
		nextSeq++
		k := b >> 3
		if task == 0 {
			ev.Group = fuzzStreamGroups[int(k)%len(fuzzStreamGroups)]
			switch k % 3 {
			case 0:
				ev.Kind = runtime.KindGroupCancelRequested
			case 1:
				ev.Kind = runtime.KindGroupShutdownDone
				ev.Aborted = int(k>>2) % 2
			default:
				ev.Kind = runtime.KindGroupShutdownStarted
			}
		} else {
			ev.Group = fuzzStreamGroups[int(task)%len(fuzzStreamGroups)]
			ev.Task = "t"
			switch k % 6 {
			case 0:
				ev.Kind = runtime.KindTaskSpawned
			case 1:
				ev.Kind = runtime.KindTaskCancelRequested
			case 2:
				ev.Kind = runtime.KindTaskAborted
			default:
				ev.Kind = runtime.KindTaskFinished
				ev.Outcome = []runtime.Outcome{runtime.Success, runtime.Error, runtime.Panic, runtime.Canceled}[int(k>>3)%4]
			}
		}
		pending = append(pending, pubEv{ev: ev})
	}

	publishOne := func(b byte) {
		// Eligible: the lowest pending Seq of each task (group events, task
		// 0, in any order).
		var elig []int
		for i, p := range pending {
			ok := true
			if p.ev.TaskID != 0 {
				for _, q := range pending[:i] {
					if q.ev.TaskID == p.ev.TaskID {
						ok = false
						break
					}
				}
			}
			if ok {
				elig = append(elig, i)
			}
		}
		i := elig[int(b)%len(elig)]
		p := pending[i]
		pending = append(pending[:i], pending[i+1:]...)
		p.idx = len(pub)
		p.ev.Run = uint64(p.idx) + 1 // identifies the publication
		pub = append(pub, p)
		maxSeq = max(maxSeq, p.ev.Seq)
		publish(s, p.ev)
		for _, fs := range subs {
			if fs.open && fs.filter.match(&p.ev) {
				fs.expect = append(fs.expect, p.idx)
			}
		}
	}

	closeModel := func(fs *fuzzSub) {
		if fs.open {
			fs.open = false
			openCount--
		}
	}

	// replayModel computes what After(after) replays, from the docs.
	replayModel := func(fs *fuzzSub, after uint64) {
		held := max(len(pub)-replaySize, 0)
		needed := func(i int, cursor int) bool {
			return pub[i].ev.Seq > after || (cursor >= 0 && i > cursor)
		}
		cursor := -1
		for i := range pub {
			if pub[i].ev.Seq == after {
				cursor = i
			}
		}
		all := false
		if after > maxSeqPub()+1<<16 {
			fs.resync, fs.far, all = true, true, true
		} else {
			for i := range held {
				if needed(i, cursor) {
					fs.resync, all = true, true
					break
				}
			}
		}
		for i := held; i < len(pub); i++ {
			if (all || needed(i, cursor)) && fs.filter.match(&pub[i].ev) {
				fs.expect = append(fs.expect, i)
				if pub[i].ev.Seq > after {
					fs.replayNew++
				}
			}
		}
	}

	pickSub := func(b byte) *fuzzSub {
		if len(subs) == 0 {
			return nil
		}
		return subs[int(b)%len(subs)]
	}

	check := func(where string) {
		t.Helper()
		if got := s.Published(); got != uint64(len(pub)) {
			t.Fatalf("%s: Published() = %d, want %d", where, got, len(pub))
		}
		if got := s.Subscribers(); got != openCount {
			t.Fatalf("%s: Subscribers() = %d, want %d", where, got, openCount)
		}
		var sum uint64
		for _, fs := range subs {
			sum += fs.sub.Dropped()
		}
		if got := s.Dropped(); got != sum {
			t.Fatalf("%s: Stream.Dropped() = %d, want the subscriptions' sum %d", where, got, sum)
		}
	}

	for in.ops = 0; len(in.data) > 0 && in.ops < 200; in.ops++ {
		op := in.byte()
		switch op >> 4 {
		case 0, 1, 2, 3: // publish, issuing 0-2 new seqs first
			for range int(op % 3) {
				issue(in.byte())
			}
			if len(pending) == 0 || len(pending) > 6 {
				issue(op)
			}
			publishOne(in.byte())
		case 4, 5: // subscribe
			fs := &fuzzSub{credits: make(chan int, 256), done: make(chan struct{}), buffer: defBuffer}
			o1, o2 := in.byte(), in.byte()
			var sopts []diagnostics.SubscribeOption
			if o1&1 != 0 {
				fs.buffer = int(o1>>1&3) + 1
				sopts = append(sopts, diagnostics.BufferSize(fs.buffer))
			}
			if o1&2 != 0 {
				var ks []string
				for i, k := range fuzzStreamKinds {
					if o2>>i&1 != 0 {
						ks = append(ks, k)
					}
				}
				if len(ks) > 0 {
					fs.filter.kinds = map[string]bool{}
					for _, k := range ks {
						fs.filter.kinds[k] = true
					}
				}
				sopts = append(sopts, diagnostics.Kinds(ks...))
			}
			fs.filter.minLevel = -1 << 31
			if o1&4 != 0 {
				fs.filter.minLevel = fuzzStreamLevels[o2>>6]
				sopts = append(sopts, diagnostics.MinLevel(fs.filter.minLevel))
			}
			if o1&8 != 0 {
				n := 1 + int(o2>>4&1)
				for i := range n {
					p := fuzzStreamPrefix[(int(o2>>1)+3*i)%len(fuzzStreamPrefix)]
					fs.filter.prefixes = append(fs.filter.prefixes, p)
					sopts = append(sopts, diagnostics.GroupPrefix(p))
				}
			}
			if o1&0x30 != 0 {
				var after uint64
				switch o1 >> 4 & 3 {
				case 1: // a watermark: all issued below it
					after = nextSeq - 1
					for _, p := range pending {
						after = min(after, p.ev.Seq-1)
					}
					after -= min(after, uint64(o2&3))
				case 2: // a cursor: a delivered event's Seq
					if fs2 := pickSub(o2); fs2 != nil {
						got := fs2.delivered()
						for i := len(got) - 1 - int(o2>>2&3); i >= 0; i-- {
							if got[i].Seq != 0 {
								after = got[i].Seq
								break
							}
						}
					}
				default:
					if o2&0x80 != 0 { // far ahead: another process's
						after = maxSeq + 1<<16 + uint64(o2&3)
					} else {
						after = uint64(o2 & 0x1f)
					}
				}
				fs.after = &after
				sopts = append(sopts, diagnostics.After(after))
			}
			ctx, cancel := context.WithCancel(context.Background())
			fs.cancel = cancel
			doneCtx := o1&0xc0 == 0xc0
			if doneCtx {
				cancel()
			}
			fs.sub = s.Subscribe(ctx, sopts...)
			if !closed && !doneCtx {
				fs.open = true
				openCount++
				if fs.after != nil {
					replayModel(fs, *fs.after)
				}
			}
			fs.startDrops = fs.sub.Dropped()
			if fs.after != nil && fs.startDrops != 0 && fs.replayNew <= fs.buffer {
				t.Fatalf("op %d: Subscribe(After(%d), BufferSize %d) dropped %d replaying %d new events of %d", in.ops, *fs.after, fs.buffer, fs.startDrops, fs.replayNew, len(fs.expect))
			}
			go func() {
				defer close(fs.done)
				n, ok := <-fs.credits
				if !ok {
					return
				}
				for ev := range fs.sub.Events() {
					fs.mu.Lock()
					fs.got = append(fs.got, ev)
					fs.mu.Unlock()
					for n--; n <= 0; {
						if n, ok = <-fs.credits; !ok {
							return
						}
					}
				}
			}()
			subs = append(subs, fs)
		case 6, 7, 8: // read k
			if fs := pickSub(in.byte()); fs != nil {
				fs.credits <- int(op&7) + 1
			}
		case 9, 10: // Subscription.Close
			if fs := pickSub(in.byte()); fs != nil {
				fs.sub.Close()
				closeModel(fs)
				if op&1 != 0 {
					fs.sub.Close()
				}
			}
		case 11, 12: // cancel the subscription's ctx
			if fs := pickSub(in.byte()); fs != nil {
				fs.cancel()
				synctest.Wait() // the ctx watch closes it
				closeModel(fs)
			}
		case 13: // Stream.Close
			if op&0xf == 0 {
				s.Close()
				closed = true
				for _, fs := range subs {
					closeModel(fs)
				}
			}
		default: // read everything from a subscription
			if fs := pickSub(in.byte()); fs != nil {
				fs.credits <- 1 << 20
			}
		}
		synctest.Wait()
		check("op")
	}

	// Close everything, drain every subscription, and check each.
	for _, fs := range subs {
		fs.sub.Close()
		closeModel(fs)
		fs.credits <- 1 << 30
	}
	synctest.Wait()
	check("end")
	for n, fs := range subs {
		if !fs.finished() {
			t.Fatalf("sub %d: Events did not end after Close and drain", n)
		}
		checkFuzzSub(t, n, fs, pub)
		fs.cancel()
	}
	synctest.Wait()
}

func checkFuzzSub(t *testing.T, n int, fs *fuzzSub, pub []pubEv) {
	t.Helper()
	got := fs.delivered()
	var (
		pos          int    // next position in expect
		pending      uint64 // lag Missed not yet matched by skipped events
		sumLag       uint64 // Missed of plain lag notices
		resyncMissed uint64
		sawResync    bool
		skippedTotal uint64
		pendResync   bool
	)
	for i, ev := range got {
		if ev.Kind == diagnostics.KindStreamLagged {
			var le *diagnostics.LaggedError
			if !errors.As(ev.Err, &le) || ev.Seq != 0 {
				t.Fatalf("sub %d: event %d: lag notice %+v", n, i, ev)
			}
			if le.Resync {
				if i != 0 || !fs.resync {
					t.Fatalf("sub %d: event %d: unexpected resync notice %+v (model resync %v, after %v)", n, i, le, fs.resync, fs.after)
				}
				sawResync, pendResync, resyncMissed = true, true, le.Missed
				continue
			}
			if le.Missed == 0 {
				t.Fatalf("sub %d: event %d: lag notice with Missed 0", n, i)
			}
			pending += le.Missed
			sumLag += le.Missed
			continue
		}
		if i == 0 && fs.resync {
			t.Fatalf("sub %d: first event %d is no resync notice (after %d)", n, ev.Seq, *fs.after)
		}
		idx := int(ev.Run) - 1
		if idx < 0 || idx >= len(pub) {
			t.Fatalf("sub %d: event %d: unknown publication %+v", n, i, ev)
		}
		want := pub[idx].ev
		if ev.Seq != want.Seq || ev.Kind != want.Kind || ev.Group != want.Group || ev.TaskID != want.TaskID || ev.Outcome != want.Outcome {
			t.Fatalf("sub %d: event %d: got %+v, published %+v", n, i, ev, want)
		}
		j := pos
		for j < len(fs.expect) && fs.expect[j] != idx {
			j++
		}
		if j == len(fs.expect) {
			t.Fatalf("sub %d: event %d (Seq %d, publication %d) out of order, duplicated or unexpected; expected %v from position %d, delivered %v",
				n, i, ev.Seq, idx, fs.expect, pos, seqs(got))
		}
		skipped := uint64(j - pos)
		skippedTotal += skipped
		if pendResync {
			if skipped > pending+resyncMissed {
				t.Fatalf("sub %d: %d events skipped before event %d, notices say %d (resync %d)", n, skipped, i, pending, resyncMissed)
			}
		} else if skipped != pending {
			t.Fatalf("sub %d: %d events skipped before event %d (Seq %d), lag notices say %d; expected %v, delivered %v", n, skipped, i, ev.Seq, pending, pubSeqs(pub, fs.expect), seqs(got))
		}
		pending, pendResync = 0, false
		pos = j + 1
	}
	if fs.resync && !sawResync {
		t.Fatalf("sub %d: no resync notice for After(%d)", n, *fs.after)
	}
	tail := uint64(len(fs.expect) - pos)
	skippedTotal += tail
	if !pendResync && tail != pending {
		t.Fatalf("sub %d: %d events never delivered at the end, lag notices say %d; expected %v, delivered %v", n, tail, pending, pubSeqs(pub, fs.expect), seqs(got))
	}
	dropped := fs.sub.Dropped()
	if dropped != skippedTotal {
		t.Fatalf("sub %d: Dropped() = %d, but %d expected events were not delivered", n, dropped, skippedTotal)
	}
	if dropped < sumLag {
		t.Fatalf("sub %d: Dropped() = %d < lag notices' %d", n, dropped, sumLag)
	}
	rest := dropped - sumLag // drops reported in the resync notice
	switch {
	case !sawResync && rest != 0:
		t.Fatalf("sub %d: Dropped() = %d, lag notices' Missed sum to %d", n, dropped, sumLag)
	case sawResync && fs.far && resyncMissed != rest:
		t.Fatalf("sub %d: resync for a seq far ahead: Missed %d, want %d (drops only)", n, resyncMissed, rest)
	case sawResync && !fs.far && resyncMissed < rest+1:
		t.Fatalf("sub %d: resync Missed %d, want an estimate >= 1 on top of %d drops", n, resyncMissed, rest)
	}
	if len(fs.expect) <= fs.buffer && dropped != 0 {
		t.Fatalf("sub %d: %d expected events fit its buffer of %d, yet it dropped %d", n, len(fs.expect), fs.buffer, dropped)
	}
}

func pubSeqs(pub []pubEv, idx []int) []uint64 {
	out := make([]uint64, len(idx))
	for i, j := range idx {
		out[i] = pub[j].ev.Seq
	}
	return out
}
