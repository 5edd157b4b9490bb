package diagnostics

import (
	"fmt"
	"iter"
	"log/slog"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// Subscription is one subscriber's view of a [Stream]: a bounded buffer
// that drops its oldest event when full. Get one from [Stream.Subscribe];
// the zero Subscription is not usable. Read it with [Subscription.Events]
// from one goroutine; its other methods are safe for concurrent use.
type Subscription struct {
	stream *Stream
	filter filter
	notify chan struct{} // capacity 1: wakes a waiting reader

	mu      sync.Mutex
	buf     ring
	gap     uint64 // events dropped (or, with resync, missed) since the last lag notice
	resync  bool   // the pending lag notice is a resync notice
	closed  bool
	waiting bool        // the reader is blocked on notify
	stop    func() bool // stops the ctx watch

	// passed is the Seq of the last event offered, whether the filter let
	// it through or not: arrival order up to it is what the subscriber has
	// been offered. Guarded by the stream's mu (see cursor).
	passed uint64
	// skipped counts the events the filter dropped in a row; at
	// cursorEvery (a quarter of the replay size, 0 for none), offer sets
	// cursorDue and wakes the reader, so that an HTTP client gets a fresh
	// cursor before unwanted events push its own out of the replay ring.
	// skipped is guarded by the stream's mu, cursorDue by mu.
	skipped, cursorEvery int
	cursorDue            bool

	dropped atomic.Uint64
}

// SubscribeOption configures a subscription at [Stream.Subscribe]. Filters
// of different kinds combine with AND; repeated ones of the same kind with
// OR. Lag and resync notices pass every filter. [After] and [BufferSize],
// given more than once, take their last value.
type SubscribeOption interface{ applySubscribe(*subscribeConfig) }

type subscribeOption func(*subscribeConfig)

func (f subscribeOption) applySubscribe(c *subscribeConfig) { f(c) }

type subscribeConfig struct {
	buffer      int
	kinds       map[string]bool
	minLevel    slog.Level
	minLevelSet bool // a MinLevel was given: another one widens it (OR)
	prefixes    []string
	after       *uint64
}

// Kinds keeps only events of the given kinds, such as
// runtime.KindTaskFinished. Listing kinds explicitly keeps a consumer from
// being surprised by kinds added in later versions. Kinds() with no kinds
// filters nothing. A kind no stream carries (a typo, which would leave the
// subscription silent) panics.
func Kinds(kinds ...string) SubscribeOption {
	for _, k := range kinds {
		if !slices.Contains(eventKinds, k) {
			panic(fmt.Sprintf("taskscope/diagnostics: Kinds(%q): no such event kind", k))
		}
	}
	return subscribeOption(func(c *subscribeConfig) {
		if len(kinds) == 0 {
			return
		}
		if c.kinds == nil {
			c.kinds = make(map[string]bool, len(kinds))
		}
		for _, k := range kinds {
			c.kinds[k] = true
		}
	})
}

// MinLevel keeps only events whose [runtime.Event.Level] is at least l
// (slog.LevelWarn: errors, aborts and panics).
func MinLevel(l slog.Level) SubscribeOption {
	return subscribeOption(func(c *subscribeConfig) {
		if !c.minLevelSet || l < c.minLevel {
			c.minLevel, c.minLevelSet = l, true
		}
	})
}

// GroupPrefix keeps only events of the group named prefix and its
// descendants: "app.ingest" matches "app.ingest" and "app.ingest.kafka",
// not "app.ingester". Group events (those with no task, such as a cancel or
// a shutdown) of its ancestors pass too: the runtime emits one for the
// group's whole subtree, so "app"'s shutdown is "app.ingest"'s as well.
// A prefix that names no group ("", or one with an empty part such as
// "app..ingest") panics, as a typo in [Kinds] does: it would match every
// group or none.
func GroupPrefix(prefix string) SubscribeOption {
	name, ok := groupName(prefix)
	if !ok {
		panic(fmt.Sprintf("taskscope/diagnostics: GroupPrefix(%q): no group has that name", prefix))
	}
	prefix = name
	return subscribeOption(func(c *subscribeConfig) { c.prefixes = append(c.prefixes, prefix) })
}

// BufferSize sets this subscription's buffer size (default: the stream's,
// see [WithBufferSize]; at least 1).
func BufferSize(n int) SubscribeOption {
	return subscribeOption(func(c *subscribeConfig) { c.buffer = max(n, 1) })
}

// After starts the subscription with the events held in the stream's
// replay ring that come after seq, then goes on live with no gap. seq is
// either the Seq of a [runtime.GroupSnapshot] (start from a snapshot: take
// sup.Snapshot(), render it, then Subscribe(ctx, After(snap.Seq))) or the
// Seq of the last event a reconnecting client saw (the SSE Last-Event-ID).
//
// Events of different tasks can reach the stream slightly out of Seq
// order; After replays every held event with Seq > seq and every one that
// arrived after the event with Seq == seq, so neither use loses an event,
// and an event near seq may come twice: apply events idempotently, keyed by
// task ID. Those possible duplicates get room beyond the buffer size, so
// that they never make a lag notice.
//
// If the ring no longer holds what is needed, or seq is far beyond
// anything published (a client resuming against a process that has
// restarted since), the subscription starts with a resync notice: a
// [KindStreamLagged] event whose [LaggedError] has Resync set. The client must then re-fetch a snapshot (and may subscribe
// again after its Seq). A bare seq does not say which stream it came from:
// one from another process (restarted, or another replica behind a load
// balancer) passes for this stream's unless it is that far beyond (more
// than 65536 past the highest Seq published here). Over HTTP, clients
// resume with an event's "seq@stream" id when they have one: [EventsHandler]
// checks its stream.
//
// The replay ring holds events of every kind, before any subscriber's
// filters, so a filtered client's cursor (the last event it received)
// ages with every event published: once more than the replay size of
// events it did not want has followed it, resuming from it gives a resync
// notice, though no event the filters let through may have been lost
// ([EventsHandler] sends SSE clients a fresher cursor: with keep-alives, and
// after every quarter of the replay size of events their filters drop).
func After(seq uint64) SubscribeOption {
	return subscribeOption(func(c *subscribeConfig) { c.after = &seq })
}

func (c *subscribeConfig) filter() filter {
	return filter{kinds: c.kinds, minLevel: c.minLevel, prefixes: c.prefixes}
}

type filter struct {
	kinds    map[string]bool
	minLevel slog.Level
	prefixes []string
}

func (f *filter) match(ev *runtime.Event, lvl slog.Level) bool {
	if lvl < f.minLevel || (f.kinds != nil && !f.kinds[ev.Kind]) {
		return false
	}
	if f.prefixes == nil {
		return true
	}
	for _, p := range f.prefixes {
		if inGroup(ev.Group, p) || (ev.TaskID == 0 && inGroup(p, ev.Group)) {
			return true
		}
	}
	return false
}

// groupName returns s as a group name prefix, a trailing "." dropped
// ("app.ingest." means the same group), and whether the runtime can make a
// group of that name: one with an empty part ("", "app..ingest", ".app")
// would match every group (the empty prefix) or none.
func groupName(s string) (string, bool) {
	name := strings.TrimSuffix(s, ".")
	return name, !slices.Contains(strings.Split(name, "."), "")
}

// inGroup reports whether group is prefix or one of its descendants.
func inGroup(group, prefix string) bool {
	rest, ok := strings.CutPrefix(group, prefix)
	return ok && (rest == "" || rest[0] == '.' || prefix == "")
}

// offer queues ev if it passes the filter, dropping the oldest buffered
// event when full. Called with the stream's lock held; never blocks.
func (sub *Subscription) offer(ev *runtime.Event, lvl slog.Level) {
	sub.passed = ev.Seq
	if !sub.filter.match(ev, lvl) {
		if sub.skipped++; sub.skipped == sub.cursorEvery {
			sub.skipped = 0
			sub.mu.Lock()
			sub.cursorDue = true
			sub.wakeLocked()
			sub.mu.Unlock()
		}
		return
	}
	sub.skipped = 0
	sub.mu.Lock()
	if !sub.closed {
		if _, dropped := sub.buf.push(ev); dropped {
			sub.gap++
			sub.dropped.Add(1)
			sub.stream.dropped.Add(1)
		}
		sub.wakeLocked()
	}
	sub.mu.Unlock()
}

func (sub *Subscription) wakeLocked() {
	if sub.waiting {
		sub.waiting = false
		select {
		case sub.notify <- struct{}{}:
		default:
		}
	}
}

// Events returns the subscription's events in arrival order, with a
// [KindStreamLagged] event where events were dropped. The sequence ends
// once the subscription is closed ([Subscription.Close], its context done,
// or [Stream.Close]) and everything buffered before that has been
// delivered. Breaking out of the loop leaves the subscription open.
func (sub *Subscription) Events() iter.Seq[runtime.Event] {
	return func(yield func(runtime.Event) bool) {
		var ev runtime.Event
		for {
			if sub.next(&ev, nil) != gotEvent || !yield(ev) {
				return
			}
		}
	}
}

type nextResult uint8

const (
	gotEvent nextResult = iota
	gotTick
	gotClosed
	gotCursor // the filters dropped many events since the last cursor (see cursorEvery)
)

// next stores the next event in *ev, waiting for one, and returns gotEvent;
// or gotTick when tick fires first (for keep-alives), gotCursor (only with
// a tick) when the filters have dropped many events since the last
// gotCursor and nothing is buffered, or gotClosed once closed and
// drained. The event is moved out of the buffer straight into *ev: events
// are big, and this runs once per event delivered.
func (sub *Subscription) next(ev *runtime.Event, tick <-chan time.Time) nextResult {
	for {
		sub.mu.Lock()
		switch {
		case sub.gap > 0 || sub.resync:
			// The gap is always at the head: drops remove the oldest event.
			*ev = runtime.Event{
				Kind: KindStreamLagged,
				Time: time.Now(),
				Err:  &LaggedError{Missed: sub.gap, Resync: sub.resync},
			}
			sub.gap, sub.resync = 0, false
			sub.mu.Unlock()
			return gotEvent
		case sub.buf.len() > 0:
			sub.buf.popInto(ev)
			sub.mu.Unlock()
			return gotEvent
		case sub.closed:
			sub.mu.Unlock()
			return gotClosed
		case sub.cursorDue && tick != nil:
			sub.cursorDue = false
			sub.mu.Unlock()
			return gotCursor
		}
		sub.waiting = true
		sub.mu.Unlock()
		select {
		case <-sub.notify:
			// Let the goroutine that woke us, and others ready to
			// publish, go on first: a burst is then read in one pass
			// instead of with one wake-up per event.
			goruntime.Gosched()
		case <-tick:
			sub.mu.Lock()
			sub.waiting = false
			sub.mu.Unlock()
			return gotTick
		}
	}
}

// cursor returns the Seq of the last event sub was offered, delivered or
// filtered out, and true when the reader has taken everything before it:
// nothing is buffered and no notice is pending. A client that has handled
// what the reader took can resume from there with [After] (as from the
// last event it received, in the cursor reading), so that the events its
// filters dropped since do not age its cursor out of the replay ring.
func (sub *Subscription) cursor() (uint64, bool) {
	s := sub.stream
	s.mu.Lock() // against offer, which sets passed with it held
	defer s.mu.Unlock()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.passed, sub.passed != 0 && sub.buf.len() == 0 && sub.gap == 0 && !sub.resync
}

// Dropped returns how many events this subscription dropped because its
// buffer was full.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// Close ends the subscription: no more events are queued, and Events ends
// after delivering those already buffered. Closing twice does nothing.
func (sub *Subscription) Close() {
	// Unregister first, and on every call: once any Close has returned, or
	// Events has ended, the stream no longer counts the subscription.
	sub.stream.unregister(sub)
	sub.shut()
}

// shut marks sub closed, wakes its reader and stops the ctx watch.
func (sub *Subscription) shut() {
	sub.mu.Lock()
	if sub.closed {
		sub.mu.Unlock()
		return
	}
	sub.closed = true
	sub.wakeLocked()
	stop := sub.stop
	sub.mu.Unlock()
	if stop != nil {
		stop()
	}
}
