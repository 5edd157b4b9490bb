package runtime

import (
	"context"
	"fmt"
	"reflect"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// group is an alias so that the field Supervisor embeds is unexported and
// does not hide the promoted [Group.Group] method.
type group = Group

// Supervisor is the root of a tree of groups. It is a [Group] (the root,
// named by [New]) plus what the whole tree shares: observers, task IDs,
// event sequence numbers and the books of abandoned tasks. Besides
// Abandoned, its methods are those of [Group], promoted from the root
// group, which go doc does not list: [Group.Go], [Group.Shutdown],
// [Group.Snapshot] and the rest apply to the whole tree.
//
// All methods are safe for concurrent use. Create one with [New]; the zero
// Supervisor is not usable.
type Supervisor struct {
	*group
}

// New returns a supervisor whose root group is named name ("" means
// "runtime"). Options configure observers and the root group. A name
// containing "." (group names are joined with dots) or a nil option
// panics.
func New(name string, opts ...Option) *Supervisor {
	if name == "" {
		name = "runtime"
	}
	checkGroupName("New", name)
	var cfg supervisorConfig
	for _, o := range opts {
		mustOption(o, "Option")
		o.applySupervisor(&cfg)
	}
	t := &tree{obs: cfg.observers, epoch: time.Now()}
	for _, o := range t.obs {
		p, _ := o.(EventObserver)
		t.ptrObs = append(t.ptrObs, p)
		if s, ok := o.(StackUser); ok && s.NeedsStack() {
			t.growStack = true
		}
	}
	return &Supervisor{group: newGroup(t, nil, name, cfg.group)}
}

// Abandoned returns the number of tasks aborted at a shutdown deadline
// whose goroutines have not returned yet. A goroutine's return is counted
// once the observers have had its [KindTaskLateExit] event: an observer
// that reads Abandoned on that event still counts it, and a test that
// waits for the event and then for 0 reads Abandoned until it is 0.
func (s *Supervisor) Abandoned() int { return int(s.tree.abandoned.Load()) }

// tree is what every group of one supervisor shares.
type tree struct {
	obs       []Observer      // read-only after New
	ptrObs    []EventObserver // obs[i] as an EventObserver, or nil
	growStack bool            // an observer is a StackUser that needs stack
	epoch     time.Time       // task times are monotonic offsets from it
	seq       atomic.Uint64   // last event sequence number issued
	ids       atomic.Uint64   // last task ID handed out to a group (see nextIDLocked)
	abandoned atomic.Int64    // aborted tasks still running

	// gate holds off the making of groups while a Snapshot that had to
	// start over locks the tree (see lockSubtree); gated says so, so that
	// Group takes the gate only then. Taken before any group's lock.
	gate  sync.RWMutex
	gated atomic.Bool

	pinMu sync.Mutex          // guards pins; taken last, under any lock
	pins  map[*Group]struct{} // groups whose context's Done was asked for, until canceled (see Group.pin)
}

// now reads the monotonic clock only (time.Now also reads the wall
// clock): once at spawn, once at the end, on every task.
func (tr *tree) now() time.Duration { return time.Since(tr.epoch) }

// wall turns an offset from now back into a time.
func (tr *tree) wall(d time.Duration) time.Time { return tr.epoch.Add(d) }

func (tr *tree) observed() bool { return len(tr.obs) > 0 }

// nextSeq issues a sequence number; without observers nobody reads them.
func (tr *tree) nextSeq() uint64 {
	if !tr.observed() {
		return 0
	}
	return tr.seq.Add(1)
}

// taskStarting calls every observer's TaskStarting in order, each with
// the context the previous one returned, and returns the last one.
func (tr *tree) taskStarting(ctx context.Context, ev *Event) context.Context {
	var panics []panicReport
	for i := 0; i < len(tr.obs); {
		ctx, i = tr.startFrom(i, ctx, ev, &panics)
	}
	tr.reportPanics(ctx, panics)
	return ctx
}

// startFrom runs TaskStarting from the i-th observer on and returns the
// context and len(tr.obs), or, when one panics, the context it was given
// and the index after it, with the panic added to panics. One deferred
// recover serves the whole loop.
func (tr *tree) startFrom(i int, ctx context.Context, ev *Event, panics *[]panicReport) (out context.Context, next int) {
	out = ctx
	defer func() {
		if r := recover(); r != nil {
			*panics = append(*panics, tr.panicked(next, ev, r))
			next++
		}
	}()
	for next = i; next < len(tr.obs); next++ {
		var c context.Context
		if p := tr.ptrObs[next]; p != nil {
			c = p.TaskStartingEvent(out, ev)
		} else {
			c = tr.obs[next].TaskStarting(out, *ev)
		}
		if c != nil {
			out = c
		}
	}
	return out, next
}

// emit stamps ev with a sequence number and the time (unless set) and
// delivers it to every observer. Events travel by pointer until the
// observer call: on a task goroutine, every copy of this 240-byte struct
// is stack the goroutine may have to grow for.
func (tr *tree) emit(ctx context.Context, ev *Event) {
	if !tr.observed() {
		return
	}
	if ev.Seq == 0 {
		ev.Seq = tr.seq.Add(1)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	var panics []panicReport
	for i := 0; i < len(tr.obs); {
		i = tr.observeFrom(i, ctx, ev, &panics)
	}
	tr.reportPanics(ctx, panics)
}

// observeFrom delivers ev to the observers from the i-th on and returns
// len(tr.obs), or, when one panics, the index after it, with the panic
// added to panics. One deferred recover for the whole loop keeps the task
// goroutine's stack shallow.
func (tr *tree) observeFrom(i int, ctx context.Context, ev *Event, panics *[]panicReport) (next int) {
	defer func() {
		if r := recover(); r != nil {
			*panics = append(*panics, tr.panicked(next, ev, r))
			next++
		}
	}()
	for next = i; next < len(tr.obs); next++ {
		if p := tr.ptrObs[next]; p != nil {
			p.ObserveEvent(ctx, ev)
		} else {
			observeValue(tr.obs[next], ctx, ev)
		}
	}
	return next
}

// observeValue makes the by-value copy of ev that Observer.Observe takes in
// a frame of its own, so that pointer observers do not pay for its stack.
//
//go:noinline
func observeValue(o Observer, ctx context.Context, ev *Event) { o.Observe(ctx, *ev) }

// panicReport is an observer's panic, to be told to the others.
type panicReport struct {
	culprit int // the index of the observer that panicked
	ev      Event
}

// panicked is the KindObserverPanicked event for the i-th observer's panic
// r on ev, with the stack where it panicked. Called while recovering.
func (tr *tree) panicked(i int, ev *Event, r any) panicReport {
	buf := make([]byte, 64<<10)
	// A copy of what was written: the event is kept (the stream's replay
	// ring, a stalled subscriber's buffer), and a slice of buf would keep
	// all 64 KiB of it for a stack of 1 or 2.
	buf = slices.Clone(buf[:goruntime.Stack(buf, false)])
	return panicReport{culprit: i, ev: Event{
		Kind:          KindObserverPanicked,
		Group:         ev.Group,
		GroupID:       ev.GroupID,
		ParentGroupID: ev.ParentGroupID,
		Task:          ev.Task,
		TaskID:        ev.TaskID,
		Err:           &PanicError{Value: observerPanic{Observer: reflect.TypeOf(tr.obs[i]).String(), Event: ev.Kind, Value: r}, Stack: buf},
		Stack:         buf,
	}}
}

// reportPanics tells every observer but the one that panicked about each
// panic, once the event has reached them all: an observer after the
// panicking one must not hear of the panic before the event itself. A
// panic while reporting is dropped: there is nobody left to tell. When the
// one that panicked is the only observer, nobody else can be told, and the
// panic goes to slog.Default(), as a task's panic does without observers.
func (tr *tree) reportPanics(ctx context.Context, panics []panicReport) {
	for _, p := range panics {
		report := p.ev
		report.Seq, report.Time = tr.seq.Add(1), time.Now()
		if len(tr.obs) == 1 {
			logLoneObserverPanic(&report)
			continue
		}
		for j, o := range tr.obs {
			if j != p.culprit {
				func() {
					defer func() { _ = recover() }()
					if p := tr.ptrObs[j]; p != nil {
						p.ObserveEvent(ctx, &report)
					} else {
						o.Observe(ctx, report)
					}
				}()
			}
		}
	}
}

// observerPanic is the PanicError value of a KindObserverPanicked event.
type observerPanic struct {
	Observer string
	Event    string
	Value    any
}

// String is what logs and the stream print as the panic's message: an
// operator reads it, and the type is unexported, so a struct dump would
// say less.
func (p observerPanic) String() string {
	return fmt.Sprintf("observer %s panicked on %s: %v", p.Observer, p.Event, p.Value)
}

// funcName returns fn's name for Event.Function. Tasks of one name mostly
// run one function, so l remembers the last one; names are resolved once
// per function.
func (tr *tree) funcName(l *taskLabel, fn func(context.Context) error) string {
	pc := reflect.ValueOf(fn).Pointer()
	if f := l.fn.Load(); f != nil && f.pc == pc {
		return f.name
	}
	name := resolveFunc(pc)
	l.fn.Store(&funcName{pc, name})
	return name
}

// funcName is a function's code pointer and name.
type funcName struct {
	pc   uintptr
	name string
}

// funcNames maps fn code pointers to names, for Event.Function. It is
// process-wide: a name never changes, the map is bounded by the code in the
// binary, and a service that makes supervisors as it goes resolves each
// function once.
var funcNames sync.Map

func resolveFunc(pc uintptr) string {
	if name, ok := funcNames.Load(pc); ok {
		return name.(string)
	}
	name := ""
	if f := goruntime.FuncForPC(pc); f != nil {
		// A method value (g.Go("x", w.compact)) is a compiler wrapper
		// named "pkg.(*T).compact-fm". code.function.name is the name as
		// the runtime's stack traces show it (semconv), and they elide the
		// wrapper: the method's own name.
		name = strings.TrimSuffix(f.Name(), "-fm")
	}
	funcNames.Store(pc, name)
	return name
}
