package runtime_test

import (
	"context"
	"testing"

	"github.com/taskscope/taskscope/runtime"
)

// BenchmarkGroupPerRequest makes a group per request, as an errgroup would
// be: one task, a Wait, the group dropped.
func BenchmarkGroupPerRequest(b *testing.B) {
	sup := runtime.New("")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		g := sup.Group("request")
		g.Go("fetch", noop)
		_ = g.Wait(ctx)
	}
}
