package diagnostics

import (
	"strconv"
	"unicode/utf8"

	"github.com/taskscope/taskscope/runtime"
)

// Default payload caps of a [Stream]. A panic storm must not make every
// subscriber buffer hold megabytes of stacks, nor a remote client receive
// them.
const (
	DefaultMaxStack   = 8 << 10
	DefaultMaxMessage = 2 << 10
)

// capEvent limits ev's stack and error messages in size. The stack is
// copied when cut, so that the original's memory can be freed.
func capEvent(ev *runtime.Event, maxStack, maxMessage int) {
	orig := ev.Stack
	if len(ev.Stack) > maxStack {
		ev.Stack = truncateBytes(ev.Stack, maxStack)
	}
	if ev.Err != nil {
		err := ev.Err
		// A PanicError holds the same stack: rebuild it with the capped
		// one, so that errors.As still finds a *PanicError and the full
		// stack is not retained behind it.
		if pe, ok := err.(*runtime.PanicError); ok && len(pe.Stack) > maxStack {
			stack := ev.Stack
			if !sameBytes(pe.Stack, orig) {
				stack = truncateBytes(pe.Stack, maxStack)
			}
			err = &runtime.PanicError{Value: pe.Value, Stack: stack}
		}
		ev.Err = &cappedError{err: err, max: maxMessage}
	}
	if ev.Cause != nil {
		ev.Cause = &cappedError{err: ev.Cause, max: maxMessage}
	}
}

func sameBytes(a, b []byte) bool { return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0] }

// truncateBytes returns a copy of b's first n bytes (cut on a UTF-8
// boundary) followed by a note of how much was cut.
func truncateBytes(b []byte, n int) []byte {
	n = runeBoundary(b, n)
	out := make([]byte, 0, n+32)
	out = append(out, b[:n]...)
	return appendMark(out, len(b)-n)
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = runeBoundaryString(s, n)
	return string(appendMark([]byte(s[:n]), len(s)-n))
}

func appendMark(b []byte, cut int) []byte {
	b = append(b, " …[truncated "...)
	b = strconv.AppendInt(b, int64(cut), 10)
	return append(b, " bytes]"...)
}

func runeBoundary(b []byte, n int) int {
	for n > 0 && n < len(b) && !utf8.RuneStart(b[n]) {
		n--
	}
	return max(n, 0)
}

func runeBoundaryString(s string, n int) int {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return max(n, 0)
}

// cappedError limits the message of the error it wraps. It keeps Unwrap,
// so errors.Is and errors.As see the original chain. The message is cut
// lazily: most events are never rendered.
type cappedError struct {
	err error
	max int
}

func (e *cappedError) Error() string { return truncateString(e.err.Error(), e.max) }
func (e *cappedError) Unwrap() error { return e.err }

// ErrorType classifies the wrapped error, not the wrapper, so that
// error.type is the same on every channel.
func (e *cappedError) ErrorType() string { return runtime.ErrorType(runtime.Error, e.err) }
