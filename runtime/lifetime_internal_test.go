package runtime

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A random tree of groups, each held in a different way (by the test, by
// its Context only, by a waiter on its Done channel only, by an AfterFunc
// only, by a running task, by an Every task, or not at all), with random
// GCs, random Cancels and sub-Shutdowns racing with group creation. After
// the root's Shutdown every waiter must have been woken, every callback
// run, every held context canceled, the pins released and, after a GC,
// the tree empty. In a synctest bubble: a waiter not woken is given up on
// once everything else is blocked.
func TestRandomLifetimes(t *testing.T) {
	for seed := range 40 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { randomLifetimes(t, uint64(seed)) })
		})
	}
}

func randomLifetimes(t *testing.T, seed uint64) {
	sup := New("app")
	var mu sync.Mutex
	var held []*Group
	var ctxs []context.Context
	var woken sync.WaitGroup
	giveUp := make(chan struct{})
	var notWoken []string
	var failures []string
	addHeld := func(g *Group) { mu.Lock(); held = append(held, g); mu.Unlock() }
	pick := func(r *rand.Rand) *Group {
		mu.Lock()
		defer mu.Unlock()
		if len(held) == 0 || r.IntN(4) == 0 {
			return sup.group
		}
		return held[r.IntN(len(held))]
	}
	// awaitWake waits, on a goroutine of its own, for ch to be closed,
	// noting what if it is given up on.
	awaitWake := func(what string, ch <-chan struct{}) {
		woken.Go(func() {
			select {
			case <-ch:
			case <-giveUp:
				mu.Lock()
				notWoken = append(notWoken, what)
				mu.Unlock()
			}
		})
	}
	var wg sync.WaitGroup
	for w := range 3 {
		r := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for i := range 60 {
				p := pick(r)
				// Sometimes make a chain whose middle is dropped.
				g := p.Group(fmt.Sprintf("w%d_%d", w, i))
				if r.IntN(3) == 0 {
					g = g.Group("inner")
				}
				switch r.IntN(8) {
				case 0:
					addHeld(g)
				case 1:
					mu.Lock()
					ctxs = append(ctxs, g.Context())
					mu.Unlock()
				case 2:
					awaitWake("waiter "+g.Name(), g.Context().Done())
				case 3:
					ran := make(chan struct{})
					context.AfterFunc(g.Context(), func() { close(ran) })
					awaitWake("afterfunc "+g.Name(), ran)
				case 4:
					g.Go("block", func(ctx context.Context) error { <-ctx.Done(); return nil })
				case 5:
					g.Every("tick", time.Millisecond, func(context.Context) error { return nil })
				case 6:
					if r.IntN(4) == 0 {
						g.Cancel(errors.New("own"))
					}
					addHeld(g)
				}
				if r.IntN(10) == 0 {
					goruntime.GC()
				}
				if r.IntN(25) == 0 {
					q := pick(r)
					if q != sup.group {
						go q.Shutdown(context.Background())
					}
				}
			}
		})
	}
	wg.Wait()
	goruntime.GC()
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i, c := range ctxs {
		if c.Err() == nil {
			failures = append(failures, fmt.Sprintf("ctx %d not canceled", i))
		}
	}
	for _, g := range held {
		if g.Context().Err() == nil {
			failures = append(failures, g.Name()+" not canceled")
		}
	}
	mu.Unlock()
	wakeDone := make(chan struct{})
	go func() { woken.Wait(); close(wakeDone) }()
	select {
	case <-wakeDone:
	case <-time.After(2 * time.Second):
		close(giveUp)
		<-wakeDone
	}
	mu.Lock()
	failures = append(failures, notWoken...)
	mu.Unlock()
	sup.tree.pinMu.Lock()
	if n := len(sup.tree.pins); n != 0 {
		failures = append(failures, fmt.Sprintf("%d pins left", n))
	}
	sup.tree.pinMu.Unlock()
	held, ctxs = nil, nil
	goruntime.GC()
	goruntime.GC()
	if n := len(sup.Snapshot().Groups); n != 0 {
		failures = append(failures, fmt.Sprintf("%d groups left after shutdown", n))
	}
	if len(failures) > 0 {
		t.Fatalf("seed %d: %v", seed, failures)
	}
}
