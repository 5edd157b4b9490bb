package diagnostics

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/taskscope/taskscope/runtime"
)

// Default sizes of a [Stream].
const (
	DefaultBufferSize = 1024 // events buffered per subscriber
	DefaultReplaySize = 512  // recent events kept for resuming with After
)

// Stream is a [runtime.Observer] that fans events out to subscribers.
//
// Publishing never blocks and never waits for a subscriber: each
// subscription has its own bounded buffer that drops its oldest event when
// full and tells the reader in-band (see [KindStreamLagged]). A stream also
// keeps a small replay ring of recent events so that a subscriber can start
// from a snapshot or resume after a reconnect (see [After]).
//
// Error messages and stacks are capped in size when published (see
// [WithMaxStack], [WithMaxMessage]): Err and Cause are wrapped in an error
// that shortens the message and unwraps to the original, so errors.Is and
// errors.As still work; compare errors with them, not with ==. A
// *runtime.PanicError whose stack was cut is a copy, and so are the errors
// wrapping it (their messages and error types are kept): find a panic with
// errors.As, not errors.Is, and do not expect a wrapper of a cut panic to
// be itself. An error whose methods panic (a typed nil whose methods
// dereference their receiver) is published all the same (whole, stacks
// and all, if walking its chain panics), and where its Error panics, the
// capped one gives a placeholder: "<T Error() panicked: ...>".
//
// A spawned event published after its task's context was canceled (its
// group was canceled while observers before the stream ran) carries the
// cancellation's Cause in the stream, as it would had the spawn come
// later: a client applying events in stream order then shows the task
// canceling, as a snapshot does.
//
// One stream serves one supervisor: sequence numbers from two supervisors
// would collide. Create one with [NewStream]; the zero Stream is not
// usable. It is safe for concurrent use.
type Stream struct {
	payloadCaps
	buffer int
	// id tells this stream's SSE event ids from another's: a client that
	// reconnects to a restarted process must not resume from its old
	// cursor, which means nothing here.
	id string

	// mu guards the replay ring and the subscriber list. Publishing holds
	// it while copying the event into each matching subscriber's buffer (an
	// O(1) step per subscriber), so that every subscriber and the ring see
	// one arrival order; it never holds it while waiting for anything.
	mu     sync.Mutex
	replay ring
	// Bookkeeping of what the replay ring has evicted, for After: the
	// highest Seq evicted, the Seq of the latest eviction, and how many
	// were evicted since the one with the highest Seq.
	maxEvicted, lastEvicted uint64
	evictedSinceMax         uint64
	subs                    []*Subscription
	closed                  bool
	scratch                 runtime.Event // publish's copy when there is no replay ring

	published uint64 // guarded by mu: publishing holds it anyway
	maxSeq    uint64 // the highest Seq published; guarded by mu
	dropped   atomic.Uint64
}

var _ runtime.Observer = (*Stream)(nil)

// StreamOption configures a [Stream]. An option given more than once
// takes its last value.
type StreamOption interface{ applyStream(*Stream) }

type streamOption func(*Stream)

func (f streamOption) applyStream(s *Stream) { f(s) }

// WithBufferSize sets the default buffer size of subscriptions, including
// the HTTP handlers' (default [DefaultBufferSize]; at least 1).
func WithBufferSize(n int) StreamOption {
	return streamOption(func(s *Stream) { s.buffer = max(n, 1) })
}

// WithReplaySize sets how many recent events the stream keeps for [After]
// (default [DefaultReplaySize]); 0 (or less) disables replay, so that After
// yields a resync notice whenever newer events were published.
func WithReplaySize(n int) StreamOption {
	return streamOption(func(s *Stream) { s.replay = newRing(max(n, 0)) })
}

// NewStream returns a stream with no subscribers. A nil option panics.
func NewStream(opts ...StreamOption) *Stream {
	s := &Stream{
		payloadCaps: defaultPayloadCaps,
		buffer:      DefaultBufferSize,
		replay:      newRing(DefaultReplaySize),
		id:          strconv.FormatUint(rand.Uint64(), 36),
	}
	for _, o := range opts {
		mustOption(o, "StreamOption")
		o.applyStream(s)
	}
	return s
}

// TaskStarting publishes the spawned and run_started events and returns
// ctx unchanged.
func (s *Stream) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	return s.TaskStartingEvent(ctx, &ev)
}

// TaskStartingEvent implements [runtime.EventObserver]: TaskStarting
// without the copy of the event.
func (s *Stream) TaskStartingEvent(ctx context.Context, ev *runtime.Event) context.Context {
	if ev.Kind == runtime.KindTaskSpawned && ev.Cause == nil && !ev.Rejected {
		// The runtime decided that the task starts uncanceled before the
		// observers ran: its group may have been canceled since, and the
		// group's cancel_requested event published already, so that a
		// client applying the stream in order would show the task running
		// for good. publish checks again, in the stream's order.
		s.publish(ev, ctx)
	} else {
		s.publish(ev, nil)
	}
	return ctx
}

// Observe publishes ev.
func (s *Stream) Observe(_ context.Context, ev runtime.Event) { s.publish(&ev, nil) }

// ObserveEvent implements [runtime.EventObserver]: Observe without the
// copy of the event.
func (s *Stream) ObserveEvent(_ context.Context, ev *runtime.Event) { s.publish(ev, nil) }

// publish runs on the goroutine that caused the event, often a task's, so
// it keeps its frames small: the event is copied once, straight into its
// slot in the replay ring, and capped there (it is shared with the other
// observers, so it is not changed in place). Its errors are capped before
// the lock is taken: that runs their own methods (see capError). spawnCtx
// is the task context of a spawned event without a cause (see
// TaskStartingEvent), or nil: if it is done now, the stream's copy gets
// its cause.
func (s *Stream) publish(ev *runtime.Event, spawnCtx context.Context) {
	var err, cause error
	if ev.Err != nil {
		err = capError(ev.Err, s.maxStack, s.maxMessage)
	}
	if ev.Cause != nil {
		cause = capError(ev.Cause, s.maxStack, s.maxMessage)
	}
	s.mu.Lock()
	if spawnCtx != nil && spawnCtx.Err() != nil {
		// Done (for good) in the stream's order: the lock can go while
		// its cause is capped.
		s.mu.Unlock()
		cause = capError(context.Cause(spawnCtx), s.maxStack, s.maxMessage)
		s.mu.Lock()
	}
	e, seq, evicted := s.replay.reserve()
	if e == nil { // no replay: the event passes through scratch
		e, seq, evicted = &s.scratch, ev.Seq, true
	}
	*e = *ev
	e.Err, e.Cause = err, cause
	if len(e.Stack) > s.maxStack {
		// Copied: the original's memory can be freed.
		e.Stack = truncateBytes(e.Stack, s.maxStack)
	}
	if evicted {
		s.evicted(seq)
	}
	lvl := e.Level()
	for _, sub := range s.subs {
		sub.offer(e, lvl)
	}
	if e == &s.scratch {
		*e = runtime.Event{} // let the GC have its error and stack
	}
	s.published++
	s.maxSeq = max(s.maxSeq, ev.Seq)
	s.mu.Unlock()
}

func (s *Stream) evicted(seq uint64) {
	s.lastEvicted = seq
	if seq >= s.maxEvicted {
		s.maxEvicted, s.evictedSinceMax = seq, 0
	} else {
		s.evictedSinceMax++
	}
}

// Published returns the number of events published so far.
func (s *Stream) Published() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published
}

// Dropped returns the number of events dropped so far from subscribers'
// full buffers, summed over all subscriptions, past and present.
func (s *Stream) Dropped() uint64 { return s.dropped.Load() }

// isClosed reports whether Close was called.
func (s *Stream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Subscribers returns the number of open subscriptions.
func (s *Stream) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Close closes every subscription (each still delivers what it had
// buffered) and makes later ones start closed. Publishing goes on into the
// replay ring. Call it when the process shuts down, for example from
// http.Server.RegisterOnShutdown, so that streaming HTTP responses end and
// the server's Shutdown does not wait for them. Closing twice does nothing.
func (s *Stream) Close() {
	s.mu.Lock()
	subs := s.subs
	s.subs, s.closed = nil, true
	s.mu.Unlock()
	for _, sub := range subs {
		sub.shut()
	}
}

// Subscribe returns a subscription to the events published from now on
// (and, with [After], to recent ones), filtered by opts. It ends when ctx is
// done or it is closed. On a closed stream, or with a ctx already done, it
// returns a subscription that is already closed (its Events yields
// nothing), not an error. A nil ctx or a nil option panics.
func (s *Stream) Subscribe(ctx context.Context, opts ...SubscribeOption) *Subscription {
	if ctx == nil {
		// Here, not at ctx.Err() under s.mu: a panic there would leave
		// the stream locked, and every task goroutine publishing to it
		// would block for ever.
		panic("taskscope/diagnostics: Subscribe(nil context)")
	}
	cfg := subscribeConfig{buffer: s.buffer, minLevel: math.MinInt}
	for _, o := range opts {
		mustOption(o, "SubscribeOption")
		o.applySubscribe(&cfg)
	}
	sub := &Subscription{
		stream:      s,
		filter:      cfg.filter(),
		buf:         newRing(cfg.buffer),
		notify:      make(chan struct{}, 1),
		cursorEvery: s.replay.max / 4, // set at NewStream: read without s.mu
	}
	s.mu.Lock()
	if s.closed || ctx.Err() != nil {
		s.mu.Unlock()
		sub.closed = true
		return sub
	}
	if cfg.after != nil {
		s.replayLocked(sub, *cfg.after)
	}
	s.subs = append(s.subs, sub)
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, sub.Close)
	sub.mu.Lock()
	closed := sub.closed // by a Stream.Close since s.mu was released
	if !closed {
		sub.stop = stop
	}
	sub.mu.Unlock()
	if closed {
		stop()
	}
	return sub
}

// replayLocked queues into sub the held events that come after seq.
//
// Sequence numbers increase per task but events of different tasks can
// arrive slightly out of Seq order (each is published on the goroutine
// that caused it), so "after seq" has two readings, and the replay serves
// both:
//
//   - seq from a snapshot (a watermark): the snapshot reflects every event
//     with Seq <= seq, so the subscriber needs every event with Seq > seq,
//     wherever it arrived;
//   - seq from a reconnecting client (a cursor, the Last-Event-ID): the
//     client saw every event that arrived up to the one with Seq == seq,
//     so it needs every event that arrived after it, whatever its Seq.
//
// The replay is therefore every held event, in arrival order, that has
// Seq > seq or arrived after the event with Seq == seq. Around the cursor a
// few events may be delivered twice (the reordering window is the time
// between issuing a Seq and publishing it); none is lost. Consumers apply
// events idempotently, keyed by task ID.
//
// When the ring has evicted an event either reading still needs, the
// subscriber gets a resync notice (a [LaggedError] with Resync) followed
// by everything held.
func (s *Stream) replayLocked(sub *Subscription, seq uint64) {
	r := &s.replay
	from := r.len() // events at index >= from are replayed whatever their Seq
	switch {
	case seq > s.maxSeq+resumeSlack:
		// A cursor far beyond anything published: a client of a process
		// that has restarted since. Its view is of another process.
		sub.resync, from = true, 0
	case s.maxEvicted > seq:
		// An event newer than seq is gone.
		missed := s.maxEvicted - seq
		for i := range r.len() {
			if e := r.at(i).Seq; e > seq && e <= s.maxEvicted && missed > 1 {
				missed--
			}
		}
		sub.gap, sub.resync, from = missed, true, 0
	case s.maxEvicted == seq && s.lastEvicted == seq:
		// The cursor was the last event evicted: all held ones came after it.
		from = 0
	case s.maxEvicted == seq:
		// The cursor was evicted, and so were events that arrived after it.
		sub.gap, sub.resync, from = s.evictedSinceMax, true, 0
	default:
		for i := r.len() - 1; i >= 0; i-- {
			if r.at(i).Seq == seq {
				from = i + 1
				break
			}
		}
	}
	for i := range r.len() {
		if ev := r.at(i); ev.Seq > seq {
			sub.offer(ev, ev.Level())
		} else if i >= from {
			// Replayed for the cursor reading only: for a snapshot's Seq,
			// a duplicate. It gets room of its own in the buffer, or a
			// client with a small one would start with a lag notice, and
			// get the same replay and notice each time it re-snapshots
			// and subscribes again.
			sub.buf.max++
			sub.offer(ev, ev.Level())
		}
	}
}

// resumeSlack is how far After's seq may run ahead of the events published:
// a snapshot's Seq can be ahead of events issued but not yet published.
const resumeSlack = 1 << 16

// unregister removes sub from the subscriber list.
func (s *Stream) unregister(sub *Subscription) {
	s.mu.Lock()
	if i := slices.Index(s.subs, sub); i >= 0 {
		s.subs = slices.Delete(s.subs, i, i+1)
	}
	s.mu.Unlock()
}
