//lint:file-ignore SA1019 the classic dashboard model (package dashboard) is what Grafana's file provisioning loads; dashboardv2 needs Grafana's app-platform APIs.

package dashboards

import (
	"fmt"
	"math"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// OverviewUID is the stable uid of the "Task supervision overview" dashboard.
const OverviewUID = "taskscope-overview"

// TaskPageURL is the default of the overview's Task page link: the demo's
// task tree, where docker-compose.yml publishes it.
const TaskPageURL = "http://127.0.0.1:8080/debug/tasks"

// GroupLinkURL is the data link of the overview's per-group series: the
// Task page narrowed to the series' group (diagnostics.TasksHandler's
// ?group=), so that from a group's line an operator reaches its running and
// abandoned tasks. The page's URL is used as typed (raw: data links
// percent-encode variables by default), the group percent-encoded.
const GroupLinkURL = "${tasks_url:raw}?group=${__field.labels.group:percentencode}"

// Selectors shared by the overview's queries. Task metrics are filtered by
// every variable; group-level metrics by job, instance and group; process-wide
// metrics (stream, label overflow, go_*) by job and instance only.
const (
	selTarget = `job=~"$job", instance=~"$instance"`
	selGroup  = selTarget + `, group=~"$group"`
	selTask   = selGroup + `, task=~"$task"`
)

// rate of a counter (or histogram series) over $__rate_interval.
func rate(series, sel string) string {
	return fmt.Sprintf(`rate(%s{%s}[$__rate_interval])`, series, sel)
}

// quantiles are one query per quantile q of a histogram, aggregated by the
// labels by, with exemplars; legends read "p<100q> <legend>". The native
// histogram answers where Prometheus scrapes it: its buckets are 9 % wide,
// while the classic buckets, a few per decade, put a quantile near a
// bucket's upper bound, several times the true value. The classic buckets
// answer where no series of an aggregated label set has a native
// histogram (a Prometheus that does not scrape them). The choice comes
// after the aggregation, as quantiles cannot be summed: in a fleet where
// some instances of a group and task have native histograms and others
// only classic ones, the quantile reads the native ones alone.
func quantiles(histogram, sel, by, legend string, qs ...float64) []target {
	ts := make([]target, len(qs))
	for i, q := range qs {
		expr := fmt.Sprintf(`histogram_quantile(%g, sum by (%s) (%s)) or histogram_quantile(%g, sum by (le, %s) (%s))`,
			q, by, rate(histogram, sel), q, by, rate(histogram+"_bucket", sel))
		ts[i] = query(expr, fmt.Sprintf("p%g %s", math.Round(q*100), legend)).withExemplars()
	}
	return ts
}

// histogramRate is a histogram's count (fn histogram_count, suffix
// "_count") or sum (histogram_sum, "_sum") per second, aggregated by the
// labels by: from the native histogram where Prometheus scrapes it, else
// from the classic series, which a Prometheus that scrapes native
// histograms only does not have. The choice is made per series, before
// the sum: in a fleet where some targets have native histograms and others
// only classic series, an "or" of the two sums would keep the native one
// and drop the classic targets from it.
func histogramRate(fn, suffix, histogram, sel, by string) string {
	return fmt.Sprintf(`sum by (%s) (%s(%s) or %s)`,
		by, fn, rate(histogram, sel), rate(histogram+suffix, sel))
}

// failureRatio is failed / finished per `by` (failed: the outcomes
// matchFailed selects): 0 (not absent) where nothing failed, absent (not
// NaN) where nothing finished in the window, as with a group of
// long-running workers or a periodic task slower than the window.
func failureRatio(counter, sel, by string) string {
	all := fmt.Sprintf(`sum by (%s) (%s)`, by, rate(counter, sel))
	bad := fmt.Sprintf(`sum by (%s) (%s)`, by, rate(counter, sel+`, `+matchFailed))
	return fmt.Sprintf(`(%s or 0 * %s) / (%s > 0)`, bad, all, all)
}

// failureRatioPanel shows failureRatio of counter by the by labels, as a
// share from 0 to 1.
func (b *builder) failureRatioPanel(title, description, counter, sel, by, legend string) *timeseries.PanelBuilder {
	return b.timeseriesPanel(title, description, "percentunit", 8, query(failureRatio(counter, sel, by), legend)).Max(1)
}

// Overview builds the "Task supervision overview" dashboard.
func Overview() (dashboard.Dashboard, error) {
	b := &builder{}
	started := "taskscope_tasks_started_total"
	finished := "taskscope_tasks_finished_total"
	running := "taskscope_tasks_running"
	abandoned := "taskscope_tasks_abandoned"
	duration := "taskscope_task_duration_seconds"
	cancelLatency := "taskscope_task_cancel_latency_seconds"
	cancellations := "taskscope_task_cancellations_total"
	shutdown := "taskscope_group_shutdown_duration_seconds"
	periodic := "taskscope_periodic_runs_total"
	runDuration := "taskscope_periodic_run_duration_seconds"
	lastSuccess := "taskscope_periodic_last_success_timestamp_seconds"
	interval := "taskscope_periodic_interval_seconds"

	// Per process: all goroutines, running tasks (0, not absent, until the
	// first spawn creates the series) and abandoned tasks (likewise until
	// the first abort).
	goroutines := fmt.Sprintf(`sum by (job, instance) (go_goroutines{%s})`, selTarget)
	runningByProc := fmt.Sprintf(`(sum by (job, instance) (%s{%s}) or 0 * %s)`, running, selTarget, goroutines)
	abandonedByProc := fmt.Sprintf(`(sum by (job, instance) (%s{%s}) or 0 * %s)`, abandoned, selTarget, goroutines)
	unsupervised := fmt.Sprintf(`%s - %s - %s`, goroutines, runningByProc, abandonedByProc)

	d := dashboard.NewDashboardBuilder("Task supervision overview").
		Uid(OverviewUID).
		Description("taskscope: what every supervised task is doing, how tasks end, how long they take, how cancellation and shutdown behave, and which goroutines nobody supervises. Generated by dashboards/ (grafana-foundation-sdk); do not edit in Grafana.").
		Tags([]string{"taskscope", "supervision", "go"}).
		Refresh("10s").
		Time("now-30m", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Readonly().
		WithVariable(dashboard.NewDatasourceVariableBuilder(DatasourceVar).
			Label("Data source").
			Description("The Prometheus that scrapes the taskscope service.").
			Type("prometheus")).
		WithVariable(labelVariable("job", "Job", started, "Prometheus job of the supervised service.")).
		WithVariable(labelVariable("instance", "Instance", started+`{job=~"$job"}`, "Scraped instance (one process).")).
		WithVariable(labelVariable("group", "Group", started+`{`+selTarget+`}`, "Task group: the dotted group name, e.g. demo.ingest.")).
		WithVariable(labelVariable("task", "Task", started+`{`+selGroup+`}`, "Task name (static names only; task IDs never become labels).")).
		// Group names begin with the supervisor's: supervisors of one
		// process that share a name are told apart by a const label
		// (telemetry.WithConstLabels), whose name only the service knows.
		WithVariable(dashboard.NewAdHocVariableBuilder("filters").
			Label("Filters").
			Description("Label filters added to every query, e.g. the const label (telemetry.WithConstLabels) that tells apart supervisors whose groups share names. The goroutine panels (go_goroutines) have no such label: they go empty while one is set.").
			Datasource(promDatasource())).
		// The live task tree is served by the process itself
		// (diagnostics.TasksHandler), at an address only the operator
		// knows: the instance label is often not reachable from a
		// browser. The default is the demo's.
		WithVariable(dashboard.NewTextBoxVariableBuilder("tasks_url").
			Label("Task page").
			Description("URL of the service's live task tree (diagnostics.TasksHandler), opened by the Task page link; the default is the demo's.").
			DefaultValue(dashboard.StringOrMap{String: cog.ToPtr(TaskPageURL)}).
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr(TaskPageURL)},
				Value: dashboard.StringOrArrayOfString{String: cog.ToPtr(TaskPageURL)},
			})).
		Link(dashboard.NewDashboardLinkBuilder("Task page").
			Type(dashboard.DashboardLinkTypeLink).
			Url("${tasks_url}").
			Tooltip("The live task tree of the service: groups, tasks, states and ages (set its URL in the Task page variable)").
			Icon("external link").
			TargetBlank(true))

	// Overview: the numbers to look at first.
	d = d.WithRow(b.row("Overview")).
		WithPanel(b.statPanel("Running tasks",
			"Supervised tasks currently running: started minus finished, computed at scrape time (abandoned tasks are not counted; see Abandoned tasks).",
			"short", 4,
			query(fmt.Sprintf(`sum(%s{%s})`, running, selTask), "")).
			NoValue("0")).
		WithPanel(b.statPanel("Abandoned tasks",
			"Tasks whose shutdown deadline passed: reported as aborted, but their goroutine is still running (Go cannot kill a goroutine). Red when any exist; each one leaks until it returns (late exit).",
			"short", 4,
			query(fmt.Sprintf(`sum(%s{%s})`, abandoned, selTask), "")).
			NoValue("0").
			ColorMode(common.BigValueColorModeBackground).
			Thresholds(thresholds("green", 1.0, "red"))).
		WithPanel(b.statPanel("Spawn rate",
			"Tasks started per second (0 when none was ever spawned).",
			"ops", 4,
			query(fmt.Sprintf(`sum(%s)`, rate(started, selTask)), "")).
			NoValue("0")).
		WithPanel(b.statPanel("Failure ratio",
			"Share of finished tasks whose outcome was error, panic or aborted (canceled is not a failure); No data, not 0 %, when no task finished in the time range. Runs of periodic tasks are not in it: see Periodic run failure ratio.",
			"percentunit", 4,
			query(failureRatio(finished, selTask, "job"), "")).
			Thresholds(thresholds("green", 0.01, "orange", 0.1, "red"))).
		WithPanel(b.statPanel("Goroutines",
			"All goroutines of the process (Go collector's go_goroutines).",
			"short", 4,
			query(fmt.Sprintf(`sum(go_goroutines{%s})`, selTarget), ""))).
		WithPanel(b.statPanel("Unsupervised goroutines",
			"Goroutines that are neither a running task nor an abandoned one: the runtime's, the HTTP server's, exporters', and any started with a bare go statement. A steady climb is a leak nobody supervises.",
			"short", 4,
			query(fmt.Sprintf(`sum(%s)`, unsupervised), "")))

	// Task lifecycle: spawns, outcomes, failures.
	d = d.WithRow(b.row("Task lifecycle")).
		WithPanel(b.timeseriesPanel("Spawn rate by group",
			"Tasks started per second, per group, and the spawns a closed (shut down) group rejected: those count as started and finish at once as canceled.",
			"ops", 12,
			query(fmt.Sprintf(`sum by (group) (%s)`, rate(started, selTask)), "started {{group}}"),
			query(fmt.Sprintf(`sum by (group) (%s)`, rate("taskscope_tasks_rejected_total", selTask)), "rejected {{group}}"))).
		WithPanel(b.timeseriesPanel("Finish rate by outcome",
			"Tasks finished per second by outcome: success, error, canceled, panic, aborted. Every task finishes exactly once.",
			"ops", 12,
			query(fmt.Sprintf(`sum by (outcome) (%s)`, rate(finished, selTask)), "{{outcome}}"))).
		WithPanel(b.failureRatioPanel("Failure ratio by group",
			"Share of finished tasks that failed (error, panic or aborted), per group. Runs of periodic tasks are not in it: see Periodic run failure ratio. The TaskscopeHighFailureRatio alert counts error and panic only (aborts have alerts of their own) and needs 20 finished tasks in 10 minutes, so it can stay silent while this panel shows more than 10 %.",
			finished, selTask, "group", "{{group}}")).
		WithPanel(b.timeseriesPanel("Failures by error type",
			"Failed tasks per second by task, outcome and error type (the span's error.type); series at 0 are left out. A task that returns a child task's error, wrapped, fails with it, and the child is the cause: both show when both groups are selected (a child often runs in a group below its parent's, e.g. demo.pipeline.stage.enrich under demo.pipeline). A failed run of a periodic task is not a failed task: see Periodic runs by outcome.",
			"ops", 8,
			query(fmt.Sprintf(`sum by (group, task, outcome, error_type) (%s) > 0`, rate(finished, selTask+", "+matchFailed)),
				"{{group}}/{{task}} {{outcome}} {{error_type}}"))).
		WithPanel(b.timeseriesPanel("Running and abandoned tasks by group",
			"Running tasks and abandoned (aborted but still running) tasks per group.",
			"short", 8,
			query(fmt.Sprintf(`sum by (group) (%s{%s})`, running, selTask), "running {{group}}"),
			query(fmt.Sprintf(`sum by (group) (%s{%s})`, abandoned, selTask), "abandoned {{group}}")))

	// Latency: how long tasks run, with exemplars linking to their traces.
	d = d.WithRow(b.row("Task duration")).
		WithPanel(b.latencyPanel("Task duration p50 / p95 / p99",
			"Run time of a task, from spawn to its end, per group and task. Exemplars (diamonds) link to the task's trace in Jaeger.",
			12,
			quantiles(duration, selTask, "group, task", "{{group}}/{{task}}", 0.5, 0.95, 0.99)...)).
		WithPanel(b.latencyPanel("Mean task duration by outcome",
			"Average run time by outcome: a canceled or aborted task's duration includes the time it took to notice cancellation.",
			12,
			query(fmt.Sprintf(`%s / (%s > 0)`,
				histogramRate("histogram_sum", "_sum", duration, selTask, "outcome"),
				histogramRate("histogram_count", "_count", duration, selTask, "outcome")), "{{outcome}}")))

	// Cancellation and shutdown.
	d = d.WithRow(b.row("Cancellation and shutdown")).
		WithPanel(b.timeseriesPanel("Cancellations by cause",
			"Cancellation requests per second, by cause (shutdown, fail_fast, external, deadline, canceled, custom). A request to a whole group (its Cancel, a shutdown, a fail-fast sibling) counts once, with task empty, however many tasks it reaches, so choosing a task shows only requests made to that task.",
			"ops", 6,
			query(fmt.Sprintf(`sum by (cause) (%s)`, rate(cancellations, selTask)), "{{cause}}"))).
		WithPanel(b.latencyPanel("Cancel latency p50 / p95 / p99",
			"Time from the first cancellation request that reached a task to its return, for tasks that ended canceled, and for tasks a shutdown deadline aborted, counted when their goroutine finally returns (the late exit): a long tail means tasks ignore their context. Aborted tasks still stuck are not in it yet: they show as Abandoned tasks. Exemplars link to the trace of a task that ended canceled.",
			6,
			quantiles(cancelLatency, selTask, "group", "{{group}}", 0.5, 0.95, 0.99)...)).
		WithPanel(b.timeseriesPanel("Group shutdowns by result",
			"Group shutdowns per minute: clean (every task returned in time) or aborted (the deadline passed and tasks were abandoned).",
			"opm", 6,
			query("60 * "+histogramRate("histogram_count", "_count", shutdown, selGroup, "group, result"), "{{group}} {{result}}")).
			DrawStyle(common.GraphDrawStyleBars)).
		WithPanel(b.latencyPanel("Shutdown duration p50 / p99",
			"Time from a group's shutdown request until all its tasks returned or were abandoned. Exemplars link to the shutdown's trace, which lists aborted tasks.",
			6,
			quantiles(shutdown, selGroup, "group", "{{group}}", 0.5, 0.99)...))

	// Periodic tasks. The duration panels draw each task's period, the
	// yardstick of its runs and of its successes.
	period := query(fmt.Sprintf(`max by (group, task) (%s{%s})`, interval, selTask), "period {{group}}/{{task}}")
	d = d.WithRow(b.row("Periodic tasks")).
		WithPanel(b.timeseriesPanel("Periodic runs by outcome",
			"Runs of periodic (Every) tasks per second, by task and outcome.",
			"ops", 8,
			query(fmt.Sprintf(`sum by (group, task, outcome) (%s)`, rate(periodic, selTask)), "{{group}}/{{task}} {{outcome}}"))).
		WithPanel(b.failureRatioPanel("Periodic run failure ratio",
			"Share of periodic runs that failed (error, panic or aborted), per task. A run canceled mid-way (its group shut down or canceled) is not a failure.",
			periodic, selTask, "group, task", "{{group}}/{{task}}")).
		WithPanel(b.timeseriesPanel("Time since last success",
			"Per periodic task: time since its last successful run (since its spawn before the first), against its period; across the selected instances, the longest (the worst replica). A line that climbs far above its period is a task stuck in a run, failing every run, or ended by a panic. Shown while the task lives, and after a panic ended it until it is spawned again.",
			"s", 8,
			query(fmt.Sprintf(`time() - min by (group, task) (%s{%s})`, lastSuccess, selTask), "{{group}}/{{task}}"),
			period)).
		WithPanel(b.latencyPanel("Periodic run duration p50 / p95 / p99",
			"How long the runs of each periodic (Every) task take, against its period (a periodic task's Task duration is its whole life, not its runs). Runs never overlap: the next starts a period after a run ends, so a run as long as its period halves the task's rate of runs, and a line that climbs toward the period is work outgrowing its schedule. A run aborted at a shutdown deadline counts to the abort; one still stuck is not in it yet (see Time since last success). Runs further apart than the rate window show only around each run. Exemplars (diamonds) link to the run's trace in Jaeger.",
			24,
			append(quantiles(runDuration, selTask, "group, task", "{{group}}/{{task}}", 0.5, 0.95, 0.99), period)...))

	// The diagnostic stream and the telemetry's own health.
	d = d.WithRow(b.row("Diagnostic stream and telemetry health")).
		WithPanel(b.timeseriesPanel("Stream events",
			"Diagnostic events published to the stream per second.",
			"ops", 6,
			query(fmt.Sprintf(`sum(%s)`, rate("taskscope_stream_events_total", selTarget)), "published"))).
		WithPanel(b.timeseriesPanel("Stream drops",
			"Events dropped because a subscriber lagged behind its bounded buffer (a subscriber sees a lagged event instead). Anything above zero means a slow consumer.",
			"ops", 6,
			query(fmt.Sprintf(`sum(%s)`, rate("taskscope_stream_dropped_total", selTarget)), "dropped"))).
		WithPanel(b.timeseriesPanel("Stream subscribers",
			"Active subscriptions to the diagnostic stream (SSE/NDJSON clients, in-process subscribers).",
			"short", 6,
			query(fmt.Sprintf(`sum(taskscope_stream_subscribers{%s})`, selTarget), "subscribers"))).
		WithPanel(b.timeseriesPanel("Label overflow",
			"Metric updates per second that went to the _other label value because a label (group, task or error_type) reached its cardinality cap: counted per spawned task for group and task, per failed task for error_type, per group event for group. Non-zero means names or error types are too dynamic for metrics, and the per-group and per-task panels merge the folded ones under _other.",
			"ops", 6,
			query(fmt.Sprintf(`sum by (label) (%s)`, rate("taskscope_label_overflow_total", selTarget)), "{{label}}")))

	// Supervised vs all goroutines.
	d = d.WithRow(b.row("Supervised tasks vs Go runtime goroutines")).
		WithPanel(b.timeseriesPanel("Goroutines: supervised vs unsupervised",
			"All goroutines of the process against the supervised ones. The gap is goroutines nobody supervises: the runtime's, servers', exporters' and any started with a bare go statement. A gap that keeps growing is a leak outside taskscope.",
			"short", 16,
			query(goroutines, "all goroutines {{instance}}"),
			query(runningByProc, "supervised tasks {{instance}}"),
			query(abandonedByProc, "abandoned tasks {{instance}}"),
			query(unsupervised, "unsupervised {{instance}}"))).
		WithPanel(b.statPanel("Share of goroutines supervised",
			"Running plus abandoned tasks as a share of all goroutines.",
			"percentunit", 8,
			query(fmt.Sprintf(`(sum(%[2]s{%[1]s}) + (sum(%[3]s{%[1]s}) or vector(0))) / sum(go_goroutines{%[1]s})`, selTarget, running, abandoned), "")).
			Height(8))

	dash, err := d.Build()
	// The SDK places links in the controls menu, out of sight; without a
	// placement Grafana shows them in the dashboard's top bar.
	for i := range dash.Links {
		dash.Links[i].Placement = nil
	}
	return dash, err
}
