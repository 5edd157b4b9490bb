package runtime

import (
	goruntime "runtime"
	"testing"
)

// The weak entries of collected groups do not pile up in their parent:
// they are dropped before the list grows, so a parent that made many
// groups, all garbage now, keeps room for only a few.
func TestCollectedGroupsLeaveNoEntries(t *testing.T) {
	sup := New("app")
	held := sup.Group("held")
	for i := range 10_000 {
		sup.Group("request")
		if i%1000 == 999 {
			goruntime.GC()
		}
	}
	goruntime.GC()
	sup.Group("last")
	sup.mu.Lock()
	n := len(sup.children)
	children := sup.childrenLocked()
	sup.mu.Unlock()
	if n > 2000 {
		t.Errorf("%d entries in the parent after 10,000 groups made and collected, want at most 2,000", n)
	}
	if len(children) != 2 || children[0] != held || children[1].Name() != "app.last" {
		t.Errorf("children = %v, want the held group and the last one", children)
	}
}
