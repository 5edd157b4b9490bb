package stack

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/taskscope/taskscope/dashboards"
)

const runbooksFile = "docs/runbooks.md"

func readRunbooks(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(root, runbooksFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// alertLabels are the labels whose values a runbook query may ask the
// reader to copy from the alert: those every taskscope alert keeps.
var alertLabels = []string{"job", "instance", "group", "task"}

// Every PromQL block of the runbooks parses once its placeholders are
// filled in, reads only series telemetry exports, and aggregates only by
// labels those series have: a query copied at 3 a.m. must not fail, nor
// answer nothing because of a typo. (The end-to-end suite runs them
// against a real Prometheus scraping the demo.)
func TestRunbookQueriesReadTelemetrysMetrics(t *testing.T) {
	labels := map[string]string{"job": "svc", "instance": "a:1", "group": "app.job", "task": "flush"}
	queries, err := dashboards.RunbookQueries(readRunbooks(t), labels)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatalf("%s has no ```promql block", runbooksFile)
	}
	for _, q := range queries {
		for _, p := range q.Placeholders {
			if !slices.Contains(alertLabels, p) {
				t.Errorf("%s: <%s> is not a label of the alert (%v): the reader has no value for it\n  %s", q.Section, p, alertLabels, q.Raw)
			}
		}
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.Expr)
		if err != nil {
			t.Errorf("%s: %v\n  %s", q.Section, err, q.Expr)
			continue
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			switch n := node.(type) {
			case *parser.VectorSelector:
				if _, _, ok := dashboards.LookupSeries(n.Name); !ok || !strings.HasPrefix(n.Name, "taskscope_") {
					t.Errorf("%s: reads %s, which telemetry does not export\n  %s", q.Section, n.Name, q.Raw)
				}
				for _, m := range n.LabelMatchers {
					if m.Name == "__name__" {
						continue
					}
					if m.Name != "job" && m.Name != "instance" && !hasLabel(n, m.Name) {
						t.Errorf("%s: %s{%s}, a label it lacks\n  %s", q.Section, n.Name, m.Name, q.Raw)
					}
				}
			case *parser.AggregateExpr:
				for _, l := range n.Grouping {
					if l != "job" && l != "instance" && l != "le" && !hasLabel(n.Expr, l) {
						t.Errorf("%s: %s by %s, a label its series lack\n  %s", q.Section, n.Op, l, q.Raw)
					}
				}
			}
			return nil
		})
	}
}

// dashboardLink finds the runbooks' link to the overview with the alert's
// labels as its variables: <grafana>/d/<uid>?var-job=<job>&...
var dashboardLink = regexp.MustCompile("`<grafana>(/d/[^`]+)`")

// The runbooks tell how to open the overview already filtered by the
// alert's labels, and that link names the overview's uid and only
// variables the dashboard has, each given the alert label of its name:
// a variable Grafana does not know is silently ignored, and the reader
// would look at every group while believing to look at one.
func TestRunbookDashboardLink(t *testing.T) {
	links := dashboardLink.FindAllStringSubmatch(readRunbooks(t), -1)
	if len(links) == 0 {
		t.Fatalf("%s gives no link to the overview filtered by the alert's labels (`<grafana>/d/%s?var-...`)", runbooksFile, dashboards.OverviewUID)
	}
	d, err := dashboards.Overview()
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, l := range links {
		u, err := url.Parse(l[1])
		if err != nil {
			t.Errorf("%s: %v", l[1], err)
			continue
		}
		if want := "/d/" + dashboards.OverviewUID; u.Path != want {
			t.Errorf("%s: path %s, want %s (the overview's uid)", l[1], u.Path, want)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			t.Errorf("%s: %v", l[1], err)
			continue
		}
		seen := map[string]bool{}
		for key, values := range q {
			name, ok := strings.CutPrefix(key, "var-")
			if !ok {
				continue
			}
			seen[name] = true
			if !slices.Contains(vars, name) {
				t.Errorf("%s: var-%s, but the overview has no variable %s (it has %v)", l[1], name, name, vars)
			}
			if want := "<" + name + ">"; len(values) != 1 || values[0] != want {
				t.Errorf("%s: var-%s=%v, want the alert's label, %s", l[1], name, values, want)
			}
		}
		for _, name := range alertLabels {
			if !seen[name] {
				t.Errorf("%s sets no var-%s: the dashboard would show every %s", l[1], name, name)
			}
		}
	}
}

// quoted is a phrase in double quotes in running text, once code is cut
// out and lines are joined.
var (
	codeBlock = regexp.MustCompile("(?s)```.*?```")
	codeSpan  = regexp.MustCompile("`[^`]*`")
	quoted    = regexp.MustCompile(`"([^"]*)"`)
	// dashboardsPanel is how an alert's annotation names a panel.
	dashboardsPanel = regexp.MustCompile(`dashboard's ([A-Z][^.;]*)[.;]`)
)

// The runbooks and the alerts send the reader to panels, rows and the
// dashboard by their titles: each such title (a quoted phrase that begins
// with a capital letter, lower-case ones being log messages and task page
// text) is one the overview has, so that a renamed panel does not leave a
// runbook step pointing at nothing.
func TestRunbooksNameExistingPanels(t *testing.T) {
	d, err := dashboards.Overview()
	if err != nil {
		t.Fatal(err)
	}
	titles := []string{*d.Title}
	for _, p := range d.Panels {
		switch {
		case p.Panel != nil:
			titles = append(titles, *p.Panel.Title)
		case p.RowPanel != nil:
			titles = append(titles, *p.RowPanel.Title)
			for _, c := range p.RowPanel.Panels {
				titles = append(titles, *c.Title)
			}
		}
	}
	text := codeSpan.ReplaceAllString(codeBlock.ReplaceAllString(readRunbooks(t), ""), "")
	text = strings.Join(strings.Fields(text), " ")
	named := 0
	for _, m := range quoted.FindAllStringSubmatch(text, -1) {
		if m[1] == "" || m[1][0] < 'A' || m[1][0] > 'Z' {
			continue
		}
		named++
		if !slices.Contains(titles, m[1]) {
			t.Errorf("%s names %q, which is no title of the overview, its rows or its panels", runbooksFile, m[1])
		}
	}
	for _, r := range alertRules(t) {
		for _, a := range r.Annotations {
			for _, m := range dashboardsPanel.FindAllStringSubmatch(a, -1) {
				named++
				if !slices.Contains(titles, m[1]) {
					t.Errorf("%s names the dashboard's %q, which is no panel of the overview", r.Alert, m[1])
				}
			}
		}
	}
	if named == 0 {
		t.Error("the runbooks and alerts name no panel: the test finds none to check")
	}
}
