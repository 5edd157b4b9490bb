package diagnostics

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

// DefaultEventsURL is where the task page looks for the event stream:
// relative to the page, so /debug/tasks reads /debug/events.
const DefaultEventsURL = "events"

// TasksOption configures [TasksHandler].
type TasksOption interface{ applyTasks(*tasksHandler) }

type tasksOption func(*tasksHandler)

func (f tasksOption) applyTasks(h *tasksHandler) { f(h) }

// WithEventsURL sets the URL, absolute or relative to the page, where the
// page finds [EventsHandler] (default [DefaultEventsURL]).
func WithEventsURL(url string) TasksOption {
	return tasksOption(func(h *tasksHandler) { h.eventsURL = url })
}

type tasksHandler struct {
	sup       *runtime.Supervisor
	eventsURL string
}

// TasksHandler serves sup's task tree: as JSON (a [SnapshotJSON]) for
// ?format=json or "Accept: application/json", otherwise (or for
// ?format=html) as a small self-contained HTML page (no external assets)
// showing the group tree, tasks, their states and ages. Any other
// ?format= is a 400, a method other than GET or HEAD a 405. The response
// is marked Cache-Control: no-store: it is a picture of now.
//
// The page updates live: it starts from the snapshot embedded in it, then
// follows the event stream served by [EventsHandler] from the snapshot's
// Seq, and re-fetches the snapshot (this handler with ?format=json) when the
// stream reports a gap or the connection drops. That Seq does not say which
// process took the snapshot (see [SnapshotJSON]): behind a load balancer,
// a page's requests must reach one replica. The two handlers are meant
// to be mounted side by side, e.g. /debug/tasks and /debug/events; see
// [WithEventsURL] otherwise. For tests and scripts, the DOM is stable: each
// group is a section with data-group="<dotted name>", each task a row with
// data-task-id and data-state.
//
// A nil sup or a nil option panics.
func TasksHandler(sup *runtime.Supervisor, opts ...TasksOption) http.Handler {
	if sup == nil {
		panic("taskscope/diagnostics: TasksHandler(nil Supervisor)")
	}
	h := &tasksHandler{sup: sup, eventsURL: DefaultEventsURL}
	for _, o := range opts {
		mustOption(o, "TasksOption")
		o.applyTasks(h)
	}
	return h
}

func (h *tasksHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	asJSON, err := wantsFormat(r, "html", "json", "text/html", "application/json")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tree := h.sup.Snapshot()
	snap := NewSnapshotJSON(tree, time.Now()) // after the snapshot: no task is younger than 0
	w.Header().Set("Cache-Control", "no-store")
	var buf bytes.Buffer
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(&buf).Encode(snap); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := pageTemplate.Execute(&buf, pageData{Snapshot: snap, EventsURL: h.eventsURL}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	_, _ = w.Write(buf.Bytes())
}

//go:embed page.html
var pageSource string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"age":      formatAge,
	"interval": formatInterval,
	"rfc3339":  func(t time.Time) string { return t.Format(time.RFC3339Nano) },
}).Parse(pageSource))

type pageData struct {
	Snapshot  SnapshotJSON
	EventsURL string
}

// formatAge renders an age compactly, truncated: 850ms, 12.3s, 4m05s,
// 3h07m, 2d05h. The page's script (fmtAge) formats the same way, so an
// age does not change when the script takes over.
func formatAge(seconds float64) string {
	// Rounded back to the whole nanoseconds it came from: truncated, 4.1 s
	// would be 4.099999999 s, shown as 4.0s.
	d := time.Duration(math.Round(seconds * float64(time.Second)))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		tenths := d / (time.Second / 10)
		return fmt.Sprintf("%d.%ds", tenths/10, tenths%10)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func formatInterval(seconds float64) string {
	if seconds <= 0 {
		return ""
	}
	// Rounded: the float is off by a little (4.35 s is 4.3499999999 s).
	return "every " + time.Duration(math.Round(seconds*float64(time.Second))).String()
}
