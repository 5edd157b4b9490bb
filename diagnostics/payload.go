package diagnostics

import (
	"errors"
	"slices"
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
	if len(ev.Stack) > maxStack {
		ev.Stack = truncateBytes(ev.Stack, maxStack)
	}
	if ev.Err != nil {
		ev.Err = capError(ev.Err, maxStack, maxMessage)
	}
	if ev.Cause != nil {
		ev.Cause = capError(ev.Cause, maxStack, maxMessage)
	}
}

// capError wraps err in a cappedError, over err's chain with its stacks
// capped. When that chain is a copy, the error type is taken from the
// original first, so that error.type is the same on every channel.
func capError(err error, maxStack, maxMessage int) error {
	c := &cappedError{err: capStacks(err, maxStack), max: maxMessage}
	if c.err != err {
		c.etype = runtime.ErrorType(runtime.Error, err)
	}
	return c
}

// capStacks returns err, or, when its chain holds a *PanicError whose stack
// is over max (a panic's own error, a fail-fast cause wrapping a sibling's
// panic, an error wrapping a Result's), a copy of the chain down to it with
// that stack cut: errors.As still finds a *PanicError, and the full stack
// is not retained behind the capped event. Wrappers it cannot copy are
// replaced by one with the same message that unwraps to the copied rest.
func capStacks(err error, max int) error {
	var pe *runtime.PanicError
	if !errors.As(err, &pe) || len(pe.Stack) <= max {
		return err
	}
	switch e := err.(type) {
	case *runtime.PanicError:
		return &runtime.PanicError{Value: e.Value, Stack: truncateBytes(e.Stack, max)}
	case *runtime.TaskError:
		c := *e
		c.Err = capStacks(e.Err, max)
		return &c
	case interface{ Unwrap() error }:
		return &rewrapped{msg: err.Error(), errs: []error{capStacks(e.Unwrap(), max)}}
	case interface{ Unwrap() []error }:
		errs := slices.Clone(e.Unwrap())
		for i := range errs {
			errs[i] = capStacks(errs[i], max)
		}
		return &rewrapped{msg: err.Error(), errs: errs}
	}
	return err // holds the panic behind an As method of its own: kept whole
}

// rewrapped stands for a wrapper capStacks could not copy: its message,
// and the copied chain below it.
type rewrapped struct {
	msg  string
	errs []error
}

func (e *rewrapped) Error() string   { return e.msg }
func (e *rewrapped) Unwrap() []error { return e.errs }

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
// so errors.Is and errors.As see the original chain (or capStacks' copy of
// it). The message is cut lazily: most events are never rendered.
type cappedError struct {
	err   error
	max   int
	etype string // the original's error type, when err is a copy
}

func (e *cappedError) Error() string { return truncateString(e.err.Error(), e.max) }
func (e *cappedError) Unwrap() error { return e.err }

// ErrorType classifies the wrapped error, not the wrapper, so that
// error.type is the same on every channel.
func (e *cappedError) ErrorType() string {
	if e.etype != "" {
		return e.etype
	}
	return runtime.ErrorType(runtime.Error, e.err)
}

// panicError returns err as a panic's own error: a *PanicError, possibly
// under the stream's cappedError. An error that merely wraps one (a
// fail-fast cause) is not: its message says more than the panic value.
func panicError(err error) (*runtime.PanicError, bool) {
	if ce, ok := err.(*cappedError); ok {
		err = ce.err
	}
	pe, ok := err.(*runtime.PanicError)
	return pe, ok
}
