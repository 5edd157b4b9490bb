package diagnostics

import (
	"errors"
	"fmt"
	"time"

	"github.com/taskscope/taskscope/internal/errtext"
	"github.com/taskscope/taskscope/runtime"
)

// EventJSON is the wire form of an event, the one shape used by the SSE
// and NDJSON streams (and anyone else who serialises events): field names
// are stable, durations are in seconds, and empty fields are left out
// (absent means zero).
type EventJSON struct {
	// ID is "seq@stream" in [EventsHandler]'s responses (the SSE id, also
	// on NDJSON lines): a cursor that resumes only against the stream that
	// issued it. Empty on lag notices and outside the handler.
	ID    string    `json:"id,omitempty"`
	Seq   uint64    `json:"seq"`  // 0 on lag notices
	Time  time.Time `json:"time"` // RFC 3339 with nanoseconds
	Kind  string    `json:"kind"`
	Level string    `json:"level"` // DEBUG, INFO, WARN or ERROR: runtime.Event.Level

	Group   string `json:"group,omitempty"`    // full dotted name
	GroupID uint64 `json:"group_id,omitempty"` // tells apart sibling groups of one name
	// ParentGroupID places a group first heard of in the tree (absent for
	// the root).
	ParentGroupID uint64 `json:"parent_group_id,omitempty"`
	Task          string `json:"task,omitempty"`
	TaskID        uint64 `json:"task_id,omitempty"`
	Function      string `json:"function,omitempty"`

	IntervalSeconds float64 `json:"interval_seconds,omitempty"` // periodic tasks
	Run             uint64  `json:"run,omitempty"`              // periodic run number, from 1

	Outcome   string `json:"outcome,omitempty"`  // success, error, canceled, panic, aborted
	Rejected  bool   `json:"rejected,omitempty"` // spawned on a closed group: never ran
	Error     string `json:"error,omitempty"`    // for panics, the panic value; the stack is in Stack
	ErrorType string `json:"error_type,omitempty"`
	Cause     string `json:"cause,omitempty"`      // the cancellation cause's message
	CauseKind string `json:"cause_kind,omitempty"` // runtime.CauseKind: shutdown, fail_fast, ...

	DurationSeconds      float64 `json:"duration_seconds,omitempty"`
	CancelLatencySeconds float64 `json:"cancel_latency_seconds,omitempty"`
	Stack                string  `json:"stack,omitempty"` // panic stack, or where an aborted task was stuck

	Drained *int `json:"drained,omitempty"` // shutdown_finished only
	Aborted *int `json:"aborted,omitempty"` // shutdown_finished only

	Missed uint64 `json:"missed,omitempty"` // lag notices only
	Resync bool   `json:"resync,omitempty"` // lag notices only: re-fetch the snapshot
}

// NewEventJSON returns ev's wire form.
func NewEventJSON(ev runtime.Event) EventJSON {
	j := EventJSON{
		Seq:                  ev.Seq,
		Time:                 ev.Time,
		Kind:                 ev.Kind,
		Level:                ev.Level().String(),
		Group:                ev.Group,
		GroupID:              ev.GroupID,
		ParentGroupID:        ev.ParentGroupID,
		Task:                 ev.Task,
		TaskID:               ev.TaskID,
		Function:             ev.Function,
		IntervalSeconds:      ev.Interval.Seconds(),
		Run:                  ev.Run,
		Rejected:             ev.Rejected,
		ErrorType:            runtime.ErrorType(ev.Outcome, ev.Err),
		DurationSeconds:      ev.Duration.Seconds(),
		CancelLatencySeconds: ev.CancelLatency.Seconds(),
		Stack:                string(ev.Stack),
	}
	if ev.Outcome != 0 {
		j.Outcome = ev.Outcome.String()
	}
	if ev.Err != nil && !isCancelRequest(ev.Kind) { // a cancel request's Err is its cause
		j.Error = errorMessage(ev.Err)
	}
	if ev.Cause != nil {
		j.Cause = errorMessage(ev.Cause)
		j.CauseKind = runtime.CauseKind(ev.Cause)
	}
	if ev.Kind == runtime.KindGroupShutdownDone {
		drained, aborted := ev.Drained, ev.Aborted
		j.Drained, j.Aborted = &drained, &aborted
	}
	var lag *LaggedError
	if ev.Kind == KindStreamLagged && errors.As(ev.Err, &lag) {
		j.Missed, j.Resync = lag.Missed, lag.Resync
	}
	return j
}

// errorMessage is err's message, capped as the stream caps it; for a
// panic's own error, the panic value alone, since the stack has its own
// field. (An error wrapping a panic, such as a fail-fast cause, keeps its
// whole message: it says which task failed.) A panicking Error gives a
// placeholder (see errtext.Text).
func errorMessage(err error) string {
	// The stream's wrapper is on top, as panicError expects too: errors.As
	// would run the methods of the application's chain to find it.
	ce, capped := err.(*cappedError)
	limit := DefaultMaxMessage
	if capped {
		limit = ce.max
	}
	if pe, ok := panicError(err); ok {
		return truncateString(fmt.Sprintf("taskscope: panic: %v", pe.Value), limit)
	}
	if capped {
		return ce.Error()
	}
	return truncateString(errtext.Text(err), limit)
}

// SnapshotJSON is the wire form of a supervisor's task tree, as served by
// [TasksHandler]: the tree and the event sequence number it corresponds to,
// from which a client resumes the event stream (?after=seq). Seq is bare:
// it does not say which process took the snapshot, so resuming from it
// against another one (restarted since, or another replica behind a load
// balancer) is only detected when it is far beyond what that process
// published (see [After]); to resume later, a client uses the "seq@stream"
// id of the last event it saw.
type SnapshotJSON struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"` // when the snapshot was taken; ages are relative to it
	Root GroupJSON `json:"root"`
}

// GroupJSON is one group of a [SnapshotJSON]. The counts cover the
// group's whole subtree (in a tree narrowed by [TasksHandler]'s ?group=, a
// group kept only on the way to the groups asked for counts just theirs);
// Tasks and Groups are never null.
type GroupJSON struct {
	Name      string      `json:"name"` // full dotted name
	ID        uint64      `json:"id"`   // the events' group_id: sibling groups may share a name
	Closed    bool        `json:"closed"`
	Canceled  bool        `json:"canceled"`
	Running   int         `json:"running"`
	Canceling int         `json:"canceling"`
	Abandoned int         `json:"abandoned"`
	Tasks     []TaskJSON  `json:"tasks"`
	Groups    []GroupJSON `json:"groups"`
}

// TaskJSON is one live or abandoned task of a [GroupJSON].
type TaskJSON struct {
	ID              uint64    `json:"id"`
	Name            string    `json:"name"`
	Group           string    `json:"group"`
	State           string    `json:"state"` // running, canceling, abandoned
	Started         time.Time `json:"started"`
	AgeSeconds      float64   `json:"age_seconds"`
	IntervalSeconds float64   `json:"interval_seconds,omitempty"` // periodic tasks
	Runs            uint64    `json:"runs,omitempty"`             // periodic tasks: runs started
	// The run in progress of a periodic task: when it started and how old
	// it is (a run much older than the period is stuck); absent between
	// runs.
	RunStarted    *time.Time `json:"run_started,omitempty"`
	RunAgeSeconds float64    `json:"run_age_seconds,omitempty"`
	// The last run of a periodic task to have ended, as its run_finished
	// event said; absent before the first one ends.
	LastRun *RunResultJSON `json:"last_run,omitempty"`
}

// RunResultJSON is how a periodic task's run ended ([runtime.RunResult]):
// the fields of its run_finished event, and how long ago it ended.
type RunResultJSON struct {
	Run             uint64    `json:"run"`
	Outcome         string    `json:"outcome"`         // success, error, canceled, panic, aborted
	Error           string    `json:"error,omitempty"` // as an event's error field
	Ended           time.Time `json:"ended"`
	DurationSeconds float64   `json:"duration_seconds"`
	AgeSeconds      float64   `json:"age_seconds"` // since it ended, at the snapshot's time
}

// NewSnapshotJSON returns the wire form of snap, taken at now.
func NewSnapshotJSON(snap runtime.GroupSnapshot, now time.Time) SnapshotJSON {
	return SnapshotJSON{Seq: snap.Seq, Time: now, Root: groupJSON(snap, now)}
}

func groupJSON(g runtime.GroupSnapshot, now time.Time) GroupJSON {
	j := GroupJSON{
		Name:      g.Name,
		ID:        g.ID,
		Closed:    g.Closed,
		Canceled:  g.Canceled,
		Running:   g.Running,
		Canceling: g.Canceling,
		Abandoned: g.Abandoned,
		Tasks:     make([]TaskJSON, 0, len(g.Tasks)),
		Groups:    make([]GroupJSON, 0, len(g.Groups)),
	}
	for _, t := range g.Tasks {
		var run *time.Time
		var runAge float64
		if !t.RunStarted.IsZero() {
			run, runAge = &t.RunStarted, now.Sub(t.RunStarted).Seconds()
		}
		var last *RunResultJSON
		if r := t.LastRun; r.Run != 0 {
			last = &RunResultJSON{Run: r.Run, Outcome: r.Outcome.String(), Ended: r.Ended,
				DurationSeconds: r.Duration.Seconds(), AgeSeconds: now.Sub(r.Ended).Seconds()}
			if r.Err != nil {
				last.Error = errorMessage(r.Err)
			}
		}
		j.Tasks = append(j.Tasks, TaskJSON{
			ID:              t.ID,
			Name:            t.Name,
			Group:           t.Group,
			State:           t.State.String(),
			Started:         t.Started,
			AgeSeconds:      now.Sub(t.Started).Seconds(),
			IntervalSeconds: t.Interval.Seconds(),
			Runs:            t.Runs,
			RunStarted:      run,
			RunAgeSeconds:   runAge,
			LastRun:         last,
		})
	}
	for _, c := range g.Groups {
		j.Groups = append(j.Groups, groupJSON(c, now))
	}
	return j
}
