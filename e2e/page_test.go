package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// TestTaskPageFollowsTheServer drives a supervisor through what the task
// page's live updates get wrong most easily, and checks after each step
// that the page (in headless Chromium, following the event stream) shows
// exactly the server's tasks and states, and no group the server does not
// have:
//   - a group named like a canceled sibling: its tasks run;
//   - a group made under a canceled parent: its tasks start canceling;
//   - a shut-down group whose abandoned task exits late: the runtime
//     detaches it, and a spawn rejected there does not bring it back;
//   - a shutdown of a group below a detached one: no phantom ancestors.
func TestTaskPageFollowsTheServer(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	release := make(chan struct{})
	defer close(release)
	ctx := servePage(t, sup, stream, nil, "")

	stuck := func(context.Context) error { <-release; return nil }
	waiting := func(ctx context.Context) error { <-ctx.Done(); <-release; return nil }
	steps := []struct {
		name string
		do   func()
	}{
		{"sibling of a canceled group", func() {
			old := sup.Group("job")
			old.Go("old", waiting)
			old.Cancel(errors.New("done with it"))
			sup.Group("job").Go("new", stuck)
		}},
		{"child of a canceled group", func() {
			parent := sup.Group("parent")
			parent.Go("p", waiting)
			parent.Cancel(nil)
			parent.Group("child").Go("c", waiting)
		}},
		{"detached after a late exit", func() {
			g := sup.Group("batch")
			late := make(chan struct{})
			g.Go("stubborn", func(context.Context) error { <-late; return nil })
			deep := g.Group("a").Group("b")
			expired, cancel := context.WithCancel(context.Background())
			cancel()
			_ = g.Shutdown(expired) // aborts stubborn
			close(late)             // its late exit detaches the group
			must(t, poll(ctx, "app.batch to be detached", 10*time.Second, 10*time.Millisecond, nil, func(context.Context) (bool, error) {
				return !serverState(sup).hasGroup("app.batch"), nil
			}))
			g.Go("rejected", stuck)
			_ = deep.Shutdown(context.Background())
		}},
	}
	for _, step := range steps {
		step.do()
		err := poll(ctx, "the page to show what the server has after: "+step.name, 20*time.Second, 100*time.Millisecond, nil,
			func(ctx context.Context) (bool, error) {
				page, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](pageStateJS))
				if err != nil {
					return false, err
				}
				err = shownByServer(page.Tasks, page.Groups, serverState(sup))
				if err == nil && len(page.Miscounted) > 0 {
					err = fmt.Errorf("section counts disagree with their rows: %v", page.Miscounted)
				}
				return err == nil, err
			})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Periods, written by the page's script for tasks it learns of from
	// the stream, read as the server writes them (float seconds on the
	// wire: 61.1 - 60 is 1.1000000000000014).
	want := map[string]string{}
	for _, d := range []time.Duration{1001 * time.Millisecond, 61100 * time.Millisecond, 250500 * time.Microsecond, 2 * time.Hour} {
		task := sup.Group("cron").Every(d.String(), d, func(context.Context) error { return nil })
		want[fmt.Sprint(task.ID())] = "every " + d.String()
	}
	must(t, poll(ctx, "the page to show the periods", 20*time.Second, 100*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](intervalsJS))
		if err != nil {
			return false, err
		}
		for id, w := range want {
			if got[id] != w {
				return false, fmt.Errorf("task %s: page shows %q, want %q", id, got[id], w)
			}
		}
		return true, nil
	}))
}

// shownByServer says how a page showing tasks and groups differs from the
// server: it must show exactly the server's tasks and states, and only
// groups the server has.
func shownByServer(tasks map[string]string, groups []string, server pageState) error {
	if !maps.Equal(tasks, server.Tasks) {
		return fmt.Errorf("tasks: page %v, server %v", tasks, server.Tasks)
	}
	for _, g := range groups {
		if !slices.Contains(server.Groups, g) {
			return fmt.Errorf("the page shows group %s; the server has %v", g, server.Groups)
		}
	}
	return nil
}

const intervalsJS = `Object.fromEntries(Array.from(document.querySelectorAll("#tree tr[data-task-id]")).map(r => [r.dataset.taskId, r.querySelector(".interval").textContent]))`

// servePage serves sup's task page and stream's events (through events
// when it is not nil) and opens the page, with query (such as
// group=app.ingest) when it is not empty, live, in headless Chromium. It
// returns the browser's context, with a budget of 2 minutes. When the test
// ends it closes the stream and the server and shuts sup down: release
// what blocks the tasks first, in a defer.
func servePage(t *testing.T, sup *runtime.Supervisor, stream *diagnostics.Stream, events http.Handler, query string) context.Context {
	t.Helper()
	srv, bctx := pageServer(t, sup, stream, events)
	page := srv.URL + "/debug/tasks"
	if query != "" {
		page += "?" + query
	}
	must(t, chromedp.Do(bctx, chromedp.Navigate(page))) // starts the browser, for as long as bctx
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancel)
	must(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#status[data-status="live"]`))))
	return ctx
}

// pageServer serves sup's task page at /debug/tasks and stream's events
// (through events when it is not nil) at /debug/events, and returns the
// server and a headless Chromium's context, not started yet. When the test
// ends it closes the stream and the server and shuts sup down.
func pageServer(t *testing.T, sup *runtime.Supervisor, stream *diagnostics.Stream, events http.Handler) (*httptest.Server, context.Context) {
	t.Helper()
	chromium := chromiumPath()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium: %v (make tools installs Debian's)", err)
	}
	if events == nil {
		events = diagnostics.EventsHandler(stream)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/tasks", diagnostics.TasksHandler(sup))
	mux.Handle("/debug/events", events)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		stream.Close()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sup.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv, startBrowser(t, chromium, io.Discard)
}

// pageState is what the page shows: task states by id, and groups as
// "name#id^parent id", so that a group shown under the wrong parent shows.
// Page sections without id (groups placed by a guess) read "#?".
type pageState struct {
	Tasks  map[string]string `json:"tasks"`
	Groups []string          `json:"groups"`
	// Miscounted lists the sections whose heading counts disagree with
	// the states of the rows below them (the page's own, not the
	// server's: counts follow a frame after the rows).
	Miscounted []string `json:"miscounted"`
}

const pageStateJS = `({
  tasks: Object.fromEntries(Array.from(document.querySelectorAll("#tree tr[data-task-id]")).map(r => [r.dataset.taskId, r.dataset.state])),
  groups: Array.from(document.querySelectorAll("#tree section.group")).map(g => {
    const p = g.parentElement.closest("section.group");
    return g.dataset.group + "#" + (g.dataset.groupId || "?") + "^" + (p ? p.dataset.groupId || "?" : "") +
      (g.dataset.canceled === "true" ? " canceled" : "") + (g.dataset.closed === "true" ? " closed" : "");
  }),
  miscounted: Array.from(document.querySelectorAll("#tree section.group")).filter(g => {
    const n = (st) => g.querySelectorAll('tr[data-state="' + st + '"]').length;
    return g.querySelector(":scope > h2 .counts").textContent !==
      n("running") + " running · " + n("canceling") + " canceling · " + n("abandoned") + " abandoned";
  }).map(g => g.dataset.group + "#" + (g.dataset.groupId || "?") + ": " + g.querySelector(":scope > h2 .counts").textContent),
})`

func serverState(sup *runtime.Supervisor) pageState {
	return stateOf(diagnostics.NewSnapshotJSON(sup.Snapshot(), time.Now()))
}

// hasGroup reports whether s shows a group named name (Groups holds
// "name#id^parent flags").
func (s pageState) hasGroup(name string) bool {
	return slices.ContainsFunc(s.Groups, func(g string) bool { return strings.HasPrefix(g, name+"#") })
}

// stateOf is what a snapshot shows, as pageState.
func stateOf(snap diagnostics.SnapshotJSON) pageState {
	s := pageState{Tasks: map[string]string{}}
	var walk func(g diagnostics.GroupJSON, parent string)
	walk = func(g diagnostics.GroupJSON, parent string) {
		flags := ""
		if g.Canceled {
			flags += " canceled"
		}
		if g.Closed {
			flags += " closed"
		}
		s.Groups = append(s.Groups, fmt.Sprintf("%s#%d^%s%s", g.Name, g.ID, parent, flags))
		for _, t := range g.Tasks {
			s.Tasks[fmt.Sprint(t.ID)] = t.State
		}
		for _, c := range g.Groups {
			walk(c, fmt.Sprint(g.ID))
		}
	}
	walk(snap.Root, "")
	return s
}

// TestTaskPageBacksOffARefusedStream: once the stream is closed (the
// server shutting down) the events endpoint answers 503, and the page,
// shown stale, retries less and less often instead of every 2 seconds.
func TestTaskPageBacksOffARefusedStream(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	var tries atomic.Int32
	events := diagnostics.EventsHandler(stream)
	ctx := servePage(t, sup, stream, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		events.ServeHTTP(w, r)
	}), "")
	stream.Close() // ends the page's stream; every retry gets a 503
	start := tries.Load()
	const window = 12 * time.Second
	time.Sleep(window) // the page's own timers run in the browser
	// Every 2 s would be 6 retries; 2, 4 then 8 s apart is 3.
	if n := tries.Load() - start; n > 4 || n == 0 {
		t.Errorf("%d connection attempts in %v after the stream closed, want 1 to 4", n, window)
	}
	stale, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("tree").dataset.stale`))
	if err != nil || stale != "true" {
		t.Errorf("the tree is not shown stale while the stream is refused (%q, %v)", stale, err)
	}
}

// TestTaskPageGroupFilter opens the page with ?group=app.ingest: it shows
// what the server's JSON with that ?group= has (both groups named
// app.ingest, with their subgroups, and the root without its tasks), says
// so in its header, and follows it live from the event stream filtered the
// same way, with no snapshot re-fetch: tasks spawned later in other groups
// never show, not even for a moment, those spawned later in app.ingest
// (and in a new group below it) do, and a cancel of the root, an ancestor,
// reaches the tasks shown. Once its stream is cut, it re-fetches the
// snapshot with the same ?group=.
func TestTaskPageGroupFilter(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	release := make(chan struct{})
	defer close(release)
	waiting := func(ctx context.Context) error { <-ctx.Done(); <-release; return nil }
	ingest, ingester, web := sup.Group("ingest"), sup.Group("ingester"), sup.Group("web")
	kafka := ingest.Group("kafka")
	shown := map[string]bool{} // task ids the page must show
	for _, task := range []*runtime.Task{
		ingest.Go("fetch", waiting),
		kafka.Go("consume", waiting),
		sup.Group("ingest").Go("twin", waiting),
	} {
		shown[fmt.Sprint(task.ID())] = true
	}
	sup.Go("root", waiting)
	ingester.Go("other", waiting)
	web.Go("serve", waiting)

	const query = "group=app.ingest"
	events := newKickable(diagnostics.EventsHandler(stream))
	defer events.close()
	ctx := servePage(t, sup, stream, events, query)
	filter, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("filter").textContent`))
	must(t, err)
	if !strings.Contains(filter, "app.ingest") {
		t.Errorf("the page's header says %q, not that it shows app.ingest only", filter)
	}
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(pageRecorder, "group filter")))
	must(t, err)
	check := func(what string) {
		t.Helper()
		err := poll(ctx, "the page to show what the server has for ?"+query+" after: "+what, 20*time.Second, 100*time.Millisecond, nil,
			func(ctx context.Context) (bool, error) {
				page, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](pageStateJS))
				if err != nil {
					return false, err
				}
				server, err := servedState(sup, query)
				if err != nil {
					return false, err
				}
				if got := slices.Sorted(maps.Keys(page.Tasks)); !slices.Equal(got, slices.Sorted(maps.Keys(shown))) {
					return false, fmt.Errorf("the page shows tasks %v, want %v", got, slices.Sorted(maps.Keys(shown)))
				}
				if !maps.Equal(page.Tasks, server.Tasks) {
					return false, fmt.Errorf("tasks: page %v, server %v", page.Tasks, server.Tasks)
				}
				slices.Sort(page.Groups)
				slices.Sort(server.Groups)
				if !slices.Equal(page.Groups, server.Groups) {
					return false, fmt.Errorf("groups: page %v, server %v", page.Groups, server.Groups)
				}
				return true, nil
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	check("the page loaded")

	// Other groups' tasks first: once the page shows app.ingest's, which
	// came after, it has had every event it was sent before them.
	hidden := map[string]bool{}
	for _, task := range []*runtime.Task{
		web.Go("web-later", waiting),
		ingester.Go("ingester-later", waiting),
		sup.Go("root-later", waiting),
	} {
		hidden[fmt.Sprint(task.ID())] = true
	}
	for _, task := range []*runtime.Task{
		ingest.Go("ingest-later", waiting),
		kafka.Group("part").Go("part-later", waiting),
	} {
		shown[fmt.Sprint(task.ID())] = true
	}
	check("spawns in other groups, then in app.ingest")

	sup.Cancel(errors.New("ancestor canceled")) // its tasks wait for release: canceling
	check("a cancel of the root")

	log, err := chromedp.Run(ctx, chromedp.Evaluate[[]pageChange](`window.__e2e.log`))
	must(t, err)
	for _, c := range log {
		switch {
		case c.Op == "resync":
			t.Errorf("the page re-fetched its snapshot: it should have followed the stream alone")
		case c.Op == "add" && hidden[c.ID]:
			t.Errorf("the page showed task %s, of a group not asked for", c.ID)
		}
	}

	// Cut off, the page re-fetches the snapshot.
	events.kick()
	web.Go("web-cut", waiting)
	shown[fmt.Sprint(ingest.Go("ingest-cut", waiting).ID())] = true
	must(t, poll(ctx, "the page to re-fetch its snapshot", 20*time.Second, 100*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__e2e.log.some(c => c.op === "resync")`))
	}))
	check("a cut of the event stream")
}

// servedState is what the task page with query (in its JSON form) has.
func servedState(sup *runtime.Supervisor, query string) (pageState, error) {
	rec := httptest.NewRecorder()
	diagnostics.TasksHandler(sup).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/tasks?format=json&"+query, nil))
	var snap diagnostics.SnapshotJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
		return pageState{}, fmt.Errorf("?%s: %d %v", query, rec.Code, err)
	}
	return stateOf(snap), nil
}

// TestTaskPageForgetsDroppedGroups: a service that makes a group per
// request and drops it after its Wait leaves the runtime nothing to keep
// (it collects such groups, and tells nobody), but the page made a section
// for each from its first spawn. Left open, the page must not grow with
// the requests: it keeps at most its idle limit (the #tree element's
// data-idle-limit) of sections emptied while it watched, forgetting the
// oldest, and still shows every task the server has, in groups the server
// has. It follows all that from the stream, with no snapshot re-fetch. A
// group whose section was forgotten but which is still there gets it back
// with its next task, in the right place.
func TestTaskPageForgetsDroppedGroups(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	release := make(chan struct{})
	defer close(release)
	waiting := func(ctx context.Context) error { <-ctx.Done(); <-release; return nil }
	quick := func(context.Context) error { return nil }
	ctx := servePage(t, sup, stream, nil, "")
	limit, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.getElementById("tree").dataset.idleLimit)`))
	must(t, err)
	if limit < 1 {
		t.Fatalf("the page's idle limit is %d", limit)
	}
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](pageResyncsJS))
	must(t, err)
	var page idlePageState
	converge := func(what string, sections int) {
		t.Helper()
		err := poll(ctx, "the page to show what the server has after "+what, 20*time.Second, 100*time.Millisecond, nil,
			func(ctx context.Context) (bool, error) {
				var err error
				page, err = chromedp.Run(ctx, chromedp.Evaluate[idlePageState](idlePageStateJS))
				if err != nil {
					return false, err
				}
				// The runtime may have collected the groups of idle
				// sections: only those with tasks must be the server's.
				if err := shownByServer(page.Tasks, page.Busy, serverState(sup)); err != nil {
					return false, err
				}
				if page.Sections > sections {
					return false, fmt.Errorf("the page has %d sections, want at most %d", page.Sections, sections)
				}
				return true, nil
			})
		if err != nil {
			t.Fatal(err)
		}
	}

	sup.Group("serve").Go("listen", waiting)
	web := sup.Group("http")
	kept := web.Group("kept") // held by the test: forgotten by the page, not by the runtime
	kept.Go("first", quick)
	// In bursts the page follows without lagging.
	const requests, burst = 300, 30
	for i := range requests {
		req := web.Group("request")
		req.Go("handle", quick)
		req.Group("db").Go("query", quick)
		must(t, req.Wait(context.Background()))
		if (i+1)%burst == 0 {
			seq := sup.Snapshot().Seq
			must(t, poll(ctx, "the page to catch up", 20*time.Second, 10*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
				status, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
				return status == fmt.Sprint("live · seq ", seq), err
			}))
		}
	}
	// Each request's idle sections are its group and its db group; root,
	// serve and http are the others.
	converge(fmt.Sprint(requests, " requests"), 2*limit+3)
	resyncs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__resyncs`))
	must(t, err)
	if resyncs != 0 {
		t.Errorf("the page fetched %d snapshots: it should have followed the stream alone", resyncs)
	}
	t.Logf("after %d per-request groups the page has %d sections (idle limit %d)", requests, page.Sections, limit)

	// kept went idle first: its section is long forgotten.
	again := kept.Group("again")
	again.Go("later", waiting)
	converge("a task in a group under a forgotten one", 2*limit+5)
	want := fmt.Sprintf("%s#%d^%d", again.Name(), again.ID(), kept.ID())
	if !slices.Contains(page.Busy, want) {
		t.Errorf("the page shows %v, not %s", page.Busy, want)
	}
}

// TestTaskPageForgetsIdleGroupsOfASnapshot: the page keeps no more idle
// sections from a snapshot than from the stream. The runtime lists an
// empty group until nobody holds it (here the test holds them all); a page
// that resyncs in a busy service must not bring them back for good, nor
// lose the newest, or those with tasks.
func TestTaskPageForgetsIdleGroupsOfASnapshot(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	release := make(chan struct{})
	defer close(release)
	events := newKickable(diagnostics.EventsHandler(stream))
	ctx := servePage(t, sup, stream, events, "")
	limit, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.getElementById("tree").dataset.idleLimit)`))
	must(t, err)
	web := sup.Group("http")
	busy := web.Group("busy")
	busy.Go("listen", func(ctx context.Context) error { <-ctx.Done(); <-release; return nil })
	held := make([]*runtime.Group, 3*limit)
	for i := range held {
		held[i] = web.Group("request")
		held[i].Go("handle", func(context.Context) error { return nil })
		must(t, held[i].Wait(context.Background()))
	}
	newest := held[len(held)-1]
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](pageResyncsJS))
	must(t, err)
	events.kick() // the page starts over from a snapshot with every held group
	var page idlePageState
	must(t, poll(ctx, "the page to resync and keep the newest idle sections", 30*time.Second, 100*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		resyncs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__resyncs`))
		if err != nil || resyncs == 0 {
			return false, err
		}
		if page, err = chromedp.Run(ctx, chromedp.Evaluate[idlePageState](idlePageStateJS)); err != nil {
			return false, err
		}
		// The idle ones, and root, http and busy.
		if page.Sections > limit+3 {
			return false, fmt.Errorf("the page has %d sections after a resync, want at most %d", page.Sections, limit+3)
		}
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector('section.group[data-group-id="%d"]') !== null`, newest.ID())))
		if err != nil || !shown {
			return false, fmt.Errorf("the newest idle group is not shown (%v)", err)
		}
		if want := fmt.Sprintf("%s#%d^%d", busy.Name(), busy.ID(), web.ID()); !slices.Contains(page.Busy, want) {
			return false, fmt.Errorf("the page shows %v, not %s", page.Busy, want)
		}
		return true, nil
	}))
	goruntime.KeepAlive(held)
}

// idlePageState is pageState's tasks, the page's sections with a task
// below them ("name#id^parent flags", as pageState's groups), and how many
// sections there are.
type idlePageState struct {
	Tasks    map[string]string `json:"tasks"`
	Busy     []string          `json:"busy"`
	Sections int               `json:"sections"`
}

const idlePageStateJS = `(() => {
  const all = ` + pageStateJS + `;
  const sections = Array.from(document.querySelectorAll("#tree section.group"));
  return {
    tasks: all.tasks,
    busy: all.groups.filter((_, i) => sections[i].querySelector("tr[data-task-id]") !== null),
    sections: sections.length,
  };
})()`

// TestTaskPageShowsTheRunInProgress: a periodic task's runs cell says
// how old its run in progress is, from the snapshot the page starts from
// and from the stream's run events, and nothing more between runs.
func TestTaskPageShowsTheRunInProgress(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	defer func() {
		for _, c := range release {
			select {
			case <-c:
			default:
				close(c)
			}
		}
	}()
	var runs atomic.Int64
	task := sup.Every("sweep", 300*time.Millisecond, func(context.Context) error {
		if n := runs.Add(1); n <= 2 {
			<-release[n-1]
		}
		return nil
	})
	ctx := servePage(t, sup, stream, nil, "")
	cell := fmt.Sprintf(`document.querySelector('tr[data-task-id="%d"] .runs').textContent`, task.ID())
	await := func(what string, ok func(string) bool) {
		t.Helper()
		var last string
		err := poll(ctx, what, 20*time.Second, 50*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](cell))
			if err == nil {
				last = text
			}
			return err == nil && ok(text), err
		})
		if err != nil {
			t.Fatalf("%v (the runs cell reads %q)", err, last)
		}
	}
	inRun := func(n string) func(string) bool {
		return func(s string) bool { return strings.HasPrefix(s, n+" · run ") && strings.HasSuffix(s, "s") }
	}
	await("run 1, from the snapshot", inRun("1"))
	close(release[0])
	await("run 1 over", func(s string) bool { return s == "1" || inRun("2")(s) })
	await("run 2, from the stream", inRun("2"))
	close(release[1])
	await("run 2 over", func(s string) bool { n, err := strconv.Atoi(s); return err == nil && n >= 2 })
}

// TestTaskPageShowsTheLastRun: a periodic task's last-run cell says how
// its last run ended (run, outcome, when, and the error as text, whole in
// the title), as the server's snapshot has it: live from the stream's
// run_finished events, and after a reload from the snapshot; a run that
// succeeds after a failure clears the error. The error is markup that
// must not run.
func TestTaskPageShowsTheLastRun(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	// Each run waits for its turn: the test ends runs one at a time.
	turns := make(chan error)
	done := make(chan struct{})
	defer close(done)
	task := sup.Every("sync", 10*time.Millisecond, func(context.Context) error {
		select {
		case err := <-turns:
			return err
		case <-done:
			return nil
		}
	})
	ctx := servePage(t, sup, stream, nil, "")

	// shown is the cell, and the server's last_run, in the same terms.
	type shown struct {
		Run      string `json:"run"`
		Outcome  string `json:"outcome"`
		Ended    string `json:"ended"`
		Title    string `json:"title"`
		Error    string `json:"error"`
		Summary  string `json:"summary"`
		XSS      bool   `json:"xss"`
		ImgCount int    `json:"img"`
	}
	cellJS := fmt.Sprintf(`(() => {
  const td = document.querySelector('tr[data-task-id="%d"] .last-run');
  const text = (sel) => { const el = td.querySelector(sel); return el ? el.textContent : ""; };
  return {run: td.dataset.run || "", outcome: td.dataset.outcome || "", ended: td.dataset.ended || "", title: td.title,
    error: text(".error"), summary: text(".summary"), xss: typeof __xss !== "undefined", img: document.querySelectorAll("img").length};
})()`, task.ID())
	server := func() (shown, bool) {
		for _, ti := range diagnostics.NewSnapshotJSON(sup.Snapshot(), time.Now()).Root.Tasks {
			if r := ti.LastRun; ti.ID == task.ID() && r != nil {
				return shown{Run: fmt.Sprint(r.Run), Outcome: r.Outcome, Ended: r.Ended.Format(time.RFC3339Nano), Title: r.Error, Error: r.Error}, true
			}
		}
		return shown{}, false
	}
	// await polls until the page shows run's end as the server has it.
	await := func(what string, run int, words string) {
		t.Helper()
		var page, want shown
		err := poll(ctx, what, 20*time.Second, 50*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
			got, err := chromedp.Run(ctx, chromedp.Evaluate[shown](cellJS))
			if err != nil {
				return false, err
			}
			page = got
			var ok bool
			if want, ok = server(); !ok || want.Run != fmt.Sprint(run) {
				return false, nil
			}
			if ended, err := time.Parse(time.RFC3339Nano, got.Ended); err == nil {
				got.Ended = ended.Format(time.RFC3339Nano) // as the server writes it
			}
			got.Summary, got.XSS, got.ImgCount = "", false, 0
			return got == want && strings.HasPrefix(page.Summary, fmt.Sprintf("run %d %s ", run, words)) && strings.HasSuffix(page.Summary, "s ago"), nil
		})
		if err != nil {
			t.Fatalf("%v: the page shows %+v, the server %+v", err, page, want)
		}
	}

	// Run 1 fails while the page is open: the page learns of it live.
	const failure = `upstream refused <img src=x onerror=__xss=1>`
	turns <- errors.New(failure)
	await("run 1's failure, live", 1, "failed")
	reload := func() {
		t.Helper()
		must(t, chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#status[data-status="live"]`))))
	}
	reload()
	await("run 1's failure, after a reload", 1, "failed")
	page, err := chromedp.Run(ctx, chromedp.Evaluate[shown](cellJS))
	must(t, err)
	if page.XSS || page.ImgCount != 0 || page.Error != failure {
		t.Errorf("the run's error ran or made elements (__xss set %v, %d images), or is not shown as text: %q", page.XSS, page.ImgCount, page.Error)
	}

	// Run 2 succeeds: no error any more, live and after a reload.
	turns <- nil
	await("run 2's success, live", 2, "finished")
	reload()
	await("run 2's success, after a reload", 2, "finished")
}

// TestTaskPageSaysWhenNoGroupMatches: a page narrowed to a group that is
// not there (a dashboard link to a group that has ended, or that belongs
// to another supervisor) says so, and stops saying it once such a group
// shows, live; once the page forgets it (idle, beyond the idle limit), it
// says so again.
func TestTaskPageSaysWhenNoGroupMatches(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	done := make(chan struct{})
	var finish sync.Once
	defer finish.Do(func() { close(done) })
	ctx := servePage(t, sup, stream, nil, "group=app.later")
	_, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("tree").dataset.idleLimit = "0"`))
	must(t, err)
	shown := func(want bool, what string) {
		t.Helper()
		must(t, poll(ctx, what, 20*time.Second, 50*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
			hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("nomatch").hidden`))
			return err == nil && hidden != want, err
		}))
	}
	shown(true, "the notice, with no app.later")
	sup.Group("later").Go("work", func(context.Context) error { <-done; return nil })
	shown(false, "the notice gone, app.later shown")
	finish.Do(func() { close(done) })
	shown(true, "the notice back, app.later forgotten once idle")
}
