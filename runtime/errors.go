package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrClosed is the error of a task spawned on a closed (shut down)
	// group, and what the cancellation cause of a shutdown wraps:
	// errors.Is(context.Cause(ctx), ErrClosed) holds inside a task that is
	// being shut down.
	ErrClosed = errors.New("taskscope: group closed")

	// ErrStop, returned by an [Group.Every] function, ends the loop with
	// outcome [Success] ([Canceled] if the task's context was done).
	ErrStop = errors.New("taskscope: stop periodic task")

	// ErrGoexit is the Result.Err of a task whose fn called runtime.Goexit
	// (for example through testing.T.FailNow). Its outcome is [Error].
	ErrGoexit = errors.New("taskscope: task called runtime.Goexit")

	// ErrExternal is wrapped by the cancellation cause of a task canceled
	// through [WithCancelOn]; the external context's own cause is wrapped
	// too.
	ErrExternal = errors.New("taskscope: external context done")

	// ErrTaskEnded is the cancellation cause of a task's context once fn
	// has returned, when nothing canceled it before: goroutines fn started
	// with its context see it.
	ErrTaskEnded = errors.New("taskscope: task ended")
)

// PanicError is the Result.Err of a task whose fn panicked. Stack is the
// panicking goroutine's full stack, captured where the panic happened, as
// Go prints a panic's: from the panic call down, without the frames of
// the recovery.
type PanicError struct {
	Value any
	Stack []byte
}

// Error includes the stack, so that a logged error leads to the panic site.
func (e *PanicError) Error() string {
	return fmt.Sprintf("taskscope: panic: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// closedError is a shutdown's cause, or a refused spawn's error: it
// matches [ErrClosed] (errors.Is) without repeating its message after its
// own ("taskscope: group app shut down", not "...: taskscope: group
// closed").
type closedError struct{ msg string }

func (e *closedError) Error() string { return e.msg }
func (e *closedError) Unwrap() error { return ErrClosed }

// ErrorType names it for error.type, when a task fails with it (a refused
// spawn's error, returned): "closed", not an unexported Go type.
func (e *closedError) ErrorType() string { return "closed" }

// TaskError names a task and its error: what [Group.Err] returns, and the
// cancellation cause a [CancelOnError] group receives from its first
// failing task. It unwraps to the task's error, so errors.Is and errors.As
// see the original error as with errgroup.
type TaskError struct {
	Group  string
	Task   string
	TaskID uint64
	Err    error
}

// Error names the task, as group/name#id, and gives its error's message.
func (e *TaskError) Error() string {
	return fmt.Sprintf("taskscope: task %s/%s#%d failed: %v", e.Group, e.Task, e.TaskID, e.Err)
}

// Unwrap returns the task's error.
func (e *TaskError) Unwrap() error { return e.Err }

// TimeoutError is returned by [Group.Wait] when its context ends before the
// subtree is idle. Active lists the tasks it was still waiting for: those
// [Group.Active] lists, and tasks abandoned at a shutdown deadline whose
// abort was still reporting them (state Abandoned). It unwraps to Cause,
// so errors.Is(err, context.DeadlineExceeded) holds when the context's
// deadline passed.
type TimeoutError struct {
	Group  string
	Active []TaskInfo
	Cause  error // context.Cause of Wait's context

	at    time.Time // when Wait gave up: the tasks' ages are as of then
	ended error     // Wait's ctx.Err(): Canceled or DeadlineExceeded (nil if made elsewhere)
}

// Error names the group and lists the active tasks, with their ages (the
// first ones, about 4 KiB of them, then how many more: Active has them
// all). It says "canceled" rather than "timed out" when the context was
// canceled (a request's context, ended by its client leaving) rather than
// past its deadline, whatever its cause says (WithTimeoutCause's).
func (e *TimeoutError) Error() string {
	ended := "timed out"
	if e.canceled() {
		ended = "canceled"
	}
	return fmt.Sprintf("taskscope: group %s: wait %s with %d active task(s): %s",
		e.Group, ended, len(e.Active), describeTasks(e.Active, e.at))
}

// canceled reports whether the Wait's context was canceled rather than
// past its deadline: by its ctx.Err() when Wait made e, else (an error
// made elsewhere) by its cause.
func (e *TimeoutError) canceled() bool {
	if e.ended != nil {
		return e.ended == context.Canceled
	}
	return canceledWait(e.Cause)
}

// canceledWait guesses from a Wait's cause alone whether its context was
// canceled rather than timed out: by anything but a deadline.
func canceledWait(cause error) bool { return cause != nil && CauseKind(cause) != "deadline" }

// Unwrap returns Cause.
func (e *TimeoutError) Unwrap() error { return e.Cause }

// AbortError is returned by [Group.Shutdown] when its context ended before
// every task returned. Aborted lists the abandoned tasks; each
// TaskInfo.Stack holds where its goroutine was stuck. %+v prints the stacks.
// It unwraps to [ErrAborted] and to Cause, so errors.Is(err,
// context.DeadlineExceeded) holds when the context's deadline passed, as
// with http.Server.Shutdown's error.
type AbortError struct {
	Group   string
	Aborted []TaskInfo
	Cause   error // context.Cause of Shutdown's context

	at time.Time // when the tasks were aborted: their ages are as of then
}

// Error names the group and lists the aborted tasks, with their ages (the
// first ones, about 4 KiB of them, then how many more: Aborted has them
// all); %+v adds each one's stack (see Format).
func (e *AbortError) Error() string {
	return fmt.Sprintf("taskscope: group %s: shutdown aborted %d task(s): %s",
		e.Group, len(e.Aborted), describeTasks(e.Aborted, e.at))
}

// Unwrap returns [ErrAborted] and Cause (when not nil), for errors.Is and
// errors.As.
func (e *AbortError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrAborted}
	}
	return []error{ErrAborted, e.Cause}
}

// Format prints each straggler's stack with the %+v verb.
func (e *AbortError) Format(s fmt.State, verb rune) {
	msg := e.Error()
	if verb != 'v' || !s.Flag('+') {
		fmt.Fprint(s, msg)
		return
	}
	var b strings.Builder
	b.WriteString(msg)
	for _, t := range e.Aborted {
		fmt.Fprintf(&b, "\n\n%s/%s#%d:\n%s", t.Group, t.Name, t.ID, t.Stack)
	}
	fmt.Fprint(s, b.String())
}

// maxDescribed bounds the task list of an AbortError's or a
// TimeoutError's message, in bytes: the message goes into log records,
// span statuses and HTTP responses, and a shutdown of 100,000 tasks would
// list them in 3.5 MB. Past it, the message says how many more there are;
// the error's slice holds them all, and an AbortError's %+v prints each.
const maxDescribed = 4 << 10

// describeTasks lists tasks as group/name#id with their ages at now (the
// time the error was made; the zero time, in an error made by hand, means
// the time of the call), and, for a periodic task in a run, the run and
// its age: a periodic task's age is that of the loop, days for a job
// stuck a minute ago, and only the run's says how long it has been stuck.
// Past maxDescribed bytes, it ends with how many more there are.
func describeTasks(tasks []TaskInfo, now time.Time) string {
	if now.IsZero() {
		now = time.Now()
	}
	var b strings.Builder
	for i, t := range tasks {
		if i > 0 {
			if b.Len() >= maxDescribed {
				fmt.Fprintf(&b, ", and %d more", len(tasks)-i)
				break
			}
			b.WriteString(", ")
		}
		run := ""
		if !t.RunStarted.IsZero() {
			run = fmt.Sprintf(", in run %d for %s", t.Runs, now.Sub(t.RunStarted).Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "%s/%s#%d (age %s%s)", t.Group, t.Name, t.ID, now.Sub(t.Started).Round(time.Millisecond), run)
	}
	return b.String()
}

// CauseKind classifies a cancellation cause into a short, low-cardinality
// name for metric labels and span attributes: "external" ([ErrExternal]),
// "fail_fast" ([*TaskError]), "shutdown" ([ErrClosed]), "deadline"
// (context.DeadlineExceeded), "canceled" (context.Canceled, the cause of
// Cancel(nil)), "custom" for any other cause, and "" for nil. The first
// that the cause's chain holds, in that order, names it: an external
// context that ended because its own supervisor shut down is "external",
// and a fail-fast sibling whose error wraps ErrClosed is "fail_fast". A
// check that makes a method of the chain panic (a typed-nil error that
// dereferences its receiver) does not match.
func CauseKind(cause error) string {
	if cause == nil {
		return ""
	}
	for _, k := range causeKinds {
		if chainHolds(cause, k.holds) {
			return k.kind
		}
	}
	return "custom"
}

// causeKinds are CauseKind's names, in its order.
var causeKinds = [...]struct {
	kind  string
	holds func(error) bool
}{
	{"external", func(err error) bool { return errors.Is(err, ErrExternal) }},
	{"fail_fast", func(err error) bool { _, ok := errors.AsType[*TaskError](err); return ok }},
	{"shutdown", func(err error) bool { return errors.Is(err, ErrClosed) }},
	{"deadline", func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	{"canceled", func(err error) bool { return errors.Is(err, context.Canceled) }},
}

// chainHolds reports holds(err), or false when it panics: it walks the
// application's error chain, whose methods may.
func chainHolds(err error, holds func(error) bool) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return holds(err)
}
