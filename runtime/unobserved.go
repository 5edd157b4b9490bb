package runtime

import (
	"context"
	"fmt"
	"log/slog"
)

// logUnobservedPanic writes a recovered panic to slog.Default() when the
// supervisor has no observer: a panic must never vanish, and without an
// observer nobody else hears of it until someone reads the task's Result
// or its group's Err (a long-running worker's may never be read). This is
// what net/http does with a handler's panic. The record uses the
// LogObserver's message and keys, so that it reads as that observer's
// would. Attach any observer to take this over.
func logUnobservedPanic(t *Task, p *PanicError) {
	// Called while the task's panic is being recovered: a handler that
	// panics in turn must not crash the process that Recover keeps alive,
	// and with no observer there is nowhere else to say so.
	defer func() { _ = recover() }()
	l := slog.Default()
	ctx := context.Background()
	if !l.Enabled(ctx, slog.LevelError) {
		return
	}
	l.LogAttrs(ctx, slog.LevelError, "task panicked",
		slog.String("event", KindTaskFinished),
		slog.String(AttrGroup, t.Group()),
		slog.Int64(AttrGroupID, int64(t.owner().id)),
		slog.String(AttrTaskName, t.Name()),
		slog.Int64(AttrTaskID, int64(t.id)),
		slog.String(AttrOutcome, Panic.String()),
		slog.String("exception.message", fmt.Sprint(p.Value)),
		slog.String("exception.stacktrace", string(p.Stack)),
	)
}

// logLoneObserverPanic writes the KindObserverPanicked event ev to
// slog.Default() when the observer that panicked is the supervisor's only
// one: there is no other observer to tell, and the panic must not vanish
// (an error tracker that panics on every event would otherwise go quiet
// with nothing said). The record uses the LogObserver's message and keys.
func logLoneObserverPanic(ev *Event) {
	defer func() { _ = recover() }() // as logUnobservedPanic: nowhere else to say so
	l := slog.Default()
	ctx := context.Background()
	if !l.Enabled(ctx, slog.LevelError) {
		return
	}
	msg := ""
	if pe, ok := ev.Err.(*PanicError); ok {
		msg = fmt.Sprint(pe.Value)
	}
	attrs := []slog.Attr{
		slog.String("event", ev.Kind),
		slog.String(AttrGroup, ev.Group),
		slog.Int64(AttrGroupID, int64(ev.GroupID)),
	}
	if ev.TaskID != 0 {
		attrs = append(attrs, slog.String(AttrTaskName, ev.Task), slog.Int64(AttrTaskID, int64(ev.TaskID)))
	}
	attrs = append(attrs,
		slog.String("exception.message", msg),
		slog.String("exception.stacktrace", string(ev.Stack)))
	l.LogAttrs(ctx, slog.LevelError, "observer panicked", attrs...)
}
