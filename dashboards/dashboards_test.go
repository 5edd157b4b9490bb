//lint:file-ignore SA1019 the classic dashboard model (package dashboard) is what Grafana's file provisioning loads; dashboardv2 needs Grafana's app-platform APIs.

package dashboards

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/prometheus/prometheus/promql/parser"
)

// The committed JSON is exactly what the generator writes.
func TestGeneratedJSONIsUpToDate(t *testing.T) {
	for _, s := range All {
		d, err := s.Build()
		if err != nil {
			t.Fatalf("%s: build: %v", s.File, err)
		}
		want, err := Render(d)
		if err != nil {
			t.Fatalf("%s: render: %v", s.File, err)
		}
		got, err := os.ReadFile(s.File)
		if err != nil {
			t.Fatalf("%s: %v (run `go generate ./...` in dashboards/)", s.File, err)
		}
		if !bytes.Equal(got, want) {
			gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
			for i := 0; i < max(len(gl), len(wl)); i++ {
				g, w := at(gl, i), at(wl, i)
				if g != w {
					t.Fatalf("%s is stale: run `go generate ./...` in dashboards/ (or `make dashboards`)\nfirst difference at line %d:\n committed: %s\n generated: %s", s.File, i+1, g, w)
				}
			}
		}
	}
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<end of file>"
}

// The JSON decodes as a Grafana dashboard model and encodes back unchanged.
func TestGeneratedJSONRoundTrips(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, s := range All {
		raw, err := os.ReadFile(s.File)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard.Dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: not a dashboard: %v", s.File, err)
		}
		again, err := Render(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, again) {
			t.Errorf("%s does not survive a decode/encode round trip", s.File)
		}
		if problems := Lint(d); len(problems) > 0 {
			t.Errorf("%s (decoded): %v", s.File, problems)
		}
	}
}

// Grafana's provider loads every *.json under the mounted dashboards/ folder,
// so nothing but generated dashboards may live there.
func TestNoStrayJSON(t *testing.T) {
	var want []string
	for _, s := range All {
		want = append(want, s.File)
	}
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(path, ".json") && !slices.Contains(want, path) {
			t.Errorf("%s: Grafana would load it as a dashboard; only generated dashboards may be *.json here", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDashboardsLintClean(t *testing.T) {
	for _, s := range All {
		d, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range Lint(d) {
			t.Errorf("%s: %s", s.File, p)
		}
	}
}

func overview(t *testing.T) dashboard.Dashboard {
	t.Helper()
	d, err := Overview()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func findPanel(t *testing.T, d dashboard.Dashboard, title string) *dashboard.Panel {
	t.Helper()
	for _, p := range d.Panels {
		if p.Panel != nil && deref(p.Panel.Title) == title {
			return p.Panel
		}
	}
	t.Fatalf("no panel %q", title)
	return nil
}

// The overview shows what the issue asks for.
func TestOverviewContents(t *testing.T) {
	d := overview(t)

	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name+":"+string(v.Type))
	}
	// filters: ad hoc label filters, for the const labels a service sets;
	// tasks_url: where the Task page link goes.
	if want := []string{"datasource:datasource", "job:query", "instance:query", "group:query", "task:query", "filters:adhoc", "tasks_url:textbox"}; !slices.Equal(names, want) {
		t.Errorf("variables = %v, want %v", names, want)
	}
	// The task page is one click away, in the top bar (no placement: the
	// controls menu hides it), defaulting to the demo's.
	if len(d.Links) != 1 || d.Links[0].Url == nil || *d.Links[0].Url != "${tasks_url}" || d.Links[0].Placement != nil || !d.Links[0].TargetBlank {
		t.Errorf("links = %+v, want one to ${tasks_url} in the top bar, in a new tab", d.Links)
	}
	if v := d.Templating.List[len(d.Templating.List)-1]; v.Query == nil || v.Query.String == nil || *v.Query.String != TaskPageURL {
		t.Errorf("tasks_url defaults to %+v, want %s", v.Query, TaskPageURL)
	}

	types := map[string]string{
		"Running tasks":                          "stat",
		"Abandoned tasks":                        "stat",
		"Spawn rate by group":                    "timeseries",
		"Finish rate by outcome":                 "timeseries",
		"Failure ratio by group":                 "timeseries",
		"Task duration p50 / p95 / p99":          "timeseries",
		"Cancel latency p50 / p95 / p99":         "timeseries",
		"Periodic runs by outcome":               "timeseries",
		"Periodic run duration p50 / p95 / p99":  "timeseries",
		"Shutdown duration p50 / p99":            "timeseries",
		"Stream events":                          "timeseries",
		"Stream drops":                           "timeseries",
		"Stream subscribers":                     "timeseries",
		"Label overflow":                         "timeseries",
		"Goroutines: supervised vs unsupervised": "timeseries",
		"Unsupervised goroutines":                "stat",
	}
	for title, typ := range types {
		if p := findPanel(t, d, title); p.Type != typ {
			t.Errorf("panel %q is a %s, want %s", title, p.Type, typ)
		}
	}

	// Abandoned > 0 is red.
	ab := findPanel(t, d, "Abandoned tasks")
	steps := ab.FieldConfig.Defaults.Thresholds.Steps
	if len(steps) != 2 || steps[0].Color != "green" || steps[1].Color != "red" || steps[1].Value == nil || *steps[1].Value > 1 || *steps[1].Value <= 0 {
		t.Errorf("Abandoned tasks thresholds = %+v, want green then red from 1", steps)
	}

	// Durations span milliseconds to minutes (a consumer beside a
	// request's task): on a log axis, which cannot start at 0; counts and
	// rates start at 0.
	for _, p := range d.Panels {
		if p.Panel == nil || p.Panel.Type != "timeseries" {
			continue
		}
		custom, _ := p.Panel.FieldConfig.Defaults.Custom.(*timeseries.FieldConfig)
		logScale := custom != nil && custom.ScaleDistribution != nil && custom.ScaleDistribution.Type == common.ScaleDistributionLog
		latency := deref(p.Panel.FieldConfig.Defaults.Unit) == "s" && !strings.Contains(deref(p.Panel.Title), "since last success")
		fromZero := p.Panel.FieldConfig.Defaults.Min != nil && *p.Panel.FieldConfig.Defaults.Min == 0
		if logScale != latency || fromZero == latency {
			t.Errorf("panel %q (unit %s): log scale %v, from 0 %v; want a log scale for durations, 0 up for the rest", deref(p.Panel.Title), deref(p.Panel.FieldConfig.Defaults.Unit), logScale, fromZero)
		}
	}

	// Durations of tasks and of periodic runs carry exemplars, with p50,
	// p95 and p99; a run's against the task's period.
	for title, metric := range map[string]string{
		"Task duration p50 / p95 / p99":         "taskscope_task_duration_seconds",
		"Periodic run duration p50 / p95 / p99": "taskscope_periodic_run_duration_seconds",
	} {
		var qs []string
		for _, tg := range findPanel(t, d, title).Targets {
			q, _ := asPrometheus(tg)
			if strings.HasPrefix(q.Expr, "histogram_quantile(") && (q.Exemplar == nil || !*q.Exemplar) {
				t.Errorf("%s: quantile query %s has exemplars off", title, deref(q.RefId))
			}
			qs = append(qs, q.Expr)
		}
		for _, want := range []string{"histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,"} {
			if !slices.ContainsFunc(qs, func(q string) bool { return strings.HasPrefix(q, want) && strings.Contains(q, metric) }) {
				t.Errorf("%s lacks %s...", title, want)
			}
		}
		if period := slices.ContainsFunc(qs, func(q string) bool { return strings.Contains(q, "taskscope_periodic_interval_seconds") }); period != strings.HasPrefix(title, "Periodic") {
			t.Errorf("%s: draws the period: %v", title, period)
		}
	}

	// The goroutine row compares supervised tasks with go_goroutines.
	gor := findPanel(t, d, "Goroutines: supervised vs unsupervised")
	var all string
	for _, tg := range gor.Targets {
		q, _ := asPrometheus(tg)
		all += q.Expr + "\n"
	}
	for _, m := range []string{"go_goroutines", "taskscope_tasks_running", "taskscope_tasks_abandoned"} {
		if !strings.Contains(all, m) {
			t.Errorf("goroutine panel does not query %s", m)
		}
	}
}

// Every metric telemetry exports appears on some panel, so a new metric
// cannot be forgotten by the dashboard.
func TestEveryMetricIsShown(t *testing.T) {
	qs, err := Queries(nil)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, q := range qs {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(q.Expr)
		if err != nil {
			t.Fatal(err)
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				if m, _, ok := LookupSeries(vs.Name); ok {
					used[m.Name] = true
				}
			}
			return nil
		})
	}
	for _, m := range append(append([]Metric(nil), Metrics...), RuntimeMetrics...) {
		if !used[m.Name] {
			t.Errorf("no panel shows %s", m.Name)
		}
	}
}

func TestMetricsListIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Metrics {
		if !strings.HasPrefix(m.Name, "taskscope_") {
			t.Errorf("%s: telemetry metrics use the taskscope_ prefix", m.Name)
		}
		if (m.Type == Counter) != strings.HasSuffix(m.Name, "_total") {
			t.Errorf("%s: counters, and only counters, end in _total", m.Name)
		}
		if seen[m.Name] {
			t.Errorf("%s listed twice", m.Name)
		}
		seen[m.Name] = true
	}
	for _, m := range RuntimeMetrics {
		if !strings.HasPrefix(m.Name, "go_") {
			t.Errorf("%s: RuntimeMetrics holds the Go collector's go_* metrics", m.Name)
		}
	}
}

func TestQueries(t *testing.T) {
	d := overview(t)
	targets := 0
	for _, p := range panels(d) {
		targets += len(p.Targets)
	}

	qs, err := Queries(map[string]string{"job": "taskscope-demo", "__rate_interval": "30s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != targets {
		t.Fatalf("Queries returned %d queries, the dashboard has %d targets", len(qs), targets)
	}
	for _, q := range qs {
		if strings.Contains(q.Expr, "$") {
			t.Errorf("%s/%s: unsubstituted variable in %s", q.Panel, q.RefID, q.Expr)
		}
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.Expr)
		if err != nil {
			t.Errorf("%s/%s: %v", q.Panel, q.RefID, err)
			continue
		}
		// increase over $__rate_interval, plotted at every step (a scrape
		// interval, a quarter of the window or less), counts each event in
		// every step whose window covers it: a count per step must be a rate.
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if c, ok := n.(*parser.Call); ok && c.Func.Name == "increase" {
				if ms, ok := c.Args[0].(*parser.MatrixSelector); ok && ms.Range == 30*time.Second {
					t.Errorf("%s/%s: increase over $__rate_interval counts each event in several steps: %s", q.Panel, q.RefID, q.Expr)
				}
			}
			return nil
		})
		if q.Dashboard != OverviewUID || q.Panel == "" || q.RefID == "" || q.Raw == "" {
			t.Errorf("incomplete query %+v", q)
		}
	}
	first := qs[0]
	if first.Panel != "Running tasks" || first.Expr != `sum(taskscope_tasks_running{job=~"taskscope-demo", instance=~".*", group=~".*", task=~".*"})` {
		t.Errorf("first query = %q: %s", first.Panel, first.Expr)
	}
	spawn := slices.IndexFunc(qs, func(q Query) bool { return q.Panel == "Spawn rate by group" })
	if spawn < 0 || !strings.Contains(qs[spawn].Expr, "[30s]") {
		t.Errorf("$__rate_interval not substituted from vars: %+v", qs[spawn])
	}
	if !slices.ContainsFunc(qs, func(q Query) bool { return q.Exemplar }) {
		t.Error("no query asks for exemplars")
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"job": "demo", "instance": "127.0.0.1:8080"}
	for _, c := range []struct{ in, want, err string }{
		{in: `up{job=~"$job"}`, want: `up{job=~"demo"}`},
		{in: `up{job=~"${job}", instance="${instance:raw}"}`, want: `up{job=~"demo", instance="127.0.0.1:8080"}`},
		{in: `up{job=~"[[job]]"}`, want: `up{job=~"demo"}`},
		{in: `rate(x[$__rate_interval])`, want: `rate(x[1m])`},
		{in: `label_replace(up, "a", "$1", "job", "(.*)")`, want: `label_replace(up, "a", "$1", "job", "(.*)")`},
		{in: `up{job=~"$nope"}`, err: "nope"},
	} {
		got, err := Expand(c.in, vars)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Expand(%q) error = %v, want one naming %q", c.in, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestExpandLink(t *testing.T) {
	vars := map[string]string{"tasks_url": "http://127.0.0.1:8080/debug/tasks"}
	labels := map[string]string{"group": "app.ingest k&v", "odd": "a+b !'()*~"}
	for _, c := range []struct{ in, want, err string }{
		{in: GroupLinkURL, want: "http://127.0.0.1:8080/debug/tasks?group=app.ingest%20k%26v"},
		// Grafana's percentencode: encodeURIComponent, and !'()* as well.
		{in: "${__field.labels.odd:percentencode}", want: "a%2Bb%20%21%27%28%29%2A~"},
		{in: "${tasks_url:raw}", want: "http://127.0.0.1:8080/debug/tasks"},
		{in: "${tasks_url:percentencode}", want: "http%3A%2F%2F127.0.0.1%3A8080%2Fdebug%2Ftasks"},
		{in: "${tasks_url}?group=${__field.labels.group:percentencode}", err: "${tasks_url} needs the format"},
		{in: "${tasks_url:raw}?group=${__field.labels.task:raw}", err: "no value for ${__field.labels.task:raw}"},
		{in: "${nope:raw}", err: "no value for ${nope:raw}"},
		{in: "${tasks_url:csv}", err: "needs the format raw or percentencode"},
		{in: "$tasks_url", err: "another syntax"},
	} {
		got, err := ExpandLink(c.in, vars, labels)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ExpandLink(%q) error = %v, want one containing %q", c.in, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ExpandLink(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// A per-group series links to the task page of its group; a panel with a
// series that has no group label (by outcome, process-wide) links nowhere,
// since ?group= with no value is a 400. The end-to-end suite follows every
// link of every series against the demo.
func TestGroupLinks(t *testing.T) {
	qs, err := Queries(nil)
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, q := range qs {
		perGroup := strings.Contains(q.Legend, "{{group}}")
		switch {
		case len(q.Links) > 0 && !perGroup:
			t.Errorf("panel %q links to a group, but its query %s has no group in its legend %q", q.Panel, q.RefID, q.Legend)
		case len(q.Links) > 0:
			if !slices.Equal(q.Links, []string{GroupLinkURL}) {
				t.Errorf("panel %q links = %q, want [%s]", q.Panel, q.Links, GroupLinkURL)
			}
			linked[q.Panel] = true
		}
	}
	for _, want := range []string{"Running and abandoned tasks by group", "Spawn rate by group", "Failure ratio by group",
		"Task duration p50 / p95 / p99", "Cancel latency p50 / p95 / p99", "Group shutdowns by result", "Time since last success",
		"Periodic run duration p50 / p95 / p99"} {
		if !linked[want] {
			t.Errorf("panel %q has no link to its group's task page", want)
		}
	}
	for _, not := range []string{"Finish rate by outcome", "Cancellations by cause", "Goroutines: supervised vs unsupervised", "Running tasks"} {
		if linked[not] {
			t.Errorf("panel %q has series without a group, but links to one", not)
		}
	}
}

// Quantile panels read the native histogram where Prometheus has one and
// fall back to the classic buckets only for series without it: "native
// or classic", in that order, since "or" keeps its left side's series.
func TestQuantilesPreferNativeHistograms(t *testing.T) {
	qs, err := Queries(nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range qs {
		if !strings.Contains(q.Expr, "histogram_quantile") {
			continue
		}
		n++
		e, err := parser.NewParser(parser.Options{}).ParseExpr(q.Expr)
		if err != nil {
			t.Fatal(err)
		}
		or, ok := e.(*parser.BinaryExpr)
		if !ok || or.Op != parser.LOR || !readsNative(or.LHS) || readsNative(or.RHS) {
			t.Errorf("panel %q query %s: want native quantile or classic quantile, got %s", q.Panel, q.RefID, q.Expr)
		}
	}
	if n == 0 {
		t.Fatal("no quantile queries")
	}
}

// A stat panel may print "0" for no data only where no series means none
// of what it counts (no task running, none abandoned, none spawned). A
// ratio's absence means nothing finished (or nothing was scraped): "0 %"
// there claims that tasks finished and none failed. And go_goroutines is
// absent where the service does not register the Go collector: "0
// goroutines" is never true.
func TestStatPanelsShowNoDataAsZeroOnlyForCounts(t *testing.T) {
	d := overview(t)
	zero := 0
	for _, p := range panels(d) {
		if p.Type != "stat" || p.FieldConfig == nil || deref(p.FieldConfig.Defaults.NoValue) != "0" {
			continue
		}
		zero++
		if u := unit(p); u == "percentunit" || u == "percent" {
			t.Errorf("stat %q (unit %s) shows no data as 0", title(p), u)
		}
		for _, tg := range p.Targets {
			if q, _ := asPrometheus(tg); strings.Contains(q.Expr, "go_goroutines") {
				t.Errorf("stat %q reads go_goroutines and shows no data as 0: %s", title(p), q.Expr)
			}
		}
	}
	if zero == 0 {
		t.Error("no stat panel shows no data as 0: Running and Abandoned tasks should (no series there means none)")
	}
}

// "Time since last success" must show the worst replica: with several
// instances (or supervisors told apart by a const label) selected, the
// most recent success of any of them (max of the timestamps) hides one
// whose task is stuck, the one TaskscopePeriodicTaskStalled pages for.
func TestTimeSinceLastSuccessShowsTheOldest(t *testing.T) {
	p := findPanel(t, overview(t), "Time since last success")
	q, _ := asPrometheus(p.Targets[0])
	expanded, err := Expand(q.Expr, map[string]string{"job": ".*", "instance": ".*", "group": ".*", "task": ".*"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expanded)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		agg, ok := n.(*parser.AggregateExpr)
		if !ok || !strings.Contains(agg.Expr.String(), "taskscope_periodic_last_success_timestamp_seconds") {
			return nil
		}
		found = true
		if agg.Op != parser.MIN {
			t.Errorf("%s of the last-success timestamps across instances: want min, the oldest success", agg.Op)
		}
		return nil
	})
	if !found {
		t.Fatalf("query A does not aggregate the last-success timestamps: %s", q.Expr)
	}
}

// Unsupervised goroutines are go_goroutines minus the running and the
// abandoned tasks of the same process. Each subtracted term is absent
// until its first event (the first spawn, the first abort): unless it
// falls back to 0 per process ("or 0 * go_goroutines"), the difference
// drops that process, and the sum undercounts.
func TestUnsupervisedSubtractsZeroForMissingSeries(t *testing.T) {
	p := findPanel(t, overview(t), "Goroutines: supervised vs unsupervised")
	var expr string
	for _, tg := range p.Targets {
		if q, _ := asPrometheus(tg); strings.HasPrefix(deref(q.LegendFormat), "unsupervised") {
			expr = q.Expr
		}
	}
	expanded, err := Expand(expr, map[string]string{"job": ".*", "instance": ".*", "group": ".*", "task": ".*"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expanded)
	if err != nil {
		t.Fatalf("unsupervised query %q: %v", expr, err)
	}
	terms := 0
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || !strings.HasPrefix(vs.Name, "taskscope_") {
			return nil
		}
		terms++
		for _, a := range path {
			if b, ok := a.(*parser.BinaryExpr); ok && b.Op == parser.LOR && strings.Contains(b.RHS.String(), "go_goroutines") {
				return nil
			}
		}
		t.Errorf("%s is subtracted without a 0 fallback per process (or 0 * go_goroutines): %s", vs.Name, expr)
		return nil
	})
	if terms != 2 {
		t.Errorf("unsupervised query subtracts %d taskscope series, want running and abandoned: %s", terms, expr)
	}
}
