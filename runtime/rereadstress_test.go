package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// flatTasks lists the tasks of a snapshot, by ID.
func flatTasks(s runtime.GroupSnapshot, into map[uint64]runtime.TaskInfo) map[uint64]runtime.TaskInfo {
	if into == nil {
		into = map[uint64]runtime.TaskInfo{}
	}
	for _, ti := range s.Tasks {
		into[ti.ID] = ti
	}
	for _, c := range s.Groups {
		flatTasks(c, into)
	}
	return into
}

// checkRunsAgainstEvents checks that a snapshot's periodic tasks show
// exactly the runs the events with Seq <= snap.Seq say: Runs, RunStarted
// and LastRun.
func checkRunsAgainstEvents(t *testing.T, snap runtime.GroupSnapshot, evs []runtime.Event) {
	t.Helper()
	type st struct {
		spawned, finished, aborted, lateExit bool
		started                              uint64
		lastSeq                              uint64
		last                                 runtime.Event
	}
	tasks := map[uint64]*st{}
	for _, ev := range evs {
		if ev.Seq > snap.Seq || ev.TaskID == 0 || ev.Group != snap.Name && !strings.HasPrefix(ev.Group, snap.Name+".") {
			continue
		}
		s := tasks[ev.TaskID]
		if s == nil {
			s = &st{}
			tasks[ev.TaskID] = s
		}
		switch ev.Kind {
		case runtime.KindTaskSpawned:
			// A spawn a closed group refused is never in a snapshot
			// (its finished event may come after the snapshot's Seq).
			s.spawned = !ev.Rejected
		case runtime.KindTaskFinished:
			s.finished = true
		case runtime.KindTaskAborted:
			s.aborted = true
		case runtime.KindTaskLateExit:
			s.lateExit = true
		case runtime.KindTaskRunStarted:
			s.started++
		case runtime.KindTaskRunFinished:
			if ev.Seq > s.lastSeq {
				s.lastSeq, s.last = ev.Seq, ev
			}
		}
	}
	got := flatTasks(snap, nil)
	for id, s := range tasks {
		want := s.spawned && (!s.finished || s.aborted) && !s.lateExit
		ti, ok := got[id]
		if ok != want {
			t.Errorf("seq %d: task %d shown %v, want %v (%+v)", snap.Seq, id, ok, want, s)
			continue
		}
		if !ok || ti.Interval == 0 {
			continue
		}
		if ti.Runs != s.started {
			t.Errorf("seq %d: task %d Runs %d, %d run_started at or before", snap.Seq, id, ti.Runs, s.started)
		}
		if ti.LastRun.Run != s.last.Run || ti.LastRun.Outcome != s.last.Outcome || !errors.Is(ti.LastRun.Err, s.last.Err) {
			t.Errorf("seq %d: task %d LastRun %+v, last run_finished at or before: run %d %v %v (seq %d)", snap.Seq, id, ti.LastRun, s.last.Run, s.last.Outcome, s.last.Err, s.lastSeq)
		}
		inRun := s.started > s.last.Run
		if !ti.RunStarted.IsZero() != inRun {
			t.Errorf("seq %d: task %d RunStarted %v, in a run by the events: %v (started %d, last ended %d, state %v)", snap.Seq, id, ti.RunStarted, inRun, s.started, s.last.Run, ti.State)
		}
	}
	for id := range got {
		if tasks[id] == nil {
			t.Errorf("seq %d: task %d shown with no event at or before", snap.Seq, id)
		}
	}
}

// TestRunsOfASnapshotAgreeWithItsSeq: periodic runs end, fail,
// stop, and get stuck; a Shutdown aborts the stuck ones as they are
// released, while snapshots of the tree and of its groups are taken.
// Every snapshot shows the runs its Seq covers.
func TestRunsOfASnapshotAgreeWithItsSeq(t *testing.T) {
	iters := 20
	if testing.Short() {
		iters = 3
	}
	var totalSnaps, abortedRuns, lateRuns int
	defer func() {
		t.Logf("%d iterations, %d snapshots, %d runs aborted, %d released runs ended", iters, totalSnaps, abortedRuns, lateRuns)
	}()
	for iter := range iters {
		seed := uint64(iter) + 1
		rng := rand.New(rand.NewPCG(seed, 7))
		rec := &runtimetest.Recorder{}
		lateExits := make(chan struct{}, 1000)
		sup := runtime.New("app", runtime.WithObserver(rec), runtime.WithObserver(observeFunc(func(_ context.Context, ev runtime.Event) {
			if ev.Kind == runtime.KindTaskLateExit {
				lateExits <- struct{}{}
			}
		})))
		release := make(chan struct{})
		var stuck atomic.Bool
		var runs atomic.Int64
		enough := make(chan struct{})
		var once sync.Once
		var groups []*runtime.Group
		for gi := range 4 {
			g := sup.Group(fmt.Sprint("g", gi))
			groups = append(groups, g)
			for ti := range 5 {
				mode := rng.IntN(5)
				g.Every(fmt.Sprint("job", ti), time.Microsecond, func(ctx context.Context) error {
					n := runs.Add(1)
					if n == 300 {
						once.Do(func() { close(enough) })
					}
					switch {
					case stuck.Load() && mode != 4:
						<-release // ignores ctx: aborted, or released as the abort comes
						return errors.New("late")
					case mode == 0:
						return nil
					case mode == 1:
						return errors.New("run failed")
					case mode == 2 && n%7 == 0:
						return runtime.ErrStop
					case mode == 3 && n%11 == 0:
						return fmt.Errorf("wrapped: %w", ctx.Err())
					}
					return nil
				})
			}
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		snapper := snapshotEach(&wg, stop, sup, func(i int) *runtime.Group { return groups[i%len(groups)] }, 1)
		<-enough
		stuck.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(200+rng.IntN(800))*time.Microsecond)
		rel := time.AfterFunc(time.Duration(rng.IntN(1500))*time.Microsecond, func() { close(release) })
		err := sup.Shutdown(ctx)
		cancel()
		if rel.Stop() {
			close(release)
		}
		var ae *runtime.AbortError
		if errors.As(err, &ae) {
			for range ae.Aborted {
				<-lateExits
			}
		}
		close(stop)
		wg.Wait()
		snaps := append(snapper.taken, sup.Snapshot())
		evs := rec.Events()
		for _, s := range snaps {
			checkRunsAgainstEvents(t, s, evs)
			if t.Failed() {
				t.Fatalf("seed %d: %d snapshots, %d events", seed, len(snaps), len(evs))
			}
		}
		totalSnaps += len(snaps)
		for _, ev := range evs {
			if ev.Kind == runtime.KindTaskRunFinished && ev.Outcome == runtime.Aborted {
				abortedRuns++
			}
			if ev.Kind == runtime.KindTaskRunFinished && ev.Err != nil && ev.Err.Error() == "late" {
				lateRuns++
			}
		}
	}
}

// churnFor is how long the churn tests run (RACE_CHURN_FOR=2s, say, for
// longer).
var churnFor = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RACE_CHURN_FOR")); err == nil {
		return d
	}
	return 500 * time.Millisecond
}()

// watchdog fails the test with every goroutine's stack if done is not
// closed within d: a deadlock.
// snapshots are what snapshotEach took; read them once its workers have
// returned.
type snapshots struct {
	mu    sync.Mutex // guards taken, count
	taken []runtime.GroupSnapshot
	count int
}

// snapshotEach starts two workers on wg that take snapshots until stop is
// closed, one of sup's whole tree, one of sub(i) for the i-th, and keeps
// every keep-th of them (none for keep 0).
func snapshotEach(wg *sync.WaitGroup, stop <-chan struct{}, sup *runtime.Supervisor, sub func(i int) *runtime.Group, keep int) *snapshots {
	out := &snapshots{}
	for w := range 2 {
		wg.Go(func() {
			untilClosed(stop, func(i int) {
				var s runtime.GroupSnapshot
				if w == 0 {
					s = sup.Snapshot()
				} else {
					s = sub(i).Snapshot()
				}
				out.mu.Lock()
				out.count++
				if keep > 0 && i%keep == 0 {
					out.taken = append(out.taken, s)
				}
				out.mu.Unlock()
			})
		})
	}
	return out
}

// endChurn lets wg's workers churn for churnFor, then closes stop and
// waits for them, failing the test with every stack if they have not all
// returned a minute later (a deadlock).
func endChurn(t *testing.T, stop chan struct{}, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		timer := time.NewTimer(churnFor)
		defer timer.Stop()
		<-timer.C
		close(stop)
		wg.Wait()
		close(done)
	}()
	watchdog(t, 60*time.Second, done)
}

func watchdog(t *testing.T, d time.Duration, done <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		buf := make([]byte, 1<<22)
		buf = buf[:goruntime.Stack(buf, true)]
		t.Fatalf("no progress in %v (deadlock?):\n%s", d, buf)
	}
}

// TestSnapshotUnderGroupAndShutdownChurn: request groups (some nested) are
// made under a parent with many held children, waited for, shut down with
// a deadline that aborts, canceled or dropped, while batch parents are
// shut down whole and snapshots of the tree and of the parent are taken.
// Nothing deadlocks, and every snapshot agrees with the events at its Seq.
func TestSnapshotUnderGroupAndShutdownChurn(t *testing.T) {
	for _, observed := range []bool{true, false} {
		for seed := uint64(1); seed <= 1; seed++ {
			t.Run(fmt.Sprintf("observed=%v/seed=%d", observed, seed), func(t *testing.T) {
				churn(t, observed, seed)
			})
		}
	}
}

func churn(t *testing.T, observed bool, seed uint64) {
	rec := &runtimetest.Recorder{}
	var opts []runtime.Option
	if observed {
		opts = append(opts, runtime.WithObserver(rec))
	}
	sup := runtime.New("app", opts...)
	parent := sup.Group("p")
	held := make([]*runtime.Group, 3000)
	for i := range held {
		held[i] = parent.Group("held")
		if i%100 == 0 {
			held[i].Go("idle", blockUntilCanceled)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var made atomic.Int64
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			untilClosed(stop, func(i int) {
				g := parent.Group("req")
				made.Add(1)
				var sub *runtime.Group
				if rng.IntN(3) == 0 {
					sub = g.Group("sub")
					sub.Go("part", func(ctx context.Context) error { return nil })
				}
				release := make(chan struct{})
				g.Go("fetch", func(ctx context.Context) error { return nil })
				g.Go("slow", func(ctx context.Context) error { <-release; return nil })
				g.Every("poll", time.Microsecond, func(ctx context.Context) error {
					if rng := rand.N(4); rng == 0 {
						return errors.New("poll failed")
					}
					return nil
				})
				switch rng.IntN(4) {
				case 0:
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(200))*time.Microsecond)
					_ = g.Shutdown(ctx)
					cancel()
					close(release)
				case 1:
					g.Cancel(nil)
					close(release)
					_ = g.Wait(context.Background())
				case 2:
					close(release)
					_ = g.Shutdown(context.Background())
				case 3:
					if sub != nil {
						_ = sub.Shutdown(context.Background())
					}
					close(release)
					g.Cancel(errors.New("done"))
					_ = g.Wait(context.Background())
				}
			})
		})
	}
	// Batches: a parent of many groups made and shut down whole.
	wg.Go(func() {
		untilClosed(stop, func(i int) {
			b := sup.Group("batch")
			for range 200 {
				c := b.Group("item")
				c.Go("x", blockUntilCanceled)
				c.Group("deep").Go("y", blockUntilCanceled)
			}
			_ = b.Shutdown(context.Background())
		})
	})
	keep := 0 // unobserved: no events to check snapshots against
	if observed {
		keep = 4
	}
	snapper := snapshotEach(&wg, stop, sup, func(int) *runtime.Group { return parent }, keep)
	endChurn(t, stop, &wg)
	evs := rec.Events()
	snaps := snapper.taken
	for _, s := range snaps {
		checkRunsAgainstEvents(t, s, evs)
		if t.Failed() {
			t.Fatalf("%d snapshots, %d events", len(snaps), len(evs))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sup.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	final := sup.Snapshot()
	if len(final.Groups) != 0 || final.Running+final.Canceling+final.Abandoned != 0 {
		t.Fatalf("after Shutdown: %d groups, %d running, %d canceling, %d abandoned", len(final.Groups), final.Running, final.Canceling, final.Abandoned)
	}
	t.Logf("%d request groups, %d snapshots (%d checked against %d events)", made.Load(), snapper.count, len(snaps), len(evs))
	goruntime.KeepAlive(held)
}

// TestSnapshotOfDeepNewGroups: chains of new groups, each spawning
// as soon as it is made (the spawn's busy chain locks them child to
// parent up the chain), while snapshots of the tree and of a subtree
// retry, gate and TryLock them. Nothing deadlocks; every snapshot agrees
// with the events at its Seq.
func TestSnapshotOfDeepNewGroups(t *testing.T) {
	rec := &runtimetest.Recorder{}
	sup := runtime.New("app", runtime.WithObserver(rec))
	top := sup.Group("top")
	for range 2000 {
		top.Group("held")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var chains atomic.Int64
	for w := range 3 {
		wg.Go(func() {
			untilClosed(stop, func(int) {
				g := top.Group(fmt.Sprint("w", w))
				root := g
				for range 5 {
					g = g.Group("d")
					g.Go("t", func(context.Context) error { return nil })
				}
				g.Every("e", time.Microsecond, func(context.Context) error { return nil })
				if w == 0 {
					_ = root.Shutdown(context.Background())
				} else {
					root.Cancel(nil)
					_ = root.Wait(context.Background())
				}
				chains.Add(1)
			})
		})
	}
	snapper := snapshotEach(&wg, stop, sup, func(int) *runtime.Group { return top }, 3)
	endChurn(t, stop, &wg)
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()
	snaps := snapper.taken
	for _, s := range snaps {
		checkRunsAgainstEvents(t, s, evs)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d chains, %d snapshots checked against %d events", chains.Load(), len(snaps), len(evs))
}
