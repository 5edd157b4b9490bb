//lint:file-ignore SA1019 the classic dashboard model (package dashboard) is what Grafana's file provisioning loads; dashboardv2 needs Grafana's app-platform APIs.

package dashboards

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Problem is one lint finding.
type Problem struct {
	Rule    string // the dashboard-linter rule name, or ours (see Rules)
	Where   string // "dashboard", `variable "job"`, `panel "Spawn rate" query B`
	Message string
}

func (p Problem) String() string { return fmt.Sprintf("[%s] %s: %s", p.Rule, p.Where, p.Message) }

// Rules are the rules Lint applies. Those named like grafana/dashboard-linter's
// rules (that tool cannot be installed here) follow its definitions; the
// target-metric, target-histogram-le and panel-unique-title rules are ours.
var Rules = []string{
	"template-datasource-rule",            // a "datasource" variable of type datasource, query prometheus
	"template-job-rule",                   // a "job" query variable
	"template-instance-rule",              // an "instance" query variable
	"template-label-promql-rule",          // label_values(selector, label) with a selector that parses and names a known metric and label
	"template-on-time-change-reload-rule", // query variables refresh on time range change
	"panel-datasource-rule",               // every panel and every target uses the templated datasource
	"panel-title-description-rule",        // every panel has a title and a description
	"panel-units-rule",                    // every panel has a valid unit
	"panel-no-targets-rule",               // every panel has at least one query
	"panel-unique-title-rule",             // panel titles are unique (Queries names panels by title)
	"target-promql-rule",                  // every query parses (prometheus/promql/parser) once variables are substituted
	"target-rate-interval-rule",           // every range selector is [$__rate_interval]
	"target-job-rule",                     // every selector has job=~"$job"
	"target-instance-rule",                // every selector has instance=~"$instance"
	"target-counter-agg-rule",             // counters and histogram series only inside rate/irate/increase; gauges never
	"target-metric-rule",                  // every metric is in Metrics or RuntimeMetrics, every label is one it has
	"target-histogram-le-rule",            // histogram_quantile over an aggregation keeps le of classic buckets, not of a native histogram
}

// ValidUnits are the Grafana unit ids the panels may use.
var ValidUnits = []string{
	"short", "none", "percent", "percentunit",
	"s", "ms", "µs", "ns", "dtdurations", "dtdurationms",
	"ops", "opm", "reqps", "rps", "cps",
	"bytes", "decbytes", "Bps", "binBps",
}

// Sentinel values substituted for template variables before parsing, so the
// rules can tell "$__rate_interval" and "$job" from literal values.
const (
	sentinelRateInterval = 7919 * time.Second
	sentinelVarPrefix    = "__lintvar_"
)

var rangeFuncs = []string{"rate", "irate", "increase"}

// Lint checks d against Rules and returns every problem found.
func Lint(d dashboard.Dashboard) []Problem {
	l := &linter{vars: lintVars(d)}
	l.variables(d)
	seen := map[string]bool{}
	for _, p := range panels(d) {
		l.panel(p)
		if t := title(p); t != "" {
			if seen[t] {
				l.add("panel-unique-title-rule", fmt.Sprintf("panel %q", t), "another panel has the same title")
			}
			seen[t] = true
		}
	}
	return l.problems
}

type linter struct {
	vars     map[string]string // every variable the dashboard defines, and the built-ins, mapped to sentinels
	problems []Problem
}

func (l *linter) add(rule, where, format string, args ...any) {
	l.problems = append(l.problems, Problem{Rule: rule, Where: where, Message: fmt.Sprintf(format, args...)})
}

// lintVars maps every template variable to a sentinel.
func lintVars(d dashboard.Dashboard) map[string]string {
	vars := map[string]string{
		"__rate_interval": fmt.Sprintf("%ds", int(sentinelRateInterval.Seconds())),
		"__interval":      "7907s",
		"__range":         "7901s",
	}
	for _, v := range d.Templating.List {
		vars[v.Name] = sentinelVarPrefix + v.Name
	}
	return vars
}

func isPromDatasource(ref *common.DataSourceRef) bool {
	return ref != nil && deref(ref.Type) == "prometheus" && deref(ref.Uid) == "${"+DatasourceVar+"}"
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)

func (l *linter) variables(d dashboard.Dashboard) {
	byName := map[string]dashboard.VariableModel{}
	for _, v := range d.Templating.List {
		byName[v.Name] = v
	}
	ds, ok := byName[DatasourceVar]
	switch {
	case !ok:
		l.add("template-datasource-rule", "dashboard", "no %q template variable", DatasourceVar)
	case ds.Type != dashboard.VariableTypeDatasource:
		l.add("template-datasource-rule", fmt.Sprintf("variable %q", DatasourceVar), "type is %q, want datasource", ds.Type)
	case ds.Query == nil || deref(ds.Query.String) != "prometheus":
		l.add("template-datasource-rule", fmt.Sprintf("variable %q", DatasourceVar), "must select prometheus datasources")
	}
	for _, name := range []string{"job", "instance"} {
		if v, ok := byName[name]; !ok || v.Type != dashboard.VariableTypeQuery {
			l.add("template-"+name+"-rule", "dashboard", "no %q query variable", name)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != dashboard.VariableTypeQuery {
			continue
		}
		where := fmt.Sprintf("variable %q", v.Name)
		if v.Refresh == nil || *v.Refresh != dashboard.VariableRefreshOnTimeRangeChanged {
			l.add("template-on-time-change-reload-rule", where, "must refresh on time range change")
		}
		if !isPromDatasource(v.Datasource) {
			l.add("template-label-promql-rule", where, "datasource must be ${%s}", DatasourceVar)
		}
		q := ""
		if v.Query != nil {
			q = deref(v.Query.String)
		}
		m := labelValuesRE.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			l.add("template-label-promql-rule", where, "query %q is not label_values(selector, label)", q)
			continue
		}
		expanded, err := Expand(m[1], l.vars)
		if err != nil {
			l.add("template-label-promql-rule", where, "%v", err)
			continue
		}
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(expanded)
		if err != nil {
			l.add("template-label-promql-rule", where, "selector %q does not parse: %v", m[1], err)
			continue
		}
		vs, ok := expr.(*parser.VectorSelector)
		if !ok {
			l.add("template-label-promql-rule", where, "%q is not a series selector", m[1])
			continue
		}
		metric, suffix, known := LookupSeries(vs.Name)
		if !known {
			l.add("template-label-promql-rule", where, "metric %q is not exported (see Metrics)", vs.Name)
			continue
		}
		if isNativeHistogram(vs.Name) {
			l.add("template-label-promql-rule", where, "%q is a native histogram, absent where Prometheus does not scrape them: use %s_count", vs.Name, vs.Name)
			continue
		}
		if !seriesLabels(metric, suffix)[m[2]] {
			l.add("template-label-promql-rule", where, "metric %q has no label %q", vs.Name, m[2])
		}
	}
}

func (l *linter) panel(p dashboard.Panel) {
	where := fmt.Sprintf("panel %q", title(p))
	if strings.TrimSpace(title(p)) == "" {
		where = fmt.Sprintf("panel #%d (%s)", deref(p.Id), p.Type)
		l.add("panel-title-description-rule", where, "no title")
	}
	if strings.TrimSpace(deref(p.Description)) == "" {
		l.add("panel-title-description-rule", where, "no description")
	}
	if !isPromDatasource(p.Datasource) {
		l.add("panel-datasource-rule", where, "datasource must be {type: prometheus, uid: ${%s}}", DatasourceVar)
	}
	switch u := unit(p); {
	case u == "":
		l.add("panel-units-rule", where, "no unit")
	case !slices.Contains(ValidUnits, u):
		l.add("panel-units-rule", where, "unit %q is not one of %v", u, ValidUnits)
	}
	if len(p.Targets) == 0 {
		l.add("panel-no-targets-rule", where, "no queries")
	}
	for i, t := range p.Targets {
		q, ok := asPrometheus(t)
		tw := fmt.Sprintf("%s query %d", where, i)
		if !ok {
			l.add("panel-datasource-rule", tw, "target of type %T is not a Prometheus query", t)
			continue
		}
		if q.RefId != nil {
			tw = fmt.Sprintf("%s query %s", where, *q.RefId)
		}
		if !isPromDatasource(q.Datasource) {
			l.add("panel-datasource-rule", tw, "datasource must be {type: prometheus, uid: ${%s}}", DatasourceVar)
		}
		l.expr(tw, q.Expr)
	}
}

// expr applies the target-* rules to one PromQL expression.
func (l *linter) expr(where, raw string) {
	expanded, err := Expand(raw, l.vars)
	if err != nil {
		l.add("target-promql-rule", where, "%v (the dashboard defines no such variable)", err)
		return
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(expanded)
	if err != nil {
		l.add("target-promql-rule", where, "%q does not parse: %v", raw, err)
		return
	}
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.MatrixSelector:
			if n.Range != sentinelRateInterval {
				l.add("target-rate-interval-rule", where, "range [%s] of %s must be [$__rate_interval]", n.Range, n.VectorSelector)
			}
		case *parser.SubqueryExpr:
			l.add("target-rate-interval-rule", where, "subquery %s: use a range selector with [$__rate_interval]", n)
		case *parser.VectorSelector:
			l.selector(where, n, path)
		case *parser.Call:
			if n.Func.Name == "histogram_quantile" && len(n.Args) == 2 {
				if agg, ok := unparen(n.Args[1]).(*parser.AggregateExpr); ok {
					keeps := slices.Contains(agg.Grouping, "le") != agg.Without
					switch native := readsNative(agg); {
					case native && keeps:
						l.add("target-histogram-le-rule", where, "histogram_quantile over %s of a native histogram must not keep le (it has none)", agg.Op)
					case !native && !keeps:
						l.add("target-histogram-le-rule", where, "histogram_quantile over %s must keep the le label", agg.Op)
					}
				}
			}
		case *parser.AggregateExpr:
			if !n.Without {
				l.grouping(where, n)
			}
		}
		return nil
	})
}

// readsNative reports whether e selects a native histogram: a histogram's
// bare name.
func readsNative(e parser.Expr) bool {
	native := false
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && isNativeHistogram(vs.Name) {
			native = true
		}
		return nil
	})
	return native
}

func isNativeHistogram(name string) bool {
	m, suffix, ok := LookupSeries(name)
	return ok && m.Type == Histogram && suffix == ""
}

// histogramFuncs read native histogram samples into floats.
var histogramFuncs = []string{"histogram_quantile", "histogram_count", "histogram_sum", "histogram_avg", "histogram_fraction", "histogram_stddev", "histogram_stdvar"}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

func (l *linter) selector(where string, vs *parser.VectorSelector, path []parser.Node) {
	name := vs.Name
	if name == "" {
		l.add("target-metric-rule", where, "selector %s names no metric", vs)
		return
	}
	for _, v := range []string{"job", "instance"} {
		if !hasVarMatcher(vs, v) {
			l.add("target-"+v+"-rule", where, "%s needs %s=~\"$%s\"", vs, v, v)
		}
	}
	metric, suffix, known := LookupSeries(name)
	if !known {
		l.add("target-metric-rule", where, "metric %q is not one taskscope's telemetry exports (dashboards.Metrics) nor a listed runtime metric (dashboards.RuntimeMetrics)", name)
		return
	}
	if isNativeHistogram(name) && !slices.ContainsFunc(path, func(n parser.Node) bool {
		c, ok := n.(*parser.Call)
		return ok && slices.Contains(histogramFuncs, c.Func.Name)
	}) {
		// Grafana cannot draw histogram samples.
		l.add("target-metric-rule", where, "%q is a native histogram: read it with histogram_quantile() or another histogram_* function, or query its classic series %s_bucket, _sum or _count", name, name)
	}
	have := seriesLabels(metric, suffix)
	for _, m := range vs.LabelMatchers {
		if m.Name != labels.MetricName && !have[m.Name] {
			l.add("target-metric-rule", where, "%s has no label %q", name, m.Name)
		}
	}
	inRange := false
	if len(path) >= 2 {
		if _, ok := path[len(path)-1].(*parser.MatrixSelector); ok {
			if c, ok := path[len(path)-2].(*parser.Call); ok && slices.Contains(rangeFuncs, c.Func.Name) {
				inRange = true
			}
		}
	}
	cumulative := metric.Type == Counter || metric.Type == Histogram
	switch {
	case cumulative && !inRange:
		l.add("target-counter-agg-rule", where, "%s is cumulative: wrap it in rate(), irate() or increase()", name)
	case !cumulative && inRange:
		l.add("target-counter-agg-rule", where, "%s is a gauge: rate()/increase() of a gauge is meaningless", name)
	}
}

func hasVarMatcher(vs *parser.VectorSelector, name string) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == name && m.Type == labels.MatchRegexp && m.Value == sentinelVarPrefix+name {
			return true
		}
	}
	return false
}

// grouping checks that every label an aggregation keeps exists on every
// series it aggregates.
func (l *linter) grouping(where string, agg *parser.AggregateExpr) {
	parser.Inspect(agg.Expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		metric, suffix, known := LookupSeries(vs.Name)
		if !known {
			return nil // reported by selector
		}
		have := seriesLabels(metric, suffix)
		for _, g := range agg.Grouping {
			if !have[g] {
				l.add("target-metric-rule", where, "%s by (%s): %s has no label %q", agg.Op, strings.Join(agg.Grouping, ", "), vs.Name, g)
			}
		}
		return nil
	})
}
