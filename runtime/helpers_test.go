package runtime_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// bubble runs f in a synctest bubble: time is fake and advances only when
// every goroutine in the bubble is blocked.
func bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}

// recorded returns a supervisor with a recorder attached.
func recorded(opts ...runtime.Option) (*runtime.Supervisor, *runtimetest.Recorder) {
	rec := &runtimetest.Recorder{}
	return runtime.New("", append([]runtime.Option{runtime.WithObserver(rec)}, opts...)...), rec
}

// blockUntilCanceled is a well-behaved task body.
func blockUntilCanceled(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// timeout returns a context that ends after d of (bubble) time.
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// expired is a context that is already done: a Shutdown with it aborts
// whatever has not returned, with no grace period.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// mustAbort shuts g down with no grace period and returns the AbortError,
// failing t unless it lists n tasks.
func mustAbort(t *testing.T, g interface {
	Shutdown(context.Context) error
}, n int) *runtime.AbortError {
	t.Helper()
	var ae *runtime.AbortError
	if err := g.Shutdown(expired()); !errors.As(err, &ae) || len(ae.Aborted) != n {
		t.Fatalf("Shutdown = %v, want %d tasks aborted", err, n)
	}
	return ae
}

func mustWait(t *testing.T, g interface {
	Wait(context.Context) error
}) {
	t.Helper()
	if err := g.Wait(context.Background()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func expectPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one mentioning %q", want)
		}
		if s, _ := r.(string); !contains(s, want) {
			t.Fatalf("panic %v, want one mentioning %q", r, want)
		}
	}()
	f()
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// observeFunc is an observer that calls f with every event, spawns and
// run starts included.
type observeFunc func(context.Context, runtime.Event)

func (f observeFunc) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	f(ctx, ev)
	return ctx
}

func (f observeFunc) Observe(ctx context.Context, ev runtime.Event) { f(ctx, ev) }

// eventsOf returns the recorded events of kind about task id, in order.
func eventsOf(rec *runtimetest.Recorder, id uint64, kind string) []runtime.Event {
	var out []runtime.Event
	for _, ev := range rec.Events() {
		if ev.TaskID == id && ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// untilClosed calls f(0), f(1), ... until stop is closed, checked before
// each call: the loop of a stress test's worker.
func untilClosed(stop <-chan struct{}, f func(i int)) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		f(i)
	}
}

// runWorkers calls op ops times on each of workers goroutines, each with a
// generator of its own seeded from seed, and waits for them all.
func runWorkers(seed uint64, workers, ops int, op func(*rand.Rand)) {
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for range ops {
				op(rng)
			}
		})
	}
	wg.Wait()
}
