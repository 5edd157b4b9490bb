package diagnostics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
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

// embedsJSON checks that page embeds the snapshot h serves as JSON at
// jsonURL (taken after the page: the same tree, unless it changed).
func embedsJSON(t *testing.T, page string, h http.Handler, jsonURL string) {
	t.Helper()
	_, rest, _ := strings.Cut(page, `<script id="snapshot" type="application/json">`)
	embedded, _, _ := strings.Cut(rest, `</script>`)
	var fromPage, fromJSON diagnostics.SnapshotJSON
	if err := json.Unmarshal([]byte(embedded), &fromPage); err != nil {
		t.Fatalf("embedded snapshot: %v\n%s", err, embedded)
	}
	_ = json.Unmarshal(get(h, jsonURL).Body.Bytes(), &fromJSON)
	a, _ := json.Marshal(fromPage)
	b, _ := json.Marshal(fromJSON)
	if string(a) != string(b) {
		t.Errorf("embedded snapshot differs from the JSON form:\n%s\n%s", a, b)
	}
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

		embedsJSON(t, page, diagnostics.TasksHandler(sup), "/debug/tasks?format=json")

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

// TestSnapshotJSONAgesAreAsOfItsTime: a task's age is the time from its
// start to the snapshot's Time (the now given), in every group, not to
// whenever the JSON is built, so that ages and Time agree.
func TestSnapshotJSONAgesAreAsOfItsTime(t *testing.T) {
	started := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	now := started.Add(90 * time.Second)
	snap := runtime.GroupSnapshot{
		Name:  "svc",
		Tasks: []runtime.TaskInfo{{ID: 1, Name: "a", Group: "svc", Started: started, State: runtime.Running}},
		Groups: []runtime.GroupSnapshot{{
			Name:  "svc.child",
			Tasks: []runtime.TaskInfo{{ID: 2, Name: "b", Group: "svc.child", Started: started.Add(30 * time.Second), State: runtime.Running}},
		}},
	}
	j := diagnostics.NewSnapshotJSON(snap, now)
	if !j.Time.Equal(now) {
		t.Errorf("Time %v, want %v", j.Time, now)
	}
	if got := j.Root.Tasks[0].AgeSeconds; got != 90 {
		t.Errorf("root task age %vs, want 90s", got)
	}
	if got := j.Root.Groups[0].Tasks[0].AgeSeconds; got != 60 {
		t.Errorf("child group's task age %vs, want 60s", got)
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

// withGroups runs f against a supervisor "svc" with a task in the root and
// in each of these groups, and a canceling one in svc.ingest.kafka; the
// root's groups in this order:
//
//	svc.ingest (fetch) > svc.ingest.kafka (consume, stuck)
//	svc.web (serve) > svc.web.api (api)
//	svc.ingest (twin), a sibling of the first
//	svc.ingester (other)
//	svc.done (stubborn), shut down: closed, its task abandoned
func withGroups(t *testing.T, f func(sup *runtime.Supervisor)) {
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("svc", runtime.WithObserver(diagnostics.NewStream())) // events: a Seq
		release := make(chan struct{})
		block := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		ingest, web := sup.Group("ingest"), sup.Group("web")
		kafka := ingest.Group("kafka")
		sup.Go("root", block)
		ingest.Go("fetch", block)
		kafka.Go("consume", block)
		kafka.Go("stuck", func(context.Context) error { <-release; return nil }).Cancel(nil)
		sup.Group("ingest").Go("twin", block)
		sup.Group("ingester").Go("other", block)
		web.Go("serve", block)
		web.Group("api").Go("api", block)
		done := sup.Group("done")
		done.Go("stubborn", func(context.Context) error { <-release; return nil })
		synctest.Wait() // stubborn is running: the shutdown abandons it
		expired, cancel := context.WithCancel(t.Context())
		cancel()
		_ = done.Shutdown(expired) // aborts stubborn
		synctest.Wait()

		f(sup)

		close(release)
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// outline draws a tree as lines "name running/canceling/abandoned [tasks]",
// indented by depth.
func outline(g diagnostics.GroupJSON, indent string) []string {
	var tasks []string
	for _, task := range g.Tasks {
		tasks = append(tasks, task.Name)
	}
	out := []string{fmt.Sprintf("%s%s %d/%d/%d %v", indent, g.Name, g.Running, g.Canceling, g.Abandoned, tasks)}
	for _, c := range g.Groups {
		out = append(out, outline(c, indent+"  ")...)
	}
	return out
}

// placed is a group of a tree and its parent's id.
type placed struct {
	diagnostics.GroupJSON
	parent uint64
}

// byID indexes a tree's groups.
func byID(g diagnostics.GroupJSON, parent uint64, into map[uint64]placed) {
	into[g.ID] = placed{g, parent}
	for _, c := range g.Groups {
		byID(c, g.ID, into)
	}
}

// TestTasksGroupFilter: ?group= narrows the JSON to the groups of those
// names (every sibling of the name) and their descendants, whole, with the
// groups on the way to them from the root, without their own tasks and
// counting what is shown; the Seq is the whole tree's.
func TestTasksGroupFilter(t *testing.T) {
	withGroups(t, func(sup *runtime.Supervisor) {
		h := diagnostics.TasksHandler(sup)
		var whole diagnostics.SnapshotJSON
		if err := json.Unmarshal(get(h, "/debug/tasks?format=json").Body.Bytes(), &whole); err != nil || whole.Seq == 0 {
			t.Fatalf("whole tree: %v, Seq %d", err, whole.Seq)
		}
		wholeGroups := map[uint64]placed{}
		byID(whole.Root, 0, wholeGroups)
		ingest := []string{
			"  svc.ingest 2/1/0 [fetch]",
			"    svc.ingest.kafka 1/1/0 [consume stuck]",
			"  svc.ingest 1/0/0 [twin]",
		}
		for _, tc := range []struct {
			query string
			want  []string // outline
		}{
			{"group=svc.ingest", append([]string{"svc 3/1/0 []"}, ingest...)},
			{"group=svc.ingest.", append([]string{"svc 3/1/0 []"}, ingest...)}, // the same group
			// The path to kafka: both groups named svc.ingest.
			{"group=svc.ingest.kafka", []string{
				"svc 1/1/0 []",
				"  svc.ingest 1/1/0 []",
				"    svc.ingest.kafka 1/1/0 [consume stuck]",
				"  svc.ingest 0/0/0 []",
			}},
			{"group=svc.ingest.kafka&group=svc.web", []string{
				"svc 3/1/0 []",
				"  svc.ingest 1/1/0 []",
				"    svc.ingest.kafka 1/1/0 [consume stuck]",
				"  svc.web 2/0/0 [serve]",
				"    svc.web.api 1/0/0 [api]",
				"  svc.ingest 0/0/0 []",
			}},
			{"group=svc.ingester", []string{"svc 1/0/0 []", "  svc.ingester 1/0/0 [other]"}},
			{"group=svc.web.api&group=svc.ingester", []string{
				"svc 2/0/0 []",
				"  svc.web 1/0/0 []",
				"    svc.web.api 1/0/0 [api]",
				"  svc.ingester 1/0/0 [other]",
			}},
			{"group=svc", outline(whole.Root, "")},
			{"group=svc.done", []string{"svc 0/0/1 []", "  svc.done 0/0/1 [stubborn]"}},
			// Groups that may come later: the path as far as it exists,
			// but for a closed group, where none can come.
			{"group=svc.batch", []string{"svc 0/0/0 []"}},
			{"group=svc.done.later", []string{"svc 0/0/0 []"}},
			{"group=svc.ingest.kafka.partition", []string{
				"svc 0/0/0 []",
				"  svc.ingest 0/0/0 []",
				"    svc.ingest.kafka 0/0/0 []",
				"  svc.ingest 0/0/0 []",
			}},
			{"group=other", []string{"svc 0/0/0 []"}},
		} {
			rec := get(h, "/debug/tasks?format=json&"+tc.query)
			var snap diagnostics.SnapshotJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
				t.Errorf("?%s: %d %v\n%s", tc.query, rec.Code, err, rec.Body)
				continue
			}
			if got := outline(snap.Root, ""); !slices.Equal(got, tc.want) {
				t.Errorf("?%s:\n%s\nwant\n%s", tc.query, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if snap.Seq != whole.Seq {
				t.Errorf("?%s: Seq %d, the whole tree's is %d", tc.query, snap.Seq, whole.Seq)
			}
			// Each group is the one of the whole tree, under the same
			// parent, with the same flags; those asked for are whole.
			groups := map[uint64]placed{}
			byID(snap.Root, 0, groups)
			for id, got := range groups {
				want, ok := wholeGroups[id]
				if !ok || got.parent != want.parent || got.Name != want.Name || got.Closed != want.Closed || got.Canceled != want.Canceled {
					t.Errorf("?%s: group %s#%d under %d, not as in the whole tree", tc.query, got.Name, id, got.parent)
				}
				if len(got.Tasks) > 0 && !reflect.DeepEqual(got, want) {
					t.Errorf("?%s: group %s#%d has tasks, yet differs from the whole tree's", tc.query, got.Name, id)
				}
			}
		}
	})
}

// TestTasksBadGroup: a ?group= that names no group the runtime can make is
// a 400 saying so, in either format and for HEAD.
func TestTasksBadGroup(t *testing.T) {
	sup := runtime.New("svc")
	defer sup.Shutdown(context.Background())
	h := diagnostics.TasksHandler(sup)
	for _, target := range []string{
		"/debug/tasks?group=",
		"/debug/tasks?format=json&group=",
		"/debug/tasks?group=svc..ingest",
		"/debug/tasks?group=.svc",
		"/debug/tasks?group=.",
		"/debug/tasks?group=svc.ingest..",
		"/debug/tasks?format=json&group=svc&group=",
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
			if rec.Code != http.StatusBadRequest {
				t.Errorf("%s %s: %d, want 400", method, target, rec.Code)
			} else if msg := rec.Body.String(); method == http.MethodGet && !strings.HasPrefix(msg, "taskscope/diagnostics: bad group ") {
				t.Errorf("%s %s: 400 %q, want one that says which group is bad", method, target, msg)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/debug/tasks?group=svc.ingest", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("HEAD ?group=svc.ingest: %d, Cache-Control %q", rec.Code, rec.Header().Get("Cache-Control"))
	}
}

// TestTasksPageGroupFilter: the page of ?group= shows that subtree, says
// so in its header (escaped: group names are the application's), and
// embeds the same narrowed snapshot as the JSON form.
func TestTasksPageGroupFilter(t *testing.T) {
	withGroups(t, func(sup *runtime.Supervisor) {
		h := diagnostics.TasksHandler(sup)
		page := get(h, "/debug/tasks?group=svc.ingest.kafka&group=svc.web.api").Body.String()
		for _, want := range []string{
			`<title>taskscope · svc · svc.ingest.kafka, svc.web.api</title>`,
			`<span id="filter">group filter: svc.ingest.kafka, svc.web.api · <a href="?">all groups</a></span>`,
			`data-group="svc.ingest.kafka"`, `<td class="name">consume</td>`, `<td class="name">api</td>`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		for _, other := range []string{"fetch", "twin", "other", "serve", "root"} {
			if strings.Contains(page, `<td class="name">`+other+`</td>`) {
				t.Errorf("page shows task %s, of a group not asked for", other)
			}
		}
		embedsJSON(t, page, h, "/debug/tasks?format=json&group=svc.ingest.kafka&group=svc.web.api")

		if page := get(h, "/debug/tasks?group=svc.<b>").Body.String(); strings.Contains(page, "svc.<b>") || !strings.Contains(page, "svc.&lt;b&gt;") {
			t.Error("the group filter is not escaped in the page")
		}
		if page := get(h, "/debug/tasks").Body.String(); strings.Contains(page, `id="filter"`) || strings.Contains(page, `id="nomatch"`) {
			t.Error("the page of the whole tree has a group filter or its notice in its header")
		}
		// A name no group has (it ended, or belongs to another supervisor)
		// says so, rather than showing the bare root; a name some group
		// has, or a group above one, does not.
		for query, noMatch := range map[string]bool{"group=svc.gone": true, "group=svc.ingest.": false, "group=svc.web.api&group=svc.gone": false} {
			page := get(h, "/debug/tasks?"+query).Body.String()
			if got := strings.Contains(page, `<p id="nomatch">`); got != noMatch {
				t.Errorf("?%s: no-match notice shown %v, want %v", query, got, noMatch)
			}
		}
	})
}

// TestTasksRunInProgress: a periodic task in a run shows when the run
// started and its age (a run much older than the period is stuck), in the
// JSON and on the page; between runs, neither.
func TestTasksRunInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("svc")
		release := make(chan struct{})
		start := time.Now()
		sweep := sup.Every("sweep", time.Minute, func(context.Context) error { <-release; return nil })
		scrape := sup.Every("scrape", time.Minute, func(context.Context) error { return nil })
		time.Sleep(30 * time.Second)
		synctest.Wait()
		h := diagnostics.TasksHandler(sup)

		var snap diagnostics.SnapshotJSON
		if err := json.Unmarshal(get(h, "/debug/tasks?format=json").Body.Bytes(), &snap); err != nil {
			t.Fatal(err)
		}
		for _, task := range snap.Root.Tasks {
			switch task.ID {
			case sweep.ID():
				if task.RunStarted == nil || !task.RunStarted.Equal(start) || task.RunAgeSeconds != 30 {
					t.Errorf("sweep, in its first run for 30 s: run_started %v, run_age_seconds %v", task.RunStarted, task.RunAgeSeconds)
				}
			case scrape.ID():
				if task.RunStarted != nil || task.RunAgeSeconds != 0 {
					t.Errorf("scrape, between runs: run_started %v, run_age_seconds %v", task.RunStarted, task.RunAgeSeconds)
				}
			}
		}
		page := get(h, "/debug/tasks").Body.String()
		if want := `<td class="runs">1 · run 30.0s</td>`; !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
		close(release)
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTasksLastRun: a periodic task's last run to have ended shows in the
// JSON (last_run: run, outcome, error capped as an event's is, when it
// ended, how long it took and how long ago) and in the task's row on the
// page ("run 1 failed 28.0s ago", the error as text, whole in the title);
// before its first run ends, neither.
func TestTasksLastRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup := runtime.New("svc")
		start := time.Now()
		failure := errors.New("<b>refused</b> " + strings.Repeat("x", diagnostics.DefaultMaxMessage))
		failing := sup.Every("failing", time.Minute, func(context.Context) error { time.Sleep(2 * time.Second); return failure })
		ok := sup.Every("ok", time.Minute, func(context.Context) error { time.Sleep(time.Second); return nil })
		release := make(chan struct{})
		first := sup.Every("first", time.Minute, func(context.Context) error { <-release; return nil })
		time.Sleep(30 * time.Second)
		synctest.Wait()
		h := diagnostics.TasksHandler(sup)

		body := get(h, "/debug/tasks?format=json").Body.Bytes()
		var snap diagnostics.SnapshotJSON
		if err := json.Unmarshal(body, &snap); err != nil {
			t.Fatal(err)
		}
		var capped string // the failure's message, as an event carries it
		for _, task := range snap.Root.Tasks {
			got := task.LastRun
			switch task.ID {
			case failing.ID():
				if got == nil || got.Run != 1 || got.Outcome != "error" || !got.Ended.Equal(start.Add(2*time.Second)) || got.DurationSeconds != 2 || got.AgeSeconds != 28 {
					t.Fatalf("failing, run 1 failed at 2s: last_run %+v", got)
				}
				ev := diagnostics.NewEventJSON(runtime.Event{Kind: runtime.KindTaskRunFinished, Outcome: runtime.Error, Err: failure})
				if got.Error != ev.Error || !strings.HasSuffix(got.Error, " …[truncated 15 bytes]") {
					t.Errorf("failing: error of %d bytes (%.40q…), want it capped as an event's (%d bytes)", len(got.Error), got.Error, len(ev.Error))
				}
				capped = got.Error
			case ok.ID():
				if got == nil || got.Run != 1 || got.Outcome != "success" || got.Error != "" || got.DurationSeconds != 1 || got.AgeSeconds != 29 {
					t.Errorf("ok, run 1 succeeded at 1s: last_run %+v", got)
				}
			case first.ID():
				if got != nil {
					t.Errorf("first, in its first run: last_run %+v, want none", got)
				}
			}
		}
		if n := strings.Count(string(body), `"last_run"`); n != 2 {
			t.Errorf(`%d tasks with "last_run" in the JSON, want 2: absent before the first run ends`, n)
		}

		page := get(h, "/debug/tasks").Body.String()
		escaped := template.HTMLEscapeString(capped)
		for _, want := range []string{
			`<td class="last-run" data-run="1" data-outcome="error" data-ended="` + start.Add(2*time.Second).Format(time.RFC3339Nano) + `" title="` + escaped + `">` +
				`<span class="summary">run 1 failed 28.0s ago</span><span class="error">` + escaped + `</span></td>`,
			`<span class="summary">run 1 finished 29.0s ago</span></td>`,
			`<td class="last-run"></td>`, // first's
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %.200s…", want)
			}
		}
		if strings.Contains(page, "<b>refused") {
			t.Error("the run's error is not escaped on the page")
		}
		embedsJSON(t, page, h, "/debug/tasks?format=json")
		close(release)
		if err := sup.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
