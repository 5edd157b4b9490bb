package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskscope/taskscope/dashboards"
	"github.com/taskscope/taskscope/diagnostics"
)

// promResponse is the envelope of Prometheus's HTTP API.
type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Data      json.RawMessage `json:"data"`
}

// promResult is the data of /api/v1/query and /api/v1/query_range.
type promResult struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Value  []any             `json:"value"`  // instant: [ts, "v"]
		Values [][]any           `json:"values"` // range: [[ts, "v"], ...]
	} `json:"result"`
}

// promAPI calls a Prometheus API endpoint and decodes its data into v.
func (s *stack) promAPI(ctx context.Context, path string, v any, kv ...string) error {
	var r promResponse
	body, err := getJSON(ctx, withQuery(s.promURL+path, kv...), &r)
	if err != nil && r.Status == "" {
		return err
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s (%.200s)", path, r.ErrorType, r.Error, body)
	}
	if v != nil {
		return json.Unmarshal(r.Data, v)
	}
	return nil
}

func (s *stack) promQuery(ctx context.Context, expr string, at time.Time) (promResult, error) {
	var res promResult
	err := s.promAPI(ctx, "/api/v1/query", &res, "query", expr, "time", promTime(at))
	return res, err
}

func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// checkPrometheus waits until Prometheus has scraped the demo enough, then
// evaluates every query of every dashboard panel.
func (s *stack) checkPrometheus(t *testing.T) {
	ctx := t.Context()
	watch := []*proc{s.prom, s.demo}

	// The demo's target is up.
	must(t, poll(ctx, "Prometheus target "+s.job.Instance+" up", time.Minute, 500*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
		var targets struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		}
		if err := s.promAPI(ctx, "/api/v1/targets", &targets, "state", "active"); err != nil {
			return false, err
		}
		for _, tg := range targets.ActiveTargets {
			if tg.Labels["job"] == s.job.Job && tg.Labels["instance"] == s.job.Instance {
				if tg.Health == "up" {
					return true, nil
				}
				return false, fmt.Errorf("target health %q, last error %q", tg.Health, tg.LastError)
			}
		}
		return false, fmt.Errorf("no active target job=%s instance=%s yet", s.job.Job, s.job.Instance)
	}))

	// Enough scrapes for the dashboards' rates and the slower parts of
	// the workload.
	upExpr := fmt.Sprintf(`count_over_time(up{job=%q, instance=%q}[10m])`, s.job.Job, s.job.Instance)
	must(t, poll(ctx, fmt.Sprintf("%d scrapes of the demo", minScrapes), 2*time.Minute, time.Second, watch, func(ctx context.Context) (bool, error) {
		res, err := s.promQuery(ctx, upExpr, time.Now())
		if err != nil {
			return false, err
		}
		if len(res.Result) == 0 {
			return false, nil
		}
		n, err := sampleValue(res.Result[0].Value)
		return n >= minScrapes, err
	}))
	t.Logf("%d scrapes after %v", minScrapes, time.Since(s.demoStart).Round(time.Second))

	// Every query of every panel, template variables filled in as Grafana
	// would for this job and instance, groups and tasks "All".
	vars := map[string]string{
		"datasource": "prometheus",
		"job":        s.job.Job,
		"instance":   s.job.Instance,
		"group":      ".*",
		"task":       ".*",
	}
	queries, err := dashboards.Queries(vars)
	if err != nil {
		t.Fatalf("dashboards.Queries: %v", err)
	}
	if len(queries) == 0 {
		t.Fatal("dashboards.Queries returned no query")
	}
	at := time.Now()
	var record []map[string]any
	var exemplarPanels []dashboards.Query
	var linked []linkedSeries
	for _, q := range queries {
		name := fmt.Sprintf("panel %q (%s, refId %s)", q.Panel, q.Dashboard, q.RefID)
		if strings.Contains(q.Expr, "$") {
			t.Errorf("%s: template variable left in %s", name, q.Expr)
			continue
		}
		// Instant: the panel's value now.
		res, err := s.promQuery(ctx, q.Expr, at)
		rec := map[string]any{"panel": q.Panel, "refId": q.RefID, "expr": q.Expr, "instant_series": len(res.Result)}
		switch {
		case err != nil:
			t.Errorf("%s: query failed: %v\n  expr: %s", name, err, q.Expr)
		case len(res.Result) == 0:
			t.Errorf("%s: instant query returned no series\n  expr: %s", name, q.Expr)
		default:
			if err := checkValues(res, q.Unit); err != nil {
				t.Errorf("%s: %v\n  expr: %s", name, err, q.Expr)
			}
			if len(q.Links) > 0 {
				linked = append(linked, linkedSeries{q, res})
			}
		}
		// Range: what the time-series panel draws over the demo's run.
		var rr promResult
		err = s.promAPI(ctx, "/api/v1/query_range", &rr, "query", q.Expr,
			"start", promTime(s.demoStart), "end", promTime(at), "step", "5")
		rec["range_series"] = len(rr.Result)
		switch {
		case err != nil:
			t.Errorf("%s: range query failed: %v\n  expr: %s", name, err, q.Expr)
		case len(rr.Result) == 0:
			t.Errorf("%s: range query returned no series\n  expr: %s", name, q.Expr)
		}
		record = append(record, rec)
		if q.Exemplar {
			exemplarPanels = append(exemplarPanels, q)
		}
	}
	if b, err := json.MarshalIndent(record, "", "  "); err == nil {
		s.art.write(t, "prometheus-queries.json", b)
	}
	t.Logf("evaluated %d dashboard queries", len(queries))

	s.checkGroupLinks(t, linked)
	s.checkHistogramVariants(t, queries, at)
	s.checkExemplars(t, exemplarPanels, at)
	s.checkNativeHistogram(t, at)
	s.checkSeriesStartAtZero(t, at)
	s.checkAlertRules(t)
	s.checkAlertsOnDemo(t)
}

// checkHistogramVariants: a histogram reaches Prometheus as a native
// histogram, as classic series (_bucket, _sum, _count) or as both, as
// deploy/prometheus scrapes it. Every panel must answer with either alone:
// each query that reads a histogram is evaluated twice more, once with the
// classic series renamed away (a Prometheus that scrapes native histograms
// only) and once with the native ones (one that does not scrape them), and
// must give the same series; the same values too, except quantiles, which
// the native histogram's finer buckets place elsewhere.
func (s *stack) checkHistogramVariants(t *testing.T, queries []dashboards.Query, at time.Time) {
	var classic, native []*regexp.Regexp
	for _, m := range dashboards.Metrics {
		if m.Type == dashboards.Histogram {
			classic = append(classic, regexp.MustCompile(`\b`+m.Name+`_(bucket|sum|count)\{`))
			native = append(native, regexp.MustCompile(`\b`+m.Name+`\{`))
		}
	}
	hide := func(expr string, res []*regexp.Regexp) string {
		for _, re := range res {
			expr = re.ReplaceAllStringFunc(expr, func(m string) string { return strings.TrimSuffix(m, "{") + "_not_scraped{" })
		}
		return expr
	}
	variants := 0
	for _, q := range queries {
		want, err := s.promQuery(t.Context(), q.Expr, at)
		if err != nil {
			t.Errorf("panel %q (refId %s): %v", q.Panel, q.RefID, err)
			continue
		}
		for _, v := range []struct{ scrape, expr string }{
			{"native histograms only", hide(q.Expr, classic)},
			{"classic histograms only", hide(q.Expr, native)},
		} {
			if v.expr == q.Expr {
				continue
			}
			variants++
			got, err := s.promQuery(t.Context(), v.expr, at)
			if err != nil {
				t.Errorf("panel %q (refId %s), %s: %v", q.Panel, q.RefID, v.scrape, err)
				continue
			}
			if diff := compareResults(want, got, !strings.Contains(q.Expr, "histogram_quantile")); diff != "" {
				t.Errorf("panel %q (refId %s) with %s: %s\n  expr: %s", q.Panel, q.RefID, v.scrape, diff, v.expr)
			}
		}
	}
	if variants == 0 {
		t.Error("no dashboard query reads a histogram")
	}
	t.Logf("%d histogram queries answer alike from native or classic series alone", variants)
}

// compareResults says how got differs from want, instant results: in its
// series, or (when values is set) in a value by more than one part in a
// million.
func compareResults(want, got promResult, values bool) string {
	key := func(m map[string]string) string { return fmt.Sprint(m) } // fmt sorts map keys
	wantV := map[string][]any{}
	for _, r := range want.Result {
		wantV[key(r.Metric)] = r.Value
	}
	if len(got.Result) != len(want.Result) {
		return fmt.Sprintf("%d series, want %d", len(got.Result), len(want.Result))
	}
	for _, r := range got.Result {
		w, ok := wantV[key(r.Metric)]
		if !ok {
			return fmt.Sprintf("series %v, not in the result with both", r.Metric)
		}
		if !values {
			continue
		}
		a, errA := sampleValue(w)
		b, errB := sampleValue(r.Value)
		if errA != nil || errB != nil {
			return fmt.Sprintf("series %v: %v %v", r.Metric, errA, errB)
		}
		if a != b && !(math.Abs(a-b) <= 1e-6*math.Max(math.Abs(a), math.Abs(b))) {
			return fmt.Sprintf("series %v = %v, want %v", r.Metric, b, a)
		}
	}
	return ""
}

// linkedSeries is the instant result of a query whose panel has data links.
type linkedSeries struct {
	q   dashboards.Query
	res promResult
}

// checkGroupLinks follows every data link of every series, as a click in
// Grafana would (the Task page variable set to the demo's page): each link
// opens the task page narrowed to the series' group, and the page shows
// every group of that name that is open in the tree all along, and none of
// another name, other than those below it or on its way from the root (a
// link without its ?group= would show the whole tree). Groups come
// and go (the demo's batch and job groups are shut down and made again), so
// a group counts as open all along when a snapshot before the first link
// and one after the last both have its ID open.
func (s *stack) checkGroupLinks(t *testing.T, linked []linkedSeries) {
	ctx := t.Context()
	page := s.demoURL("/debug/tasks")
	before, root, err := openGroups(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"tasks_url": page}
	pages := map[string]string{} // link URL → HTML served
	groupOf := map[string]string{}
	for _, l := range linked {
		for _, series := range l.res.Result {
			for _, link := range l.q.Links {
				u, err := dashboards.ExpandLink(link, vars, series.Metric)
				if err != nil {
					t.Errorf("panel %q, series %v: %v", l.q.Panel, series.Metric, err)
					continue
				}
				if _, done := pages[u]; done {
					continue
				}
				body, err := getHTML(ctx, u)
				if err != nil {
					t.Errorf("panel %q, series %v: %v", l.q.Panel, series.Metric, err)
				}
				pages[u], groupOf[u] = body, series.Metric["group"]
			}
		}
	}
	after, _, err := openGroups(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	// related: the page of group g shows the groups named g, those below
	// them, those on the way from the root, and the root; no other.
	related := func(name, g string) bool {
		return name == g || name == root || strings.HasPrefix(name, g+".") || strings.HasPrefix(g, name+".")
	}
	shown, hidden := 0, 0
	for u, body := range pages {
		g := groupOf[u]
		for name, ids := range before {
			for _, id := range ids {
				if !slices.Contains(after[name], id) {
					continue
				}
				has := strings.Contains(body, fmt.Sprintf(`data-group-id="%d"`, id))
				switch {
				case name == g:
					shown++
					if !has {
						t.Errorf("%s does not show group %s (id %d), open all along", u, g, id)
					}
				case !related(name, g):
					hidden++
					if has {
						t.Errorf("%s shows group %s (id %d): not narrowed to %s", u, name, id, g)
					}
				}
			}
		}
	}
	if shown == 0 || hidden == 0 {
		t.Errorf("%d group links led to %d groups open all along and hid %d others: want some of each", len(pages), shown, hidden)
	}
	t.Logf("followed %d group links; %d groups open all along shown, %d of other names hidden", len(pages), shown, hidden)
}

// openGroups returns the IDs of the open groups of the task page's tree,
// by name, and the root's name.
func openGroups(ctx context.Context, page string) (map[string][]uint64, string, error) {
	var snap diagnostics.SnapshotJSON
	if _, err := getJSON(ctx, page, &snap); err != nil {
		return nil, "", err
	}
	open := map[string][]uint64{}
	var walk func(g diagnostics.GroupJSON)
	walk = func(g diagnostics.GroupJSON) {
		if g.Closed {
			return // nothing below a closed group is open
		}
		open[g.Name] = append(open[g.Name], g.ID)
		for _, c := range g.Groups {
			walk(c)
		}
	}
	walk(snap.Root)
	return open, snap.Root.Name, nil
}

// checkAlertRules: Prometheus loaded deploy/prometheus/alerts.yml and
// evaluates every rule against the demo's series without an error.
// (promtool test rules, in make test-stack, checks when each one fires.)
func (s *stack) checkAlertRules(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Type      string `json:"type"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := s.promAPI(t.Context(), "/api/v1/rules", &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Type != "alerting" || r.Health != "ok" {
				t.Errorf("rule %s/%s: %s rule, health %q, last error %q", g.Name, r.Name, r.Type, r.Health, r.LastError)
			}
		}
	}
	src, err := os.ReadFile(filepath.Join(s.root, filepath.Dir(prometheusConfig), "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(string(src), "- alert:"); n != want {
		t.Errorf("Prometheus has %d rules loaded, want the %d alerts of alerts.yml", n, want)
	}
}

// checkSeriesStartAtZero: every taskscope counter and histogram count
// series begins with a zero sample, also those telemetry creates at their
// first event (cancellations by cause, shutdowns by result, errors by
// type), so that rate() and increase() count that event. Prometheus adds
// the zero from the created timestamp the protobuf exposition carries.
func (s *stack) checkSeriesStartAtZero(t *testing.T, at time.Time) {
	// taskscope_demo_* are the demo's own metrics, not telemetry's.
	sel := fmt.Sprintf(`{__name__=~"taskscope_.+(_total|_count)", __name__!~"taskscope_demo_.+", job=%q, instance=%q}`, s.job.Job, s.job.Instance)
	all, err := s.promQuery(t.Context(), sel+`[1h]`, at) // every sample, oldest first
	if err != nil {
		t.Fatal(err)
	}
	lazy := 0
	for _, r := range all.Result {
		if len(r.Values) == 0 {
			t.Fatalf("%v: no samples", r.Metric)
		}
		v, err := sampleValue(r.Values[0])
		if err != nil {
			t.Fatal(err)
		}
		if v != 0 {
			t.Errorf("%v starts at %g, not 0: rate() and increase() never count its first events", r.Metric, v)
		}
		if r.Metric["__name__"] == "taskscope_group_shutdown_duration_seconds_count" || r.Metric["__name__"] == "taskscope_task_cancellations_total" {
			lazy++
		}
	}
	if lazy == 0 {
		t.Errorf("no shutdown or cancellation series among %d: nothing created at its first event was checked", len(all.Result))
	}
	t.Logf("%d series start at zero, %d of them created at their first event", len(all.Result), lazy)
}

// checkNativeHistogram: Prometheus ingests the duration histogram as a
// native histogram too (the dashboards' quantiles read it first, the
// classic buckets when it is absent), and both count the same tasks.
func (s *stack) checkNativeHistogram(t *testing.T, at time.Time) {
	sel := fmt.Sprintf(`{job=%q, instance=%q}`, s.job.Job, s.job.Instance)
	count := func(expr string) float64 {
		t.Helper()
		res, err := s.promQuery(t.Context(), expr, at)
		if err != nil || len(res.Result) != 1 {
			t.Fatalf("%s: %d series, err %v", expr, len(res.Result), err)
		}
		v, err := sampleValue(res.Result[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	native := count(`sum(histogram_count(taskscope_task_duration_seconds` + sel + `))`)
	classic := count(`sum(taskscope_task_duration_seconds_count` + sel + `)`)
	if native == 0 || native != classic {
		t.Errorf("native histograms count %g tasks, classic _count %g", native, classic)
	}
	if p99 := count(`histogram_quantile(0.99, sum(taskscope_task_duration_seconds` + sel + `))`); !(p99 > 0) {
		t.Errorf("native p99 %g, want > 0", p99)
	}
	t.Logf("native histogram: %g tasks", native)
}

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkExemplars: the duration histogram carries trace_id exemplars (the
// demo samples every span), and so does every panel query that asks for
// them, as Grafana does with /api/v1/query_exemplars.
func (s *stack) checkExemplars(t *testing.T, panels []dashboards.Query, end time.Time) {
	ctx := t.Context()
	type exemplarSeries struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels map[string]string `json:"labels"`
			Value  string            `json:"value"`
		} `json:"exemplars"`
	}
	fetch := func(expr string) ([]string, error) {
		var data []exemplarSeries
		if err := s.promAPI(ctx, "/api/v1/query_exemplars", &data,
			"query", expr, "start", promTime(s.demoStart), "end", promTime(end)); err != nil {
			return nil, err
		}
		var ids []string
		for _, series := range data {
			for _, e := range series.Exemplars {
				id := e.Labels["trace_id"]
				if !traceIDPattern.MatchString(id) {
					return nil, fmt.Errorf("exemplar of %v has no trace_id label of 32 hex digits: %v", series.SeriesLabels, e.Labels)
				}
				ids = append(ids, id)
			}
		}
		return ids, nil
	}
	sel := fmt.Sprintf(`taskscope_task_duration_seconds_bucket{job=%q, instance=%q}`, s.job.Job, s.job.Instance)
	ids, err := fetch(sel)
	switch {
	case err != nil:
		t.Errorf("exemplars of %s: %v", sel, err)
	case len(ids) == 0:
		t.Errorf("no exemplars for %s: the duration histogram should carry trace_id exemplars of sampled spans", sel)
	}
	s.mu.Lock()
	s.exemplars = ids
	s.mu.Unlock()
	if len(panels) == 0 {
		t.Error("no dashboard panel asks for exemplars (the duration panel should)")
	}
	for _, q := range panels {
		pids, err := fetch(q.Expr)
		switch {
		case err != nil:
			t.Errorf("panel %q refId %s: exemplars: %v\n  expr: %s", q.Panel, q.RefID, err, q.Expr)
		case len(pids) == 0:
			t.Errorf("panel %q refId %s asks for exemplars and gets none\n  expr: %s", q.Panel, q.RefID, q.Expr)
		}
	}
	t.Logf("%d duration exemplars", len(ids))
}

// sampleValue reads the value of an instant sample [ts, "v"].
// checkValues fails an instant result that draws nothing (every sample
// NaN or infinite: a division by zero, not data), and a ratio (unit
// percentunit) with any sample that is not a number in [0, 1]: where
// nothing happened, a ratio must be absent, not NaN. (Other panels may
// have NaN series: a quantile of a histogram with no observations in the
// window.)
func checkValues(res promResult, unit string) error {
	finite := 0
	for _, r := range res.Result {
		v, err := sampleValue(r.Value)
		switch {
		case err != nil:
			return err
		case unit == "percentunit" && !(v >= 0 && v <= 1):
			return fmt.Errorf("ratio %v is not in [0, 1] for %v", v, r.Metric)
		case !math.IsNaN(v) && !math.IsInf(v, 0):
			finite++
		}
	}
	if finite == 0 {
		return fmt.Errorf("every one of %d series is NaN or infinite", len(res.Result))
	}
	return nil
}

func sampleValue(v []any) (float64, error) {
	if len(v) != 2 {
		return 0, fmt.Errorf("malformed sample %v", v)
	}
	str, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("malformed sample value %v", v[1])
	}
	return strconv.ParseFloat(str, 64)
}
