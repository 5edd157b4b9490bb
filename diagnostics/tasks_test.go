package diagnostics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// withTree runs f against a supervisor holding groups svc, svc.ingest and
// svc.ingest.kafka with running, canceling and periodic tasks, 90 s after
// they started.
func withTree(t *testing.T, f func(sup *runtime.Supervisor, ids map[string]uint64)) {
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("svc", runtime.WithObserver(diagnostics.NewStream()))
		ingest := sup.Group("ingest")
		kafka := ingest.Group("kafka")
		release := make(chan struct{})
		block := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		ids := map[string]uint64{
			"fetch":   ingest.Go("fetch", block).ID(),
			"consume": kafka.Go("consume", block).ID(),
			"scrape":  sup.Every("scrape", time.Minute, func(context.Context) error { return nil }).ID(),
		}
		stuck := kafka.Go("stuck", func(context.Context) error { <-release; return nil })
		ids["stuck"] = stuck.ID()
		stuck.Cancel(nil) // ignores it: canceling
		time.Sleep(90 * time.Second)
		synctest.Wait()

		f(sup, ids)

		close(release)
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

func get(h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestTasksUnknownFormat: a ?format= typo is a 400 naming the formats,
// not the HTML page in place of the JSON a script asked for.
func TestTasksUnknownFormat(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	rec := get(diagnostics.TasksHandler(sup), "/debug/tasks?format=jsn")
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "html or json") {
		t.Errorf("?format=jsn: %d %q, want 400 naming html and json", rec.Code, rec.Body.String())
	}
}

// TestTasksJSON: the JSON form is the supervisor's snapshot.
func TestTasksJSON(t *testing.T) {
	withTree(t, func(sup *runtime.Supervisor, ids map[string]uint64) {
		h := diagnostics.TasksHandler(sup)
		want, _ := json.Marshal(diagnostics.NewSnapshotJSON(sup.Snapshot(), time.Now()))
		for _, rec := range []*httptest.ResponseRecorder{
			get(h, "/debug/tasks?format=json"),
			get(h, "/debug/tasks", "Accept", "application/json"),
		} {
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != string(want) {
				t.Errorf("JSON differs from the snapshot:\n got %s\nwant %s", got, want)
			}
		}

		var snap diagnostics.SnapshotJSON
		if err := json.Unmarshal(get(h, "/debug/tasks?format=json").Body.Bytes(), &snap); err != nil {
			t.Fatal(err)
		}
		root := snap.Root
		if root.Name != "svc" || root.ID != sup.ID() || snap.Seq == 0 || root.Running != 3 || root.Canceling != 1 || len(root.Groups) != 1 {
			t.Fatalf("root %+v", root)
		}
		if ingest := root.Groups[0]; ingest.ID == 0 || ingest.ID == root.ID || ingest.ID != sup.Snapshot().Groups[0].ID {
			t.Errorf("ingest group ID %d (root %d, snapshot %d)", ingest.ID, root.ID, sup.Snapshot().Groups[0].ID)
		}
		scrape := root.Tasks[0]
		if scrape.ID != ids["scrape"] || scrape.IntervalSeconds != 60 || scrape.Runs != 2 || scrape.AgeSeconds != 90 || scrape.State != "running" {
			t.Errorf("periodic task %+v", scrape)
		}
		kafka := root.Groups[0].Groups[0]
		if kafka.Name != "svc.ingest.kafka" || len(kafka.Tasks) != 2 || kafka.Tasks[1].State != "canceling" || kafka.Tasks[1].ID != ids["stuck"] {
			t.Errorf("kafka group %+v", kafka)
		}
	})
}

// TestTasksPage: the HTML page renders the tree with stable attributes,
// embeds the same snapshot as the JSON form, and references nothing
// external.
func TestTasksPage(t *testing.T) {
	withTree(t, func(sup *runtime.Supervisor, ids map[string]uint64) {
		rec := get(diagnostics.TasksHandler(sup), "/debug/tasks", "Accept", "text/html")
		page := rec.Body.String()
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type %q", ct)
		}
		for _, want := range []string{
			fmt.Sprintf(`data-group="svc" data-group-id="%d"`, sup.ID()),
			fmt.Sprintf(`data-group="svc.ingest" data-group-id="%d"`, sup.Snapshot().Groups[0].ID),
			`data-group="svc.ingest.kafka"`,
			fmt.Sprintf(`data-task-id="%d" data-state="running"`, ids["fetch"]),
			fmt.Sprintf(`data-task-id="%d" data-state="running"`, ids["consume"]),
			fmt.Sprintf(`data-task-id="%d" data-state="canceling"`, ids["stuck"]),
			`<td class="name">scrape</td>`, `every 1m0s`, `<td class="age">1m30s</td>`,
			`const eventsURL = "events";`,
			`new EventSource(`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		for _, bad := range []string{"http://", "https://", "<link", " src="} {
			if strings.Contains(page, bad) {
				t.Errorf("page references an external asset: %s", bad)
			}
		}

		// The embedded snapshot is the JSON form.
		_, rest, _ := strings.Cut(page, `<script id="snapshot" type="application/json">`)
		embedded, _, _ := strings.Cut(rest, `</script>`)
		var fromPage, fromJSON diagnostics.SnapshotJSON
		if err := json.Unmarshal([]byte(embedded), &fromPage); err != nil {
			t.Fatalf("embedded snapshot: %v\n%s", err, embedded)
		}
		_ = json.Unmarshal(get(diagnostics.TasksHandler(sup), "/debug/tasks?format=json").Body.Bytes(), &fromJSON)
		a, _ := json.Marshal(fromPage)
		b, _ := json.Marshal(fromJSON)
		if string(a) != string(b) {
			t.Errorf("embedded snapshot differs from the JSON form:\n%s\n%s", a, b)
		}

		custom := get(diagnostics.TasksHandler(sup, diagnostics.WithEventsURL("/ops/events")), "/debug/tasks").Body.String()
		if !strings.Contains(custom, `const eventsURL = "/ops/events";`) {
			t.Error("WithEventsURL not used by the page")
		}
	})
}

func TestTasksMethod(t *testing.T) {
	sup := runtime.New("svc")
	rec := httptest.NewRecorder()
	diagnostics.TasksHandler(sup).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/debug/tasks", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

// TestTasksAgesAreNeverNegative: ages are relative to the snapshot's time,
// which must not come before the snapshot itself, even while tasks are
// being spawned as the page is served.
func TestTasksAgesAreNeverNegative(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	h := diagnostics.TasksHandler(sup)
	stop := make(chan struct{})
	spawner := sup.Go("spawner", func(context.Context) error {
		for {
			select {
			case <-stop:
				return nil
			default:
				sup.Go("t", func(context.Context) error { return nil })
			}
		}
	})
	defer func() { close(stop); <-spawner.Done() }()
	for range 100 {
		var snap diagnostics.SnapshotJSON
		if err := json.Unmarshal(get(h, "/debug/tasks?format=json").Body.Bytes(), &snap); err != nil {
			t.Fatal(err)
		}
		for _, task := range snap.Root.Tasks {
			if task.AgeSeconds < 0 {
				t.Fatalf("task %d: age %vs (started %v, snapshot time %v)", task.ID, task.AgeSeconds, task.Started, snap.Time)
			}
		}
	}
}

// TestTasksPageIntervals: periods are shown as written, although they
// travel as float seconds (1.001 s is 1.000999999... s as a float).
func TestTasksPageIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("svc")
		periods := []time.Duration{1001 * time.Millisecond, 61100 * time.Millisecond, 1500 * time.Microsecond, 2 * time.Hour}
		for _, d := range periods {
			sup.Every(d.String(), d, func(context.Context) error { return nil })
		}
		page := get(diagnostics.TasksHandler(sup), "/debug/tasks", "Accept", "text/html").Body.String()
		for _, d := range periods {
			if want := `<td class="interval">every ` + d.String() + `</td>`; !strings.Contains(page, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
