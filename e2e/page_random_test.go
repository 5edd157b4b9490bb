package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/internal/randomwork"
	"github.com/taskscope/taskscope/runtime"
)

// TestTaskPageFollowsRandomWork opens the task page in headless Chromium,
// then has a few goroutines run a random workload on the supervisor for a
// few seconds (spawns of every kind in nested groups, some sharing a name
// with a sibling; cancels of tasks and groups; Every tasks; shutdowns of
// subgroups with short deadlines that abort stuck tasks; releases that make
// them exit late; spawns on closed groups; groups made under canceled
// parents), on some seeds cutting the page's event stream once mid-way
// (the page reconnects from a fresh snapshot). Then the workload stops and
// the page must come to show exactly the server's tasks and states, and no
// group the server does not have, as in TestTaskPageFollowsTheServer.
//
// PAGE_SEEDS=n runs seeds 0 to n-1 (default 3); PAGE_SEED=s runs seed s
// alone; PAGE_WORK=duration sets how long the workload runs (default 2.5s);
// PAGE_NAMES=unique gives every group a name of its own.
func TestTaskPageFollowsRandomWork(t *testing.T) { pageRandom(t, "") }

// TestTaskPageFollowsRandomWorkInAGroup is TestTaskPageFollowsRandomWork
// with the page opened on ?group=app.w.g1&group=app.w.g0.g2, which the
// server's JSON of that ?group= must agree with: groups of those names
// (siblings share them) come and go, and so do those on the way to them,
// whose cancels and shutdowns the page learns of from its filtered stream.
func TestTaskPageFollowsRandomWorkInAGroup(t *testing.T) {
	pageRandom(t, "group=app.w.g1&group=app.w.g0.g2")
}

// pageRandom runs pageRandomRun for the seeds and the time the environment
// asks for (see TestTaskPageFollowsRandomWork), with the page opened with
// query.
func pageRandom(t *testing.T, query string) {
	n, first := uint64(3), uint64(0)
	if s, err := strconv.ParseUint(os.Getenv("PAGE_SEEDS"), 10, 64); err == nil {
		n = s
	}
	if s, err := strconv.ParseUint(os.Getenv("PAGE_SEED"), 10, 64); err == nil {
		first, n = s, 1
	}
	work := 2500 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("PAGE_WORK")); err == nil {
		work = d
	}
	for seed := first; seed < first+n; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { pageRandomRun(t, seed, work, query) })
	}
}

// kickable serves h, and can end every response in flight (an event
// stream's connection drops; its client reconnects).
type kickable struct {
	h      http.Handler
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

func newKickable(h http.Handler) *kickable {
	k := &kickable{h: h}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	return k
}

func (k *kickable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	kctx := k.ctx
	k.mu.Unlock()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(kctx, cancel)
	defer stop()
	k.h.ServeHTTP(w, r.WithContext(ctx))
}

func (k *kickable) kick() {
	k.mu.Lock()
	k.cancel()
	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.mu.Unlock()
}

func (k *kickable) close() {
	k.mu.Lock()
	k.cancel()
	k.mu.Unlock()
}

type pageWork struct {
	tree   *randomwork.Tree
	unique bool // group names: each its own, or a few shared by siblings

	mu       sync.Mutex
	release  chan struct{}          // stuck tasks wait for it; replaced when closed
	tasks    []*runtime.Task        // spawned, for cancels
	kinds    map[uint64]string      // task id → kind, for failure reports
	closed   []*randomwork.Group    // groups shut down, for spawns on closed groups
	canceled []*randomwork.Group    // groups canceled, for groups made under them
	ops      map[string]int         // operation counts
	groupOf  map[*runtime.Group]int // group → its number, for failure reports
}

func (w *pageWork) count(op string) {
	w.mu.Lock()
	w.ops[op]++
	w.mu.Unlock()
}

func (w *pageWork) rel() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.release
}

func (w *pageWork) number(g *runtime.Group) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.groupOf[g]
	if !ok {
		n = len(w.groupOf) + 1
		w.groupOf[g] = n
	}
	return n
}

func (w *pageWork) grow(rng *rand.Rand, under *randomwork.Group) *randomwork.Group {
	name := func(fresh string) string {
		if w.unique {
			return fresh
		}
		return "g" + strconv.Itoa(rng.IntN(3)) // siblings often share a name
	}
	if under == nil {
		g := w.tree.Grow(rng, name)
		w.number(g.G)
		return g
	}
	g := &randomwork.Group{G: under.G.Group(name(fmt.Sprint("x", rng.IntN(1000)))), Parent: under}
	w.number(g.G)
	return g
}

func (w *pageWork) spawn(rng *rand.Rand, g *randomwork.Group) {
	k := randomwork.Kind(rng.IntN(int(randomwork.Kinds)))
	var task *runtime.Task
	if k == randomwork.Every {
		// Periods of tens of milliseconds: the page follows every run.
		period := time.Duration(10+rng.IntN(40)) * time.Millisecond
		task = g.G.Every(k.String(), period, randomwork.Run(rng, true, w.rel()))
	} else {
		task = g.G.Go(k.String(), randomwork.Body(k, rng, errors.New("random failure"), w.rel()))
	}
	w.mu.Lock()
	w.tasks = append(w.tasks, task)
	w.kinds[task.ID()] = fmt.Sprintf("%s in %s#%d", k, g.G.Name(), w.groupOf[g.G])
	w.mu.Unlock()
}

func (w *pageWork) pick(rng *rand.Rand, list *[]*randomwork.Group) *randomwork.Group {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(*list) == 0 {
		return nil
	}
	return (*list)[rng.IntN(len(*list))]
}

func (w *pageWork) op(rng *rand.Rand) {
	switch n := rng.IntN(100); {
	case n < 45:
		w.count("spawn")
		w.spawn(rng, w.tree.Pick(rng))
	case n < 55:
		w.count("group")
		w.grow(rng, nil)
	case n < 60:
		w.mu.Lock()
		var task *runtime.Task
		if len(w.tasks) > 0 {
			task = w.tasks[rng.IntN(len(w.tasks))]
		}
		w.mu.Unlock()
		if task != nil {
			w.count("cancel task")
			task.Cancel(fmt.Errorf("random task cancel %d", rng.IntN(100)))
		}
	case n < 62:
		g := w.tree.Pick(rng)
		if g.Parent == nil {
			return
		}
		w.count("cancel group")
		g.G.Cancel(fmt.Errorf("random group cancel %d", rng.IntN(100)))
		w.mu.Lock()
		w.canceled = append(w.canceled, g)
		w.mu.Unlock()
	case n < 65:
		g := w.tree.Pick(rng)
		if g.Parent == nil {
			return
		}
		w.count("shutdown")
		ctx, cancel := randomwork.Deadline(rng)
		_ = g.G.Shutdown(ctx)
		cancel()
		w.mu.Lock()
		w.closed = append(w.closed, g)
		w.mu.Unlock()
	case n < 67:
		w.count("release")
		w.mu.Lock()
		close(w.release)
		w.release = make(chan struct{})
		w.mu.Unlock()
	case n < 71:
		if g := w.pick(rng, &w.closed); g != nil {
			w.count("spawn on closed")
			if rng.IntN(2) == 0 {
				g = w.grow(rng, g) // born closed
			}
			w.spawn(rng, g)
		}
	case n < 75:
		if g := w.pick(rng, &w.canceled); g != nil {
			w.count("group under canceled")
			w.spawn(rng, w.grow(rng, g))
		}
	default:
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
}

// pageResyncsJS counts the page's snapshot fetches (its resyncs) from now on.
const pageResyncsJS = `(() => {
  window.__resyncs = 0;
  const f = window.fetch;
  window.fetch = function () { window.__resyncs++; return f.apply(this, arguments); };
  return true;
})()`

func pageRandomRun(t *testing.T, seed uint64, work time.Duration, query string) {
	start := time.Now()
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	events := newKickable(diagnostics.EventsHandler(stream))
	w := &pageWork{
		unique:  os.Getenv("PAGE_NAMES") == "unique",
		release: make(chan struct{}),
		kinds:   map[uint64]string{},
		ops:     map[string]int{},
		groupOf: map[*runtime.Group]int{},
	}
	top := sup.Group("w")
	w.tree = randomwork.NewTree(top)
	w.number(top)
	defer func() {
		w.mu.Lock()
		close(w.release)
		w.mu.Unlock()
		events.close()
	}()
	ctx := servePage(t, sup, stream, events, query)
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](pageResyncsJS))
	must(t, err)
	// The page forgets its oldest idle sections beyond a limit (see
	// TestTaskPageForgetsDroppedGroups). The workload holds all its groups:
	// on two seeds in three, with a limit of 0 or 1, forgotten ones come
	// back with their next tasks, under the right parents, as the page
	// learns of them from the stream.
	idleLimit := [...]string{"0", "1", "64"}[seed%3]
	_, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("tree").dataset.idleLimit = "`+idleLimit+`"`))
	must(t, err)

	// The workload, and (on two seeds in three) one cut of the page's
	// event stream at a random moment of it.
	rng := rand.New(rand.NewPCG(seed, 0xfeed))
	kickAt := time.Duration(-1)
	if seed%3 != 0 {
		kickAt = time.Duration(float64(work) * (0.1 + 0.3*rng.Float64()))
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(work)
	for i := range 4 {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() {
			for time.Now().Before(deadline) {
				w.op(rng)
				time.Sleep(time.Duration(rng.IntN(1500)) * time.Microsecond)
			}
		})
	}
	if kickAt >= 0 {
		time.Sleep(kickAt)
		events.kick()
		t.Logf("cut the event stream %v into the workload", kickAt)
	}
	wg.Wait()
	// The tail: task events with no group event among them, once the
	// snapshots the page may re-fetch after group events have settled, so
	// that the page must follow them from the stream alone. Stuck tasks
	// aborted by shutdowns exit late (their groups may go with them), then
	// new tasks start and some tasks are canceled (stubborn ones stay
	// canceling). No tail task can fail: a failure may cancel a group.
	openGroup := func() *randomwork.Group { // a group that is not closed
		for {
			if g := w.tree.Pick(rng); !g.G.Snapshot().Closed {
				return g
			}
		}
	}
	tailSpawn := func(g *randomwork.Group, k randomwork.Kind) {
		var task *runtime.Task
		if k == randomwork.Every {
			task = g.G.Every("tail-every", 20*time.Millisecond, func(context.Context) error { return nil })
		} else {
			task = g.G.Go("tail-"+k.String(), randomwork.Body(k, rng, nil, w.rel()))
		}
		w.mu.Lock()
		w.tasks = append(w.tasks, task)
		w.kinds[task.ID()] = fmt.Sprintf("tail %s in %s#%d", k, g.G.Name(), w.groupOf[g.G])
		w.mu.Unlock()
	}
	tailKinds := []randomwork.Kind{randomwork.OK, randomwork.Polite, randomwork.Stubborn, randomwork.Sleepy, randomwork.Every}
	for range 3 { // stuck tasks aborted now, to exit late in the tail
		g := w.grow(rng, openGroup())
		tailSpawn(g, randomwork.Stubborn)
		expired, cancel := context.WithCancel(context.Background())
		cancel()
		_ = g.G.Shutdown(expired)
	}
	// The snapshots the page re-fetches after group events settle first:
	// the tail must be followed from the stream alone. Settled is no fetch
	// in a poll interval, longer than the page's 250 ms re-fetch delay.
	before := -1
	must(t, poll(ctx, "the page's re-fetches to settle", 10*time.Second, 400*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__resyncs`))
		settled := err == nil && n == before
		before = n
		return settled, err
	}))
	abandoned := sup.Abandoned()
	w.mu.Lock()
	close(w.release)
	w.release = make(chan struct{})
	w.mu.Unlock()
	for range 20 {
		tailSpawn(openGroup(), tailKinds[rng.IntN(len(tailKinds))])
	}
	canceled := 0
	w.mu.Lock()
	tasks := slices.Clone(w.tasks)
	w.mu.Unlock()
	for _, task := range tasks {
		select {
		case <-task.Done():
		default:
			if rng.IntN(2) == 0 {
				task.Cancel(errors.New("tail cancel"))
				canceled++
			}
		}
	}
	t.Logf("tail: released the stuck tasks (%d abandoned), spawned 20, canceled %d; the page had resynced %d times", abandoned, canceled, before)
	t.Logf("workload: %v; %d tasks, %d groups; %d events; the page's idle limit %s", w.ops, len(w.tasks), w.tree.Len(), stream.Published(), idleLimit)

	var last pageState
	err = poll(ctx, "the page to show what the server has after the workload", 20*time.Second, 100*time.Millisecond, nil,
		func(ctx context.Context) (bool, error) {
			page, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](pageStateJS))
			if err != nil {
				return false, err
			}
			last = page
			server, err := servedState(sup, query)
			if err != nil {
				return false, err
			}
			if d := w.diff(page, server); d != "" {
				return false, errors.New(d)
			}
			if len(page.Miscounted) > 0 {
				return false, fmt.Errorf("section counts disagree with their rows: %v", page.Miscounted)
			}
			return true, nil
		})
	resyncs, rerr := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__resyncs`))
	if rerr != nil {
		t.Logf("resyncs: %v", rerr)
	}
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
		t.Fatalf("%v\n(page status %q, %d resyncs after the first load, %d tasks on the page)", err, status, resyncs, len(last.Tasks))
	}
	t.Logf("the page converged: %d tasks, %d groups; %d resyncs; %v in all", len(last.Tasks), len(last.Groups), resyncs, time.Since(start).Round(time.Millisecond))
}

// diff describes how the page differs from the server, or returns "".
func (w *pageWork) diff(page, server pageState) string {
	var out []string
	w.mu.Lock()
	kind := func(id string) string {
		n, _ := strconv.ParseUint(id, 10, 64)
		return w.kinds[n]
	}
	defer w.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(page.Tasks)) {
		s, ok := server.Tasks[id]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("task %s (%s): page %s, not on the server", id, kind(id), page.Tasks[id]))
		case s != page.Tasks[id]:
			out = append(out, fmt.Sprintf("task %s (%s): page %s, server %s", id, kind(id), page.Tasks[id], s))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(server.Tasks)) {
		if _, ok := page.Tasks[id]; !ok {
			out = append(out, fmt.Sprintf("task %s (%s): server %s, not on the page", id, kind(id), server.Tasks[id]))
		}
	}
	for _, g := range page.Groups {
		if !slices.Contains(server.Groups, g) {
			out = append(out, fmt.Sprintf("group %s on the page, not on the server", g))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... and %d more", len(out)-10))
	}
	return strings.Join(out, "\n\t")
}

// TestTaskPageTellsSiblingsApart is what TestTaskPageFollowsRandomWork
// found, as scripted steps: sibling groups may share a name. The page must
// not apply one sibling's cancel or shutdown to the other, whether it
// learned of them from the stream or from a snapshot: events carry the
// group's id, and the page applies them by it, with no snapshot re-fetch.
// (Group flags are compared too: a group canceled before the page had a
// section for it must show canceled.)
func TestTaskPageTellsSiblingsApart(t *testing.T) {
	stream := diagnostics.NewStream()
	// hold keeps the spawn of a task named "held" in the observers before
	// the stream until released, so that its spawned event reaches the
	// stream after events that came later.
	holding, unhold := make(chan struct{}), make(chan struct{})
	hold := holdSpawn{name: "held", holding: holding, release: unhold}
	sup := runtime.New("app", runtime.WithObserver(hold), runtime.WithObserver(stream))
	release := make(chan struct{})
	defer close(release)
	ctx := servePage(t, sup, stream, nil, "")
	reload := func() {
		must(t, chromedp.Do(ctx, chromedp.Reload(),
			chromedp.WaitVisible(chromedp.CSS(`#status[data-status="live"]`))))
	}
	check := func(what string) {
		t.Helper()
		w := &pageWork{kinds: map[uint64]string{}}
		err := poll(ctx, "the page to show what the server has after: "+what, 10*time.Second, 100*time.Millisecond, nil,
			func(ctx context.Context) (bool, error) {
				page, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](pageStateJS))
				if err != nil {
					return false, err
				}
				if d := w.diff(page, serverState(sup)); d != "" {
					return false, errors.New(d)
				}
				return true, nil
			})
		if err != nil {
			t.Error(err)
		}
	}
	polite := func(ctx context.Context) error { <-ctx.Done(); return nil }
	waiting := func(ctx context.Context) error { <-ctx.Done(); <-release; return nil }

	countFetches := func() {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](pageResyncsJS))
		must(t, err)
	}
	// From the stream: both twins' tasks arrive as events.
	countFetches()
	a := sup.Group("twin")
	a.Go("a", waiting)
	b := sup.Group("twin")
	b.Go("b", waiting)
	a.Cancel(nil)
	check("a cancel of one of two groups named app.twin (page live)")
	noRefetch := func(what string) {
		t.Helper()
		if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__resyncs`)); err != nil || n != 0 {
			t.Errorf("%s: the page fetched the snapshot %d times (%v), want none", what, n, err)
		}
	}
	noRefetch("the twins")

	// A group first heard of under a twin with no task (no section yet):
	// its parent is known by id, and the root's child needs no guess.
	x := sup.Group("x")
	x.Go("t1", waiting)
	y := sup.Group("x")
	y.Group("c").Go("t2", waiting)
	x.Cancel(nil)
	check("a child of a twin with no section, and a cancel of the other twin")
	noRefetch("the twin without a section")

	// A group canceled before the page had a section for it: the spawn
	// that makes the section carries its group's cause, and the section
	// shows the group canceled, as the snapshot does.
	early := sup.Group("early")
	early.Cancel(nil)
	early.Go("t", waiting)
	check("a spawn into a group canceled before it had a section")
	noRefetch("the group canceled early")

	// A spawn accepted before its group, which had no section, was shut
	// down, whose spawned event reaches the stream after the shutdown's
	// first event: the section it makes is closed, so that it goes once
	// the task has ended, as the group does.
	closing := sup.Group("closing")
	spawned := make(chan *runtime.Task)
	go func() { spawned <- closing.Go("held", polite) }()
	<-holding
	// A Snapshot would wait for the held spawn: the stream says when the
	// shutdown's first event is in.
	began := stream.Subscribe(ctx, diagnostics.Kinds(runtime.KindGroupShutdownStarted))
	shut := make(chan error)
	go func() { shut <- closing.Shutdown(context.Background()) }()
	for range began.Events() {
		break
	}
	began.Close()
	close(unhold)
	<-(<-spawned).Done()
	must(t, <-shut)
	check("a spawn told of after its group's shutdown began, in a group with no section")
	noRefetch("the group closed before it had a section")

	// From a snapshot: the page loads with both pairs' sections.
	late := make(chan struct{})
	p1 := sup.Group("pair")
	p1.Go("stubborn", func(context.Context) error { <-late; return nil })
	p2 := sup.Group("pair")
	p2.Go("polite", polite)
	reload()
	countFetches()
	expired, cancelExpired := context.WithCancel(context.Background())
	cancelExpired()
	_ = p1.Shutdown(expired) // aborts stubborn
	close(late)              // its late exit detaches p1
	_ = p2.Shutdown(context.Background())
	must(t, poll(ctx, "both app.pair groups to be detached", 10*time.Second, 10*time.Millisecond, nil, func(context.Context) (bool, error) {
		return !serverState(sup).hasGroup("app.pair"), nil
	}))
	check("shutdowns of two groups named app.pair (page loaded with both)")
	noRefetch("the pairs")
}

// holdSpawn is an observer that holds the spawn of tasks named name: it
// says so on holding (once) and waits for release to be closed.
type holdSpawn struct {
	name             string
	holding, release chan struct{}
}

func (h holdSpawn) TaskStarting(ctx context.Context, ev runtime.Event) context.Context {
	if ev.Kind == runtime.KindTaskSpawned && ev.Task == h.name {
		close(h.holding)
		<-h.release
	}
	return ctx
}

func (holdSpawn) Observe(context.Context, runtime.Event) {}
