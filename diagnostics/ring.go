package diagnostics

import "github.com/taskscope/taskscope/runtime"

// ring is a FIFO of events with a size limit that drops its oldest event
// on overflow. It grows on demand up to max, so an idle subscriber with a
// large limit costs little memory. Not safe for concurrent use.
type ring struct {
	buf  []runtime.Event
	head int // index of the oldest event
	n    int // events held
	max  int
}

func newRing(max int) ring { return ring{max: max} }

func (r *ring) len() int { return r.n }

// at returns the i-th oldest event held.
func (r *ring) at(i int) *runtime.Event { return &r.buf[(r.head+i)%len(r.buf)] }

// push appends a copy of *ev. When the ring is full it first evicts the
// oldest event and returns its Seq with true (with max 0, ev itself is
// evicted at once). Events go by pointer: this runs on task goroutines,
// whose stacks should not grow for it.
func (r *ring) push(ev *runtime.Event) (evictedSeq uint64, evicted bool) {
	slot, evictedSeq, evicted := r.reserve()
	if slot == nil {
		return ev.Seq, true
	}
	*slot = *ev
	return evictedSeq, evicted
}

// reserve makes room for one event at the end and returns it, to be
// written in place (the caller overwrites all of it). When the ring is
// full it first evicts the oldest event and returns its Seq with true.
// With max 0 it returns a nil slot: the ring keeps nothing.
func (r *ring) reserve() (slot *runtime.Event, evictedSeq uint64, evicted bool) {
	if r.max <= 0 {
		return nil, 0, false
	}
	if r.n == len(r.buf) {
		if len(r.buf) < r.max {
			r.grow()
		} else {
			evictedSeq, evicted = r.buf[r.head].Seq, true
			r.head = (r.head + 1) % len(r.buf)
			r.n--
		}
	}
	slot = &r.buf[(r.head+r.n)%len(r.buf)]
	r.n++
	return slot, evictedSeq, evicted
}

// popInto moves the oldest event into *ev; the ring must not be empty.
// The slot lets go of the event's error, cause and stack, which can be
// large; its strings (kinds and names) stay until it is overwritten.
func (r *ring) popInto(ev *runtime.Event) {
	slot := &r.buf[r.head]
	*ev = *slot
	slot.Err, slot.Cause, slot.Stack = nil, nil, nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

func (r *ring) grow() {
	size := min(max(2*len(r.buf), 16), r.max)
	buf := make([]runtime.Event, size)
	for i := range r.n {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}
