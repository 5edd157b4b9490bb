package diagnostics_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// msgErr has exactly the message it is given and unwraps to err.
type msgErr struct {
	msg string
	err error
}

func (e *msgErr) Error() string { return e.msg }
func (e *msgErr) Unwrap() error { return e.err }

var errFuzzSentinel = errors.New("sentinel")

// checkCapped checks that got is in, cut to at most limit bytes as
// WithMaxMessage and WithMaxStack document: in whole if it fits; otherwise
// a prefix of in followed by the mark saying how many bytes were cut, the
// prefix backing off from limit (by at most 3 bytes) only to the start of
// a character that would be split, so that valid UTF-8 stays valid.
func checkCapped(t *testing.T, what, in, got string, limit int) {
	t.Helper()
	limit = max(limit, 0)
	if len(in) <= limit {
		if got != in {
			t.Errorf("%s %q fits the cap %d but became %q", what, in, limit, got)
		}
		return
	}
	i := strings.LastIndex(got, " …[truncated ")
	if i < 0 {
		t.Fatalf("%s %q over the cap %d: got %q, with no mark", what, in, limit, got)
	}
	prefix, mark := got[:i], got[i:]
	if !strings.HasPrefix(in, prefix) {
		t.Fatalf("%s: %q is not a prefix of %q", what, prefix, in)
	}
	if want := " …[truncated " + strconv.Itoa(len(in)-len(prefix)) + " bytes]"; mark != want {
		t.Errorf("%s: mark %q, want %q", what, mark, want)
	}
	if len(got) > limit+len(mark) || len(prefix) > limit {
		t.Errorf("%s: %d bytes kept of %d, cap %d", what, len(prefix), len(in), limit)
	}
	if back := limit - len(prefix); back >= utf8.UTFMax {
		t.Errorf("%s: cut %d bytes before the cap %d", what, back, limit)
	} else if back > 0 {
		// Backed off: only to the start of a character the cap splits.
		r, size := utf8.DecodeRuneInString(in[len(prefix):])
		if r == utf8.RuneError && size <= 1 || len(prefix)+size <= limit {
			t.Errorf("%s: backed off %d bytes to %q, which is no character spanning the cap %d", what, back, in[len(prefix):min(len(in), len(prefix)+4)], limit)
		}
	} else if r, size := utf8.DecodeLastRuneInString(prefix); utf8.ValidString(in) && (r == utf8.RuneError && size <= 1 && len(prefix) > 0) {
		t.Errorf("%s: cut inside a character at %d", what, limit)
	}
	if utf8.ValidString(in) && !utf8.ValidString(got) {
		t.Errorf("%s: valid UTF-8 %q became invalid %q", what, in, got)
	}
	if utf8.ValidString(in) && len(prefix) < limit {
		// The largest character boundary at or below the cap.
		b := limit
		for b > 0 && !utf8.RuneStart(in[b]) {
			b--
		}
		if len(prefix) != b {
			t.Errorf("%s: cut at %d, want at the character boundary %d", what, len(prefix), b)
		}
	}
}

// FuzzPayloadCaps publishes an event whose error, cause and stack hold
// arbitrary bytes through a Stream with arbitrary caps, and checks what a
// subscriber gets (see checkCapped), and that errors.Is and errors.As
// still reach the originals: the sentinel, and a *runtime.PanicError with
// its value and its stack cut to the stack cap.
func FuzzPayloadCaps(f *testing.F) {
	f.Add("boom", []byte("frame\n"), 10, 10)
	f.Add("ab"+strings.Repeat("é", 20), []byte("a"+strings.Repeat("€", 10)), 21, 21)
	f.Add("read frame "+strings.Repeat("\x80", 100), []byte(strings.Repeat("x", 19)+"\x80\x80\x80\x80"), 21, 21)
	f.Add("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", []byte("\xf0\x9f\x98"), 5, 2)
	f.Add("", []byte{}, 0, -1)
	f.Add("€uro", []byte("\u0ef9"), 2, 2) // the cap splits the first character: nothing is kept
	f.Fuzz(func(t *testing.T, msg string, stack []byte, maxMessage, maxStack int) {
		maxMessage, maxStack = maxMessage%300, maxStack%300
		s := diagnostics.NewStream(diagnostics.WithMaxMessage(maxMessage), diagnostics.WithMaxStack(maxStack))
		sub := s.Subscribe(t.Context())
		pe := &runtime.PanicError{Value: msg, Stack: stack}
		publish(s,
			runtime.Event{Seq: 1, Kind: runtime.KindTaskFinished, Outcome: runtime.Error, Stack: stack,
				Err: &msgErr{msg, errFuzzSentinel}, Cause: &msgErr{msg, errFuzzSentinel}},
			runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Outcome: runtime.Panic, Stack: stack,
				Err: fmt.Errorf("task t: %w", pe)},
		)
		evs := collect(sub)
		if len(evs) != 2 {
			t.Fatalf("%d events, want 2", len(evs))
		}
		checkCapped(t, "message", msg, evs[0].Err.Error(), maxMessage)
		checkCapped(t, "cause", msg, evs[0].Cause.Error(), maxMessage)
		checkCapped(t, "stack", string(stack), string(evs[0].Stack), maxStack)
		checkCapped(t, "stack", string(stack), string(evs[1].Stack), maxStack)
		checkCapped(t, "wrapped panic's message", "task t: "+pe.Error(), evs[1].Err.Error(), maxMessage)
		if !errors.Is(evs[0].Err, errFuzzSentinel) || !errors.Is(evs[0].Cause, errFuzzSentinel) {
			t.Error("the capped error does not reach the sentinel")
		}
		var me *msgErr
		if !errors.As(evs[0].Err, &me) || me.msg != msg {
			t.Error("the capped error does not reach the original")
		}
		var got *runtime.PanicError
		if !errors.As(evs[1].Err, &got) || got.Value != msg {
			t.Fatalf("the capped error does not reach the panic: %v", got)
		}
		checkCapped(t, "panic's stack", string(stack), string(got.Stack), maxStack)
		if got == pe && len(stack) > max(maxStack, 0) {
			t.Error("the panic's stack over the cap is held whole behind the event")
		}
	})
}
