package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

func TestProgrammingErrorsPanicAtTheCall(t *testing.T) {
	sup := runtime.New("")
	var nilCtx context.Context
	tests := []struct {
		name, want string
		call       func()
	}{
		{"Go nil fn", `Go("x") with nil function`, func() { sup.Go("x", nil) }},
		{"Wait nil ctx", "nil context", func() { _ = sup.Wait(nilCtx) }},
		{"Shutdown nil ctx", "nil context", func() { _ = sup.Shutdown(nilCtx) }},
		{"WithCancelOn nil", "WithCancelOn(nil)", func() { runtime.WithCancelOn(nilCtx) }},
		{"WithParent nil", "WithParent(nil)", func() { runtime.WithParent(nilCtx) }},
		{"WithParent twice", "WithParent given twice", func() {
			sup.Go("x", func(context.Context) error { return nil }, runtime.WithParent(context.Background()), runtime.WithParent(context.Background()))
		}},
		{"WithObserver nil", "WithObserver(nil)", func() { runtime.WithObserver(nil) }},
		{"WithObserver nil pointer", "WithObserver(nil *runtimetest.Recorder)", func() { runtime.WithObserver((*runtimetest.Recorder)(nil)) }},
		{"unknown panic policy", "WithPanicPolicy(7): unknown PanicPolicy", func() { runtime.WithPanicPolicy(runtime.PanicPolicy(7)) }},
		{"Group empty name", `Group(""): empty group name`, func() { sup.Group("") }},
		{"Group dotted name", `Group("a.b"): group name contains '.'`, func() { sup.Group("a.b") }},
		{"New dotted name", `New("a.b"): group name contains '.'`, func() { runtime.New("a.b") }},
		{"New nil option", "nil Option", func() { runtime.New("x", nil) }},
		{"Group nil option", "nil GroupOption", func() { sup.Group("x", nil) }},
		{"Go nil option", "nil TaskOption", func() { sup.Go("x", func(context.Context) error { return nil }, nil) }},
		{"Every nil option", "nil TaskOption", func() { sup.Every("x", time.Second, func(context.Context) error { return nil }, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectPanic(t, tt.want, tt.call) })
	}
}
