package bench

import (
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sync/errgroup"

	taskscope "github.com/taskscope/taskscope/runtime"
)

// The model rows price what any supervisor that names and accounts for
// each task must do, on top of errgroup, without taskscope's code: a
// per-task record the size of runtime.Task (80 bytes) written by the
// spawner and finished by the task goroutine, the two monotonic clock
// reads that give its start and duration, and a registry lock both sides
// take. Read them against the taskscope row to see how much of its cost is
// the record itself, at 1 and at 2 CPUs.

// record stands in for runtime.Task.
type record struct {
	mu       sync.Mutex
	started  time.Duration
	done     bool
	err      error
	_        [32]byte
	duration time.Duration
}

var modelEpoch = time.Now()

func init() {
	peers = append(peers,
		peer{"model.record", func(f body) (func(int), stopFunc) { return runModel(f, false, false), nothing }},
		peer{"model.record+clock", func(f body) (func(int), stopFunc) { return runModel(f, true, false), nothing }},
		peer{"model.record+clock+lock", func(f body) (func(int), stopFunc) { return runModel(f, true, true), nothing }},
	)
}

func runModel(f body, clock, lock bool) func(n int) {
	fn := f.err
	var registry sync.Mutex
	live := 0
	return func(n int) {
		var g errgroup.Group
		for range n {
			r := &record{}
			if clock {
				r.started = time.Since(modelEpoch)
			}
			if lock {
				registry.Lock()
				live++
				registry.Unlock()
			}
			g.Go(func() error {
				err := fn()
				r.mu.Lock()
				r.done, r.err = true, err
				if clock {
					r.duration = time.Since(modelEpoch) - r.started
				}
				r.mu.Unlock()
				if lock {
					registry.Lock()
					live--
					registry.Unlock()
				}
				return err
			})
		}
		_ = g.Wait()
	}
}

// TestModelRecordIsTaskSized keeps the model honest: its record must stay
// the size of the real task record.
func TestModelRecordIsTaskSized(t *testing.T) {
	if got, want := unsafe.Sizeof(record{}), unsafe.Sizeof(taskscope.Task{}); got != want {
		t.Fatalf("model record is %d bytes, runtime.Task %d", got, want)
	}
}
