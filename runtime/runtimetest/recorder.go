package runtimetest

import (
	"context"
	"sync"

	"github.com/taskscope/taskscope/runtime"
)

// Recorder records every event it observes. It is safe for concurrent use;
// the zero Recorder is ready.
type Recorder struct {
	mu     sync.Mutex // guards events
	events []runtime.Event
}

var _ runtime.Observer = (*Recorder)(nil)

// TaskStarting records ev and returns ctx unchanged.
func (r *Recorder) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	r.record(ev)
	return ctx
}

// Observe records ev.
func (r *Recorder) Observe(_ context.Context, ev runtime.Event) { r.record(ev) }

func (r *Recorder) record(ev runtime.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// Events returns a copy of the events recorded so far, in arrival order.
func (r *Recorder) Events() []runtime.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runtime.Event(nil), r.events...)
}

// Kinds returns the kinds of the events of task id, in arrival order.
func (r *Recorder) Kinds(id uint64) []string {
	var kinds []string
	for _, ev := range r.Events() {
		if ev.TaskID == id {
			kinds = append(kinds, ev.Kind)
		}
	}
	return kinds
}

// Outcomes counts the finished events by outcome.
func (r *Recorder) Outcomes() map[runtime.Outcome]int {
	out := map[runtime.Outcome]int{}
	for _, ev := range r.Events() {
		if ev.Kind == runtime.KindTaskFinished {
			out[ev.Outcome]++
		}
	}
	return out
}

// Count returns how many events of kind were recorded.
func (r *Recorder) Count(kind string) int {
	n := 0
	for _, ev := range r.Events() {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}
