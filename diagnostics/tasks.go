package diagnostics

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/taskscope/taskscope/runtime"
)

// DefaultEventsURL is where the task page looks for the event stream:
// relative to the page, so /debug/tasks reads /debug/events.
const DefaultEventsURL = "events"

// TasksOption configures [TasksHandler]. An option given more than once
// takes its last value.
type TasksOption interface{ applyTasks(*tasksHandler) }

type tasksOption func(*tasksHandler)

func (f tasksOption) applyTasks(h *tasksHandler) { f(h) }

// WithEventsURL sets the URL, absolute or relative to the page, where the
// page finds [EventsHandler] (default [DefaultEventsURL]). The page's
// Content-Security-Policy lets it connect to the page's own origin and to
// that of an absolute URL (one with a host). An empty or unparsable URL
// panics: the page would connect to itself, or to nothing.
func WithEventsURL(eventsURL string) TasksOption {
	if _, err := url.Parse(eventsURL); eventsURL == "" || err != nil {
		panic(fmt.Sprintf("taskscope/diagnostics: WithEventsURL(%q): not a URL", eventsURL))
	}
	return tasksOption(func(h *tasksHandler) { h.eventsURL = eventsURL })
}

type tasksHandler struct {
	sup       *runtime.Supervisor
	eventsURL string
	connect   string // the page's CSP connect-src sources
}

// TasksHandler serves sup's task tree: as JSON (a [SnapshotJSON]) for
// ?format=json or "Accept: application/json", otherwise (or for
// ?format=html) as a small self-contained HTML page (no external assets)
// showing the group tree, tasks, their states and ages, and for periodic
// tasks their runs and how the last one ended. Any other ?format= is a 400
// (as is a query that does not parse), a method other than GET or HEAD a
// 405. The response is marked Cache-Control: no-store:
// it is a picture of now.
//
// Every response is marked X-Content-Type-Options: nosniff. The page
// carries a strict Content-Security-Policy: nothing loads but its own
// inline script and style (allowed by a nonce fresh for each response)
// and its requests to the page's origin and the event stream's (see
// [WithEventsURL]); no base URL, no form, and framing by the page's own
// origin only. Names, messages and the ?group= shown are always text.
// The tree names every group and task of the process, and a periodic
// task's last-run error (capped at [DefaultMaxMessage] whatever the
// stream's [WithMaxMessage]: the handler reads the supervisor, not the
// stream): mount the handler with [EventsHandler], on an internal or
// authenticated listener. Each request walks and renders the whole tree
// (about 0.2 s of CPU and 8 MB of HTML for 20,000 tasks), so the listener
// should not take requests from just anyone either.
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
// data-task-id and data-state, and a periodic task's last-run cell has
// data-run, data-outcome and data-ended once a run has ended.
//
// No event says that a group is gone when the runtime collects one that
// nobody holds (a group per request, dropped after its Wait), so the page
// keeps the sections of open groups the stream emptied only while they are
// among the newest 64 (the tree's data-idle-limit), then forgets them: a
// page left open does not grow with the requests. A forgotten group that
// is still there reappears with its next task; a reload shows every group
// the process has.
//
// ?group= (repeatable) narrows the tree to the groups of that dotted name
// and their descendants, matched as [GroupPrefix] matches events:
// "app.ingest" (or "app.ingest.") is every group named app.ingest, and
// app.ingest.kafka, not app.ingester. The groups named on the way from the
// root to those names (app, for app.ingest) stay, so that each group shown
// has its parent there, as will one that comes later, but with no tasks of
// their own and counting only those shown below them: a name that matches
// no group gives that path as far as it exists (and is open: nothing comes
// below a closed group), not an error. An empty ?group=, one that is no
// dotted group name ("app..ingest"), or more than 64 distinct names, is a
// 400. The snapshot's Seq is unchanged (the whole tree's), and the page
// follows the event stream with the same ?group=, so it neither receives
// nor shows the tasks of other groups.
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
	h.connect = connectSources(h.eventsURL)
	return h
}

// pageCSP is the page's Content-Security-Policy, with nonce for its inline
// script and style. img-src is for the browser's favicon request.
func (h *tasksHandler) pageCSP(nonce string) string {
	return "default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce + "'; connect-src " + h.connect +
		"; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
}

// connectSources is the page's CSP connect-src for the event stream at
// eventsURL: 'self' (the snapshot, and a relative stream URL), and the
// origin of an absolute one, when it reads as a CSP source: only letters,
// digits and "+-.:/[]", which cannot end the directive or add another.
func connectSources(eventsURL string) string {
	u, err := url.Parse(eventsURL)
	if err != nil || u.Host == "" {
		return "'self'"
	}
	origin := u.Host
	if u.Scheme != "" {
		origin = u.Scheme + "://" + u.Host
	}
	for _, c := range origin {
		if !(c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+-.:/[]", c))) {
			return "'self'"
		}
	}
	return "'self' " + origin
}

func (h *tasksHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q, ok := readQuery(w, r)
	if !ok {
		return
	}
	asJSON, err := wantsFormat(r, q, "html", "json", "text/html", "application/json")
	if err != nil {
		badRequest(w, err)
		return
	}
	groups, err := groupsFrom(q)
	if err != nil {
		badRequest(w, err)
		return
	}
	tree := h.sup.Snapshot()
	matched := true
	if groups != nil {
		tree, _ = prune(tree, groups)
		matched = anyIn(tree, groups)
	}
	snap := NewSnapshotJSON(tree, time.Now()) // after the snapshot: no task is younger than 0
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	var buf bytes.Buffer
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(&buf).Encode(snap); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		nonce := rand.Text() // 128 random bits or more, in CSP nonce characters
		w.Header().Set("Content-Security-Policy", h.pageCSP(nonce))
		data := pageData{Snapshot: snap, EventsURL: h.eventsURL, Filter: strings.Join(groups, ", "), NoMatch: !matched, Nonce: nonce}
		if err := pageTemplate.Execute(&buf, data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	_, _ = w.Write(buf.Bytes())
}

// prune cuts g's tree down to what ?group= asks for: the groups in one of
// prefixes (as inGroup matches), whole, and the groups on the way to them,
// without their own tasks and counting only what is kept below them. It
// reports whether g is kept; if not, g comes back bare, as the root stays
// whatever it matches.
func prune(g runtime.GroupSnapshot, prefixes []string) (runtime.GroupSnapshot, bool) {
	onPath := false
	for _, p := range prefixes {
		if inGroup(g.Name, p) {
			return g, true
		}
		onPath = onPath || inGroup(p, g.Name)
	}
	kept := g
	kept.Tasks, kept.Groups = nil, nil
	kept.Running, kept.Canceling, kept.Abandoned = 0, 0, 0
	if !onPath { // nor is anything below it
		return kept, false
	}
	for _, c := range g.Groups {
		if c, ok := prune(c, prefixes); ok {
			kept.Groups = append(kept.Groups, c)
			kept.Running += c.Running
			kept.Canceling += c.Canceling
			kept.Abandoned += c.Abandoned
		}
	}
	// Nothing can come below a closed group any more. The page drops such a
	// group once nothing is shown below it; it would not hear of the group
	// detaching later, when the tasks of its own, not shown, have ended.
	return kept, !g.Closed || len(kept.Groups) > 0
}

// anyIn reports whether g's tree has a group in one of prefixes.
func anyIn(g runtime.GroupSnapshot, prefixes []string) bool {
	for _, p := range prefixes {
		if inGroup(g.Name, p) {
			return true
		}
	}
	for _, c := range g.Groups {
		if anyIn(c, prefixes) {
			return true
		}
	}
	return false
}

//go:embed page.html
var pageSource string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"age":      formatAge,
	"interval": formatInterval,
	"lastRun":  formatLastRun,
	"rfc3339":  func(t time.Time) string { return t.Format(time.RFC3339Nano) },
}).Parse(pageSource))

type pageData struct {
	Snapshot  SnapshotJSON
	EventsURL string
	Filter    string // the ?group= names, for the header; empty for the whole tree
	NoMatch   bool   // Filter names no group of the tree
	Nonce     string // the CSP nonce of the page's script and style
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

// formatLastRun says how a periodic task's last run ended, compactly, in
// the words of the log's messages: "run 12 failed 3.0s ago". The page's
// script (lastRunText) says it the same way.
func formatLastRun(r *RunResultJSON) string {
	return fmt.Sprintf("run %d %s %s ago", r.Run, runEnded[r.Outcome], formatAge(r.AgeSeconds))
}

var runEnded = map[string]string{"success": "finished", "error": "failed", "canceled": "canceled", "panic": "panicked", "aborted": "aborted"}

func formatInterval(seconds float64) string {
	if seconds <= 0 {
		return ""
	}
	// Rounded: the float is off by a little (4.35 s is 4.3499999999 s).
	return "every " + time.Duration(math.Round(seconds*float64(time.Second))).String()
}
