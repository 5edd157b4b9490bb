package runtime

import (
	"context"
	"time"
)

// Wait blocks until the group's subtree is idle (its tasks and every
// descendant group's tasks have ended, finished events delivered) and
// returns nil. An idle subtree returns nil even if ctx is already done.
// If ctx ends first, Wait returns a [*TimeoutError] listing the tasks still
// active. Wait cancels nothing; a nil ctx panics. A task of the subtree
// that calls Wait on it waits for itself: call it from outside.
//
// Unlike errgroup's Wait, then, Wait given a request's context returns
// when the client leaves, with the tasks still running (even those tied to
// that context by [WithCancelOn], which may not have heard of it yet):
// they outlive the handler, and whatever it releases as it returns. To
// wait as errgroup does, until every task has returned, tie the tasks to
// the request with WithCancelOn and give Wait a context that outlives
// them, such as context.Background().
func (g *Group) Wait(ctx context.Context) error {
	if ctx == nil {
		panic("taskscope: Wait(nil context)")
	}
	idle := g.idleChan()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	if g.idleChan() == nil {
		return nil
	}
	err := &TimeoutError{Group: g.name, Active: g.active(true), Cause: context.Cause(ctx), at: time.Now(), ended: ctx.Err()}
	g.tree.emit(ctx, &Event{Kind: KindGroupWaitTimedOut, Group: g.name, GroupID: g.id, ParentGroupID: g.parentID(), Err: err, Cause: context.Cause(ctx)})
	return err
}
