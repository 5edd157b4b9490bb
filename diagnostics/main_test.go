package diagnostics_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a slog.Handler that keeps the records it is given.
type recorder struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), r.recs...)
}

// byKind returns the records whose "event" attribute is kind.
func (r *recorder) byKind(kind string) []slog.Record {
	var out []slog.Record
	for _, rec := range r.records() {
		if a := attrs(rec); a["event"].String() == kind {
			out = append(out, rec)
		}
	}
	return out
}

func attrs(rec slog.Record) map[string]slog.Value {
	m := map[string]slog.Value{}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value
		return true
	})
	return m
}

// collect closes sub and returns everything it still delivers.
func collect(sub *diagnostics.Subscription) []runtime.Event {
	sub.Close()
	var out []runtime.Event
	for ev := range sub.Events() {
		out = append(out, ev)
	}
	return out
}

// publish feeds events straight to an observer, as the runtime would.
func publish(o runtime.Observer, evs ...runtime.Event) {
	for _, ev := range evs {
		if ev.Kind == runtime.KindTaskSpawned || ev.Kind == runtime.KindTaskRunStarted {
			o.TaskStarting(context.Background(), ev)
		} else {
			o.Observe(context.Background(), ev)
		}
	}
}

// seqEvents returns task events with the given sequence numbers, in that
// (arrival) order.
func seqEvents(seqs ...uint64) []runtime.Event {
	out := make([]runtime.Event, len(seqs))
	for i, s := range seqs {
		out[i] = runtime.Event{Seq: s, Kind: runtime.KindTaskFinished, Group: "runtime", Task: "t", TaskID: s, Outcome: runtime.Success}
	}
	return out
}

func seqs(evs []runtime.Event) []uint64 {
	out := make([]uint64, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}
