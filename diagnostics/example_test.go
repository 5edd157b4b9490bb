package diagnostics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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

func ExampleEventsHandler() {
	stream := diagnostics.NewStream()
	sup := runtime.New("svc", runtime.WithObserver(stream))

	// Side by side: the page at /debug/tasks reads /debug/events.
	mux := http.NewServeMux()
	mux.Handle("GET /debug/tasks", diagnostics.TasksHandler(sup))
	mux.Handle("GET /debug/events", diagnostics.EventsHandler(stream))

	srv := &http.Server{Addr: "localhost:6060", Handler: mux}
	srv.RegisterOnShutdown(stream.Close) // end the streams, or Shutdown waits for them
	_ = srv
}
