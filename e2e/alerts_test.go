package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/dashboards"
)

// promAlert is an alert of Prometheus's /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Value       string            `json:"value"`
}

// wantAlert is an alert the demo's workload must raise, with the labels
// that name its culprit.
type wantAlert struct {
	name   string
	labels map[string]string
	// firing: the alert has no for (it fires at the first evaluation that
	// sees the event); otherwise pending is enough, as the test does not
	// wait out its for.
	firing bool
}

// The alerts the demo raises within its first seconds: a process task
// panics every 200 messages, every job group's shutdown aborts its flush
// task, and every other fail-fast batch fails (1 in 8 tasks of
// demo.batch, above the 10 % threshold).
var demoAlerts = []wantAlert{
	{name: "TaskscopeTaskPanicked", labels: map[string]string{"group": "demo.pipeline", "task": "process"}, firing: true},
	{name: "TaskscopeShutdownAborted", labels: map[string]string{"group": "demo.job"}, firing: true},
	{name: "TaskscopeHighFailureRatio", labels: map[string]string{"group": "demo.batch"}},
}

// checkAlertsOnDemo walks from the alerts to the cause as whoever is paged
// would, on the demo's real series: the alerts the workload must raise
// are active with the labels that name the culprit (and the demo's job
// and instance); TaskscopeHighFailureRatio's description names the tasks
// that failed, each one a series of failures in Prometheus, and no task
// that did not fail; every PromQL query of the runbooks, filled in with
// an alert's labels, runs and answers with the labels it aggregates by.
// (promtool test rules checks when each alert fires on synthetic series;
// this checks what the real telemetry gives them.)
func (s *stack) checkAlertsOnDemo(t *testing.T) {
	ctx := t.Context()
	var alerts []promAlert
	err := poll(ctx, "the demo's alerts", time.Minute, time.Second, []*proc{s.prom, s.demo}, func(ctx context.Context) (bool, error) {
		var data struct {
			Alerts []promAlert `json:"alerts"`
		}
		if err := s.promAPI(ctx, "/api/v1/alerts", &data); err != nil {
			return false, err
		}
		alerts = data.Alerts
		for _, w := range demoAlerts {
			if findAlert(alerts, w, s.job) == nil {
				return false, fmt.Errorf("no %s alert %s %v", map[bool]string{true: "firing", false: "pending or firing"}[w.firing], w.name, w.labels)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("%v; active alerts: %s", err, alertList(alerts))
	}

	for _, w := range demoAlerts {
		a := findAlert(alerts, w, s.job)
		if a == nil {
			continue
		}
		if w.name == "TaskscopeHighFailureRatio" {
			s.checkFailureRatioDescription(t, a)
		}
	}
	s.checkRunbookQueries(t)
}

// findAlert returns the alert of alerts that w describes, on the demo's
// target, or nil.
func findAlert(alerts []promAlert, w wantAlert, job scrapeJob) *promAlert {
	for i, a := range alerts {
		if a.Labels["alertname"] != w.name || a.Labels["job"] != job.Job || a.Labels["instance"] != job.Instance {
			continue
		}
		if w.firing && a.State != "firing" || a.State != "firing" && a.State != "pending" {
			continue
		}
		match := true
		for k, v := range w.labels {
			match = match && a.Labels[k] == v
		}
		if match {
			return &alerts[i]
		}
	}
	return nil
}

func alertList(alerts []promAlert) string {
	var b strings.Builder
	for _, a := range alerts {
		fmt.Fprintf(&b, "\n  %s %s group=%q task=%q", a.State, a.Labels["alertname"], a.Labels["group"], a.Labels["task"])
	}
	return b.String()
}

// failedEntry is one "task (error_type) count;" of
// TaskscopeHighFailureRatio's description.
var failedEntry = regexp.MustCompile(`\s([^\s(;]+) \(([^)]*)\) (\d+);`)

// checkFailureRatioDescription: the description's "most failed" list
// names demo.batch's failing shard with its error type, and every task it
// names failed in the window by Prometheus's own count: a task listed
// with 0 (a series telemetry created at spawn) would send the reader
// after a task that never failed.
func (s *stack) checkFailureRatioDescription(t *testing.T, a *promAlert) {
	desc := a.Annotations["description"]
	entries := failedEntry.FindAllStringSubmatch(desc, -1)
	if len(entries) == 0 {
		t.Errorf("TaskscopeHighFailureRatio %s: the description names no failed task: %q", a.Labels["group"], desc)
		return
	}
	sawShard := false
	for _, e := range entries {
		task, errType, n := e[1], e[2], e[3]
		count, _ := strconv.Atoi(n)
		if count == 0 {
			t.Errorf("TaskscopeHighFailureRatio %s: the description lists %s (%s) with 0 failures: %q", a.Labels["group"], task, errType, desc)
		}
		sawShard = sawShard || task == "shard-2" && errType == "checksum_mismatch"
		expr := fmt.Sprintf(`sum(increase(taskscope_tasks_finished_total{job=%q, instance=%q, group=%q, task=%q, error_type=%q, outcome=~"error|panic"}[10m])) > 0`,
			s.job.Job, s.job.Instance, a.Labels["group"], task, errType)
		res, err := s.promQuery(t.Context(), expr, time.Now())
		switch {
		case err != nil:
			t.Errorf("%s: %v", expr, err)
		case len(res.Result) == 0:
			t.Errorf("TaskscopeHighFailureRatio %s: the description names %s (%s), which Prometheus counts no failure of: %s", a.Labels["group"], task, errType, expr)
		}
	}
	if !sawShard {
		t.Errorf("TaskscopeHighFailureRatio demo.batch: the description does not name shard-2 (checksum_mismatch), the demo's failing shard: %q", desc)
	}
}

// outerBy is the outermost "sum by (labels)" of a runbook query.
var outerBy = regexp.MustCompile(`^\w+ by \(([^)]*)\)`)

// checkRunbookQueries runs every PromQL block of docs/runbooks.md with
// the labels of a periodic task of the demo filled in, as the runbook of
// TaskscopePeriodicTaskStalled asks its reader to: each one runs, and a
// query that is not a condition (no comparison: it is there to be read)
// answers with series that carry the labels it aggregates by.
func (s *stack) checkRunbookQueries(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(s.root, "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"job": s.job.Job, "instance": s.job.Instance, "group": "demo.maintenance", "task": "compaction"}
	queries, err := dashboards.RunbookQueries(string(doc), labels)
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, q := range queries {
		res, err := s.promQuery(t.Context(), q.Expr, time.Now())
		if err != nil {
			t.Errorf("runbook %s: %v\n  %s", q.Section, err, q.Expr)
			continue
		}
		if strings.ContainsAny(q.Expr, "<>") {
			continue // a condition, as an alert's: empty while nothing is wrong
		}
		read++
		if len(res.Result) == 0 {
			t.Errorf("runbook %s: no series for the demo's %s/%s\n  %s", q.Section, labels["group"], labels["task"], q.Expr)
			continue
		}
		m := outerBy.FindStringSubmatch(q.Expr)
		if m == nil {
			continue
		}
		for _, r := range res.Result {
			for l := range strings.SplitSeq(m[1], ",") {
				if l = strings.TrimSpace(l); r.Metric[l] == "" {
					t.Errorf("runbook %s: series %v has no %s label\n  %s", q.Section, r.Metric, l, q.Expr)
				}
			}
		}
	}
	if read == 0 {
		t.Errorf("docs/runbooks.md has no query to read (not a condition) among %d", len(queries))
	}
	t.Logf("ran %d runbook queries, %d of them read with series", len(queries), read)
}

// checkShutdownLogTrace follows the final shutdown from its log record to
// its trace, as the runbook of TaskscopeShutdownAborted says to where
// metrics are not scraped again (at exit): the demo's "group shutdown
// aborted tasks" record of the root group carries a trace_id, Jaeger has
// that trace, and in it the `shutdown demo` span names the tasks the
// record names; the shutdown report gives the same trace.
func (s *stack) checkShutdownLogTrace(t *testing.T) {
	out, err := os.ReadFile(s.demo.logPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	for l := range strings.Lines(string(out)) {
		var r map[string]any
		if json.Unmarshal([]byte(l), &r) == nil && r["msg"] == "group shutdown aborted tasks" && r["taskscope.group"] == "demo" {
			rec = r
		}
	}
	if rec == nil {
		t.Fatal(`the demo logged no "group shutdown aborted tasks" record for group demo at its shutdown`)
	}
	id, _ := rec["trace_id"].(string)
	if !traceIDPattern.MatchString(id) {
		t.Fatalf("the final shutdown's log record has no trace_id: the reader cannot reach its trace from it: %v", rec)
	}
	if !strings.Contains(string(out), "  trace: "+id+" ") {
		t.Errorf("the shutdown report does not give the trace %s of its log record", id)
	}
	var r struct {
		Data []jaegerTrace `json:"data"`
	}
	if _, err := getJSON(t.Context(), s.jaegerURL+"/api/traces/"+id, &r); err != nil {
		t.Fatalf("trace %s of the final shutdown's log record: %v", id, err)
	}
	shutdown := spansWhere(r.Data, func(sp jaegerSpan) bool { return sp.OperationName == "shutdown demo" })
	if len(shutdown) != 1 {
		t.Fatalf("trace %s of the final shutdown's log record has %d `shutdown demo` spans, want 1", id, len(shutdown))
	}
	msg, _ := rec["error"].(string)
	var names []string
	if err := json.Unmarshal([]byte(shutdown[0].str("taskscope.shutdown.aborted_tasks")), &names); err != nil || len(names) == 0 {
		t.Fatalf("%s: aborted_tasks %q (%v)", shutdown[0], shutdown[0].str("taskscope.shutdown.aborted_tasks"), err)
	}
	for _, n := range names {
		if !strings.Contains(msg, n) {
			t.Errorf("the shutdown span lists %s, which its log record's error %q does not name", n, msg)
		}
	}
	t.Logf("final shutdown: log record → trace %s → %s aborting %v", id, shutdown[0].OperationName, names)
}
