package runtimetest_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
)

// TestRecorderInSynctestBubble is the package doc's example of a test in
// a synctest bubble (TestPackageDocShowsBubbleTest keeps them the same).
func TestRecorderInSynctestBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec runtimetest.Recorder
		sup := runtime.New("app", runtime.WithObserver(&rec))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := sup.Shutdown(ctx); err != nil {
				t.Error(err)
			}
		})
		start := time.Now()
		sup.Every("poll", 10*time.Minute, func(context.Context) error {
			time.Sleep(time.Second) // the upstream's answer
			return nil
		})

		time.Sleep(25 * time.Minute) // runs at 0, 10m1s and 20m2s
		synctest.Wait()
		var runs []time.Duration
		for _, ev := range rec.Events() {
			if ev.Kind == runtime.KindTaskRunFinished {
				runs = append(runs, ev.Time.Sub(start))
			}
		}
		if want := []time.Duration{time.Second, 10*time.Minute + 2*time.Second, 20*time.Minute + 3*time.Second}; !slices.Equal(runs, want) {
			t.Errorf("runs ended at %v, want %v", runs, want)
		}
	})
}

// TestPackageDocShowsBubbleTest: the package doc's code block is the body
// of TestRecorderInSynctestBubble, so that what it tells a user runs.
func TestPackageDocShowsBubbleTest(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "//\t"):
			block = append(block, strings.TrimPrefix(line, "//\t"))
		case len(block) > 0 && line == "//":
			block = append(block, "")
		}
	}
	src, err := os.ReadFile("synctest_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "func TestRecorderInSynctestBubble(t *testing.T) {\n")
	body, _, _ = strings.Cut(body, "\n}\n")
	var want []string
	for _, line := range strings.Split(body, "\n") {
		want = append(want, strings.TrimPrefix(line, "\t"))
	}
	if got, want := strings.TrimSpace(strings.Join(block, "\n")), strings.TrimSpace(strings.Join(want, "\n")); got == "" || got != want {
		t.Fatalf("the package doc's code block is not TestRecorderInSynctestBubble's body:\n--- doc\n%s\n--- test\n%s", got, want)
	}
}
