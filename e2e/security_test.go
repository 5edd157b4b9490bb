package e2e

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// hostileNames are task and group names an attacker may influence (a
// group per request named from its path, a task from a header): markup,
// script and attribute breakers, a CSS selector breaker (the page looks
// sections up by name), line terminators, NUL and invalid UTF-8. A page
// that runs any of them sets the global __xss. Group names have no dot.
var hostileNames = []string{
	`<img src=x onerror=__xss=1>`,
	`"><svg onload=__xss=1>`,
	`</script><script>__xss=1</script>`,
	`'-(__xss=1)-'`,
	`javascript:__xss=1`,
	"line\nbreak\rcr\u2028ls\u2029ps",
	"nul\x00byte\xffbad",
	`{{.}}<!--`,
	`a"],section[data-group="x`,
	`\"\\`,
}

// cspRecorder runs before the page's own scripts: it records every
// Content-Security-Policy violation the page reports.
const cspRecorder = `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`

// TestTaskPageHostileNamesStayText opens the task page in Chromium on a
// tree whose group and task names are hostile, in the snapshot the page is
// served with and in the events it follows live (new groups, and groups
// first heard of as a parent), and with a hostile ?group=. It checks that
// no name runs (no __xss, no element of theirs, only the page's two
// scripts), that every name shows as itself, and that the page runs under
// its Content-Security-Policy without a single violation.
func TestTaskPageHostileNamesStayText(t *testing.T) {
	stream := diagnostics.NewStream()
	sup := runtime.New("app", runtime.WithObserver(stream))
	release := make(chan struct{})
	defer close(release)
	stuck := func(context.Context) error { <-release; return nil }
	groupName := func(n string) string { return strings.ReplaceAll(n, ".", "·") }
	var tasks, groups []string
	spawn := func(g *runtime.Group, name string) {
		g.Go(name, stuck)
		tasks = append(tasks, strings.ToValidUTF8(name, "\uFFFD"))
		groups = append(groups, strings.ToValidUTF8(g.Name(), "\uFFFD"))
	}
	// In the snapshot the page is served with.
	for _, n := range hostileNames {
		spawn(sup.Group(groupName(n)), n)
	}

	srv, bctx := pageServer(t, sup, stream, nil)
	_, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder})
	must(t, err)
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	open := func(query string) {
		t.Helper()
		u := srv.URL + "/debug/tasks"
		if query != "" {
			u += "?" + query
		}
		must(t, chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(`#status[data-status="live"]`))))
	}
	check := func(what string, wantTasks, wantGroups []string) {
		t.Helper()
		must(t, poll(ctx, what+": every task shown", 20*time.Second, 50*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
			n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#tree tr[data-task-id]").length`))
			return n == len(wantTasks), err
		}))
		type shown struct {
			XSS     bool     `json:"xss"`
			Foreign int      `json:"foreign"`
			Scripts int      `json:"scripts"`
			CSP     []string `json:"csp"`
			Tasks   []string `json:"tasks"`
			Groups  []string `json:"groups"`
			Filter  string   `json:"filter"`
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[shown](`({
  xss: typeof __xss !== "undefined",
  foreign: document.querySelectorAll("img, svg, iframe, object, embed, math, form, base").length,
  scripts: document.scripts.length,
  csp: window.__csp,
  tasks: Array.from(document.querySelectorAll("#tree tr[data-task-id]"))
    .sort((a, b) => a.dataset.taskId - b.dataset.taskId).map((r) => r.querySelector(".name").textContent),
  groups: Array.from(document.querySelectorAll("#tree section.group")).map((g) => g.dataset.group),
  filter: (document.getElementById("filter") || {}).textContent || "",
})`))
		must(t, err)
		if got.XSS || got.Foreign != 0 || got.Scripts != 2 {
			t.Errorf("%s: a hostile name ran or made elements: __xss set %v, %d foreign elements, %d scripts (want 2)", what, got.XSS, got.Foreign, got.Scripts)
		}
		if len(got.CSP) != 0 {
			t.Errorf("%s: Content-Security-Policy violations: %q", what, got.CSP)
		}
		if !slices.Equal(got.Tasks, wantTasks) {
			t.Errorf("%s: task names shown\n%q\nwant\n%q", what, got.Tasks, wantTasks)
		}
		for _, g := range wantGroups {
			if !slices.Contains(got.Groups, g) {
				t.Errorf("%s: no section for group %q; sections %q", what, g, got.Groups)
			}
		}
		t.Logf("%s: %d tasks, %d sections, __xss set %v, %d CSP violations; filter %q", what, len(got.Tasks), len(got.Groups), got.XSS, len(got.CSP), got.Filter)
	}

	open("")
	check("from the snapshot", tasks, groups)

	// Through the stream: new groups, and groups first heard of as the
	// parent of a group with a task (a section made from the name alone).
	for i, n := range hostileNames {
		spawn(sup.Group("live"+groupName(n)), n+" live")
		spawn(sup.Group("outer"+groupName(n)).Group(groupName(hostileNames[(i+1)%len(hostileNames)])), n+" nested")
	}
	check("from the event stream", tasks, groups)

	// A hostile ?group=, shown in the header and passed to the stream.
	filter := "app." + groupName(hostileNames[0])
	open("group=" + url.QueryEscape(filter))
	check("with ?group="+filter, tasks[:1], groups[:1])
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("filter").textContent + "|" + document.title`))
	must(t, err)
	if strings.Count(shown, filter) != 2 {
		t.Errorf("the ?group= is not shown as text in the header and title: %q", shown)
	}
}
