//lint:file-ignore SA1019 the classic dashboard model (package dashboard) is what Grafana's file provisioning loads; dashboardv2 needs Grafana's app-platform APIs.

package dashboards

import (
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Each rule fires on a dashboard broken in the way the rule forbids, and
// only that rule fires: the lint can fail, and fails for the right reason.
func TestLintRulesCatchBreakage(t *testing.T) {
	setExpr := func(title, expr string) func(*testing.T, *dashboard.Dashboard) {
		return func(t *testing.T, d *dashboard.Dashboard) {
			p := findPanel(t, *d, title)
			q, _ := asPrometheus(p.Targets[0])
			q.Expr = expr
			p.Targets[0] = q
		}
	}
	variable := func(d *dashboard.Dashboard, name string) *dashboard.VariableModel {
		for i := range d.Templating.List {
			if d.Templating.List[i].Name == name {
				return &d.Templating.List[i]
			}
		}
		return nil
	}
	dropVariable := func(name string) func(*testing.T, *dashboard.Dashboard) {
		return func(t *testing.T, d *dashboard.Dashboard) {
			d.Templating.List = slices.DeleteFunc(d.Templating.List, func(v dashboard.VariableModel) bool { return v.Name == name })
		}
	}
	sel := `job=~"$job", instance=~"$instance"`

	cases := []struct {
		rule   string
		name   string
		break_ func(*testing.T, *dashboard.Dashboard)
		// also lists rules that legitimately fire together with rule
		also []string
	}{
		{rule: "template-datasource-rule", name: "no datasource variable", break_: dropVariable("datasource")},
		{rule: "template-datasource-rule", name: "datasource variable for loki", break_: func(t *testing.T, d *dashboard.Dashboard) {
			variable(d, "datasource").Query.String = cog.ToPtr("loki")
		}},
		{rule: "template-job-rule", name: "no job variable", break_: dropVariable("job"),
			also: []string{"template-label-promql-rule", "target-promql-rule"}}, // $job is still used
		{rule: "template-instance-rule", name: "instance is a textbox", break_: func(t *testing.T, d *dashboard.Dashboard) {
			variable(d, "instance").Type = dashboard.VariableTypeTextbox
		}},
		{rule: "template-label-promql-rule", name: "variable on an unknown metric", break_: func(t *testing.T, d *dashboard.Dashboard) {
			variable(d, "group").Query.String = cog.ToPtr(`label_values(taskscope_groups_total, group)`)
		}},
		{rule: "template-label-promql-rule", name: "variable on a native histogram", break_: func(t *testing.T, d *dashboard.Dashboard) {
			variable(d, "group").Query.String = cog.ToPtr(`label_values(taskscope_task_duration_seconds, group)`)
		}},
		{rule: "template-label-promql-rule", name: "variable selector does not parse", break_: func(t *testing.T, d *dashboard.Dashboard) {
			variable(d, "task").Query.String = cog.ToPtr(`label_values(taskscope_tasks_started_total{job=~"$job", task, task)`)
		}},
		{rule: "template-on-time-change-reload-rule", name: "refresh on load only", break_: func(t *testing.T, d *dashboard.Dashboard) {
			variable(d, "group").Refresh = cog.ToPtr(dashboard.VariableRefreshOnDashboardLoad)
		}},
		{rule: "panel-datasource-rule", name: "panel with a fixed datasource uid", break_: func(t *testing.T, d *dashboard.Dashboard) {
			findPanel(t, *d, "Stream drops").Datasource = &common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("prometheus")}
		}},
		{rule: "panel-datasource-rule", name: "target with no datasource", break_: func(t *testing.T, d *dashboard.Dashboard) {
			p := findPanel(t, *d, "Stream drops")
			q, _ := asPrometheus(p.Targets[0])
			q.Datasource = nil
			p.Targets[0] = q
		}},
		{rule: "panel-title-description-rule", name: "no title", break_: func(t *testing.T, d *dashboard.Dashboard) {
			findPanel(t, *d, "Stream drops").Title = cog.ToPtr("")
		}},
		{rule: "panel-title-description-rule", name: "no description", break_: func(t *testing.T, d *dashboard.Dashboard) {
			findPanel(t, *d, "Stream drops").Description = nil
		}},
		{rule: "panel-units-rule", name: "no unit", break_: func(t *testing.T, d *dashboard.Dashboard) {
			findPanel(t, *d, "Stream drops").FieldConfig.Defaults.Unit = nil
		}},
		{rule: "panel-units-rule", name: "unknown unit", break_: func(t *testing.T, d *dashboard.Dashboard) {
			findPanel(t, *d, "Stream drops").FieldConfig.Defaults.Unit = cog.ToPtr("furlongs")
		}},
		{rule: "panel-no-targets-rule", name: "no queries", break_: func(t *testing.T, d *dashboard.Dashboard) {
			findPanel(t, *d, "Stream drops").Targets = nil
		}},
		{rule: "panel-unique-title-rule", name: "two panels, one title", break_: func(t *testing.T, d *dashboard.Dashboard) {
			findPanel(t, *d, "Stream drops").Title = cog.ToPtr("Stream events")
		}},
		{rule: "target-promql-rule", name: "query does not parse", break_: setExpr("Stream drops",
			`sum(rate(taskscope_stream_dropped_total{`+sel+`}[$__rate_interval])`)},
		{rule: "target-promql-rule", name: "unknown template variable", break_: setExpr("Stream drops",
			`sum(rate(taskscope_stream_dropped_total{`+sel+`}[$__rate_intervall]))`)},
		{rule: "target-rate-interval-rule", name: "fixed rate window", break_: setExpr("Stream drops",
			`sum(rate(taskscope_stream_dropped_total{`+sel+`}[5m]))`)},
		{rule: "target-rate-interval-rule", name: "increase over $__range", break_: setExpr("Stream drops",
			`sum(increase(taskscope_stream_dropped_total{`+sel+`}[$__range]))`)},
		{rule: "target-job-rule", name: "selector without job", break_: setExpr("Stream drops",
			`sum(rate(taskscope_stream_dropped_total{instance=~"$instance"}[$__rate_interval]))`)},
		{rule: "target-instance-rule", name: "selector with a fixed instance", break_: setExpr("Stream drops",
			`sum(rate(taskscope_stream_dropped_total{job=~"$job", instance="demo:8080"}[$__rate_interval]))`)},
		{rule: "target-counter-agg-rule", name: "raw counter", break_: setExpr("Stream drops",
			`sum(taskscope_stream_dropped_total{`+sel+`})`)},
		{rule: "target-counter-agg-rule", name: "rate of a gauge", break_: setExpr("Stream subscribers",
			`sum(rate(taskscope_stream_subscribers{`+sel+`}[$__rate_interval]))`)},
		{rule: "target-metric-rule", name: "metric telemetry does not export", break_: setExpr("Stream drops",
			`sum(rate(taskscope_stream_lagged_total{`+sel+`}[$__rate_interval]))`)},
		{rule: "target-metric-rule", name: "unlisted runtime metric", break_: setExpr("Goroutines",
			`sum(go_threads{`+sel+`})`)},
		{rule: "target-metric-rule", name: "label the metric lacks", break_: setExpr("Stream drops",
			`sum(rate(taskscope_stream_dropped_total{`+sel+`, group=~"$group"}[$__rate_interval]))`)},
		{rule: "target-metric-rule", name: "grouping by a label the metric lacks", break_: setExpr("Stream drops",
			`sum by (kind) (rate(taskscope_stream_dropped_total{`+sel+`}[$__rate_interval]))`)},
		{rule: "target-metric-rule", name: "bare histogram name", break_: setExpr("Stream drops",
			`sum(rate(taskscope_task_duration_seconds{`+sel+`}[$__rate_interval]))`)},
		{rule: "target-histogram-le-rule", name: "quantile without le", break_: setExpr("Task duration p50 / p95 / p99",
			`histogram_quantile(0.5, sum by (group) (rate(taskscope_task_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`)},
		{rule: "target-histogram-le-rule", name: "native quantile by le", also: []string{"target-metric-rule"}, break_: setExpr("Task duration p50 / p95 / p99",
			`histogram_quantile(0.5, sum by (le, group) (rate(taskscope_task_duration_seconds{`+sel+`}[$__rate_interval])))`)},
	}

	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			d := overview(t)
			c.break_(t, &d)
			problems := Lint(d)
			fired := map[string]bool{}
			for _, p := range problems {
				fired[p.Rule] = true
				if p.Rule != c.rule && !slices.Contains(c.also, p.Rule) {
					t.Errorf("unexpected problem: %s", p)
				}
			}
			if !fired[c.rule] {
				t.Fatalf("rule %s did not fire; problems: %v", c.rule, problems)
			}
			covered[c.rule] = true
			for _, p := range problems {
				if !strings.HasPrefix(p.String(), "["+p.Rule+"]") {
					t.Errorf("problem text %q does not name its rule", p)
				}
			}
		})
	}
	for _, r := range Rules {
		if !covered[r] {
			t.Errorf("rule %s has no breakage case", r)
		}
	}
}

// foreignQuery stands for another datasource's query type.
type foreignQuery struct{ variants.Dataquery }

func (foreignQuery) DataqueryType() string { return "loki" }

// A non-Prometheus query is caught; a pointer to a Prometheus one is not.
func TestLintRejectsForeignTargets(t *testing.T) {
	d := overview(t)
	p := findPanel(t, d, "Stream drops")
	p.Targets = append(p.Targets, foreignQuery{})
	problems := Lint(d)
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "not a Prometheus query") {
		t.Fatalf("problems = %v", problems)
	}

	d = overview(t)
	p = findPanel(t, d, "Stream drops")
	q, _ := asPrometheus(p.Targets[0])
	p.Targets[0] = &q
	if problems := Lint(d); len(problems) != 0 {
		t.Fatalf("pointer target: %v", problems)
	}
}
