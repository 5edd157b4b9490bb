package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// failureReporter reports failed tasks to an error tracker. Observe runs
// on the task's goroutine and must not block: it copies the event into a
// bounded queue (Events are values), and a goroutine of its own sends.
type failureReporter struct {
	mu     sync.Mutex // guards closed and queue's closing
	closed bool
	queue  chan runtime.Event
	sent   chan struct{}
}

func newFailureReporter() *failureReporter {
	r := &failureReporter{queue: make(chan runtime.Event, 256), sent: make(chan struct{})}
	go func() {
		defer close(r.sent)
		for ev := range r.queue {
			// A real reporter sends ev to its tracker here.
			msg := fmt.Sprint(ev.Err)
			if pe, ok := errors.AsType[*runtime.PanicError](ev.Err); ok {
				msg = fmt.Sprint(pe.Value) // ev.Stack has the stack
			}
			fmt.Printf("report %s/%s: %s: %s\n", ev.Group, ev.Task, ev.Outcome, msg)
		}
	}()
	return r
}

// TaskStarting is called for spawns and periodic runs; this observer adds
// nothing to the task's context.
func (r *failureReporter) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return ctx
}

func (r *failureReporter) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind != runtime.KindTaskFinished || !ev.Outcome.Failed() {
		return
	}
	// Events go on after Shutdown returns (an abandoned task's late exit,
	// spawns a closed group refuses): after Close they are dropped, not
	// sent on a closed channel.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case r.queue <- ev:
	default: // full: drop rather than hold up the task
	}
}

// Close sends what is queued and stops the reporter's goroutine.
func (r *failureReporter) Close() {
	r.mu.Lock()
	r.closed = true
	close(r.queue)
	r.mu.Unlock()
	<-r.sent
}

// A custom observer: an error tracker's reporter, fed by Observe and sending
// from a goroutine of its own, stopped after the supervisor's shutdown.
func ExampleObserver() {
	reporter := newFailureReporter()
	sup := runtime.New("app", runtime.WithObserver(reporter))

	jobs := sup.Group("jobs")
	for _, fn := range []func(context.Context) error{
		func(context.Context) error { return nil },
		func(context.Context) error { return errors.New("upstream refused") },
		func(context.Context) error { panic("nil map") },
	} {
		<-jobs.Go("sync", fn).Done() // one at a time, for a stable output
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = sup.Shutdown(ctx)
	reporter.Close()
	// Output:
	// report app.jobs/sync: error: upstream refused
	// report app.jobs/sync: panic: nil map
}

// requestedBy is a cancellation cause that says who asked: Cancel takes no
// context, so the cause is what an audit log can read it from.
type requestedBy struct{ who, why string }

func (r *requestedBy) Error() string { return r.why + " (" + r.who + ")" }

// limiter counts each group's running tasks from their spawned and
// finished events, logs every cancel request, and hands the groups that go
// over the limit to a goroutine of the application's: an observer must
// not call a Group's methods itself.
type limiter struct {
	limit  int
	mu     sync.Mutex
	count  map[uint64]int // by Group.ID: sibling groups may share a name
	over   chan uint64
	logged chan string
}

func (l *limiter) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	if ev.Kind == runtime.KindTaskSpawned && !ev.Rejected { // a refused spawn never runs
		l.mu.Lock()
		l.count[ev.GroupID]++
		n := l.count[ev.GroupID]
		l.mu.Unlock()
		if n > l.limit {
			select {
			case l.over <- ev.GroupID: // never wait: the goroutine may need locks held now
			default:
			}
		}
	}
	return ctx
}

func (l *limiter) Observe(_ context.Context, ev runtime.Event) {
	switch ev.Kind {
	case runtime.KindTaskFinished: // once per task, aborted ones included
		if !ev.Rejected {
			l.mu.Lock()
			l.count[ev.GroupID]--
			l.mu.Unlock()
		}
	case runtime.KindGroupCancelRequested, runtime.KindTaskCancelRequested:
		who := runtime.CauseKind(ev.Err) // "shutdown", "fail_fast", ...
		if r, ok := errors.AsType[*requestedBy](ev.Err); ok {
			who = r.who
		}
		select {
		case l.logged <- fmt.Sprintf("audit: %s canceled by %s: %v", ev.Group, who, ev.Err):
		default:
		}
	}
}

// An observer that acts on what it sees: it hands the ID of a group over
// its limit to a goroutine, which cancels the group through the handle
// the application kept, and logs who canceled what.
func ExampleObserver_alarm() {
	lim := &limiter{limit: 2, count: map[uint64]int{}, over: make(chan uint64, 16), logged: make(chan string, 16)}
	sup := runtime.New("app", runtime.WithObserver(lim))
	batch := sup.Group("batch")
	groups := map[uint64]*runtime.Group{batch.ID(): batch}

	handled := make(chan struct{})
	go func() {
		defer close(handled)
		id := <-lim.over
		groups[id].Cancel(&requestedBy{who: "limiter", why: "over 2 running tasks"})
	}()
	for range 3 {
		batch.Go("fetch", func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
	}
	<-handled
	_ = batch.Wait(context.Background())
	fmt.Println(<-lim.logged)
	fmt.Println("running:", len(batch.Active()))
	// Output:
	// audit: app.batch canceled by limiter: over 2 running tasks (limiter)
	// running: 0
}
