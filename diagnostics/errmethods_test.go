package diagnostics_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// Typed-nil errors (var e *T; return e) whose methods dereference their
// receiver: calling the method panics.
type (
	nilMessageError struct{ msg string }
	nilUnwrapError  struct{ inner error }
	nilIsError      struct{ target error }
	nilAsError      struct{ target any }
)

func (e *nilMessageError) Error() string   { return e.msg }
func (*nilUnwrapError) Error() string      { return "unwrap" }
func (e *nilUnwrapError) Unwrap() error    { return e.inner }
func (*nilIsError) Error() string          { return "is" }
func (e *nilIsError) Is(target error) bool { return e.target == target }
func (*nilAsError) Error() string          { return "as" }
func (e *nilAsError) As(target any) bool   { return e.target == target }

// errList is an error type that == cannot compare: comparing two panics.
type errList []error

func (errList) Error() string { return "list" }

// panickyTypeError wraps an error and has an ErrorType method that panics.
type panickyTypeError struct{ err error }

func (*panickyTypeError) Error() string     { return "typed" }
func (e *panickyTypeError) Unwrap() error   { return e.err }
func (*panickyTypeError) ErrorType() string { panic("ErrorType") }

// finishes runs f and reports whether it returned. The timer is a
// watchdog that turns a deadlock into a failure (f's goroutine is then
// left blocked); nothing waits on it otherwise.
func finishes(f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	watchdog := time.NewTimer(10 * time.Second)
	defer watchdog.Stop()
	select {
	case <-done:
		return true
	case <-watchdog.C:
		return false
	}
}

// TestStreamSurvivesErrorMethodsThatPanic: a task error that makes the
// stream's capping panic (methods that panic; a type == cannot compare; an
// ErrorType that panics when a wrapped panic's stack is cut) is published
// like any other, and the stream goes on. A panic with the stream's lock
// held (the runtime recovers observer panics) would block every later
// publish, hence every spawn of the supervisor.
func TestStreamSurvivesErrorMethodsThatPanic(t *testing.T) {
	var errs []error
	for _, p := range panicky {
		errs = append(errs, p.err)
	}
	errs = append(errs, errList{nil}, &panickyTypeError{bigPanic()})
	s := diagnostics.NewStream()
	sub := s.Subscribe(t.Context(), diagnostics.Kinds(runtime.KindTaskFinished))
	sup := runtime.New("svc", runtime.WithObserver(s))
	ctx := context.Background()
	var want []string
	if !finishes(func() {
		for _, err := range errs {
			want = append(want, fmt.Sprintf("%T", err))
			sup.Go(want[len(want)-1], func(context.Context) error { return err })
			_ = sup.Wait(ctx)
		}
		want = append(want, "next")
		sup.Go("next", func(context.Context) error { return nil })
		_ = sup.Wait(ctx)
	}) {
		t.Fatalf("the supervisor is stuck after its stream published one of %v", errs)
	}
	_ = sup.Shutdown(ctx)
	var got []string
	for _, ev := range collect(sub) {
		got = append(got, ev.Task)
	}
	if !slices.Equal(got, want) {
		t.Errorf("finished events of %v, want %v", got, want)
	}
}

// streamError's Unwrap reads the stream's counters: any method of an
// application's error may wait for something a publisher holds.
type streamError struct{ s *diagnostics.Stream }

func (*streamError) Error() string   { return "stream" }
func (e *streamError) Unwrap() error { e.s.Published(); return nil }

// TestStreamRunsErrorMethodsOutsideItsLock: publishing runs the methods of
// an event's errors before taking the stream's lock, so a method that
// waits for it (or for whatever a publisher holds) does not deadlock.
func TestStreamRunsErrorMethodsOutsideItsLock(t *testing.T) {
	s := diagnostics.NewStream()
	if !finishes(func() {
		publish(s, runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: 1,
			Outcome: runtime.Error, Err: &streamError{s}, Cause: &streamError{s}})
	}) {
		t.Fatal("publishing an error whose Unwrap reads the stream deadlocked")
	}
}

// panicky are errors whose methods panic, with the message each renders
// as: their own, or the placeholder when Error itself panics.
var panicky = []struct {
	err error
	msg string
}{
	{(*nilMessageError)(nil), "<*diagnostics_test.nilMessageError Error() panicked: runtime error: invalid memory address or nil pointer dereference>"},
	{(*nilUnwrapError)(nil), "unwrap"},
	{(*nilIsError)(nil), "is"},
	{(*nilAsError)(nil), "as"},
}

// TestEventsSurviveErrorMethodsThatPanic: an event whose error and cause
// have methods that panic is served, its message a placeholder when Error
// panics and its cause kind "custom", and the stream goes on. Were the
// handler to panic, the client would reconnect from the event before and be
// sent the same event again, for ever.
func TestEventsSurviveErrorMethodsThatPanic(t *testing.T) {
	s, _, srv := trackedServer(t)
	resp, leave := getEvents(t, srv)
	defer leave()
	body := bufio.NewReader(resp.Body)
	readFrame(t, body) // subscribed
	for i, p := range panicky {
		publish(s, runtime.Event{Seq: uint64(i + 1), Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: uint64(i + 1),
			Outcome: runtime.Error, Err: p.err, Cause: p.err})
	}
	publish(s, seqEvents(uint64(len(panicky)+1))...)
	for _, p := range panicky {
		j := decode(t, readFrame(t, body).data)
		if j.Error != p.msg || j.Cause != p.msg || j.CauseKind != "custom" {
			t.Errorf("%T: error %q, cause %q (%s); want %q, cause kind custom", p.err, j.Error, j.Cause, j.CauseKind, p.msg)
		}
	}
	if f := readFrame(t, body); f.id != strconv.Itoa(len(panicky)+1) {
		t.Errorf("after the events with panicking errors: %+v, want the next event", f)
	}
}

// TestEventJSONSurvivesErrorMethodsThatPanic: NewEventJSON of an event
// straight from the runtime, whose errors the stream has not wrapped.
func TestEventJSONSurvivesErrorMethodsThatPanic(t *testing.T) {
	for _, p := range panicky {
		mustNotPanic(t, fmt.Sprintf("NewEventJSON with a %T", p.err), func() {
			j := diagnostics.NewEventJSON(runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: 1,
				Outcome: runtime.Error, Err: p.err, Cause: p.err})
			if j.Error != p.msg || j.Cause != p.msg || j.CauseKind != "custom" {
				t.Errorf("%T: error %q, cause %q (%s); want %q, cause kind custom", p.err, j.Error, j.Cause, j.CauseKind, p.msg)
			}
		})
	}
}

// mustNotPanic runs f, failing t if it panics.
func mustNotPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panicked: %v", what, r)
		}
	}()
	f()
}

// TestLogSurvivesErrorMethodsThatPanic: the log observer writes the record
// of an event whose error and cause have methods that panic. The handler
// renders the error values: slog's own recover when Error panics ("<nil>"
// for a typed nil).
func TestLogSurvivesErrorMethodsThatPanic(t *testing.T) {
	for _, p := range panicky {
		var out bytes.Buffer
		o := diagnostics.NewLogObserver(slog.New(slog.NewJSONHandler(&out, nil)))
		ev := runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Group: "svc", Task: "t", TaskID: 1,
			Outcome: runtime.Error, Err: p.err, Cause: p.err}
		mustNotPanic(t, fmt.Sprintf("logging a %T", p.err), func() { o.Observe(context.Background(), ev) })
		if line := out.String(); !strings.Contains(line, `"taskscope.cancel.cause":"custom"`) || !strings.Contains(line, `"error":`) {
			t.Errorf("%T: logged %q, want a record with the error and cause kind custom", p.err, line)
		}
	}
}
