package main

import (
	"context"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// TestDispatchRejectedReleasesBudget: a message dispatched to a closed
// pipeline (the demo is shutting down) is rejected and its process task
// never runs; its budget is released at once, not when its timer fires.
func TestDispatchRejectedReleasesBudget(t *testing.T) {
	sup := runtime.New("demo")
	w := &workload{sup: sup, sched: schedule{itemBudget: time.Hour}, pipeline: sup.Group("pipeline")}
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	budget := w.dispatch(message{seq: 1})
	if budget.Err() == nil {
		t.Error("the rejected message's budget is still live: its timer holds it for the whole itemBudget")
	}
}

// TestDispatchReleasesBudgetWhenDone: an accepted message's budget is
// released when its task ends.
func TestDispatchReleasesBudgetWhenDone(t *testing.T) {
	sup := runtime.New("demo")
	w := &workload{sup: sup, sched: schedule{itemBudget: time.Hour, slowWrite: time.Millisecond}}
	w.pipeline = sup.Group("pipeline")
	w.enrich = w.pipeline.Group("stage").Group("enrich")
	budget := w.dispatch(message{seq: 1})
	if err := w.pipeline.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if budget.Err() == nil {
		t.Error("the budget of a message whose task has ended is still live")
	}
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
