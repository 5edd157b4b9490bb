package diagnostics

import (
	"fmt"

	"github.com/taskscope/taskscope/runtime"
)

// KindStreamLagged is the kind of the in-band event a [Subscription]
// yields where it lost events: its Err is a [*LaggedError]. It is never
// published to other subscribers and has Seq 0.
const KindStreamLagged = runtime.KindStreamLagged

// LaggedError is the Err of a [KindStreamLagged] event.
//
// Without Resync, the subscriber's buffer overflowed: Missed events (of
// those its filters let through) were dropped, oldest first, at the
// position the lagged event takes in the sequence.
//
// With Resync, the resume point given with [After] is no longer held by
// the stream's replay ring. The events that follow are everything the ring
// still holds, then live events, but some in between are lost; Missed is
// an estimate of how many (counted from sequence numbers, before filters),
// or 0 when the resume point is not one of this stream's (a cursor from a
// process that has restarted since).
// A consumer keeping state must discard it and start over from a fresh
// snapshot, as a Kubernetes watcher does on "410 Gone".
type LaggedError struct {
	Missed uint64
	Resync bool
}

// Error says how many events were dropped or, for a resync, that the
// snapshot must be re-fetched.
func (e *LaggedError) Error() string {
	switch {
	case e.Resync && e.Missed == 0: // a cursor of another stream: nothing to count
		return "taskscope/diagnostics: stream resume point not known to this stream: re-fetch the snapshot"
	case e.Resync:
		return fmt.Sprintf("taskscope/diagnostics: stream resume point no longer retained (about %d events of every kind missed, before filters): re-fetch the snapshot", e.Missed)
	}
	if e.Missed == 1 {
		return "taskscope/diagnostics: stream subscriber lagged: 1 event dropped"
	}
	return fmt.Sprintf("taskscope/diagnostics: stream subscriber lagged: %d events dropped", e.Missed)
}
