package runtime_test

import (
	"context"
	"strings"
	"testing"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

type worker struct{}

func (*worker) compact(context.Context) error { return nil }

// TestFunctionOfMethodValue: a task whose fn is a method value is named
// after the method, as a stack trace shows it (and as code.function.name
// wants it: semconv asks for the runtime's natural representation, the one
// in code.stacktrace), not after the compiler's "-fm" wrapper.
func TestFunctionOfMethodValue(t *testing.T) {
	rec := &runtimetest.Recorder{}
	sup := runtime.New("fn", runtime.WithObserver(rec))
	w := &worker{}
	sup.Go("compact", w.compact)
	if err := sup.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	const want = "runtime_test.(*worker).compact"
	for _, ev := range rec.Events() {
		if ev.TaskID != 0 && !strings.HasSuffix(ev.Function, want) {
			t.Fatalf("%s: Function = %q, want the method, …%s", ev.Kind, ev.Function, want)
		}
	}
}
