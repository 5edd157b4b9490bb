package runtime

import (
	"context"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
)

// TestDetachedChildrenAreNeverWalked: sibling groups shut down one by
// one under a parent with held children, with walks (Cancel of a held
// child, Snapshot) in between, never leave the parent's list longer than
// about twice its live children, and walks never list a detached one.
func TestDetachedChildrenAreNeverWalked(t *testing.T) {
	sup := New("app")
	p := sup.Group("p")
	var held []*Group
	for range 10 {
		held = append(held, p.Group("held"))
	}
	maxLen := 0
	for i := range 5000 {
		c := p.Group("req")
		if i%3 == 0 {
			c.Group("sub").Go("x", func(context.Context) error { return nil })
		}
		c.Go("y", func(context.Context) error { return nil })
		if err := c.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		switch i % 50 {
		case 7:
			held[i%len(held)].Cancel(nil)
		case 13:
			s := p.Snapshot()
			if len(s.Groups) != len(held) {
				t.Fatalf("snapshot shows %d groups, want the %d held", len(s.Groups), len(held))
			}
		}
		p.mu.Lock()
		maxLen = max(maxLen, len(p.children))
		for _, c := range p.childrenLocked() {
			if c.detached.Load() {
				t.Fatalf("childrenLocked lists detached %s", c.name)
			}
		}
		if p.stale < 0 {
			t.Fatalf("stale %d", p.stale)
		}
		p.mu.Unlock()
	}
	if maxLen > 2*len(held)+2 {
		t.Fatalf("the parent's list reached %d with %d live children", maxLen, len(held))
	}
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if n := len(sup.childrenLocked()); n != 0 {
		t.Fatalf("%d children after Shutdown", n)
	}
	t.Logf("parent's list at most %d entries for %d live children", maxLen, len(held))
}

// waitForStack spins until some goroutine's stack contains every one of
// frames.
func waitForStack(t *testing.T, frames ...string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := string(buf[:goruntime.Stack(buf, true)])
		for _, g := range strings.Split(s, "\n\n") {
			ok := true
			for _, f := range frames {
				ok = ok && strings.Contains(g, f)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine in %v", frames)
		}
		goruntime.Gosched()
	}
}

// TestSnapshotGatePath forces lockSubtree's TryLock to fail on a
// group made after its listing, so that it starts over under the gate:
// the snapshot completes, has the new group, Group calls made meanwhile
// wait and then proceed, and the gate is open afterwards.
func TestSnapshotGatePath(t *testing.T) {
	sup := New("app", WithObserver(nopObserver{}))
	p := sup.Group("p")
	x := sup.Group("x") // listed after p
	x.mu.Lock()         // the listing stops at x
	snapped := make(chan GroupSnapshot)
	go gateTestSnapshot(sup, snapped)
	// Only this test's goroutines: another test's may linger in these
	// frames, and matching one of them would deadlock this one.
	waitForStack(t, "gateTestSnapshot", "subtreeLocking", "(*Mutex).lockSlow") // blocked on x
	n := p.Group("new")                                                        // made after p was listed
	n.mu.Lock()                                                                // as a spawn in n waiting for p would hold it
	x.mu.Unlock()
	// The TryLock of n fails; the next pass gates and blocks on n, which
	// it lists now.
	for deadline := time.Now().Add(10 * time.Second); !sup.tree.gated.Load(); goruntime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the snapshot's second pass never gated")
		}
	}
	made := make(chan *Group)
	go gateTestGroup(sup, made)
	waitForStack(t, "gateTestGroup", "(*Group).Group", "RLock")
	n.mu.Unlock()
	s := <-snapped
	late := <-made
	if sup.tree.gated.Load() {
		t.Fatal("still gated")
	}
	var names []string
	for _, c := range s.Groups {
		names = append(names, c.Name)
		for _, cc := range c.Groups {
			names = append(names, cc.Name)
		}
	}
	if got := strings.Join(names, " "); got != "app.p app.p.new app.x" {
		t.Fatalf("snapshot groups %q", got)
	}
	if s2 := sup.Snapshot(); len(s2.Groups) != 3 || late.Name() != "app.late" {
		t.Fatalf("after: %d groups", len(s2.Groups))
	}
	if err := sup.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// gateTestSnapshot and gateTestGroup name TestSnapshotGatePath's
// goroutines in their stacks.
//
//go:noinline
func gateTestSnapshot(sup *Supervisor, out chan<- GroupSnapshot) { out <- sup.Snapshot() }

//go:noinline
func gateTestGroup(sup *Supervisor, out chan<- *Group) { out <- sup.Group("late") }

type nopObserver struct{}

func (nopObserver) TaskStarting(ctx context.Context, _ Event) context.Context { return ctx }
func (nopObserver) Observe(context.Context, Event)                            {}
