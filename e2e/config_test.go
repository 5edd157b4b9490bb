package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The deploy/ files are the ones docker-compose.yml mounts. The Jaeger and
// collector configs take every address from environment variables, so the
// tests run them as they are; the Prometheus config names its scrape
// target, so the tests run a copy in which only that address differs.
const (
	jaegerConfig     = "deploy/jaeger/config.yaml"
	collectorConfig  = "deploy/otel-collector/config.yaml"
	prometheusConfig = "deploy/prometheus/prometheus.yml"

	// composeTarget is the scrape target in prometheus.yml: the demo's
	// compose service and port.
	composeTarget = "demo:8080"
)

// scrapeJob is what Prometheus will label the demo's series with.
type scrapeJob struct {
	Job      string // job_name
	Instance string // the target address (Prometheus's default instance label)
}

// prometheusConfigCopy writes deploy/prometheus/prometheus.yml with its one
// scrape target replaced by target, checks that nothing else differs, and
// returns the copy's path and the scrape job's labels.
func prometheusConfigCopy(t *testing.T, root string, a *artifacts, target string) (string, scrapeJob) {
	t.Helper()
	orig, err := os.ReadFile(filepath.Join(root, prometheusConfig))
	if err != nil {
		t.Fatal(err)
	}
	src := string(orig)
	quoted := fmt.Sprintf("%q", composeTarget)
	if n := strings.Count(src, quoted); n != 1 {
		t.Fatalf("%s: want the scrape target %s exactly once, found it %d times; update the e2e test with the config", prometheusConfig, quoted, n)
	}
	out := strings.Replace(src, quoted, fmt.Sprintf("%q", target), 1)
	if err := onlyAddressesDiffer(src, out, map[string]string{composeTarget: target}); err != nil {
		t.Fatalf("%s copy: %v", prometheusConfig, err)
	}

	// The copy must still be the same configuration: one job, whose only
	// static target is ours.
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("%s copy: %v", prometheusConfig, err)
	}
	var job scrapeJob
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				if tg == target {
					job = scrapeJob{Job: sc.JobName, Instance: target}
				}
			}
		}
	}
	if job.Job == "" {
		t.Fatalf("%s copy: no scrape job targets %s", prometheusConfig, target)
	}
	path := a.path("prometheus.yml")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	// The rule files the config names, next to the copy as next to the
	// original.
	for _, f := range cfg.RuleFiles {
		rules, err := os.ReadFile(filepath.Join(root, filepath.Dir(prometheusConfig), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(a.path(f), rules, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path, job
}

// onlyAddressesDiffer checks that copy is orig with each key of subst
// replaced by its value on some lines, and with no other change: same
// number of lines, and each differing line turns back into the original
// when the substitutions are undone.
func onlyAddressesDiffer(orig, copy string, subst map[string]string) error {
	ol, cl := strings.Split(orig, "\n"), strings.Split(copy, "\n")
	if len(ol) != len(cl) {
		return fmt.Errorf("%d lines, the original has %d", len(cl), len(ol))
	}
	changed := 0
	for i := range ol {
		if ol[i] == cl[i] {
			continue
		}
		changed++
		undone := cl[i]
		for from, to := range subst {
			undone = strings.ReplaceAll(undone, to, from)
		}
		if undone != ol[i] {
			return fmt.Errorf("line %d differs beyond the addresses %v:\n  original: %s\n  copy:     %s", i+1, subst, ol[i], cl[i])
		}
	}
	if changed == 0 {
		return fmt.Errorf("no address was substituted")
	}
	return nil
}

func TestOnlyAddressesDiffer(t *testing.T) {
	orig := "a: 1\ntargets: [\"demo:8080\"]\nb: 2\n"
	subst := map[string]string{"demo:8080": "127.0.0.1:4242"}
	for _, tc := range []struct {
		copy string
		ok   bool
	}{
		{"a: 1\ntargets: [\"127.0.0.1:4242\"]\nb: 2\n", true},
		{orig, false}, // nothing substituted
		{"a: 1\ntargets: [\"127.0.0.1:4242\"]\nb: 3\n", false},
		{"a: 1\ntargets: [\"127.0.0.1:4242\", \"x:1\"]\nb: 2\n", false},
		{"a: 1\ntargets: [\"127.0.0.1:4242\"]\nb: 2\nc: 3\n", false},
	} {
		err := onlyAddressesDiffer(orig, tc.copy, subst)
		if (err == nil) != tc.ok {
			t.Errorf("onlyAddressesDiffer(%q) = %v, want ok=%v", tc.copy, err, tc.ok)
		}
	}
}

var envRef = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)`)

// envCovered checks that env (NAME=value, ...) sets every variable that the
// config file at path reads (${env:NAME} or ${env:NAME:-default}): a
// config run as it is must take all its addresses from the test, or it
// would listen on a fixed default port.
func envCovered(t *testing.T, root, path string, env []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	refs := envRef.FindAllStringSubmatch(string(b), -1)
	if len(refs) == 0 {
		t.Fatalf("%s reads no environment variable; the test expects its addresses to come from there", path)
	}
	for _, m := range refs {
		if !set[m[1]] {
			t.Fatalf("%s reads ${env:%s}, which the e2e test does not set: add it (with a free port or a loopback address)", path, m[1])
		}
	}
}
