package bench

import (
	"context"

	taskscope "github.com/taskscope/taskscope/runtime"
)

type nopObs struct{}

func (nopObs) TaskStarting(ctx context.Context, ev taskscope.Event) context.Context { return ctx }
func (nopObs) Observe(ctx context.Context, ev taskscope.Event)                      {}
func (nopObs) ObserveEvent(ctx context.Context, ev *taskscope.Event)                {}

func init() {
	peers = append(peers, peer{"zz.nopobs", func(f body) (func(int), func()) {
		fn := f.ctx
		return func(n int) {
			sup := taskscope.New("", taskscope.WithObserver(nopObs{}))
			for range n {
				sup.Go("noop", fn)
			}
			_ = sup.Wait(context.Background())
		}, nothing
	}})
}

func (nopObs) TaskStartingEvent(ctx context.Context, ev *taskscope.Event) context.Context { return ctx }
