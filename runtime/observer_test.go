package runtime_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// chainObserver adds its name to the context and records what it saw.
type chainObserver struct {
	name string
	mu   sync.Mutex
	seen []string // kind + context chain at each call
}

type chainKey struct{}

func chain(ctx context.Context) string {
	s, _ := ctx.Value(chainKey{}).(string)
	return s
}

func (o *chainObserver) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	o.record(ev.Kind + "@" + chain(ctx))
	return context.WithValue(ctx, chainKey{}, chain(ctx)+o.name)
}

func (o *chainObserver) Observe(ctx context.Context, ev runtime.Event) {
	o.record(ev.Kind + "@" + chain(ctx))
}

func (o *chainObserver) record(s string) {
	o.mu.Lock()
	o.seen = append(o.seen, s)
	o.mu.Unlock()
}

func TestObserversChainContextsInOrder(t *testing.T) {
	bubble(t, func(t *testing.T) {
		a, b := &chainObserver{name: "a"}, &chainObserver{name: "b"}
		sup := runtime.New("", runtime.WithObserver(a), runtime.WithObserver(b))
		var inFn string
		task := sup.Go("t", func(ctx context.Context) error { inFn = chain(ctx); return errors.New("x") })
		<-task.Done()
		if inFn != "ab" {
			t.Fatalf("fn saw chain %q, want ab", inFn)
		}
		wantA := []string{runtime.KindTaskSpawned + "@", runtime.KindTaskFinished + "@ab"}
		wantB := []string{runtime.KindTaskSpawned + "@a", runtime.KindTaskFinished + "@ab"}
		if !slices.Equal(a.seen, wantA) || !slices.Equal(b.seen, wantB) {
			t.Fatalf("a saw %v, b saw %v; want %v and %v", a.seen, b.seen, wantA, wantB)
		}
	})
}

func TestEveryObserverGetsEveryEventInOrder(t *testing.T) {
	bubble(t, func(t *testing.T) {
		r1, r2 := &runtimetest.Recorder{}, &runtimetest.Recorder{}
		sup := runtime.New("", runtime.WithObserver(r1), runtime.WithObserver(r2))
		g := sup.Group("g")
		for i := range 20 {
			task := g.Go("t", blockUntilCanceled)
			if i%2 == 0 {
				task.Cancel(nil)
			}
		}
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Events of different tasks may interleave differently for each
		// observer (they come from different goroutines); compare by Seq.
		bySeq := func(a, b runtime.Event) int { return cmp.Compare(a.Seq, b.Seq) }
		e1, e2 := slices.SortedFunc(slices.Values(r1.Events()), bySeq), slices.SortedFunc(slices.Values(r2.Events()), bySeq)
		if len(e1) == 0 || len(e1) != len(e2) {
			t.Fatalf("observers saw %d and %d events", len(e1), len(e2))
		}
		for _, task := range r1.Events() {
			if id := task.TaskID; id != 0 && !slices.Equal(r1.Kinds(id), r2.Kinds(id)) {
				t.Fatalf("task %d: observers saw %v and %v", id, r1.Kinds(id), r2.Kinds(id))
			}
		}
		seqs := map[uint64]bool{}
		lastByTask := map[uint64]uint64{}
		for i := range e1 {
			if e1[i].Seq != e2[i].Seq || e1[i].Kind != e2[i].Kind {
				t.Fatalf("event %d differs: %+v vs %+v", i, e1[i], e2[i])
			}
			if seqs[e1[i].Seq] {
				t.Fatalf("duplicate Seq %d", e1[i].Seq)
			}
			seqs[e1[i].Seq] = true
			if e1[i].Time.IsZero() || e1[i].Group == "" {
				t.Fatalf("event without time or group: %+v", e1[i])
			}
		}
		for _, ev := range r1.Events() { // arrival order
			if id := ev.TaskID; id != 0 && !strings.HasSuffix(ev.Function, "runtime_test.blockUntilCanceled") {
				t.Fatalf("event Function = %q, want fn's name", ev.Function)
			}
			if id := ev.TaskID; id != 0 {
				if ev.Seq <= lastByTask[id] {
					t.Fatalf("task %d: Seq %d arrived after %d", id, ev.Seq, lastByTask[id])
				}
				lastByTask[id] = ev.Seq
			}
		}
		// Each canceled task: spawned, cancel_requested, finished.
		for _, ev := range e1 {
			if ev.Kind == runtime.KindTaskCancelRequested {
				want := []string{runtime.KindTaskSpawned, runtime.KindTaskCancelRequested, runtime.KindTaskFinished}
				if got := r1.Kinds(ev.TaskID); !slices.Equal(got, want) {
					t.Fatalf("canceled task events %v, want %v", got, want)
				}
			}
		}
	})
}

// ctxRecorder records the context value each group event came with.
type ctxRecorder struct {
	mu   sync.Mutex
	seen map[string]any
}

func (r *ctxRecorder) TaskStarting(ctx context.Context, _ runtime.Event) context.Context { return ctx }
func (r *ctxRecorder) Observe(ctx context.Context, ev runtime.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.TaskID == 0 {
		r.seen[ev.Kind] = ctx.Value(chainKey{})
	}
}

func TestGroupEventsComeWithTheCallersContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		rec := &ctxRecorder{seen: map[string]any{}}
		sup := runtime.New("", runtime.WithObserver(rec))
		sup.Group("c").Cancel(nil)
		ctx, stop := context.WithTimeout(context.WithValue(context.Background(), chainKey{}, "shutdown-caller"), time.Millisecond)
		defer stop()
		release := make(chan struct{})
		sup.Go("stuck", stuckOnRelease(release))
		waitCtx, cancel := context.WithTimeout(context.WithValue(context.Background(), chainKey{}, "waiter"), time.Millisecond)
		defer cancel()
		_ = sup.Wait(waitCtx)
		_ = sup.Shutdown(ctx)
		close(release)
		want := map[string]any{
			runtime.KindGroupCancelRequested: "shutdown-caller", // the last one: shutdown's own cancel
			runtime.KindGroupShutdownStarted: "shutdown-caller",
			runtime.KindGroupShutdownDone:    "shutdown-caller",
			runtime.KindGroupWaitTimedOut:    "waiter",
		}
		for k, v := range want {
			if rec.seen[k] != v {
				t.Errorf("%s came with %v, want %v", k, rec.seen[k], v)
			}
		}
	})
}

func TestCancelEventComesWithBackgroundContext(t *testing.T) {
	bubble(t, func(t *testing.T) {
		rec := &ctxRecorder{seen: map[string]any{}}
		sup := runtime.New("", runtime.WithObserver(rec))
		sup.Cancel(nil)
		if v, ok := rec.seen[runtime.KindGroupCancelRequested]; !ok || v != nil {
			t.Fatalf("cancel_requested came with %v (seen=%v)", v, ok)
		}
	})
}

// panicky panics on the events it is told to.
type panicky struct{ onStart, onObserve bool }

func (p panicky) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	if p.onStart {
		panic("observer start bug")
	}
	return context.WithValue(ctx, chainKey{}, "from-panicky")
}

func (p panicky) Observe(context.Context, runtime.Event) {
	if p.onObserve {
		panic("observer bug")
	}
}

func TestPanickingObserverIsContained(t *testing.T) {
	bubble(t, func(t *testing.T) {
		rec := &runtimetest.Recorder{}
		sup := runtime.New("", runtime.WithObserver(panicky{onStart: true, onObserve: true}), runtime.WithObserver(rec))
		var inFn any = "unset"
		task := sup.Go("t", func(ctx context.Context) error { inFn = ctx.Value(chainKey{}); return nil })
		<-task.Done()
		if task.Result().Outcome != runtime.Success {
			t.Fatalf("observer panic changed the outcome to %v", task.Result().Outcome)
		}
		if inFn != nil {
			t.Fatalf("fn got %v, want the context TaskStarting was given", inFn)
		}
		if rec.Outcomes()[runtime.Success] != 1 || rec.Count(runtime.KindTaskSpawned) != 1 {
			t.Fatal("the next observer missed events after a panic")
		}
		if n := rec.Count(runtime.KindObserverPanicked); n != 2 {
			t.Fatalf("%d observer.panicked events, want 2 (start and finish)", n)
		}
		var kinds []string
		var last uint64
		for _, ev := range rec.Events() {
			var pe *runtime.PanicError
			if ev.Kind == runtime.KindObserverPanicked && (!errors.As(ev.Err, &pe) || len(pe.Stack) == 0) {
				t.Fatalf("observer.panicked without PanicError and stack: %+v", ev)
			}
			// An observer after the panicking one hears of the panic only
			// after the event itself: in order, Seqs increasing.
			kinds = append(kinds, ev.Kind)
			if ev.Seq <= last {
				t.Errorf("events %v: Seq %d after %d", kinds, ev.Seq, last)
			}
			last = ev.Seq
		}
		want := []string{runtime.KindTaskSpawned, runtime.KindObserverPanicked, runtime.KindTaskFinished, runtime.KindObserverPanicked}
		if !slices.Equal(kinds, want) {
			t.Errorf("the observer after the panicking one saw %v, want %v", kinds, want)
		}
	})
}

// The panic value of an observer.panicked event is what logs and the
// stream print (exception.message, the "error" field): it must read as a
// sentence that names the observer, not as an internal struct.
func TestObserverPanicValuePrints(t *testing.T) {
	bubble(t, func(t *testing.T) {
		rec := &runtimetest.Recorder{}
		sup := runtime.New("", runtime.WithObserver(panicky{onObserve: true}), runtime.WithObserver(rec))
		<-sup.Go("t", func(context.Context) error { return nil }).Done()
		for _, ev := range rec.Events() {
			var pe *runtime.PanicError
			if ev.Kind != runtime.KindObserverPanicked || !errors.As(ev.Err, &pe) {
				continue
			}
			want := "observer runtime_test.panicky panicked on taskscope.task.finished: observer bug"
			if got := fmt.Sprint(pe.Value); got != want {
				t.Errorf("panic value prints %q, want %q", got, want)
			}
			return
		}
		t.Fatal("no observer.panicked event")
	})
}

// An observer.panicked event's stack holds only the stack: the stream
// keeps hundreds of recent events (and each stalled subscriber up to its
// buffer), so a stack slice of the 64 KiB buffer it was read into kept
// 64 KiB per event alive for a stack of 1 or 2 KiB (22 MiB for 5,000
// panics and one stalled subscriber).
func TestObserverPanickedStackIsNotItsBuffer(t *testing.T) {
	bubble(t, func(t *testing.T) {
		rec := &runtimetest.Recorder{}
		sup := runtime.New("", runtime.WithObserver(panicky{onObserve: true}), runtime.WithObserver(rec))
		<-sup.Go("t", func(context.Context) error { return nil }).Done()
		n := 0
		for _, ev := range rec.Events() {
			var pe *runtime.PanicError
			if ev.Kind != runtime.KindObserverPanicked || !errors.As(ev.Err, &pe) {
				continue
			}
			n++
			// A copy's capacity is its length rounded up to a size class.
			if len(ev.Stack) == 0 || cap(ev.Stack) > 2*len(ev.Stack) || cap(pe.Stack) > 2*len(pe.Stack) {
				t.Errorf("observer.panicked stack: len %d cap %d, PanicError's len %d cap %d; want cap at most twice len", len(ev.Stack), cap(ev.Stack), len(pe.Stack), cap(pe.Stack))
			}
		}
		if n == 0 {
			t.Fatal("no observer.panicked event")
		}
	})
}

func TestWithParentValuesButNotCancellation(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup := runtime.New("")
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), chainKey{}, "request"))
		cancel()
		var v any
		var err error
		task := sup.Go("t", func(ctx context.Context) error { v, err = ctx.Value(chainKey{}), ctx.Err(); return nil }, runtime.WithParent(parent))
		<-task.Done()
		if v != "request" || err != nil {
			t.Fatalf("fn saw value %v err %v, want the parent's value and no cancellation", v, err)
		}
	})
}

// ptrObserver implements EventObserver; TaskStarting and Observe must
// then never be called.
type ptrObserver struct {
	mu             sync.Mutex
	byPtr, byValue int
}

func (o *ptrObserver) count(n *int) {
	o.mu.Lock()
	*n++
	o.mu.Unlock()
}

func (o *ptrObserver) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	o.count(&o.byValue)
	return ctx
}
func (o *ptrObserver) Observe(context.Context, runtime.Event) { o.count(&o.byValue) }
func (o *ptrObserver) TaskStartingEvent(ctx context.Context, _ *runtime.Event) context.Context {
	o.count(&o.byPtr)
	return ctx
}
func (o *ptrObserver) ObserveEvent(context.Context, *runtime.Event) { o.count(&o.byPtr) }

func TestEventObserversGetPointers(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &ptrObserver{}
		sup := runtime.New("", runtime.WithObserver(obs))
		<-sup.Go("t", func(context.Context) error { return nil }).Done()
		if obs.byPtr != 2 || obs.byValue != 0 { // spawned and finished
			t.Fatalf("pointer methods called %d times, value methods %d; want 2 and 0", obs.byPtr, obs.byValue)
		}
	})
}

func TestLongRunningMarksEveryEventOfTheTask(t *testing.T) {
	bubble(t, func(t *testing.T) {
		rec := &runtimetest.Recorder{}
		sup := runtime.New("app", runtime.WithObserver(rec))
		service := sup.Go("consumer", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, runtime.LongRunning())
		work := sup.Go("job", func(context.Context) error { return nil })
		<-work.Done()
		service.Cancel(nil)
		<-service.Done()
		want := map[uint64][]string{
			service.ID(): {runtime.KindTaskSpawned, runtime.KindTaskCancelRequested, runtime.KindTaskFinished},
			work.ID():    {runtime.KindTaskSpawned, runtime.KindTaskFinished},
		}
		for id, kinds := range want {
			if got := rec.Kinds(id); !slices.Equal(got, kinds) {
				t.Errorf("task %d: events %v, want %v", id, got, kinds)
			}
		}
		for _, ev := range rec.Events() {
			if ev.LongRunning != (ev.TaskID == service.ID()) {
				t.Errorf("%s of task %d (%s): LongRunning = %v", ev.Kind, ev.TaskID, ev.Task, ev.LongRunning)
			}
		}
	})
}
