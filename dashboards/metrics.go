package dashboards

import "strings"

// MetricType is the Prometheus type of an exported metric.
type MetricType string

// The metric types the dashboards query.
const (
	Counter   MetricType = "counter"
	Gauge     MetricType = "gauge"
	Histogram MetricType = "histogram"
)

// Metric describes one metric a dashboard may query.
type Metric struct {
	Name string
	Type MetricType
	// Labels are the variable labels the exporter sets. The target labels
	// job and instance, and le on a classic histogram's _bucket series, come
	// on top; constant labels a user adds are not listed.
	Labels []string
}

// Metrics is the set of Prometheus metrics that
// github.com/taskscope/taskscope/telemetry exports. It MIRRORS telemetry's
// exported set and is the one place the dashboards learn metric names from:
// when telemetry adds, renames or relabels a metric, change it here (a test
// in the e2e module compares the two), then regenerate the dashboards.
var Metrics = []Metric{
	{Name: "taskscope_tasks_started_total", Type: Counter, Labels: []string{"group", "task"}},
	{Name: "taskscope_tasks_rejected_total", Type: Counter, Labels: []string{"group", "task"}},
	{Name: "taskscope_tasks_finished_total", Type: Counter, Labels: []string{"group", "task", "outcome", "error_type"}},
	{Name: "taskscope_task_duration_seconds", Type: Histogram, Labels: []string{"group", "task", "outcome"}},
	{Name: "taskscope_task_cancel_latency_seconds", Type: Histogram, Labels: []string{"group", "task"}},
	{Name: "taskscope_task_cancellations_total", Type: Counter, Labels: []string{"group", "task", "cause"}},
	{Name: "taskscope_tasks_running", Type: Gauge, Labels: []string{"group", "task"}},
	{Name: "taskscope_tasks_abandoned", Type: Gauge, Labels: []string{"group", "task"}},
	{Name: "taskscope_group_shutdown_duration_seconds", Type: Histogram, Labels: []string{"group", "result"}},
	{Name: "taskscope_periodic_runs_total", Type: Counter, Labels: []string{"group", "task", "outcome"}},
	{Name: "taskscope_periodic_run_duration_seconds", Type: Histogram, Labels: []string{"group", "task", "outcome"}},
	{Name: "taskscope_periodic_last_success_timestamp_seconds", Type: Gauge, Labels: []string{"group", "task"}},
	{Name: "taskscope_periodic_interval_seconds", Type: Gauge, Labels: []string{"group", "task"}},
	{Name: "taskscope_stream_events_total", Type: Counter},
	{Name: "taskscope_stream_dropped_total", Type: Counter},
	{Name: "taskscope_stream_subscribers", Type: Gauge},
	{Name: "taskscope_label_overflow_total", Type: Counter, Labels: []string{"label"}},
}

// RuntimeMetrics are the metrics of client_golang's Go collector that the
// dashboards use (the application registers that collector, not taskscope).
// List each one explicitly: a go_* name not listed here fails the lint.
var RuntimeMetrics = []Metric{
	{Name: "go_goroutines", Type: Gauge},
}

// Label values, the vocabulary runtime defines once (runtime.Outcome and
// the cause kinds of runtime.CauseKind); queries that filter on a value use
// these.
var (
	Outcomes         = []string{"success", "error", "canceled", "panic", "aborted"}
	FailureOutcomes  = []string{"error", "panic", "aborted"}
	CancelCauses     = []string{"shutdown", "fail_fast", "external", "deadline", "canceled", "custom"}
	ShutdownResults  = []string{"clean", "aborted"}
	targetLabels     = []string{"job", "instance"}
	histogramSeries  = []string{"_bucket", "_sum", "_count"}
	failureOutcomeRE = strings.Join(FailureOutcomes, "|")
	matchFailed      = `outcome=~"` + failureOutcomeRE + `"` // the failed outcomes, as a label matcher
)

// LookupSeries resolves a series name as Prometheus stores it to the metric
// it belongs to. A histogram shows up as name_bucket, name_sum and
// name_count (classic) and as name itself (native, when Prometheus scrapes
// native histograms). suffix is "_bucket", "_sum", "_count" or "".
func LookupSeries(series string) (m Metric, suffix string, ok bool) {
	all := append(append([]Metric(nil), Metrics...), RuntimeMetrics...)
	for _, m := range all {
		if m.Name == series {
			return m, "", true
		}
	}
	for _, s := range histogramSeries {
		base, found := strings.CutSuffix(series, s)
		if !found {
			continue
		}
		for _, m := range all {
			if m.Name == base && m.Type == Histogram {
				return m, s, true
			}
		}
	}
	return Metric{}, "", false
}

// seriesLabels is the set of labels a stored series of m (with suffix) has.
func seriesLabels(m Metric, suffix string) map[string]bool {
	set := map[string]bool{}
	for _, l := range append(append([]string(nil), targetLabels...), m.Labels...) {
		set[l] = true
	}
	if suffix == "_bucket" {
		set["le"] = true
	}
	return set
}
