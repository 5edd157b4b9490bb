package e2e

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	serviceName = "taskscope-demo" // OTEL_SERVICE_NAME, as docker-compose.yml sets it

	// demoShutdownTimeout is the demo's -shutdown-timeout: long enough for
	// well-behaved tasks to drain, short enough for the stubborn one to be
	// aborted without slowing the test.
	demoShutdownTimeout = 3 * time.Second

	// minScrapes is how many scrapes of the demo Prometheus must have
	// before the dashboard queries are evaluated: rate() over the
	// dashboards' 1m $__rate_interval needs two samples, and the slower
	// parts of the workload (periodic runs, group shutdowns, rejections)
	// need a few seconds to show.
	minScrapes = 7
)

// stack is one run of the demo with everything around it.
type stack struct {
	root string
	art  *artifacts

	demo        *proc
	demoAddr    string // host:port
	demoStart   time.Time
	demoVersion string // stamped into the build; "" for $E2E_DEMO

	prom    *proc
	promURL string
	job     scrapeJob

	jaeger    *proc
	jaegerURL string // query API
	collector *proc

	mu           sync.Mutex
	exemplars    []string // trace IDs of duration exemplars seen in Prometheus
	abortedTasks []string // group/name#id listed by the shutdown span
}

func (s *stack) demoURL(path string) string { return "http://" + s.demoAddr + path }

// chromiumPath is $CHROMIUM, else Debian's chromium.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// tools returns the paths of the programs the tests run, failing (or
// skipping, with E2E_TOOLS=skip) when `make tools` has not installed them:
// $PROMETHEUS and $JAEGER (which `make test-e2e` sets from STACK_BIN), else
// the repository's .cache/bin.
func tools(t *testing.T, root string) (prometheus, jaeger, chromium string) {
	t.Helper()
	bin := filepath.Join(root, ".cache", "bin")
	prometheus, jaeger = cmp.Or(os.Getenv("PROMETHEUS"), filepath.Join(bin, "prometheus")), cmp.Or(os.Getenv("JAEGER"), filepath.Join(bin, "jaeger"))
	chromium = chromiumPath()
	var missing []string
	for _, p := range []string{prometheus, jaeger, chromium} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("missing %s: run `make tools` (or `make test-e2e`, which does) from %s", strings.Join(missing, ", "), root)
		if os.Getenv("E2E_TOOLS") == "skip" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return prometheus, jaeger, chromium
}

// TestStack runs the demo once, with Prometheus, the collector and Jaeger
// around it, and checks each of them, the task page in a real browser and
// the event stream. See the package documentation.
func TestStack(t *testing.T) {
	root := repoRoot(t)
	prometheusBin, jaegerBin, chromiumBin := tools(t, root)
	art := newArtifacts(t)
	ctx := t.Context()
	s := &stack{root: root, art: art}
	var pp ports

	var demoBin string
	demoBin, s.demoVersion = buildDemo(t, root)

	// Jaeger: its own config, every address from the environment.
	jOTLPgRPC, jQuery := pp.free(t), pp.free(t)
	s.jaegerURL = "http://" + hostPort(jQuery)
	jaegerEnv := []string{
		"JAEGER_LISTEN_HOST=127.0.0.1",
		"JAEGER_OTLP_GRPC_PORT=" + strconv.Itoa(jOTLPgRPC),
		"JAEGER_OTLP_HTTP_PORT=" + strconv.Itoa(pp.free(t)),
		"JAEGER_QUERY_HTTP_PORT=" + strconv.Itoa(jQuery),
		"JAEGER_QUERY_GRPC_PORT=" + strconv.Itoa(pp.free(t)),
		"JAEGER_HEALTH_PORT=" + strconv.Itoa(pp.free(t)),
	}
	envCovered(t, root, jaegerConfig, jaegerEnv)
	s.jaeger = start(t, art, procSpec{
		name: "jaeger", bin: jaegerBin, dir: root,
		args:        []string{"--config=" + filepath.Join(root, jaegerConfig)},
		env:         jaegerEnv,
		stopTimeout: 5 * time.Second, // it takes far longer on SIGTERM, and holds nothing worth a clean exit
	})

	// The collector: the Jaeger binary (an OpenTelemetry Collector
	// distribution) running deploy/otel-collector/config.yaml, which uses
	// only components both contain; it forwards to Jaeger over OTLP/gRPC.
	cHTTP := pp.free(t)
	collectorEnv := []string{
		"OTELCOL_LISTEN_HOST=127.0.0.1",
		"OTELCOL_OTLP_GRPC_PORT=" + strconv.Itoa(pp.free(t)),
		"OTELCOL_OTLP_HTTP_PORT=" + strconv.Itoa(cHTTP),
		"JAEGER_OTLP_GRPC_ENDPOINT=" + hostPort(jOTLPgRPC),
	}
	envCovered(t, root, collectorConfig, collectorEnv)
	s.collector = start(t, art, procSpec{
		name: "otel-collector", bin: jaegerBin, dir: root,
		args:        []string{"--config=" + filepath.Join(root, collectorConfig)},
		env:         collectorEnv,
		stopTimeout: 5 * time.Second,
	})

	// Prometheus: flags as docker-compose.yml passes them, storage in a
	// temporary directory, the config copy with the demo's address.
	demoPort, promPort := pp.free(t), pp.free(t)
	s.demoAddr = hostPort(demoPort)
	s.promURL = "http://" + hostPort(promPort)
	var promCfg string
	promCfg, s.job = prometheusConfigCopy(t, root, art, s.demoAddr)
	s.prom = start(t, art, procSpec{
		name: "prometheus", bin: prometheusBin, dir: root,
		args: []string{
			"--config.file=" + promCfg,
			"--storage.tsdb.path=" + t.TempDir(),
			"--storage.tsdb.retention.time=2d",
			"--enable-feature=exemplar-storage,created-timestamp-zero-ingestion",
			"--web.enable-lifecycle",
			"--web.listen-address=" + hostPort(promPort),
		},
		stopTimeout: 10 * time.Second,
	})

	watch := []*proc{s.jaeger, s.collector, s.prom}
	must(t, poll(ctx, "Jaeger query API", time.Minute, 200*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
		_, err := getJSON(ctx, s.jaegerURL+"/api/services", nil)
		return err == nil, err
	}))
	must(t, poll(ctx, "collector OTLP/HTTP receiver", time.Minute, 200*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
		return dialable(ctx, hostPort(cHTTP))
	}))
	must(t, poll(ctx, "Prometheus ready", time.Minute, 200*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
		_, err := getJSON(ctx, s.promURL+"/-/ready", nil)
		return err == nil, err
	}))

	// The demo, exporting traces with the standard OTel environment
	// variables, as docker-compose.yml configures it.
	s.demoStart = time.Now()
	s.demo = start(t, art, procSpec{
		name: "demo", bin: demoBin, dir: root,
		args: []string{
			"-addr", s.demoAddr,
			"-log-format=json",
			"-shutdown-timeout", demoShutdownTimeout.String(),
		},
		env: []string{
			"OTEL_SERVICE_NAME=" + serviceName,
			"OTEL_TRACES_EXPORTER=otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + hostPort(cHTTP),
			"OTEL_METRICS_EXPORTER=none",
			"OTEL_LOGS_EXPORTER=none",
			"NO_COLOR=1",
		},
		stopTimeout: 30 * time.Second,
	})
	// Stop all at the end, in parallel (t.Cleanup runs this before the
	// per-process cleanups, which then have nothing left to do).
	t.Cleanup(func() { stopAll(t, s.demo, s.prom, s.collector, s.jaeger) })
	watch = append(watch, s.demo)
	must(t, poll(ctx, "demo /metrics", time.Minute, 100*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
		_, err := get(ctx, s.demoURL("/metrics"))
		return err == nil, err
	}))
	t.Logf("demo up at http://%s after %v", s.demoAddr, time.Since(s.demoStart).Round(time.Millisecond))

	// The kinds watcher stays connected through the shutdown.
	kinds := watchKinds(ctx, t, s)

	t.Run("running", func(t *testing.T) {
		t.Run("prometheus", func(t *testing.T) { t.Parallel(); s.checkPrometheus(t) })
		t.Run("browser", func(t *testing.T) { t.Parallel(); s.checkBrowser(t, chromiumBin) })
		t.Run("stream", func(t *testing.T) { t.Parallel(); s.checkStream(t) })
	})
	if s.demo.exited() {
		t.Fatalf("the demo exited while being checked (%v); log tail:\n%s", s.demo.waitErr, s.demo.logTail(40))
	}

	// SIGTERM: the demo shuts its supervisor down with a deadline, prints
	// its report and flushes its spans.
	took := s.demo.stop(t)
	t.Logf("demo exited %v after SIGTERM (%v), ran %v", took.Round(time.Millisecond), s.demo.waitErr, time.Since(s.demoStart).Round(time.Second))
	if s.demo.killed {
		t.Fatalf("the demo did not exit within %v of SIGTERM; log tail:\n%s", s.demo.stopTimeout, s.demo.logTail(40))
	}
	if s.demo.waitErr != nil {
		t.Errorf("the demo's exit after SIGTERM: %v, want status 0", s.demo.waitErr)
	}
	t.Run("stream-kinds", func(t *testing.T) { checkKinds(t, kinds) })
	t.Run("jaeger", func(t *testing.T) { s.checkJaeger(t) })
	t.Run("report", func(t *testing.T) { s.checkReport(t) })
}

// buildDemo builds cmd/demo from the working tree into a temporary
// directory, with a version stamped as make demo does, and returns it and
// the version; or returns $E2E_DEMO, a demo binary built otherwise (with
// -race, say), whose version it does not know.
func buildDemo(t *testing.T, root string) (bin, version string) {
	t.Helper()
	if bin := os.Getenv("E2E_DEMO"); bin != "" {
		t.Logf("demo: %s (E2E_DEMO)", bin)
		return bin, ""
	}
	bin, version = filepath.Join(t.TempDir(), "demo"), "e2e-"+strconv.FormatInt(time.Now().Unix(), 36)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+version, "-o", bin, "./cmd/demo")
	cmd.Dir = root
	begin := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
	}
	t.Logf("built the demo in %v", time.Since(begin).Round(time.Millisecond))
	return bin, version
}

// stopAll stops processes in parallel.
func stopAll(t testing.TB, ps ...*proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p != nil {
			wg.Go(func() { p.stop(t) })
		}
	}
	wg.Wait()
}

// get GETs u and returns its body; non-200 is an error.
func get(ctx context.Context, u string) ([]byte, error) {
	return getJSON(ctx, u, nil)
}

// must fails the test with err, if any.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkReport reads the demo's shutdown report (its output after SIGTERM):
// each task the shutdown span names as aborted has an "aborted" line (with
// its id) and, since the demo waits for stragglers, a "late exit" line.
func (s *stack) checkReport(t *testing.T) {
	out, err := os.ReadFile(s.demo.logPath)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.Lines(string(out)) {
		if !strings.HasPrefix(l, "{") { // JSON log records are not the report
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	s.mu.Lock()
	aborted := slices.Clone(s.abortedTasks)
	s.mu.Unlock()
	if len(aborted) == 0 {
		t.Fatal("no aborted task names from the shutdown span (the Jaeger check failed)")
	}
	for _, a := range aborted { // group/name#id
		task, id, _ := strings.Cut(a, "#")
		idWord := regexp.MustCompile(`\b` + regexp.QuoteMeta(id) + `\b`)
		if !slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "aborted") && strings.Contains(l, task) && idWord.MatchString(l)
		}) {
			t.Errorf("the shutdown report has no aborted line for %s (id %s); output:\n%s", task, id, strings.Join(lines, "\n"))
		}
		if !slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "late exit") && strings.Contains(l, task)
		}) {
			t.Errorf("the shutdown report has no late exit line for %s; output:\n%s", task, strings.Join(lines, "\n"))
		}
	}
}
