package diagnostics

import (
	"errors"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/taskscope/taskscope/internal/errtext"
	"github.com/taskscope/taskscope/runtime"
)

// Default payload caps of a [Stream] and a [LogObserver]. A panic storm
// must not make every subscriber buffer hold megabytes of stacks, nor a
// remote client receive them; nor may one error write a log line that a
// log pipeline splits or rejects (many stop at 16 or 256 KiB).
const (
	DefaultMaxStack   = 8 << 10
	DefaultMaxMessage = 2 << 10
)

// payloadCaps are the size caps of what a Stream publishes and a
// LogObserver writes.
type payloadCaps struct {
	maxStack, maxMessage int
}

var defaultPayloadCaps = payloadCaps{maxStack: DefaultMaxStack, maxMessage: DefaultMaxMessage}

// PayloadOption is an option of both [NewStream] and [NewLogObserver].
type PayloadOption interface {
	StreamOption
	LogOption
}

type payloadOption func(*payloadCaps)

func (f payloadOption) applyStream(s *Stream)   { f(&s.payloadCaps) }
func (f payloadOption) applyLog(o *LogObserver) { f(&o.payloadCaps) }

// WithMaxStack caps the stacks of published events, or of logged records,
// in bytes (default [DefaultMaxStack]). A cut stack ends with a mark
// saying how many bytes were cut; n <= 0 keeps only the mark.
func WithMaxStack(n int) PayloadOption {
	return payloadOption(func(c *payloadCaps) { c.maxStack = max(n, 0) })
}

// WithMaxMessage caps the messages of published events' errors and
// causes, or of logged records' errors, causes and panic values, in bytes
// (default [DefaultMaxMessage]). A cut message ends with a mark saying
// how many bytes were cut; n <= 0 keeps only the mark.
func WithMaxMessage(n int) PayloadOption {
	return payloadOption(func(c *payloadCaps) { c.maxMessage = max(n, 0) })
}

// logged returns err for a log record: err itself when its message is
// within the cap (a handler then renders it as it would any error, a text
// handler with %+v), else err under a cappedError (see capError).
func (c payloadCaps) logged(err error) error {
	if len(errtext.Text(err)) <= c.maxMessage {
		return err
	}
	return capError(err, c.maxStack, c.maxMessage)
}

// stackText is stack as a string, cut to the cap.
func (c payloadCaps) stackText(stack []byte) string {
	if len(stack) <= c.maxStack {
		return string(stack)
	}
	return string(truncateBytes(stack, c.maxStack))
}

// capError wraps a non-nil err in a cappedError, over err's chain with its
// stacks capped. It runs err's own methods (Unwrap and As, and, when the
// chain is copied, ErrorType and Error), which may block or panic (a
// typed-nil error whose methods dereference their receiver), so the stream
// calls it before taking its lock; when one panics, err is kept whole,
// stacks and all, rather than the event lost.
func capError(err error, maxStack, maxMessage int) error {
	c := &cappedError{err: err, max: maxMessage}
	c.cutStacks(maxStack)
	return c
}

// cutStacks replaces e.err by its copy with stacks capped, if capStacks
// makes one. The error type is then taken from the original first, so that
// error.type is the same on every channel.
func (e *cappedError) cutStacks(max int) {
	recovering(func() { // a panic keeps e.err whole: see capError
		if cut, copied := capStacks(e.err, max); copied {
			e.etype, e.err = runtime.ErrorType(runtime.Error, e.err), cut
		}
	})
}

// capStacks returns err, or, when its chain holds a *PanicError whose stack
// is over max (a panic's own error, a fail-fast cause wrapping a sibling's
// panic, an error wrapping a Result's), a copy of the chain down to it with
// that stack cut, and true: errors.As still finds a *PanicError, and the
// full stack is not retained behind the capped event. Wrappers it cannot
// copy are replaced by one with the same message that unwraps to the
// copied rest. (It says whether it copied because errors cannot be
// compared: == panics on an error type that is not comparable.)
func capStacks(err error, max int) (error, bool) {
	var pe *runtime.PanicError
	if !errors.As(err, &pe) || len(pe.Stack) <= max {
		return err, false
	}
	switch e := err.(type) {
	case *runtime.PanicError:
		return &runtime.PanicError{Value: e.Value, Stack: truncateBytes(e.Stack, max)}, true
	case *runtime.TaskError:
		c := *e
		c.Err, _ = capStacks(e.Err, max)
		return &c, true
	case interface{ Unwrap() error }:
		rest, _ := capStacks(e.Unwrap(), max)
		return &rewrapped{msg: errtext.Text(err), errs: []error{rest}}, true
	case interface{ Unwrap() []error }:
		errs := slices.Clone(e.Unwrap())
		for i := range errs {
			errs[i], _ = capStacks(errs[i], max)
		}
		return &rewrapped{msg: errtext.Text(err), errs: errs}, true
	}
	return err, false // holds the panic behind an As method of its own: kept whole
}

// rewrapped stands for a wrapper capStacks could not copy: its message,
// and the copied chain below it.
type rewrapped struct {
	msg  string
	errs []error
}

func (e *rewrapped) Error() string   { return e.msg }
func (e *rewrapped) Unwrap() []error { return e.errs }

// recovering runs f, which calls methods of an application's error
// (Error, Unwrap, Is, As, ErrorType), and returns the value it panicked
// with, or nil. Those methods may panic: a typed-nil error (var e *T;
// return e) whose methods dereference their receiver. Publishing or
// rendering its event must not: the stream would lose the event (the
// runtime recovers an observer's panic), and EventsHandler would drop the
// connection, so that an SSE client reconnects from the event before and
// gets it again, for ever.
func recovering(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

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
	n = runeBoundary(s, n)
	return string(appendMark([]byte(s[:n]), len(s)-n))
}

func appendMark(b []byte, cut int) []byte {
	b = append(b, " …[truncated "...)
	b = strconv.AppendInt(b, int64(cut), 10)
	return append(b, " bytes]"...)
}

// runeBoundary returns where to cut s to keep at most n bytes: n, or the
// start of the character n would split. It backs off over at most
// utf8.UTFMax-1 bytes, and only to a character that spans n: in bytes that
// are no UTF-8, there is no character to keep whole, and backing off over
// a whole run of continuation bytes would keep nothing before it either.
func runeBoundary[T string | []byte](s T, n int) int {
	if n <= 0 || n >= len(s) {
		return max(n, 0)
	}
	for i := n; i >= 0 && n-i < utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			// At most utf8.UTFMax bytes: converting them allocates nothing.
			if _, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))])); i+size > n {
				return i
			}
			break
		}
	}
	return n
}

// cappedError limits the message of the error it wraps. It keeps Unwrap,
// so errors.Is and errors.As see the original chain (or capStacks' copy of
// it). The message is cut lazily: most events are never rendered.
type cappedError struct {
	err   error
	max   int
	etype string // the original's error type, when err is a copy
}

func (e *cappedError) Error() string { return truncateString(errtext.Text(e.err), e.max) }
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
