package stack

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/taskscope/taskscope/dashboards"
)

// The alerting rules are valid, each fires when it should and only then
// (testdata/alerts.test.yml), and the Prometheus of the compose stack loads them.
func TestAlertRules(t *testing.T) {
	bin := tool(t, "PROMTOOL", "promtool")
	if out, err := run(t, nil, bin, "check", "rules", "deploy/prometheus/alerts.yml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := run(t, nil, bin, "test", "rules", "dashboards/stack/testdata/alerts.test.yml"); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// The config names the rules next to itself; compose mounts them there.
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	loadYAML(t, "deploy/prometheus/prometheus.yml", &cfg)
	c := loadCompose(t)
	dir := path.Dir(mountOf(t, c, "prometheus", "deploy/prometheus/prometheus.yml"))
	for _, f := range cfg.RuleFiles {
		src := filepath.Join("deploy/prometheus", f)
		if target := mountOf(t, c, "prometheus", src); target != path.Join(dir, f) {
			t.Errorf("rule file %s is mounted at %s, but the config looks for it at %s", src, target, path.Join(dir, f))
		}
	}
	if len(cfg.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
}

// Every series an alert reads is one taskscope's telemetry exports, with
// the labels it has (dashboards.Metrics, which an e2e test compares with
// telemetry's exposition).
func TestAlertRulesReadTelemetrysMetrics(t *testing.T) {
	n := 0
	for _, r := range alertRules(t) {
		n++
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
		if err != nil {
			t.Errorf("%s: %v", r.Alert, err)
			continue
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			switch n := node.(type) {
			case *parser.VectorSelector:
				if n.Name == "up" { // Prometheus's own, per target
					break
				}
				if _, _, ok := dashboards.LookupSeries(n.Name); !ok || !strings.HasPrefix(n.Name, "taskscope_") {
					t.Errorf("%s reads %s, which telemetry does not export", r.Alert, n.Name)
				}
			case *parser.AggregateExpr:
				for _, l := range n.Grouping {
					if l != "job" && l != "instance" && !hasLabel(n.Expr, l) {
						t.Errorf("%s: %s by %s, a label its series lack", r.Alert, n.Op, l)
					}
				}
			}
			return nil
		})
	}
	if n == 0 {
		t.Fatal("no alerting rules")
	}
}

// hasLabel reports whether every selector under e has label l.
func hasLabel(e parser.Expr, l string) bool {
	has := true
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			m, _, _ := dashboards.LookupSeries(vs.Name)
			if !slices.Contains(m.Labels, l) {
				has = false
			}
		}
		return nil
	})
	return has
}

// runbookBase is where the alerts' runbook_url annotations point: the
// repository's files on GitHub (the module path's host and repository),
// followed by a path inside the repository and an anchor.
const runbookBase = "https://github.com/taskscope/taskscope/blob/main/"

// Every alert tells whoever it pages what it is about and where its
// runbook is: a summary and a description, and a runbook_url naming a file
// of this repository and a section of it (by GitHub's heading anchor) that
// exist.
func TestAlertsHaveRunbooks(t *testing.T) {
	for _, r := range alertRules(t) {
		if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
			t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		u := r.Annotations["runbook_url"]
		rel, ok := strings.CutPrefix(u, runbookBase)
		file, anchor, hasAnchor := strings.Cut(rel, "#")
		if !ok || !hasAnchor || file == "" || anchor == "" {
			t.Errorf("%s: runbook_url %q, want %s<file>#<section>", r.Alert, u, runbookBase)
			continue
		}
		doc, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			t.Errorf("%s: runbook_url %q: %v", r.Alert, u, err)
			continue
		}
		if !slices.Contains(headingAnchors(string(doc)), anchor) {
			t.Errorf("%s: runbook_url %q: %s has no section #%s", r.Alert, u, file, anchor)
		}
	}
}

// headingAnchors returns the anchors GitHub gives the Markdown headings of
// doc: lower case, spaces to hyphens, punctuation but - and _ dropped.
func headingAnchors(doc string) []string {
	var out []string
	for line := range strings.Lines(doc) {
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(title)) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

// alertRule is one alerting rule of deploy/prometheus/alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRules reads the rules of every group of deploy/prometheus/alerts.yml.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var file struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	loadYAML(t, "deploy/prometheus/alerts.yml", &file)
	var rules []alertRule
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}
