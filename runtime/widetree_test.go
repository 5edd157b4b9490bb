package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// TestShutdownOfManyGroupsIsLinear shuts down many child groups of one
// parent, at once (the parent's Shutdown) and one by one (a group per
// connection, shut down as it closes), and compares the time with that of
// making them, a linear baseline measured alike. A shut-down group used to
// be removed from its parent's list by a scan of the list, and the parent
// pruned by another: O(n²), 1 s for 16,000 groups against 15 ms to make
// them (7 s for 40,000).
func TestShutdownOfManyGroupsIsLinear(t *testing.T) {
	const n = 16_000
	for _, oneByOne := range []bool{false, true} {
		sup := runtime.New("app")
		gs := make([]*runtime.Group, n)
		start := time.Now()
		for i := range gs {
			gs[i] = sup.Group("conn")
		}
		made := time.Since(start)
		start = time.Now()
		if oneByOne {
			for _, g := range gs {
				if err := g.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := sup.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		shut := time.Since(start)
		if snap := sup.Snapshot(); len(snap.Groups) != 0 {
			t.Errorf("one by one=%v: %d child groups left after the shutdown", oneByOne, len(snap.Groups))
		}
		// Linear, the shutdown costs a few times the making; quadratic,
		// fifty times and more at this n.
		if shut > 20*made+20*time.Millisecond {
			t.Errorf("one by one=%v: shutting down %d groups took %v, making them %v: not linear", oneByOne, n, shut, made)
		}
		t.Logf("one by one=%v: made %d groups in %v, shut them down in %v", oneByOne, n, made, shut)
	}
}
