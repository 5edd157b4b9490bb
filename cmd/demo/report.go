package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// lateExitGrace bounds how long the report waits, after the shutdown, for
// abandoned goroutines to return: long enough for legacy-export's late
// exit (lateExitAfterDeadline), short enough that a goroutine that never
// returns does not hold the process.
const lateExitGrace = time.Second

// books is an observer that keeps what the shutdown report needs: the
// abandoned tasks and their late exits, and the root's drained count.
// Late exits only ever arrive as events, so this is the one place that
// sees them.
type books struct {
	root string

	mu        sync.Mutex
	abandoned map[uint64]runtime.Event // aborted events of tasks not yet returned
	recording bool                     // keep late exits (from the final shutdown on)
	lateExits []lateExit
	changed   chan struct{} // closed and replaced at each late exit
	drained   int
}

type lateExit struct {
	group, task string
	id          uint64
	after       time.Duration // from the abort to the goroutine's return
}

func newBooks(root string) *books {
	return &books{root: root, abandoned: map[uint64]runtime.Event{}, changed: make(chan struct{})}
}

var (
	_ runtime.Observer      = (*books)(nil)
	_ runtime.EventObserver = (*books)(nil)
)

func (b *books) TaskStarting(ctx context.Context, _ runtime.Event) context.Context { return ctx }

// TaskStartingEvent and ObserveEvent take events by pointer, as
// runtime.EventObserver offers: an observer sees every event on task
// goroutines, whose stacks should not grow for a copy of it.
func (b *books) TaskStartingEvent(ctx context.Context, _ *runtime.Event) context.Context { return ctx }

func (b *books) Observe(ctx context.Context, ev runtime.Event) { b.ObserveEvent(ctx, &ev) }

func (b *books) ObserveEvent(_ context.Context, ev *runtime.Event) {
	switch ev.Kind {
	case runtime.KindTaskAborted:
		b.mu.Lock()
		b.abandoned[ev.TaskID] = *ev // a copy: *ev is not ours to keep
		b.mu.Unlock()
	case runtime.KindTaskLateExit:
		b.mu.Lock()
		abort := b.abandoned[ev.TaskID]
		delete(b.abandoned, ev.TaskID)
		if b.recording {
			// Both durations run from the spawn: the difference is how long
			// the goroutine outlived its abort.
			b.lateExits = append(b.lateExits, lateExit{ev.Group, ev.Task, ev.TaskID, ev.Duration - abort.Duration})
		}
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	case runtime.KindGroupShutdownDone:
		if ev.Group == b.root {
			b.mu.Lock()
			b.drained = ev.Drained
			b.mu.Unlock()
		}
	}
}

// waitReturned waits until none of the tasks ids is abandoned any more,
// or ctx is done.
func (b *books) waitReturned(ctx context.Context, ids map[uint64]bool) {
	for {
		b.mu.Lock()
		n, changed := 0, b.changed
		for id := range b.abandoned {
			if ids[id] {
				n++
			}
		}
		b.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// report is what the demo prints on stdout when it stops.
type report struct {
	timeout, took time.Duration
	end           time.Time
	drained       int
	aborted       []runtime.TaskInfo
	err           error // a shutdown error other than the abort
	lateExits     []lateExit
	stillRunning  []runtime.Event // aborted tasks whose goroutine never returned
	spans         spanCounts
	flushErr      error  // the trace flush at exit did not complete
	exportDesc    string // where spans go, as the startup output said
	traceID       string // the trace of the shutdown, "" when not sampled
}

// shutdown stops the supervisor within timeout, then waits up to
// lateExitGrace for the goroutines it abandoned, and returns the report.
// ctx carries what the shutdown's events are to be correlated with (the
// span of the stop: the shutdown span is its child, and the log records
// of the shutdown carry its trace_id); its deadline is timeout.
func shutdown(ctx context.Context, sup *runtime.Supervisor, b *books, timeout time.Duration) report {
	b.mu.Lock()
	b.recording = true
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := sup.Shutdown(ctx)
	r := report{timeout: timeout, end: time.Now()}
	r.took = r.end.Sub(start)
	if ae, ok := errors.AsType[*runtime.AbortError](err); ok {
		r.aborted = ae.Aborted
	} else {
		r.err = err
	}

	// The report is about this shutdown's aborts: tasks that an earlier
	// shutdown (of a job's group, say) abandoned are not its business.
	ids := make(map[uint64]bool, len(r.aborted))
	for _, ti := range r.aborted {
		ids[ti.ID] = true
	}
	grace, cancelGrace := context.WithTimeout(context.Background(), lateExitGrace)
	defer cancelGrace()
	b.waitReturned(grace, ids)

	b.mu.Lock()
	defer b.mu.Unlock()
	r.drained = b.drained
	for _, le := range b.lateExits {
		if ids[le.id] {
			r.lateExits = append(r.lateExits, le)
		}
	}
	for id, ev := range b.abandoned {
		if ids[id] {
			r.stillRunning = append(r.stillRunning, ev)
		}
	}
	slices.SortFunc(r.stillRunning, func(a, b runtime.Event) int { return cmp.Compare(a.TaskID, b.TaskID) })
	return r
}

// write prints the report. The format is for people, but stable enough
// to grep: one "aborted:" line per straggler, one "late exit:" line per
// goroutine that returned after its abort.
func (r report) write(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("shutdown report")
	p("  took %s (deadline %s): %d tasks drained, %d aborted", r.took.Round(time.Millisecond), r.timeout, r.drained, len(r.aborted))
	if r.err != nil {
		p("  shutdown error: %v", r.err)
	}
	for _, t := range r.aborted {
		p("  aborted: %s/%s id=%d (age %s): goroutine abandoned, stuck in:", t.Group, t.Name, t.ID, r.end.Sub(t.Started).Round(time.Millisecond))
		for line := range strings.Lines(strings.TrimRight(t.Stack, "\n")) {
			p("      %s", strings.TrimRight(line, "\n"))
		}
	}
	if len(r.lateExits) == 0 {
		p("  late exits: none")
	}
	for _, e := range r.lateExits {
		p("  late exit: %s/%s id=%d returned %s after its abort", e.group, e.task, e.id, e.after.Round(time.Millisecond))
	}
	if len(r.stillRunning) == 0 {
		p("  abandoned goroutines still running: none")
	}
	for _, ev := range r.stillRunning {
		p("  still running: %s/%s id=%d did not return within %s of the shutdown", ev.Group, ev.Task, ev.TaskID, lateExitGrace)
	}
	if r.traceID != "" {
		p("  trace: %s (the shutdown span lists the aborted tasks; the log records of the shutdown carry this trace_id)", r.traceID)
	}
	if !r.spans.exporting {
		p("  spans: not exported: %s", r.exportDesc)
		return
	}
	s := r.spans
	p("  spans: %d queued, %d exported, %d export failures, %d dropped (queue full)", s.queued, s.exported, s.failed, s.dropped)
	switch {
	case s.pending > 0 || errors.Is(r.flushErr, context.DeadlineExceeded):
		p("  spans: flush at exit ran out of time (%v): %d spans still queued or in flight are lost", r.flushErr, s.pending)
	case r.flushErr != nil:
		p("  spans: flush at exit failed (%v): the spans it could not export are among the export failures", r.flushErr)
	}
}
