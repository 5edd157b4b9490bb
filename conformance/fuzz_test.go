package conformance_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/internal/randomwork"
	"github.com/taskscope/taskscope/runtime"
)

// FuzzChannelsAgree interprets its input as operations on a supervisor
// with every observer attached (modelled on runtime's FuzzOps: Go tasks of
// every behaviour, Every tasks, nested fail-fast groups, task and group
// cancels, external contexts, Wait, Shutdown with short or expired
// deadlines, overlapping background shutdowns), in a synctest bubble, and
// then runs TestChannelsAgree's checks: spans, metrics, stream and logs
// agree per group and outcome, spans end once, gauges are back to 0.
//
//	go test -run XXX -fuzz FuzzChannelsAgree -fuzztime 5m -parallel 1 ./conformance
func FuzzChannelsAgree(f *testing.F) {
	f.Add([]byte{})
	// Tasks of every behaviour in the root, a shutdown.
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 2, 0, 0, 8, 4, 7, 0, 1})
	// Fail-fast sub-groups, failing and blocking tasks, cancels, a wait.
	f.Add([]byte{3, 0, 1, 3, 1, 5, 0, 1, 4, 0, 1, 1, 1, 0, 1, 2, 2, 0, 2, 5, 1, 4, 1, 1, 5, 2, 1, 6, 0, 3, 9})
	// Periodic tasks with every run behaviour, options, a shutdown.
	f.Add([]byte{2, 0, 0, 0, 1, 7, 0, 2, 0, 1, 2, 4, 3, 2, 2, 0, 3, 6, 0, 9, 8, 3, 2, 0, 2, 5, 5, 2, 8, 3, 7, 0, 2})
	// Stubborn tasks aborted at an expired deadline, background shutdowns,
	// long-running tasks, external contexts, releases.
	f.Add([]byte{0, 0, 5, 4, 0, 0, 5, 0, 1, 0, 4, 6, 0, 0, 7, 11, 3, 0, 1, 12, 1, 0, 12, 0, 1, 10, 0, 7, 0, 0, 11, 0, 11, 1, 8, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		// An input that hangs (in real time: fake time may run on, with
		// periodic tasks) dumps every goroutine.
		hung := time.AfterFunc(30*time.Second, func() {
			buf := make([]byte, 1<<22)
			panic(fmt.Sprintf("input %q hung:\n%s", data, buf[:goruntime.Stack(buf, true)]))
		})
		defer hung.Stop()
		synctest.Test(t, func(t *testing.T) { runChannels(t, data) })
	})
}

// chMaxOps bounds the operations one input runs.
const chMaxOps = 64

type chGroup struct {
	g interface {
		Go(name string, fn func(ctx context.Context) error, opts ...runtime.TaskOption) *runtime.Task
		Every(name string, interval time.Duration, fn func(ctx context.Context) error, opts ...runtime.TaskOption) *runtime.Task
		Group(name string, opts ...runtime.GroupOption) *runtime.Group
		Cancel(cause error)
		Wait(ctx context.Context) error
		Shutdown(ctx context.Context) error
	}
	group *runtime.Group // nil for the root
}

type fuzzTask struct {
	task    *runtime.Task
	id      chan uint64 // the task's ID, once Go has returned
	sp      randomwork.Spawn
	err     error
	release chan struct{}
}

type chState struct {
	*randomwork.Input // the fuzz input, decoded into operations

	t       *testing.T
	w       *work
	req     context.Context
	sup     *runtime.Supervisor
	groups  []chGroup
	tasks   []*fuzzTask
	exts    []context.Context
	extStop []context.CancelCauseFunc
	bg      sync.WaitGroup
}

func runChannels(t *testing.T, data []byte) {
	o := observe(t, 1<<16)
	defer o.close()
	tracer := o.tp.Tracer("conformance")
	reqCtx, req := tracer.Start(context.WithValue(context.Background(), reqKey{}, "req"), "request")
	opts := o.options()
	if len(data) > 0 && data[0]&0x80 != 0 {
		opts = append(opts, runtime.CancelOnError())
	}
	s := &chState{t: t, Input: randomwork.NewInput(data), w: newWork(t, tracer), req: reqCtx}
	s.sup = runtime.New("fz", opts...)
	s.groups = []chGroup{{g: s.sup}}
	for range 3 {
		ctx, cancel := context.WithCancelCause(context.Background())
		s.exts, s.extStop = append(s.exts, ctx), append(s.extStop, cancel)
	}
	for n := 0; n < chMaxOps && s.More(); n++ {
		s.op()
	}

	// The end: a shutdown, every straggler released and gone.
	s.shutdown(s.sup, 3*time.Millisecond)
	for _, ft := range s.tasks {
		ft.unblock()
	}
	for _, stop := range s.extStop {
		stop(nil)
	}
	s.bg.Wait()
	for i := 0; i < 100 && s.sup.Abandoned() > 0; i++ {
		time.Sleep(time.Millisecond)
	}
	for _, ft := range s.tasks {
		<-ft.task.Done()
	}
	synctest.Wait()
	req.End()
	o.close()
	if n := s.sup.Abandoned(); n != 0 {
		t.Fatalf("Abandoned() = %d after every goroutine returned", n)
	}
	sp := o.check(t, s.w, req.SpanContext(), "fuzzTask", false)
	t.Logf("%d tasks, %d groups, %d events, finished %v, runs %v", len(s.tasks), len(s.groups), len(o.streamed), sp.finished, sp.runs)
	for _, g := range s.groups {
		if g.group != nil {
			randomwork.CheckErr(t, g.group, o.streamed)
		}
	}
}

func (ft *fuzzTask) unblock() {
	select {
	case <-ft.release:
	default:
		close(ft.release)
	}
}

// body runs behaviour b (one run of an Every task, or a Go task's fn).
func (ft *fuzzTask) body(ctx context.Context, s *chState, b byte, every bool) error {
	switch b % 10 {
	case 0:
		return nil
	case 1:
		return ft.err
	case 2:
		panic(ft.err)
	case 3:
		goruntime.Goexit()
	case 4: // returns once canceled
		<-ctx.Done()
		return ctx.Err()
	case 5: // ignores its context until released
		<-ft.release
		return nil
	case 6:
		time.Sleep(time.Duration(1+b/10%4) * time.Millisecond)
		return nil
	case 7:
		if every {
			return runtime.ErrStop
		}
		// a span made in fn (of the task's span, or a root)
		s.w.inner(ctx, <-ft.id, ft.sp)
		return nil
	case 8: // sleeps, or less if canceled, then fails
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Millisecond):
		}
		return ft.err
	case 9: // returns an error once canceled
		<-ctx.Done()
		return ft.err
	}
	return nil
}

// taskOpts reads a task's options: WithCancelOn (one of the external
// contexts), WithParent (the request), LongRunning (which an Every task
// needs not, but may have).
func (s *chState) taskOpts(ft *fuzzTask) []runtime.TaskOption {
	b := s.Byte()
	var opts []runtime.TaskOption
	if b&1 != 0 {
		opts = append(opts, runtime.WithCancelOn(s.exts[int(b>>4)%len(s.exts)]))
		ft.sp.CancelOn = true
	}
	if b&2 != 0 {
		opts = append(opts, runtime.WithParent(s.req))
		ft.sp.Parent = true
	}
	if b&4 != 0 {
		opts = append(opts, runtime.LongRunning())
		ft.sp.LongRunning = true
	}
	return opts
}

func (s *chState) add(ft *fuzzTask) {
	s.w.mu.Lock()
	s.w.spawns[ft.task.ID()] = ft.sp
	s.w.mu.Unlock()
	ft.id <- ft.task.ID()
	s.tasks = append(s.tasks, ft)
}

func (s *chState) pickGroup() chGroup { return s.groups[int(s.Byte())%len(s.groups)] }

func (s *chState) deadline() (context.Context, context.CancelFunc) {
	d := time.Duration(s.Byte()%4) * time.Millisecond
	if d == 0 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	return context.WithTimeout(context.Background(), d)
}

func (s *chState) shutdown(g interface{ Shutdown(context.Context) error }, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := g.Shutdown(ctx)
	var ae *runtime.AbortError
	if err != nil && !errors.As(err, &ae) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		s.t.Errorf("Shutdown = %v", err)
	}
}

func (s *chState) op() {
	switch op := s.Byte() % 13; op {
	case 0, 1: // Go
		g := s.pickGroup()
		b := s.Byte()
		ft := &fuzzTask{id: make(chan uint64, 1), release: make(chan struct{}), err: s.NewErr("task failure")}
		opts := s.taskOpts(ft)
		name := fmt.Sprint("go", b%10)
		if ft.sp.LongRunning {
			name = longRunning + name
		}
		ft.task = g.g.Go(name, func(ctx context.Context) error { return ft.body(ctx, s, b, false) }, opts...)
		s.add(ft)
	case 2: // Every
		g := s.pickGroup()
		interval := time.Duration(1+s.Byte()%3) * time.Millisecond
		pattern := []byte{s.Byte(), s.Byte(), s.Byte()}
		ft := &fuzzTask{id: make(chan uint64, 1), release: make(chan struct{}), err: s.NewErr("run failure")}
		opts := s.taskOpts(ft)
		name := periodic + "run"
		if ft.sp.LongRunning {
			name = periodic + longRunning + "run"
		}
		var mu sync.Mutex
		run := 0
		ft.task = g.g.Every(name, interval, func(ctx context.Context) error {
			mu.Lock()
			b := pattern[run%len(pattern)]
			run++
			mu.Unlock()
			return ft.body(ctx, s, b, true)
		}, opts...)
		s.add(ft)
	case 3: // a sub-group, fail-fast or not; names repeat
		p := s.pickGroup()
		b := s.Byte()
		var opts []runtime.GroupOption
		if b&1 != 0 {
			opts = append(opts, runtime.CancelOnError())
		}
		g := p.g.Group([]string{"a", "b", "c"}[int(b>>1)%3], opts...)
		s.groups = append(s.groups, chGroup{g: g, group: g})
	case 4: // Task.Cancel
		b, c := s.Byte(), s.Byte()
		if len(s.tasks) == 0 {
			return
		}
		var cause error
		if c&1 != 0 {
			cause = s.NewErr("task cancel")
		}
		s.tasks[int(b)%len(s.tasks)].task.Cancel(cause)
	case 5: // Group.Cancel
		g := s.pickGroup()
		var cause error
		if s.Byte()&1 != 0 {
			cause = s.NewErr("group cancel")
		}
		g.g.Cancel(cause)
	case 6: // Wait
		g := s.pickGroup()
		ctx, cancel := s.deadline()
		_ = g.g.Wait(ctx)
		cancel()
	case 7: // Shutdown, deadline expired or up to 3 ms away
		g := s.pickGroup()
		ctx, cancel := s.deadline()
		_ = g.g.Shutdown(ctx)
		cancel()
	case 8:
		time.Sleep(time.Duration(1+s.Byte()%4) * time.Millisecond)
	case 9:
		synctest.Wait()
	case 10: // an external context ends
		s.extStop[int(s.Byte())%len(s.exts)](s.NewErr("external"))
	case 11: // a stubborn task is released
		b := s.Byte()
		if len(s.tasks) > 0 {
			s.tasks[int(b)%len(s.tasks)].unblock()
		}
	case 12: // a Shutdown in the background, overlapping what comes next
		g := s.pickGroup()
		d := time.Duration(s.Byte()%4) * time.Millisecond
		s.bg.Go(func() { s.shutdown(g.g, d) })
	}
}
