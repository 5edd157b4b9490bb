package dashboards

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DatasourceVar is the name of the datasource template variable every panel
// and query uses (dashboard-linter's template-datasource-rule).
const DatasourceVar = "datasource"

// promDatasource is the templated datasource reference of every panel and
// target: users pick their Prometheus in the dashboard's "Data source" menu.
func promDatasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + DatasourceVar + "}")}
}

// target is one PromQL query of a panel.
type target struct {
	expr     string
	legend   string
	exemplar bool
}

func query(expr, legend string) target { return target{expr: expr, legend: legend} }

func (t target) withExemplars() target { t.exemplar = true; return t }

// builder makes the panels of one dashboard with stable ids and refIds, so
// regenerating yields byte-identical JSON.
type builder struct{ nextID uint32 }

func (b *builder) id() uint32 { b.nextID++; return b.nextID }

func (b *builder) targets(ts []target) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(ts))
	for i, t := range ts {
		q := prometheus.NewDataqueryBuilder().
			Datasource(promDatasource()).
			RefId(string(rune('A' + i))).
			Expr(t.expr).
			Range().
			EditorMode(prometheus.QueryEditorModeCode)
		if t.legend != "" {
			q = q.LegendFormat(t.legend)
		}
		if t.exemplar {
			q = q.Exemplar(true)
		}
		out = append(out, q)
	}
	return out
}

func (b *builder) row(title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title).Id(b.id())
}

// statPanel is a single-number panel reduced to the last value. No data
// shows as Grafana's "No data"; a panel where no series means none of what
// it counts (no task running) adds NoValue("0").
func (b *builder) statPanel(title, description, unit string, width uint32, ts ...target) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Id(b.id()).
		Title(title).
		Description(description).
		Datasource(promDatasource()).
		Targets(b.targets(ts)).
		Unit(unit).
		Span(width).
		Height(4).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
		Thresholds(thresholds("green"))
}

// timeseriesPanel is a graph from 0 up (see seriesPanel).
func (b *builder) timeseriesPanel(title, description, unit string, width uint32, ts ...target) *timeseries.PanelBuilder {
	return b.seriesPanel(title, description, unit, width, ts).Min(0)
}

// latencyPanel is a time-series panel of durations on a log axis, so that
// tasks of milliseconds and consumers of minutes share it without the
// slowest flattening the others.
func (b *builder) latencyPanel(title, description string, width uint32, ts ...target) *timeseries.PanelBuilder {
	return b.seriesPanel(title, description+" Log scale.", "s", width, ts).
		ScaleDistribution(common.NewScaleDistributionConfigBuilder().Type(common.ScaleDistributionLog).Log(10))
}

// seriesPanel is what timeseriesPanel and latencyPanel share: a graph
// with a table legend (mean, max, last). When every query's legend names
// the group, each series carries a group label, and a click on it offers
// GroupLinkURL: the live task tree of that group.
func (b *builder) seriesPanel(title, description, unit string, width uint32, ts []target) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Id(b.id()).
		Title(title).
		Description(description).
		Datasource(promDatasource()).
		Targets(b.targets(ts)).
		Unit(unit).
		Span(width).
		Height(8).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
	perGroup := !slices.ContainsFunc(ts, func(t target) bool { return !strings.Contains(t.legend, "{{group}}") })
	if perGroup {
		p = p.DataLinks([]cog.Builder[dashboard.DashboardLink]{
			dashboard.NewDashboardLinkBuilder("Task page of ${__field.labels.group}").
				Type(dashboard.DashboardLinkTypeLink).
				Url(GroupLinkURL).
				TargetBlank(true),
		})
	}
	return p
}

// thresholds builds absolute thresholds: a base colour, then (value, colour)
// steps, e.g. thresholds("green", 1.0, "red").
func thresholds(base string, steps ...any) *dashboard.ThresholdsConfigBuilder {
	list := []dashboard.Threshold{{Value: nil, Color: base}}
	for i := 0; i+1 < len(steps); i += 2 {
		v, ok := steps[i].(float64)
		c, ok2 := steps[i+1].(string)
		if !ok || !ok2 {
			panic(fmt.Sprintf("thresholds: bad step %v, %v", steps[i], steps[i+1]))
		}
		list = append(list, dashboard.Threshold{Value: cog.ToPtr(v), Color: c})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(list)
}

// labelVariable is a query variable listing a label's values (Grafana's
// label_values(selector, label)), multi-select, refreshed when the time
// range changes. "All" is ".*", not ".+": an empty label value is an absent
// label to Prometheus, and some series have one (a cancellation request to a
// whole group has task=""), which ".+" would silently drop.
func labelVariable(name, label, selector, description string) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", selector, name)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Description(description).
		Datasource(promDatasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(q)}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
}
