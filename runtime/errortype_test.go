package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

type classifiedError struct{}

func (classifiedError) Error() string     { return "rate limited" }
func (classifiedError) ErrorType() string { return "rate_limited" }

type namedError struct{}

func (namedError) Error() string { return "named" }

// nilDerefError is a typed-nil error's type: every method of a nil
// *nilDerefError panics.
type nilDerefError struct{ kind string }

func (e *nilDerefError) Error() string     { return e.kind }
func (e *nilDerefError) ErrorType() string { return e.kind }

// nilIsError and nilUnwrapError are typed-nil errors whose Is and Unwrap,
// which errors.Is calls, dereference a nil receiver.
type nilIsError struct{ target error }

func (e *nilIsError) Error() string        { return "is" }
func (e *nilIsError) Is(target error) bool { return e.target == target }

type nilUnwrapError struct{ inner error }

func (e *nilUnwrapError) Error() string { return "unwrap" }
func (e *nilUnwrapError) Unwrap() error { return e.inner }

func TestErrorType(t *testing.T) {
	cases := []struct {
		outcome runtime.Outcome
		err     error
		want    string
	}{
		{runtime.Success, nil, ""},
		{runtime.Canceled, context.Canceled, ""},
		{runtime.Panic, &runtime.PanicError{Value: "x"}, "panic"},
		{runtime.Aborted, runtime.ErrAborted, "aborted"},
		{runtime.Error, runtime.ErrGoexit, "goexit"},
		{runtime.Error, errors.New("x"), "*errors.errorString"},
		{runtime.Error, fmt.Errorf("open: %w", &fs.PathError{Op: "open", Err: fs.ErrNotExist}), "*fs.PathError"},
		{runtime.Error, namedError{}, "github.com/taskscope/taskscope/runtime_test.namedError"},
		{runtime.Error, fmt.Errorf("call: %w", classifiedError{}), "rate_limited"},
		{runtime.Error, errors.Join(errors.New("a"), classifiedError{}), "rate_limited"},
		{runtime.Error, fmt.Errorf("rpc: %w", context.DeadlineExceeded), "deadline_exceeded"},
		{runtime.Error, fmt.Errorf("inner: %w", context.Canceled), "canceled"},
		{runtime.Error, nil, "_OTHER"},
		// Methods that panic yield the fallback, not a panic.
		{runtime.Error, (*nilDerefError)(nil), "_OTHER"},
		{runtime.Error, fmt.Errorf("wrapped: %w", (*nilDerefError)(nil)), "_OTHER"},
		{runtime.Error, (*nilIsError)(nil), "_OTHER"},
		{runtime.Error, (*nilUnwrapError)(nil), "_OTHER"},
		{runtime.Panic, (*nilDerefError)(nil), "panic"},
	}
	for _, c := range cases {
		if got := runtime.ErrorType(c.outcome, c.err); got != c.want {
			t.Errorf("runtime.ErrorType(%v, %#v) = %q, want %q", c.outcome, c.err, got, c.want)
		}
	}
}

func TestErrorTypeDoesNotAllocate(t *testing.T) {
	errs := []error{errors.New("x"), fmt.Errorf("w: %w", errors.New("x")), classifiedError{}, context.DeadlineExceeded}
	for _, err := range errs {
		runtime.ErrorType(runtime.Error, err) // name the type once
		if n := testing.AllocsPerRun(100, func() { runtime.ErrorType(runtime.Error, err) }); n != 0 {
			t.Errorf("runtime.ErrorType(%v): %v allocations", err, n)
		}
	}
}
