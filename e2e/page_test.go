package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
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
	ctx := servePage(t, sup, stream, nil)

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
				return !slices.Contains(serverState(sup).Groups, "app.batch"), nil
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
				server := serverState(sup)
				if !maps.Equal(page.Tasks, server.Tasks) {
					return false, fmt.Errorf("tasks: page %v, server %v", page.Tasks, server.Tasks)
				}
				for _, g := range page.Groups {
					if !slices.Contains(server.Groups, g) {
						return false, fmt.Errorf("the page shows group %s; the server has %v", g, server.Groups)
					}
				}
				return true, nil
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

const intervalsJS = `Object.fromEntries(Array.from(document.querySelectorAll("#tree tr[data-task-id]")).map(r => [r.dataset.taskId, r.querySelector(".interval").textContent]))`

// servePage serves sup's task page and stream's events (through events
// when it is not nil) and opens the page, live, in headless Chromium. It
// returns the browser's context, with a budget of 2 minutes. When the test
// ends it closes the stream and the server and shuts sup down: release
// what blocks the tasks first, in a defer.
func servePage(t *testing.T, sup *runtime.Supervisor, stream *diagnostics.Stream, events http.Handler) context.Context {
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
	bctx := startBrowser(t, chromium, io.Discard)
	must(t, chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/debug/tasks"))) // starts the browser, for as long as bctx
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancel)
	must(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#status[data-status="live"]`))))
	return ctx
}

// pageState is what the page shows: task states by id, and groups as
// "name#id^parent id", so that a group shown under the wrong parent shows.
// Page sections without id (groups placed by a guess) read "#?".
type pageState struct {
	Tasks  map[string]string `json:"tasks"`
	Groups []string          `json:"groups"`
}

const pageStateJS = `({
  tasks: Object.fromEntries(Array.from(document.querySelectorAll("#tree tr[data-task-id]")).map(r => [r.dataset.taskId, r.dataset.state])),
  groups: Array.from(document.querySelectorAll("#tree section.group")).map(g => {
    const p = g.parentElement.closest("section.group");
    return g.dataset.group + "#" + (g.dataset.groupId || "?") + "^" + (p ? p.dataset.groupId || "?" : "") +
      (g.dataset.canceled === "true" ? " canceled" : "") + (g.dataset.closed === "true" ? " closed" : "");
  }),
})`

func serverState(sup *runtime.Supervisor) pageState {
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
	walk(diagnostics.NewSnapshotJSON(sup.Snapshot(), time.Now()).Root, "")
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
	}))
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
