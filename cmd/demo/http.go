package main

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/zpages"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// endpoint is one page the demo serves: the mux, the landing page and the
// startup output all come from this list.
type endpoint struct {
	Path  string
	About string
	Alt   string // a variant of the same endpoint, linked from the landing page
}

var endpoints = []endpoint{
	{Path: "/", About: "this page: links to everything below"},
	{Path: "/metrics", About: "Prometheus metrics (OpenMetrics with trace_id exemplars when the scraper asks for it)"},
	{Path: "/debug/tasks", About: "the live task tree", Alt: "/debug/tasks?format=json"},
	{Path: "/debug/events", About: "the event stream as Server-Sent Events", Alt: "/debug/events?format=ndjson"},
	{Path: "/debug/tracez", About: "recent spans by name, latency and error (OpenTelemetry zpages): traces with no backend"},
	{Path: "/debug/pprof/", About: "Go profiles; task goroutines carry the pprof labels taskscope.group and taskscope.task"},
	{Path: "/api/quote", About: "an API handler as a service writes one: a group per request, three tasks, Wait then Err (502 when a part fails, 503 while shutting down); each request is one trace, its parts the children of its server span"},
}

// newMux routes the demo's endpoints. reg is the demo's own registry,
// never prometheus.DefaultRegisterer. The pprof handlers are mounted here
// explicitly: importing net/http/pprof also registers them on
// http.DefaultServeMux, which the demo never serves.
func newMux(sup *runtime.Supervisor, stream *diagnostics.Stream, reg *prometheus.Registry, tr *tracing) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", landing(sup, tr.summary))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: reg}))
	// Side by side, so the task page's relative "events" URL finds the stream.
	mux.Handle("GET /debug/tasks", diagnostics.TasksHandler(sup))
	mux.Handle("GET /debug/events", diagnostics.EventsHandler(stream))
	mux.Handle("GET /debug/tracez", zpages.NewTracezHandler(tr.zpages))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle(http.MethodGet+" "+quoteRoute, quote(sup, demoTracer(tr.tp)))
	return mux
}

// printURLs writes where to look, one line per endpoint, in one Write so
// that the block is never interleaved with log output and a reader that
// sees the "listening on" line also sees every endpoint.
// baseURL is where a browser on this machine reaches a server listening on
// addr: an unspecified address (0.0.0.0, ::, as in the container) is not
// one to open, so it reads localhost.
func baseURL(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		return "http://" + net.JoinHostPort("localhost", strconv.Itoa(a.Port))
	}
	return "http://" + addr.String()
}

func printURLs(w io.Writer, base string) {
	var b strings.Builder
	fmt.Fprintf(&b, "taskscope demo listening on %s (Ctrl-C to stop)\n", base)
	for _, e := range endpoints {
		fmt.Fprintf(&b, "  %-40s %s\n", base+e.Path, e.About)
	}
	io.WriteString(w, b.String())
}

var landingPage = template.Must(template.New("landing").Funcs(template.FuncMap{
	// Relative links keep working behind a proxy that mounts the demo
	// under a path prefix.
	"rel": func(path string) string { return "./" + strings.TrimPrefix(path, "/") },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>taskscope demo</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
dt { margin-top: .8em; font-family: ui-monospace, monospace; }
dd { margin-left: 1.5rem; }
.abandoned { color: #b00020; font-weight: 600; }
</style>
</head>
<body>
<h1>taskscope demo</h1>
<p>A small service whose every goroutine is a task supervised by taskscope:
ingest consumers, per-message pipeline tasks (a few fail or panic),
periodic maintenance, fail-fast batches, and short-lived jobs whose
stubborn task is aborted at each shutdown and exits late.</p>
<p>Now: {{.Running}} tasks running{{if .Abandoned}}, <span class="abandoned">{{.Abandoned}} abandoned</span>
(aborted at a shutdown deadline, goroutine still running){{end}}.</p>
<dl>
{{- range .Endpoints}}{{if ne .Path "/"}}
<dt><a href="{{rel .Path}}">{{.Path}}</a>{{with .Alt}} · <a href="{{rel .}}">{{.}}</a>{{end}}</dt>
<dd>{{.About}}</dd>
{{- end}}{{end}}
</dl>
<p>Traces: {{.Tracing}}.</p>
</body>
</html>
`))

func landing(sup *runtime.Supervisor, tracingSummary string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := sup.Snapshot()
		var page bytes.Buffer
		err := landingPage.Execute(&page, map[string]any{
			"Running":   snap.Running + snap.Canceling,
			"Abandoned": snap.Abandoned,
			"Endpoints": endpoints,
			"Tracing":   tracingSummary,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = page.WriteTo(w)
	})
}

// loopbackHosts wraps h, the handler of a server listening on a loopback
// address, to answer 403 to a request whose Host header names no loopback
// host. Loopback keeps other machines out, not web pages: a page of any
// site, open in a browser on this machine, can rebind its own host name
// to 127.0.0.1 (DNS rebinding) and then read /debug/tasks, /debug/events,
// the profiles and the traces as same-origin, with its name as the Host.
// A server listening on another address (the container's 0.0.0.0) is
// reached by names this cannot know: it is left as it is.
func loopbackHosts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopbackHost(r.Host) {
			http.Error(w, "taskscope demo: this server listens on loopback and answers only to localhost, 127.0.0.1 or [::1]", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLoopbackHost reports whether a Host header (host, or host:port) names
// this machine's loopback: localhost, a name under .localhost (browsers
// resolve those to loopback themselves, RFC 6761), or a loopback IP. An
// HTTP/1.0 request may have no Host (a health check's): no browser sends
// one without, so it is no rebinding.
func isLoopbackHost(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".") // the root's dot: "localhost." is localhost
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}
