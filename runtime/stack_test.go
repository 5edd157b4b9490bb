package runtime_test

import (
	"context"
	"os"
	"os/exec"
	goruntime "runtime"
	"sync"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

// parkingObserver parks every task goroutine inside its finished event.
type parkingObserver struct {
	arrived sync.WaitGroup
	release chan struct{}
}

func (o *parkingObserver) TaskStarting(ctx context.Context, _ runtime.Event) context.Context {
	return ctx
}

func (o *parkingObserver) Observe(_ context.Context, ev runtime.Event) {
	if ev.Kind == runtime.KindTaskFinished {
		o.arrived.Done()
		<-o.release
	}
}

// TestFinishPathFitsTheInitialStack parks tasks inside an observer's
// finished event and measures their stacks: the supervisor's own finish
// path must leave observers room in the goroutine's initial 2 KiB, since
// one stack growth costs more than a whole spawn (and, with adaptive stack
// starts, makes every later goroutine start bigger).
func TestFinishPathFitsTheInitialStack(t *testing.T) {
	if os.Getenv("TASKSCOPE_STACK_CHILD") != "1" {
		// A fresh process without adaptive stack starts, so that every
		// goroutine starts at 2 KiB whatever ran before.
		cmd := exec.Command(os.Args[0], "-test.run=^TestFinishPathFitsTheInitialStack$", "-test.v")
		cmd.Env = append(os.Environ(), "TASKSCOPE_STACK_CHILD=1", "GODEBUG=adaptivestackstart=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}
	const n = 2000
	obs := &parkingObserver{release: make(chan struct{})}
	sup := runtime.New("", runtime.WithObserver(obs))
	obs.arrived.Add(n)
	before := stackInuse()
	for range n {
		sup.Go("noop", noop)
	}
	obs.arrived.Wait()
	perTask := (stackInuse() - before) / n
	close(obs.release)
	if err := sup.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("stack per task parked in Observe: %d bytes", perTask)
	if perTask > 2048+256 {
		t.Fatalf("stack per task parked in an observer: %d bytes; the finish path grew the initial 2 KiB stack", perTask)
	}
}

func stackInuse() uint64 {
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return m.StackInuse
}
