package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// ErrorType is the error.type span attribute, the error_type metric label
// and the error.type log key: one low-cardinality vocabulary for all. It is empty unless the
// outcome is a failure:
//
//   - panic: "panic"
//   - aborted: "aborted"
//   - error, in this order:
//     "goexit" when fn called Goexit (ErrGoexit);
//     the value of an ErrorType() string method found in the error chain
//     (the OpenTelemetry convention, which lets an application name its
//     own error classes);
//     "deadline_exceeded" for context.DeadlineExceeded and "canceled" for
//     context.Canceled anywhere in the chain (a task that failed on a
//     context of its own, not on a cancellation of the task);
//     otherwise the Go type of the error, after unwrapping fmt.Errorf
//     wrappers of a single %w (errors.Join and a fmt.Errorf with several
//     %w are named by their own types), as semconv.ErrorType names it:
//     "package/path.Type" for named types, the type's string (such as
//     "*errors.errorString") for others;
//     "_OTHER" (semconv's fallback) when err is nil, or when one of its
//     methods panics (a typed-nil error whose methods dereference it).
//
// Go types are bounded by the program, but the metric label is capped
// anyway (see telemetry.WithMaxLabelValues), because ErrorType methods may not be.
func ErrorType(o Outcome, err error) string {
	switch o {
	case Panic:
		return "panic"
	case Aborted:
		return "aborted"
	case Error:
	default:
		return ""
	}
	if err == nil {
		return "_OTHER" // semconv's fallback; the runtime always sets Err for errors
	}
	return errorType(err)
}

// errorType is ErrorType for outcome error. It calls the error's own
// ErrorType, Is and Unwrap methods, which may panic (a typed-nil error
// whose methods dereference their receiver): that yields "_OTHER" rather
// than a panic in every observer that asks. The defer is here, off the
// paths of the other outcomes.
func errorType(err error) (s string) {
	defer func() {
		if recover() != nil {
			s = "_OTHER"
		}
	}()
	if errors.Is(err, ErrGoexit) {
		return "goexit"
	}
	if s := methodErrorType(err, 0); s != "" {
		return s
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return typeName(err)
}

// methodErrorType finds an ErrorType() string method in err's chain,
// depth first like errors.As. It is written out rather than calling
// errors.As because As makes its target escape: an allocation per failed
// task.
func methodErrorType(err error, depth int) string {
	for err != nil && depth < 32 {
		if et, ok := err.(interface{ ErrorType() string }); ok {
			if s := et.ErrorType(); s != "" {
				return s
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
			depth++
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if s := methodErrorType(e, depth+1); s != "" {
					return s
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}

var (
	fmtWrapErrorType = reflect.TypeOf(fmt.Errorf("%w", errors.New("")))
	typeNames        sync.Map // reflect.Type → string, so a name is built once per type
)

// typeName names err's type as semconv.ErrorType does, without its
// allocations after the first time per type.
func typeName(err error) string {
	for reflect.TypeOf(err) == fmtWrapErrorType {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
	}
	t := reflect.TypeOf(err)
	if s, ok := typeNames.Load(t); ok {
		return s.(string)
	}
	s := t.String()
	if pkg, name := t.PkgPath(), t.Name(); pkg != "" && name != "" {
		s = pkg + "." + name
	}
	typeNames.Store(t, s)
	return s
}
