package telemetry_test

import (
	"os"
	"strings"
	"testing"
)

// TestDocNamesEveryExemplarHistogram: the package doc's metric table says
// which histograms carry trace_id exemplars, and it says so of each one
// that does (TestExemplarsCarryTraceID, TestRunSpans): an operator deciding
// where a latency outlier leads to its trace reads the table.
func TestDocNamesEveryExemplarHistogram(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"taskscope_task_duration_seconds",
		"taskscope_task_cancel_latency_seconds",
		"taskscope_group_shutdown_duration_seconds",
		"taskscope_periodic_run_duration_seconds",
	} {
		line := ""
		for l := range strings.Lines(string(doc)) {
			if strings.HasPrefix(l, "//\t"+name+"{") {
				line = l
			}
		}
		if !strings.Contains(line, "trace_id exemplars") {
			t.Errorf("doc.go's metric table does not say %s carries trace_id exemplars: %q", name, line)
		}
	}
}
