//lint:file-ignore SA1019 the classic dashboard model (package dashboard) is what Grafana's file provisioning loads; dashboardv2 needs Grafana's app-platform APIs.

package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// Spec is one generated dashboard: the file it is written to (in the
// dashboards/ folder, which Grafana's provisioning loads) and its builder.
type Spec struct {
	File  string
	Build func() (dashboard.Dashboard, error)
}

// All lists every dashboard the generator writes.
var All = []Spec{
	{File: "taskscope-overview.json", Build: Overview},
}

// Render returns the JSON Grafana's file provisioning loads for d: the plain
// dashboard model (not wrapped in an app-platform manifest), indented, with
// a trailing newline.
func Render(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Query is one PromQL query of a dashboard panel.
type Query struct {
	Dashboard string // dashboard uid
	Panel     string // panel title
	RefID     string // the query's refId within the panel (A, B, ...)
	Legend    string // legend format, e.g. "{{group}}"
	Exemplar  bool   // Grafana also asks Prometheus for exemplars
	Unit      string // the panel's unit, e.g. "percentunit" for ratios
	Raw       string // the expression as stored, with template variables
	Expr      string // Raw with every template variable substituted
	// Links are the panel's data link URLs, with template variables: see
	// ExpandLink.
	Links []string
}

// Queries returns every query of every panel of every dashboard in All, in
// panel order, with template variables substituted from vars: vars["job"]
// for $job, and so on. Built-in variables ($__rate_interval, ...) default to
// BuiltinDefaults; a dashboard variable missing from vars takes its "All"
// value (".*"). It fails when a variable has no value at all.
//
// End-to-end tests evaluate each Expr against a real Prometheus.
func Queries(vars map[string]string) ([]Query, error) {
	var out []Query
	for _, s := range All {
		d, err := s.Build()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.File, err)
		}
		qs, err := DashboardQueries(d, vars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.File, err)
		}
		out = append(out, qs...)
	}
	return out, nil
}

// DashboardQueries is Queries for one dashboard.
func DashboardQueries(d dashboard.Dashboard, vars map[string]string) ([]Query, error) {
	values := map[string]string{}
	for _, v := range d.Templating.List {
		if v.AllValue != nil && v.IncludeAll != nil && *v.IncludeAll {
			values[v.Name] = *v.AllValue
		}
	}
	for k, v := range vars {
		values[k] = v
	}
	var out []Query
	for _, p := range panels(d) {
		var links []string
		if p.FieldConfig != nil {
			for _, l := range p.FieldConfig.Defaults.Links {
				links = append(links, deref(l.Url))
			}
		}
		for _, t := range p.Targets {
			q, ok := asPrometheus(t)
			if !ok {
				return nil, fmt.Errorf("panel %q: target of type %T is not a Prometheus query", title(p), t)
			}
			expr, err := Expand(q.Expr, values)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %w", title(p), err)
			}
			out = append(out, Query{
				Dashboard: deref(d.Uid),
				Panel:     title(p),
				RefID:     deref(q.RefId),
				Legend:    deref(q.LegendFormat),
				Exemplar:  q.Exemplar != nil && *q.Exemplar,
				Unit:      unit(p),
				Raw:       q.Expr,
				Expr:      expr,
				Links:     links,
			})
		}
	}
	return out, nil
}

// unit is p's unit, "" when it has none.
func unit(p dashboard.Panel) string {
	if p.FieldConfig == nil {
		return ""
	}
	return deref(p.FieldConfig.Defaults.Unit)
}

// panels returns every non-row panel of d, including panels nested in rows.
func panels(d dashboard.Dashboard) []dashboard.Panel {
	var out []dashboard.Panel
	for _, p := range d.Panels {
		switch {
		case p.Panel != nil:
			out = append(out, *p.Panel)
		case p.RowPanel != nil:
			out = append(out, p.RowPanel.Panels...)
		}
	}
	return out
}

func asPrometheus(t any) (prometheus.Dataquery, bool) {
	switch q := t.(type) {
	case prometheus.Dataquery:
		return q, true
	case *prometheus.Dataquery:
		if q != nil {
			return *q, true
		}
	}
	return prometheus.Dataquery{}, false
}

func title(p dashboard.Panel) string { return deref(p.Title) }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
