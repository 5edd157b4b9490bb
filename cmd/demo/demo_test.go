package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testSchedule compresses the default schedule so that every kind of
// round happens within about a second.
func testSchedule(shutdownTimeout time.Duration) schedule {
	s := defaultSchedule(100, shutdownTimeout)
	s.itemBudget, s.slowWrite = 100*time.Millisecond, 300*time.Millisecond
	s.compactionEvery, s.healthEvery, s.rebalanceEvery = 100*time.Millisecond, 100*time.Millisecond, 300*time.Millisecond
	s.batchEvery, s.jobEvery = 200*time.Millisecond, 300*time.Millisecond
	s.jobPatience, s.jobDeadline, s.jobLinger = 200*time.Millisecond, 50*time.Millisecond, 150*time.Millisecond
	return s
}

// TestRun runs the wired demo in-process on an ephemeral port: every
// endpoint answers, /metrics has every metric the dashboards query, logs
// carry trace ids, and the report names the aborted stubborn task and its
// late exit.
func TestRun(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, "") // zpages only: no exporter to reach
	}
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-shutdown-timeout", "500ms", "-log-format", "json"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.sched = testSchedule(cfg.shutdownTimeout)

	stdout, stderr := newOutput(), newOutput()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, stdout, stderr) }()

	var base string
	select {
	case base = <-stdout.listening:
	case err := <-done:
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no \"listening on\" line within 10s")
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	for _, e := range endpoints {
		if !strings.Contains(stdout.String(), base+e.Path) {
			t.Errorf("startup output does not list %s", base+e.Path)
		}
	}
	t.Run("endpoints", func(t *testing.T) {
		for _, c := range []struct{ path, accept, contentType, body string }{
			{"/", "", "text/html", "/debug/tracez"},
			{"/metrics", "", "text/plain", "go_goroutines"},
			{"/metrics", "application/openmetrics-text", "application/openmetrics-text", "# EOF"},
			{"/debug/tasks", "", "text/html", "data-group"},
			{"/debug/tasks?format=json", "", "application/json", "demo.pipeline.stage.enrich"},
			{"/debug/events", "", "text/event-stream", "event: taskscope."},
			{"/debug/events?format=ndjson", "", "application/x-ndjson", `"kind":"taskscope.`},
			{"/debug/tracez", "", "text/html", "task process"},
			{"/debug/pprof/", "", "text/html", "goroutine"},
			{"/debug/pprof/goroutine?debug=1", "", "text/plain", "taskscope.task"},
			{"/api/quote", "", "application/json", "reviews ok"},
		} {
			status, ctype, body := get(t, client, base+c.path, c.accept)
			if status != http.StatusOK || !strings.HasPrefix(ctype, c.contentType) || !strings.Contains(body, c.body) {
				t.Errorf("GET %s (Accept %q): %d %q, body has %q: %v", c.path, c.accept, status, ctype, c.body, strings.Contains(body, c.body))
			}
		}
	})

	// On loopback, a Host that is no loopback name is a web page that
	// rebound its DNS name to 127.0.0.1: refused, on every endpoint.
	t.Run("loopback hosts", func(t *testing.T) {
		port := base[strings.LastIndex(base, ":")+1:]
		for host, want := range map[string]int{
			"127.0.0.1:" + port:          http.StatusOK,
			"localhost:" + port:          http.StatusOK,
			"LOCALHOST.:" + port:         http.StatusOK,
			"[::1]:" + port:              http.StatusOK,
			"demo.localhost:" + port:     http.StatusOK,
			"localhost":                  http.StatusOK,
			"attacker.example:" + port:   http.StatusForbidden,
			"attacker.example":           http.StatusForbidden,
			"127.0.0.1.nip.io:" + port:   http.StatusForbidden,
			"localhost.attacker.example": http.StatusForbidden,
			"10.0.0.1:" + port:           http.StatusForbidden,
		} {
			for _, path := range []string{"/debug/tasks?format=json", "/api/quote", "/debug/pprof/cmdline"} {
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				req.Host = host
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want && !(want == http.StatusOK && resp.StatusCode == http.StatusBadGateway) { // a quote's part may fail
					t.Errorf("GET %s with Host %q: %d, want %d", path, host, resp.StatusCode, want)
				}
			}
		}
		// HTTP/1.0 without a Host (a health check's): no browser's.
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /debug/tasks?format=json HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("HTTP/1.0 GET without Host: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		want := dashboardMetrics(t)
		var missing []string
		deadline := time.Now().Add(20 * time.Second)
		for {
			missing = missingMetrics(t, client, base, want)
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond) // the workload runs on real time: poll, bounded
		}
		if len(missing) > 0 {
			t.Errorf("/metrics has no series of %v", missing)
		}
		_, _, om := get(t, client, base+"/metrics", "application/openmetrics-text")
		if !strings.Contains(om, `# {trace_id="`) {
			t.Error("OpenMetrics exposition has no trace_id exemplar")
		}
	})

	stopRun(t, stop, done)

	report := stdout.String()
	for _, want := range []string{
		"aborted: demo.exporter/legacy-export id=",
		"flushBuffers", // where it was stuck
		"late exit: demo.exporter/legacy-export id=",
		"abandoned goroutines still running: none",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if t.Failed() {
		return
	}
	t.Run("logs", func(t *testing.T) { checkLogs(t, stderr.String()) })
	t.Run("startup log", func(t *testing.T) { checkStartupLog(t, stderr.String(), base) })
}

// checkStartupLog wants the "demo running" record to say where the demo
// serves, for whoever reads only the log (stdout's list of URLs is not in
// a JSON log pipeline).
func checkStartupLog(t *testing.T, logs, base string) {
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] != "demo running" {
			continue
		}
		for _, k := range []string{"url", "metrics", "tasks"} {
			if s, _ := rec[k].(string); !strings.HasPrefix(s, base+"/") {
				t.Errorf("\"demo running\" record %v: %s is %q, want a URL under %s", rec, k, s, base)
			}
		}
		return
	}
	t.Error("no \"demo running\" record")
}

// checkLogs wants JSON records for every outcome, task records with the
// task's trace and span ids.
func checkLogs(t *testing.T, logs string) {
	outcomes := map[string]bool{}
	traced := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q: %v", sc.Text(), err)
		}
		if o, ok := rec["taskscope.task.outcome"].(string); ok {
			outcomes[o] = true
			if rec["trace_id"] != nil && rec["span_id"] != nil {
				traced++
			}
		}
	}
	for _, o := range []string{"error", "canceled", "panic", "aborted"} { // success is logged at debug
		if !outcomes[o] {
			t.Errorf("no log record with outcome %s", o)
		}
	}
	if traced == 0 {
		t.Error("no task log record carries trace_id and span_id")
	}
}

func get(t *testing.T, client *http.Client, url, accept string) (status int, contentType, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	var data []byte
	if strings.HasPrefix(ct, "text/event-stream") || strings.HasPrefix(ct, "application/x-ndjson") {
		// Never-ending: the first event is enough.
		data = firstEvent(resp.Body)
	} else if data, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, ct, string(data)
}

// firstEvent reads a stream up to its first event.
func firstEvent(r io.Reader) []byte {
	var out []byte
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out = append(append(out, sc.Bytes()...), '\n')
		if strings.HasPrefix(sc.Text(), "data:") || strings.HasPrefix(sc.Text(), "{") {
			break
		}
	}
	return out
}

// dashboardMetrics reads the metric names the dashboards query from
// dashboards/metrics.go, a separate module, as source text: every Name
// field of the Metrics and RuntimeMetrics lists.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../dashboards/metrics.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.VAR {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) != 1 || (vs.Names[0].Name != "Metrics" && vs.Names[0].Name != "RuntimeMetrics") {
				continue
			}
			ast.Inspect(vs, func(n ast.Node) bool {
				kv, ok := n.(*ast.KeyValueExpr)
				if !ok {
					return true
				}
				if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Name" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if name, err := strconv.Unquote(lit.Value); err == nil {
							names = append(names, name)
						}
					}
				}
				return true
			})
		}
	}
	if len(names) < 10 || !slices.Contains(names, "go_goroutines") {
		t.Fatalf("read %v from dashboards/metrics.go: its layout changed", names)
	}
	return names
}

// missingMetrics returns the names in want that /metrics has no sample of,
// and the outcomes no task has ended with yet.
func missingMetrics(t *testing.T, client *http.Client, base string, want []string) []string {
	t.Helper()
	_, _, body := get(t, client, base+"/metrics", "")
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	var missing []string
	for _, name := range want {
		if mf := families[name]; mf == nil || len(mf.GetMetric()) == 0 {
			missing = append(missing, name)
		}
	}
	// Every outcome, not just the series: the workload must have produced
	// each by now.
	seen := map[string]bool{}
	if mf := families["taskscope_tasks_finished_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && m.GetCounter().GetValue() > 0 {
					seen[l.GetValue()] = true
				}
			}
		}
	}
	for _, o := range []string{"success", "error", "canceled", "panic", "aborted"} {
		if !seen[o] {
			missing = append(missing, "taskscope_tasks_finished_total{outcome="+o+"} > 0")
		}
	}
	return missing
}

// output is a goroutine-safe buffer that announces the base URL from the
// "listening on" line.
type output struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	announced bool
	listening chan string
}

func newOutput() *output { return &output{listening: make(chan string, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.announced {
		for line := range strings.Lines(o.buf.String()) {
			if _, rest, ok := strings.Cut(line, "listening on "); ok && strings.HasSuffix(line, "\n") {
				o.listening <- strings.Fields(rest)[0]
				o.announced = true
				break
			}
		}
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// TestOTelSDKLogsInDemoFormat: what the OpenTelemetry SDK logs itself
// (here autoexport's OTLP exporter rejecting a malformed
// OTEL_EXPORTER_OTLP_HEADERS) is a record of the demo's logger, in its
// format, not a stdr line on the process's stderr that breaks a JSON log
// stream. The collector is down (a closed port): startup does not wait
// for it, and the demo still stops cleanly.
func TestOTelSDKLogsInDemoFormat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for k, v := range map[string]string{
		"OTEL_TRACES_EXPORTER":               "otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://" + closed,
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
		"OTEL_EXPORTER_OTLP_HEADERS":         "no-equals-sign",
		"OTEL_TRACES_SAMPLER":                "",
	} {
		t.Setenv(k, v)
	}
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-shutdown-timeout", "100ms", "-log-format", "json", "-rate", "0"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.sched = testSchedule(cfg.shutdownTimeout)
	cfg.sched.rate = 0

	stdout, stderr := newOutput(), newOutput()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, stdout, stderr) }()
	select {
	case <-stdout.listening:
	case err := <-done:
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no \"listening on\" line within 10s: startup waits for the collector?")
	}
	stopRun(t, stop, done)

	found := false
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q: %v", sc.Text(), err)
		}
		if rec["msg"] == "parse headers" {
			found = true
			if rec["level"] != "ERROR" || rec["component"] != "opentelemetry" || rec["input"] != "no-equals-sign" {
				t.Errorf("the SDK's record is %v; want level ERROR, component opentelemetry, the input", rec)
			}
		}
	}
	if !found {
		t.Errorf("no \"parse headers\" record from the OpenTelemetry SDK in the demo's log:\n%s", stderr.String())
	}
}

// TestOTelLoggerLevels: the SDK's warnings (logr V(1)) show at the demo's
// default level as warnings, its state (V(4)) only at -log-level debug,
// its debugging (V(8)) never.
func TestOTelLoggerLevels(t *testing.T) {
	for _, c := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelInfo, "error=ERROR warn=WARN"},
		{slog.LevelDebug, "error=ERROR warn=WARN info=DEBUG"},
		{slog.LevelWarn, "error=ERROR warn=WARN"},
		{slog.LevelError, "error=ERROR"},
	} {
		var buf bytes.Buffer
		l := otelLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: c.level})))
		l.Error(errors.New("boom"), "error")
		l.V(1).Info("warn")
		l.V(4).Info("info")
		l.V(8).Info("debug")
		var got []string
		for line := range strings.Lines(buf.String()) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			if rec["component"] != "opentelemetry" {
				t.Errorf("record %v lacks component=opentelemetry", rec)
			}
			got = append(got, fmt.Sprintf("%v=%v", rec["msg"], rec["level"]))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("at %v: %q, want %q", c.level, strings.Join(got, " "), c.want)
		}
	}
}

// TestOTelErrorsRateLimited: during a collector outage (an export failure
// a second), the log gets the first failure at once, then one record a
// minute saying how many it held back, not a line per batch.
func TestOTelErrorsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		h := &otelErrors{logger: slog.New(slog.NewJSONHandler(&buf, nil)), every: time.Minute}
		for range 150 { // two and a half minutes of failed exports
			h.Handle(errors.New("traces export: connection refused"))
			time.Sleep(time.Second)
		}
		var got []string
		for line := range strings.Lines(buf.String()) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			if rec["level"] != "WARN" || rec["component"] != "opentelemetry" || !strings.Contains(fmt.Sprint(rec["error"]), "connection refused") {
				t.Errorf("record %v: want a WARN from component opentelemetry with the error", rec)
			}
			got = append(got, fmt.Sprint(rec["suppressed"]))
		}
		if want := []string{"0", "59", "59"}; !slices.Equal(got, want) {
			t.Errorf("records held back %v errors each, want %v (the first at once, then one a minute)", got, want)
		}
	})
}

// stopRun stops a run started with done as its result and fails unless it
// returns nil within 15 s (its shutdown budgets add up to less).
func stopRun(t *testing.T, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of the stop")
	}
}
