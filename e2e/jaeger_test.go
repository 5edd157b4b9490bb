package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Jaeger's query API (/api/traces, the JSON the Jaeger UI reads). An OTel
// span appears as: attributes in tags (an int64 attribute with type
// "int64", a string slice as a JSON array in a "string" tag), span events
// in logs (the event name in the field "event"), the parent in references
// (refType CHILD_OF), and the status as tags: otel.status_code=ERROR plus
// error=true for Error, no otel.status_code at all for Unset.
type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string     `json:"serviceName"`
		Tags        []jaegerKV `json:"tags"` // the OTel resource's attributes
	} `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64      `json:"startTime"` // µs since the epoch
	Duration  int64      `json:"duration"`  // µs
	Tags      []jaegerKV `json:"tags"`
	Logs      []struct {
		Timestamp int64      `json:"timestamp"`
		Fields    []jaegerKV `json:"fields"`
	} `json:"logs"`
}

type jaegerKV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

func findKV(kvs []jaegerKV, key string) (jaegerKV, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv, true
		}
	}
	return jaegerKV{}, false
}

func (sp jaegerSpan) tag(key string) (jaegerKV, bool) { return findKV(sp.Tags, key) }

// str returns a string tag's value, "" if missing or not a string.
func (sp jaegerSpan) str(key string) string {
	kv, ok := sp.tag(key)
	if !ok || kv.Type != "string" {
		return ""
	}
	s, _ := kv.Value.(string)
	return s
}

// int64Tag returns an int64 tag's value; ok is false when it is missing or
// of another type.
func (sp jaegerSpan) int64Tag(key string) (int64, bool) {
	kv, ok := sp.tag(key)
	if !ok || kv.Type != "int64" {
		return 0, false
	}
	f, ok := kv.Value.(float64) // encoding/json's number
	return int64(f), ok && f == float64(int64(f))
}

func (sp jaegerSpan) String() string {
	return fmt.Sprintf("%s (trace %s span %s)", sp.OperationName, sp.TraceID, sp.SpanID)
}

// jaegerSearch queries /api/traces for the demo's service with extra
// parameters (operation, tags as JSON, limit) and keeps the response as an
// artifact.
func (s *stack) jaegerSearch(ctx context.Context, t *testing.T, artifact string, kv ...string) ([]jaegerTrace, error) {
	var r struct {
		Data   []jaegerTrace `json:"data"`
		Errors []any         `json:"errors"`
	}
	body, err := getJSON(ctx, withQuery(s.jaegerURL+"/api/traces", append([]string{"service", serviceName}, kv...)...), &r)
	if err != nil {
		return nil, err
	}
	if len(r.Errors) > 0 {
		return nil, fmt.Errorf("jaeger: %v", r.Errors)
	}
	if artifact != "" {
		s.art.write(t, "jaeger-"+artifact+".json", body)
	}
	return r.Data, nil
}

// spansWhere returns the spans of traces for which keep is true.
func spansWhere(traces []jaegerTrace, keep func(jaegerSpan) bool) []jaegerSpan {
	var out []jaegerSpan
	for _, tr := range traces {
		for _, sp := range tr.Spans {
			if keep(sp) {
				out = append(out, sp)
			}
		}
	}
	return out
}

func tagsJSON(kv map[string]string) string {
	b, _ := json.Marshal(kv)
	return string(b)
}

var outcomes = []string{"success", "error", "canceled", "panic", "aborted"}

// checkResource checks the demo's resource as Jaeger shows it (its
// process): the service name, and the version stamped into the build.
func (s *stack) checkResource(t *testing.T, traces []jaegerTrace) {
	if len(traces) == 0 || len(traces[0].Processes) == 0 {
		t.Fatalf("no process in the traces %v", traces)
	}
	for id, p := range traces[0].Processes {
		if p.ServiceName != serviceName {
			t.Errorf("process %s: service %q, want %q", id, p.ServiceName, serviceName)
		}
		kv, _ := findKV(p.Tags, "service.version")
		switch {
		case s.demoVersion == "":
			t.Logf("process %s: service.version %v (a demo built outside the test: not checked)", id, kv.Value)
		case kv.Value != s.demoVersion:
			t.Errorf("process %s: service.version %v, want %q, the version stamped into the build; tags %v", id, kv.Value, s.demoVersion, p.Tags)
		}
	}
}

// checkJaeger runs after the demo has exited: all its spans are flushed.
func (s *stack) checkJaeger(t *testing.T) {
	ctx := t.Context()
	watch := []*proc{s.jaeger, s.collector}

	must(t, poll(ctx, "service "+serviceName+" in Jaeger", 30*time.Second, 250*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
		var r struct {
			Data []string `json:"data"`
		}
		_, err := getJSON(ctx, s.jaegerURL+"/api/services", &r)
		return slices.Contains(r.Data, serviceName), err
	}))

	// The shutdown span is the last the demo makes; once it is in, the
	// flush has arrived.
	var (
		shutdown       []jaegerSpan
		shutdownTraces []jaegerTrace
	)
	must(t, poll(ctx, "the `shutdown demo` span in Jaeger", 30*time.Second, 250*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
		traces, err := s.jaegerSearch(ctx, t, "shutdown", "operation", "shutdown demo", "limit", "5")
		shutdown = spansWhere(traces, func(sp jaegerSpan) bool { return sp.OperationName == "shutdown demo" })
		shutdownTraces = traces
		return len(shutdown) > 0, err
	}))

	t.Run("resource", func(t *testing.T) { s.checkResource(t, shutdownTraces) })

	// Task spans of every outcome.
	aborted := map[string]jaegerSpan{} // "group/name#id" → span
	for _, outcome := range outcomes {
		t.Run("outcome="+outcome, func(t *testing.T) {
			var spans []jaegerSpan
			must(t, poll(ctx, "task spans with outcome "+outcome, 20*time.Second, 250*time.Millisecond, watch, func(ctx context.Context) (bool, error) {
				traces, err := s.jaegerSearch(ctx, t, "outcome-"+outcome,
					"tags", tagsJSON(map[string]string{"taskscope.task.outcome": outcome}), "limit", "50")
				spans = spansWhere(traces, func(sp jaegerSpan) bool {
					return strings.HasPrefix(sp.OperationName, "task ") && sp.str("taskscope.task.outcome") == outcome
				})
				return len(spans) > 0, err
			}))
			for _, sp := range spans {
				checkTaskSpan(t, sp, outcome)
				if outcome == "aborted" {
					id, _ := sp.int64Tag("taskscope.task.id")
					aborted[fmt.Sprintf("%s/%s#%d", sp.str("taskscope.group"), sp.str("taskscope.task.name"), id)] = sp
				}
			}
			t.Logf("%d task spans with outcome %s, e.g. %s in %s", len(spans), outcome, spans[0].OperationName, spans[0].str("taskscope.group"))
		})
	}

	t.Run("shutdown-span", func(t *testing.T) {
		names := checkShutdownSpan(t, shutdown, aborted)
		s.mu.Lock()
		s.abortedTasks = names
		s.mu.Unlock()
	})
	t.Run("shutdown-log-trace", func(t *testing.T) { s.checkShutdownLogTrace(t) })
	t.Run("child-span", func(t *testing.T) { s.checkChildSpan(t) })
	t.Run("periodic", func(t *testing.T) { s.checkRunSpans(t) })
	t.Run("exemplar-traces", func(t *testing.T) { s.checkExemplarTraces(t) })
}

// checkTaskSpan checks a task span against the telemetry contract:
// attributes, status and, for panics, the exception event.
func checkTaskSpan(t *testing.T, sp jaegerSpan, outcome string) {
	t.Helper()
	name := sp.str("taskscope.task.name")
	if name == "" || sp.OperationName != "task "+name {
		t.Errorf("%s: taskscope.task.name %q does not match the span name", sp, name)
	}
	// The demo's two supervisors: the workload's, and the HTTP server's.
	if g := sp.str("taskscope.group"); g != "demo" && g != "demo-http" && !strings.HasPrefix(g, "demo.") {
		t.Errorf("%s: taskscope.group = %q, want one of the demo's supervisors or a group below its workload's", sp, g)
	}
	if id, ok := sp.int64Tag("taskscope.task.id"); !ok || id <= 0 {
		kv, _ := sp.tag("taskscope.task.id")
		t.Errorf("%s: taskscope.task.id = %+v, want a positive int64", sp, kv)
	}
	if sp.str("code.function.name") == "" {
		t.Errorf("%s: no code.function.name", sp)
	}
	status := sp.str("otel.status_code")
	errTag, hasErrTag := sp.tag("error")
	errType := sp.str("error.type")
	switch outcome {
	case "error", "panic", "aborted":
		if status != "ERROR" || !hasErrTag || errTag.Value != true {
			t.Errorf("%s: outcome %s, want status Error (otel.status_code=ERROR, error=true); tags %v", sp, outcome, sp.Tags)
		}
		if errType == "" {
			t.Errorf("%s: outcome %s without error.type", sp, outcome)
		}
		if (outcome == "panic" || outcome == "aborted") && errType != outcome {
			t.Errorf("%s: error.type = %q, want %q", sp, errType, outcome)
		}
	default: // success, canceled: status Unset, never Ok
		if _, ok := sp.tag("otel.status_code"); ok || hasErrTag {
			t.Errorf("%s: outcome %s, want status Unset (no otel.status_code, no error tag); tags %v", sp, outcome, sp.Tags)
		}
		if errType != "" { // set on failed outcomes only
			t.Errorf("%s: %s with error.type %q", sp, outcome, errType)
		}
	}
	switch outcome {
	case "canceled":
		if sp.str("taskscope.cancel.cause") == "" {
			t.Errorf("%s: canceled without taskscope.cancel.cause", sp)
		}
	case "panic":
		checkExceptionEvent(t, sp)
	case "aborted":
		checkAbortEvent(t, sp)
	}
}

// checkAbortEvent: an aborted task's span records where its goroutine was
// stuck, in a taskscope.task.aborted event.
func checkAbortEvent(t *testing.T, sp jaegerSpan) {
	t.Helper()
	for _, l := range sp.Logs {
		if ev, _ := findKV(l.Fields, "event"); ev.Value == "taskscope.task.aborted" {
			st, _ := findKV(l.Fields, "taskscope.task.stack")
			if stack, _ := st.Value.(string); !strings.Contains(stack, ".go:") {
				t.Errorf("%s: taskscope.task.aborted event without a stack: %.300q", sp, stack)
			}
			return
		}
	}
	t.Errorf("%s: aborted span without a taskscope.task.aborted event; logs %+v", sp, sp.Logs)
}

// checkExceptionEvent: a panic span has an `exception` event whose
// stacktrace is a Go stack.
func checkExceptionEvent(t *testing.T, sp jaegerSpan) {
	t.Helper()
	for _, l := range sp.Logs {
		ev, _ := findKV(l.Fields, "event")
		if ev.Value != "exception" {
			continue
		}
		st, _ := findKV(l.Fields, "exception.stacktrace")
		stack, _ := st.Value.(string)
		if !strings.Contains(stack, "goroutine ") || !strings.Contains(stack, ".go:") {
			t.Errorf("%s: exception.stacktrace is not a Go stack: %.300q", sp, stack)
		}
		if _, ok := findKV(l.Fields, "exception.message"); !ok {
			t.Errorf("%s: exception event without exception.message", sp)
		}
		return
	}
	t.Errorf("%s: panic span without an exception event; logs %+v", sp, sp.Logs)
}

// checkShutdownSpan: the root's shutdown span counts and names the tasks
// it aborted, and each name is an aborted task span in Jaeger. It returns
// the names.
func checkShutdownSpan(t *testing.T, shutdown []jaegerSpan, aborted map[string]jaegerSpan) []string {
	if len(shutdown) != 1 {
		t.Errorf("%d `shutdown demo` spans, want 1 (one demo run)", len(shutdown))
	}
	sp := shutdown[0]
	n, ok := sp.int64Tag("taskscope.shutdown.aborted")
	if !ok || n < 1 {
		t.Errorf("%s: taskscope.shutdown.aborted = %d (ok %v), want >= 1", sp, n, ok)
	}
	if sp.str("otel.status_code") != "ERROR" {
		t.Errorf("%s: a shutdown that aborted tasks should have status Error; tags %v", sp, sp.Tags)
	}
	raw := sp.str("taskscope.shutdown.aborted_tasks")
	var names []string
	if err := json.Unmarshal([]byte(raw), &names); err != nil {
		t.Fatalf("%s: taskscope.shutdown.aborted_tasks = %q: not a string list: %v", sp, raw, err)
	}
	if int64(len(names)) != n && len(names) < 64 {
		t.Errorf("%s: aborted = %d, but aborted_tasks lists %d: %v", sp, n, len(names), names)
	}
	listed := 0
	for _, name := range names {
		if _, ok := aborted[name]; ok {
			listed++
		} else {
			t.Errorf("%s lists %q, which is not an aborted task span in Jaeger (have %v)", sp, name, keys(aborted))
		}
	}
	if listed == 0 {
		t.Errorf("%s: aborted_tasks %v names none of the aborted task spans %v", sp, names, keys(aborted))
	}
	t.Logf("shutdown span: aborted %d: %v", n, names)
	return names
}

// checkChildSpan: a span the demo makes inside a pipeline task's fn is a
// child of the task span, within its time.
func (s *stack) checkChildSpan(t *testing.T) {
	traces, err := s.jaegerSearch(t.Context(), t, "pipeline",
		"tags", tagsJSON(map[string]string{"taskscope.group": "demo.pipeline"}), "limit", "50")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range traces {
		byID := map[string]jaegerSpan{}
		for _, sp := range tr.Spans {
			byID[sp.SpanID] = sp
		}
		for _, sp := range tr.Spans {
			if isTaskscopeSpan(sp.OperationName) {
				continue
			}
			for _, ref := range sp.References {
				parent, ok := byID[ref.SpanID]
				if ref.RefType != "CHILD_OF" || ref.TraceID != sp.TraceID || !ok || !strings.HasPrefix(parent.OperationName, "task ") {
					continue
				}
				if sp.StartTime < parent.StartTime || sp.StartTime+sp.Duration > parent.StartTime+parent.Duration {
					t.Errorf("%s is a child of %s but not within its time", sp, parent)
				}
				t.Logf("%s is a CHILD_OF %s", sp, parent)
				return
			}
		}
	}
	t.Errorf("no span made inside a demo.pipeline task is a CHILD_OF its task span (searched %d traces)", len(traces))
}

func isTaskscopeSpan(op string) bool {
	for _, p := range []string{"task ", "run ", "shutdown "} {
		if strings.HasPrefix(op, p) {
			return true
		}
	}
	return false
}

// checkRunSpans: periodic tasks have `run <name>` spans (numbered runs)
// instead of a task span.
func (s *stack) checkRunSpans(t *testing.T) {
	ctx := t.Context()
	var ops struct {
		Data []string `json:"data"`
	}
	body, err := getJSON(ctx, s.jaegerURL+"/api/services/"+serviceName+"/operations", &ops)
	if err != nil {
		t.Fatal(err)
	}
	s.art.write(t, "jaeger-operations.json", body)
	var runs []string
	for _, op := range ops.Data {
		if name, ok := strings.CutPrefix(op, "run "); ok {
			runs = append(runs, op)
			if slices.Contains(ops.Data, "task "+name) {
				t.Errorf("periodic task %q has a `task %s` span as well as run spans", name, name)
			}
		}
	}
	if len(runs) == 0 {
		t.Fatalf("no `run <name>` spans of periodic tasks; operations: %v", ops.Data)
	}
	traces, err := s.jaegerSearch(ctx, t, "runs", "operation", runs[0], "limit", "10")
	if err != nil {
		t.Fatal(err)
	}
	spans := spansWhere(traces, func(sp jaegerSpan) bool { return sp.OperationName == runs[0] })
	if len(spans) == 0 {
		t.Fatalf("no %q span found", runs[0])
	}
	for _, sp := range spans {
		if n, ok := sp.int64Tag("taskscope.task.run"); !ok || n < 1 {
			t.Errorf("%s: taskscope.task.run missing or < 1", sp)
		}
		if "run "+sp.str("taskscope.task.name") != sp.OperationName {
			t.Errorf("%s: taskscope.task.name %q does not match", sp, sp.str("taskscope.task.name"))
		}
		if sp.str("taskscope.task.outcome") == "" {
			t.Errorf("%s: no taskscope.task.outcome", sp)
		}
	}
	t.Logf("periodic run spans: %v", runs)
}

// checkExemplarTraces: the trace IDs Prometheus holds as exemplars of the
// duration histogram are traces in Jaeger (what Grafana's exemplar link
// opens).
func (s *stack) checkExemplarTraces(t *testing.T) {
	s.mu.Lock()
	ids := slices.Clone(s.exemplars)
	s.mu.Unlock()
	if len(ids) == 0 {
		t.Skip("no exemplars (the Prometheus check failed or did not run)")
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > 20 {
		ids = ids[:20]
	}
	var missing []string
	for _, id := range ids {
		var r struct {
			Data []jaegerTrace `json:"data"`
		}
		if _, err := getJSON(t.Context(), s.jaegerURL+"/api/traces/"+id, &r); err != nil || len(r.Data) == 0 || len(r.Data[0].Spans) == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d exemplar trace IDs are not in Jaeger: %v", len(missing), len(ids), missing)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
