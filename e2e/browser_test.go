package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The page's stable DOM (diagnostics/page.html): section.group[data-group]
// per group, tr[data-task-id][data-state] per task, #status[data-status]
// "live" while the event stream is connected.

// startBrowser starts headless Chromium, which lives until the test ends,
// logging to log, and returns its context. The first action starts it.
// Flags that work on these machines (.library/env/machines/go.md): no
// sandbox as root, no GPU, no background networking (the network is
// closed), a fresh profile.
func startBrowser(t *testing.T, chromium string, log io.Writer) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(log),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...) // not t.Context(): canceled before cleanups run
	logf := func(format string, args ...any) { fmt.Fprintf(log, "chromedp: "+format+"\n", args...) }
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		// Closes the browser and waits for it (and chromedp's goroutines).
		if err := chromedp.Cancel(bctx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// pageRecorder is injected into the page once it is live: it records, from
// a MutationObserver on #tree, every task row added or removed, every
// data-state change, and any change of #tree's own children (a resync
// from a fresh snapshot replaces them). The page is never reloaded; the marker
// proves it.
const pageRecorder = `(() => {
  const tree = document.getElementById("tree");
  window.__e2e = {marker: %q, log: []};
  const log = window.__e2e.log;
  const rows = (n) => n.nodeType === 1 ? (n.matches("tr[data-task-id]") ? [n] : Array.from(n.querySelectorAll("tr[data-task-id]"))) : [];
  new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.type === "childList") {
        if (m.target === tree) log.push({op: "resync", t: Date.now()});
        for (const n of m.addedNodes) for (const r of rows(n)) log.push({op: "add", id: r.dataset.taskId, state: r.dataset.state || "", t: Date.now()});
        for (const n of m.removedNodes) for (const r of rows(n)) log.push({op: "remove", id: r.dataset.taskId, state: r.dataset.state || "", t: Date.now()});
      } else if (m.type === "attributes" && m.target.matches("tr[data-task-id]")) {
        log.push({op: "state", id: m.target.dataset.taskId, state: m.target.dataset.state, from: m.oldValue || "", t: Date.now()});
      }
    }
  }).observe(tree, {childList: true, subtree: true, attributes: true, attributeFilter: ["data-state"], attributeOldValue: true});
  return true;
})()`

type pageChange struct {
	Op    string `json:"op"` // add, remove, state, resync
	ID    string `json:"id"`
	State string `json:"state"`
	From  string `json:"from"`
	T     int64  `json:"t"`
}

// checkBrowser opens the task page in headless Chromium, checks the tree
// shows the demo's groups, watches a task appear and finish through the
// event stream alone, and saves a screenshot.
func (s *stack) checkBrowser(t *testing.T, chromium string) {
	logFile, err := os.Create(s.art.path("chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	bctx := startBrowser(t, chromium, logFile)

	page := s.demoURL("/debug/tasks")
	must(t, chromedp.Do(bctx, chromedp.Navigate(page)))
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	must(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#tree section.group`)),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status="live"]`)),
	))

	// The demo's groups are in the tree.
	for _, want := range []string{"demo", "demo.ingest", "demo.pipeline"} {
		waitFor(ctx, t, fmt.Sprintf(`#tree section.group[data-group=%q]`, want))
	}
	groups, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#tree section.group[data-group]")).map(e => e.dataset.group)`))
	must(t, err)
	deepest := ""
	for _, g := range groups {
		if strings.Count(g, ".") > strings.Count(deepest, ".") {
			deepest = g
		}
	}
	// Three deep below the root: demo.a.b.c.
	if strings.Count(deepest, ".") < 3 {
		t.Errorf("no group nested three deep below the root; groups on the page: %v", groups)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#tree tr[data-task-id]").length`))
	must(t, err)
	if rows == 0 {
		t.Errorf("the task page shows no task rows")
	}
	t.Logf("task page: %d rows, groups %v", rows, groups)

	// Live: record mutations, and wait for a task that was not on the page
	// to appear and then finish (its row removed, or marked abandoned),
	// with no resync in between: only the event stream moved it.
	marker := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(pageRecorder, marker)))
	must(t, err)
	type recorded struct {
		Marker string       `json:"marker"`
		Log    []pageChange `json:"log"`
	}
	var seen, finish pageChange
	err = poll(ctx, "a task appearing and finishing on the page", 30*time.Second, 200*time.Millisecond, []*proc{s.demo}, func(ctx context.Context) (bool, error) {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[recorded](`window.__e2e`))
		if err != nil {
			return false, err
		}
		if st.Marker != marker {
			return false, fmt.Errorf("the page was reloaded (marker %q)", st.Marker)
		}
		added := map[string]pageChange{}
		for _, c := range st.Log {
			switch c.Op {
			case "resync": // the tree was rebuilt from a snapshot: start over
				clear(added)
			case "add":
				added[c.ID] = c
			case "remove", "state":
				// Finished: the page removes the row, or marks an aborted
				// task abandoned (canceling is not finished).
				// At least 100ms in between: the row was on screen for
				// several frames, not added and removed by one batch of
				// events.
				if a, ok := added[c.ID]; ok && (c.Op == "remove" || c.State == "abandoned") && c.T-a.T >= 100 {
					seen, finish = a, c
					return true, nil
				}
			}
		}
		return false, nil
	})
	must(t, err)
	t.Logf("task %s appeared (%s) and was %s %dms later, live from the stream", seen.ID, seen.State, map[string]string{"remove": "removed", "state": "set to " + finish.State}[finish.Op], finish.T-seen.T)

	status, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#status`), "data-status"))
	must(t, err)
	if status.Value != "live" {
		t.Errorf("#status data-status = %q after watching, want live", status.Value)
	}

	// The screenshot: the whole page, as a person would see it, preferably
	// while it shows an abandoned task (the demo's job group aborts its
	// stubborn flush task every few seconds; the row stays until its late
	// exit): the picture then has every state in it.
	abandoned := poll(ctx, "an abandoned task on the page", 20*time.Second, 100*time.Millisecond, []*proc{s.demo}, func(ctx context.Context) (bool, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#tree tr[data-state="abandoned"]') !== null`))
	})
	if abandoned != nil {
		t.Logf("screenshot without an abandoned task: %v", abandoned)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(t, err)
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	if err := os.MkdirAll(s.art.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(s.art.dir, "tasks.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	updateDocScreenshot(t, s.root, png)
}

// waitFor waits until a selector matches in the page.
func waitFor(ctx context.Context, t *testing.T, sel string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitReady(chromedp.CSS(sel))); err != nil {
		t.Errorf("the task page has no %s: %v", sel, err)
	}
}

// updateDocScreenshot writes docs/screenshots/tasks.png (the README's
// picture of the task page) when it is missing or E2E_UPDATE_SCREENSHOTS=1,
// so that an ordinary test run leaves the committed picture alone.
func updateDocScreenshot(t *testing.T, root string, png []byte) {
	doc := filepath.Join(root, "docs", "screenshots", "tasks.png")
	if _, err := os.Stat(doc); err == nil && os.Getenv("E2E_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(doc), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(doc, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("updated %s", doc)
}
