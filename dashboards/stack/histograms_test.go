package stack

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/taskscope/taskscope/dashboards"
)

// A panel that reads a histogram's count or sum (histogram_count,
// histogram_sum) answers for a fleet where some targets have the native
// histogram and others only the classic series (a job scraped without
// native histograms, an instance of an older release): instances a (native
// only) and b (classic only) give the same answer as c and d, the same data
// with native histograms both. An "or" after the aggregation would keep
// a's native sum and drop b's classic one.
func TestHistogramPanelsAnswerForMixedScrapes(t *testing.T) {
	bin := tool(t, "PROMTOOL", "promtool")
	expr := func(instances string) map[string]string {
		qs, err := dashboards.Queries(map[string]string{"instance": instances, "__rate_interval": "5m"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, q := range qs {
			if (strings.Contains(q.Raw, "histogram_count(") || strings.Contains(q.Raw, "histogram_sum(")) &&
				!strings.Contains(q.Raw, "histogram_quantile") {
				out[q.Panel+" "+q.RefID] = q.Expr
			}
		}
		return out
	}
	mixed, native := expr("a|b"), expr("c|d")
	if len(mixed) == 0 {
		t.Fatal("no panel reads histogram_count or histogram_sum")
	}

	// Per minute: instances a and c finish 60 tasks of 1 s each, b and d 60
	// of 3 s; each shuts app.job down once, aborted.
	nat := func(sum int) string {
		return "{{schema:0 count:0 sum:0 buckets:[0]}}+{{schema:0 count:60 sum:" + itoa(sum) + " buckets:[60]}}x10"
	}
	series := func(name, labels, values string) map[string]string {
		return map[string]string{"series": name + "{" + labels + "}", "values": values}
	}
	task := func(i string) string {
		return `job="svc", instance="` + i + `", group="app.job", task="t", outcome="ok"`
	}
	shut := func(i string) string { return `job="svc", instance="` + i + `", group="app.job", result="aborted"` }
	const d, s = "taskscope_task_duration_seconds", "taskscope_group_shutdown_duration_seconds"
	input := []map[string]string{
		series(d, task("a"), nat(60)),
		series(d, task("c"), nat(60)),
		series(d, task("d"), nat(180)),
		series(d+"_count", task("b"), "0+60x10"),
		series(d+"_sum", task("b"), "0+180x10"),
		series(s, shut("a"), "{{schema:0 count:0 sum:0 buckets:[0]}}+{{schema:0 count:1 sum:30 buckets:[1]}}x10"),
		series(s, shut("c"), "{{schema:0 count:0 sum:0 buckets:[0]}}+{{schema:0 count:1 sum:30 buckets:[1]}}x10"),
		series(s, shut("d"), "{{schema:0 count:0 sum:0 buckets:[0]}}+{{schema:0 count:1 sum:30 buckets:[1]}}x10"),
		series(s+"_count", shut("b"), "0+1x10"),
		series(s+"_sum", shut("b"), "0+30x10"),
	}
	var tests []map[string]any
	for name, m := range mixed {
		n, ok := native[name]
		if !ok {
			t.Fatalf("%s: no query with instances c|d", name)
		}
		diff := "(" + m + ") - (" + n + ")"
		tests = append(tests,
			// The two answer for the same series...
			map[string]any{"expr": "count(" + diff + ")", "eval_time": "10m", "exp_samples": []map[string]any{{"labels": "{}", "value": 1}}},
			// ... with the same values.
			map[string]any{"expr": "count(abs(" + diff + ") > 1e-9) or vector(0)", "eval_time": "10m", "exp_samples": []map[string]any{{"labels": "{}", "value": 0}}},
		)
	}
	file := map[string]any{
		"evaluation_interval": "1m",
		"tests":               []map[string]any{{"interval": "1m", "input_series": input, "promql_expr_test": tests}},
	}
	b, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mixed.test.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, nil, bin, "test", "rules", path); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("%d panel queries answer alike from mixed and native scrapes", len(mixed))
}

func itoa(n int) string { return strconv.Itoa(n) }
