package runtime_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// recordsTo collects the records slog.Default() is given while the test
// runs, as attribute maps with the message under "msg".
type recordsTo struct {
	mu      sync.Mutex // guards records
	records []map[string]string
}

func (h *recordsTo) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordsTo) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordsTo) WithGroup(string) slog.Handler            { return h }

func (h *recordsTo) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, m)
	return nil
}

func (h *recordsTo) taken() []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.records
}

// defaultLogTo makes slog.Default() record into a fresh handler until the
// test ends.
func defaultLogTo(t *testing.T) *recordsTo {
	h := &recordsTo{}
	old := slog.Default()
	slog.SetDefault(slog.New(h))
	t.Cleanup(func() { slog.SetDefault(old) })
	return h
}

// panickingHandler is a slog handler whose Handle panics.
type panickingHandler struct{ recordsTo }

func (h *panickingHandler) Handle(context.Context, slog.Record) error { panic("handler broke") }

// TestUnobservedPanicLogCannotCrash: a default handler that panics while
// the task's panic is logged leaves the task ended with outcome panic, and
// the process alive.
func TestUnobservedPanicLogCannotCrash(t *testing.T) {
	old := slog.Default()
	slog.SetDefault(slog.New(&panickingHandler{}))
	t.Cleanup(func() { slog.SetDefault(old) })
	synctest.Test(t, func(t *testing.T) {
		task := runtime.New("app").Go("boom", func(context.Context) error { panic("boom") })
		<-task.Done()
		if got := task.Result().Outcome; got != runtime.Panic {
			t.Errorf("outcome %v, want panic", got)
		}
	})
}

func TestUnobservedPanicIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []runtime.Option
		periodic bool
		want     int
	}{
		{name: "plain task", want: 1},
		{name: "periodic task", periodic: true, want: 1},
		{name: "observed", opts: []runtime.Option{runtime.WithObserver(new(runtimetest.Recorder))}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged := defaultLogTo(t)
			synctest.Test(t, func(t *testing.T) {
				sup := runtime.New("app", tc.opts...)
				g := sup.Group("workers")
				boom := func(context.Context) error { panic("boom") }
				var task *runtime.Task
				if tc.periodic {
					task = g.Every("tick", time.Second, boom)
				} else {
					task = g.Go("tick", boom)
				}
				<-task.Done()
				if got := task.Result().Outcome; got != runtime.Panic {
					t.Fatalf("outcome %v, want panic", got)
				}
				records := logged.taken()
				if len(records) != tc.want {
					t.Fatalf("%d records, want %d: %v", len(records), tc.want, records)
				}
				if tc.want == 0 {
					return
				}
				r := records[0]
				for k, want := range map[string]string{
					"msg":                "task panicked",
					"level":              "ERROR",
					"event":              runtime.KindTaskFinished,
					runtime.AttrGroup:    "app.workers",
					runtime.AttrTaskName: "tick",
					runtime.AttrOutcome:  "panic",
					"exception.message":  "boom",
				} {
					if r[k] != want {
						t.Errorf("%s = %q, want %q", k, r[k], want)
					}
				}
				if !strings.Contains(r["exception.stacktrace"], "panic(") {
					t.Errorf("exception.stacktrace = %q, want the panic's stack", r["exception.stacktrace"])
				}
			})
		})
	}
}

// TestLoneObserverPanicIsLogged: an observer's panic is told to the other
// observers; when the one that panicked is the only one, it goes to
// slog.Default() instead, as a task's panic does with no observer, rather
// than vanishing (an error tracker that panics on every event would go
// quiet with nothing said).
func TestLoneObserverPanicIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []runtime.Option
		want int
	}{
		{name: "alone", want: 2},
		{name: "with another observer", opts: []runtime.Option{runtime.WithObserver(new(runtimetest.Recorder))}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged := defaultLogTo(t)
			synctest.Test(t, func(t *testing.T) {
				opts := append([]runtime.Option{runtime.WithObserver(panicky{onStart: true, onObserve: true})}, tc.opts...)
				task := runtime.New("app", opts...).Go("work", func(context.Context) error { return nil })
				<-task.Done()
				records := logged.taken()
				if len(records) != tc.want {
					t.Fatalf("%d records, want %d: %v", len(records), tc.want, records)
				}
				for i, r := range records {
					for k, want := range map[string]string{
						"msg":                "observer panicked",
						"level":              "ERROR",
						"event":              runtime.KindObserverPanicked,
						runtime.AttrGroup:    "app",
						runtime.AttrTaskName: "work",
					} {
						if r[k] != want {
							t.Errorf("record %d: %s = %q, want %q", i, k, r[k], want)
						}
					}
					if m := r["exception.message"]; !strings.Contains(m, "runtime_test.panicky") || !strings.Contains(m, "observer") {
						t.Errorf("record %d: exception.message = %q, want the observer and its panic", i, m)
					}
					if !strings.Contains(r["exception.stacktrace"], "panicky") {
						t.Errorf("record %d: exception.stacktrace = %q, want the observer's stack", i, r["exception.stacktrace"])
					}
				}
			})
		})
	}
}
