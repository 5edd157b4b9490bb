package diagnostics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

func ExampleNewLogObserver() {
	// Drop the attributes that change from run to run.
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelInfo, // lifecycle records (debug) cost nothing
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "duration", "code.function.name", runtime.AttrGroupID:
				return slog.Attr{}
			}
			return a
		},
	})
	sup := runtime.New("svc", runtime.WithObserver(diagnostics.NewLogObserver(slog.New(h))))
	sup.Group("ingest").Go("fetch", func(context.Context) error {
		return errors.New("upstream unavailable")
	})
	_ = sup.Wait(context.Background())
	// Output:
	// level=WARN msg="task failed" event=taskscope.task.finished taskscope.group=svc.ingest taskscope.task.name=fetch taskscope.task.id=1 taskscope.task.outcome=error error.type=*errors.errorString error="upstream unavailable"
}

func ExampleStream_Subscribe() {
	stream := diagnostics.NewStream()
	sup := runtime.New("svc", runtime.WithObserver(stream))
	ctx := context.Background()

	// Start from a snapshot, then follow the events after it.
	snap := sup.Snapshot()
	sub := stream.Subscribe(ctx, diagnostics.After(snap.Seq), diagnostics.Kinds(runtime.KindTaskFinished))
	defer sub.Close()

	sup.Go("ok", func(context.Context) error { return nil })
	_ = sup.Wait(ctx)
	sup.Go("bad", func(context.Context) error { panic("boom") })
	_ = sup.Wait(ctx)

	sub.Close() // Events ends once what was buffered is delivered
	for ev := range sub.Events() {
		fmt.Println(ev.Kind, ev.Task, ev.Outcome, ev.Level())
	}
	// Output:
	// taskscope.task.finished ok success DEBUG
	// taskscope.task.finished bad panic ERROR
}

// The handlers are mounted side by side; a client reads the task tree as
// JSON, then follows the events from its Seq (here as NDJSON, one
// EventJSON per line; a browser's EventSource gets Server-Sent Events).
func ExampleEventsHandler() {
	stream := diagnostics.NewStream()
	sup := runtime.New("svc", runtime.WithObserver(stream))

	mux := http.NewServeMux()
	mux.Handle("GET /debug/tasks", diagnostics.TasksHandler(sup))
	mux.Handle("GET /debug/events", diagnostics.EventsHandler(stream))
	srv := httptest.NewServer(mux) // a service: &http.Server{...}
	defer srv.Close()
	defer stream.Close() // first: the event stream ends, then the server can close
	// A service calls srv.RegisterOnShutdown(stream.Close) for the same.

	resp, err := srv.Client().Get(srv.URL + "/debug/tasks?format=json")
	if err != nil {
		panic(err)
	}
	var snap diagnostics.SnapshotJSON
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil {
		panic(err)
	}
	fmt.Println("tasks:", resp.StatusCode, snap.Root.Name, len(snap.Root.Tasks))

	// Work happens after the snapshot; ?after= its Seq replays it.
	sup.Go("ok", func(context.Context) error { return nil })
	sup.Go("bad", func(context.Context) error { return errors.New("quota exceeded") })
	_ = sup.Wait(context.Background())

	url := fmt.Sprintf("%s/debug/events?format=ndjson&kind=%s&after=%d", srv.URL, runtime.KindTaskFinished, snap.Seq)
	resp, err = srv.Client().Get(url)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println("events:", resp.StatusCode, resp.Header.Get("Content-Type"))
	lines := bufio.NewScanner(resp.Body)
	finished := map[string]diagnostics.EventJSON{} // by task: events of two tasks may come in either order
	for len(finished) < 2 && lines.Scan() {
		var ev diagnostics.EventJSON
		if json.Unmarshal(lines.Bytes(), &ev) == nil { // keep-alives are empty lines
			finished[ev.Task] = ev
		}
	}
	fmt.Println("ok:", finished["ok"].Outcome)
	fmt.Println("bad:", finished["bad"].Outcome, finished["bad"].ErrorType, finished["bad"].Error)
	// Output:
	// tasks: 200 svc 0
	// events: 200 application/x-ndjson
	// ok: success
	// bad: error *errors.errorString quota exceeded
}

// TasksHandler serves the live tree: JSON for scripts (as here), or a page
// that follows the event stream for people.
func ExampleTasksHandler() {
	sup := runtime.New("svc")
	release := make(chan struct{})
	sup.Group("ingest").Go("consumer", func(ctx context.Context) error {
		<-release
		return nil
	})

	rec := httptest.NewRecorder()
	diagnostics.TasksHandler(sup).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/tasks?format=json", nil))
	var snap diagnostics.SnapshotJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
		panic(err)
	}
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	for _, g := range snap.Root.Groups {
		for _, t := range g.Tasks {
			fmt.Println(g.Name, t.Name, t.State)
		}
	}
	close(release)
	_ = sup.Wait(context.Background())
	// Output:
	// 200 application/json
	// svc.ingest consumer running
}
