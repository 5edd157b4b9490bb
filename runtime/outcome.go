package runtime

// Outcome is how a task ended. Every task has exactly one, decided once and
// reported in its [KindTaskFinished] event and in [Task.Result].
//
// The zero Outcome means "no outcome yet" and prints as "none"; it appears
// only on events that are not task completions.
type Outcome uint8

const (
	// Success: fn returned nil (or an Every loop ended with [ErrStop]).
	Success Outcome = iota + 1
	// Error: fn returned an error while no cancellation was requested, or
	// called runtime.Goexit ([ErrGoexit]).
	Error
	// Canceled: the task's context was done when fn returned, whatever fn
	// returned.
	Canceled
	// Panic: fn panicked; the value and the stack are in a [*PanicError].
	Panic
	// Aborted: fn was still running when the shutdown deadline passed. The
	// goroutine was abandoned, not stopped: Go cannot kill goroutines.
	Aborted
)

var outcomeNames = [...]string{"none", "success", "error", "canceled", "panic", "aborted"}

// String returns the outcome's stable lower-case name, the value used by
// every telemetry channel ("success", "error", "canceled", "panic",
// "aborted").
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Failed reports whether the outcome is one an operator should look at:
// error, panic or aborted.
func (o Outcome) Failed() bool { return o == Error || o == Panic || o == Aborted }

// TaskState is where a live or abandoned task is, as shown by
// [Group.Active] and [Group.Snapshot]. No task is in the zero TaskState,
// which prints as "none".
type TaskState uint8

const (
	// Running: fn is running and nothing asked it to stop.
	Running TaskState = iota + 1
	// Canceling: the task's context is done but fn has not returned yet.
	Canceling
	// Abandoned: the task was aborted at a shutdown deadline and its
	// goroutine has still not returned.
	Abandoned
)

var stateNames = [...]string{"none", "running", "canceling", "abandoned"}

// String returns "running", "canceling" or "abandoned".
func (s TaskState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}
