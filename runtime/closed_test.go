package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

func TestSpawnOnClosedGroupIsRejected(t *testing.T) {
	bubble(t, func(t *testing.T) {
		sup, rec := recorded()
		<-sup.Go("before", func(context.Context) error { return nil }).Done()
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		ran := false
		task := sup.Go("late", func(context.Context) error { ran = true; return nil })
		select {
		case <-task.Done():
		default:
			t.Fatal("a rejected task's Done is not closed on return")
		}
		if ran {
			t.Fatal("fn ran on a closed group")
		}
		r := task.Result()
		if r.Outcome != runtime.Canceled || !errors.Is(r.Err, runtime.ErrClosed) || r.Cause != r.Err {
			t.Fatalf("Result = %+v, want canceled wrapping ErrClosed, with Err as the Cause", r)
		}
		want := []string{runtime.KindTaskSpawned, runtime.KindTaskRejected, runtime.KindTaskFinished}
		if got := rec.Kinds(task.ID()); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if rec.Count(runtime.KindTaskSpawned) != 2 || rec.Outcomes()[runtime.Canceled] != 1 {
			t.Fatal("a rejected spawn must count as spawned and finish canceled")
		}
		for _, ev := range rec.Events() {
			if ev.Rejected != (ev.TaskID == task.ID()) {
				t.Errorf("%s of task %d: Rejected = %v; only the rejected task's events carry it", ev.Kind, ev.TaskID, ev.Rejected)
			}
		}
	})
}

func TestRejectedNilFnStillPanics(t *testing.T) {
	sup := runtime.New("")
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectPanic(t, "nil function", func() { sup.Go("x", nil) })
}

// TestClosedMessagesSayItOnce: a shutdown's cause and a refused spawn's
// error match ErrClosed without repeating its "taskscope: group closed"
// after their own message, which every canceled task's log line carries.
func TestClosedMessagesSayItOnce(t *testing.T) {
	sup := runtime.New("app")
	g := sup.Group("g")
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	refused := g.Go("late", func(context.Context) error { return nil }).Result().Err
	for _, c := range []struct {
		err  error
		want string
	}{
		{context.Cause(g.Context()), "taskscope: group app.g shut down"},
		{refused, "taskscope: app.g/late not started: group closed"},
	} {
		if !errors.Is(c.err, runtime.ErrClosed) || c.err.Error() != c.want {
			t.Errorf("%q (errors.Is ErrClosed: %v), want %q", c.err, errors.Is(c.err, runtime.ErrClosed), c.want)
		}
		// A task failing with it (returned, wrapped) has error.type
		// "closed", not the name of an unexported type.
		if got := runtime.ErrorType(runtime.Error, fmt.Errorf("fetch: %w", c.err)); got != "closed" {
			t.Errorf("ErrorType of %q = %q, want closed", c.err, got)
		}
	}
}
