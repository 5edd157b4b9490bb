package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// httpClient is the one client of the tests; TestMain closes its idle
// connections so that goleak sees no transport goroutines.
var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil, // loopback only, whatever the environment says
	MaxIdleConnsPerHost: 4,
	IdleConnTimeout:     10 * time.Second,
}}

// repoRoot is the repository's root: the parent of this package's
// directory (go test runs a package's tests in its directory), checked by
// its go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(mod, []byte("module github.com/taskscope/taskscope\n")) {
		t.Fatalf("%s is not the taskscope repository root (go.mod: %v)", root, err)
	}
	return root
}

// artifacts is where a run keeps what is worth looking at after it: logs
// of the child processes, config copies, API responses, the screenshot.
type artifacts struct {
	dir string // e2e/artifacts
	run string // e2e/artifacts/run: this run's files, cleared at start
}

// newArtifacts clears the previous run's files. When the test passes,
// they are removed again unless E2E_KEEP_ARTIFACTS=1; the screenshot
// (in dir itself) stays.
func newArtifacts(t *testing.T) *artifacts {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	a := &artifacts{dir: filepath.Join(wd, "artifacts")}
	a.run = filepath.Join(a.dir, "run")
	if err := os.RemoveAll(a.run); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(a.run, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_KEEP_ARTIFACTS") == "1" {
			t.Logf("artifacts (child process logs, configs, API responses): %s", a.run)
			return
		}
		_ = os.RemoveAll(a.run)
	})
	return a
}

// path returns the path of a run artifact.
func (a *artifacts) path(name string) string { return filepath.Join(a.run, name) }

// write saves data as a run artifact; a failure to save is logged, not
// fatal (the artifact is for a person, not for the assertions).
func (a *artifacts) write(t testing.TB, name string, data []byte) {
	if err := os.WriteFile(a.path(name), data, 0o644); err != nil {
		t.Logf("artifact %s: %v", name, err)
	}
}

// ports hands out free loopback ports, never the same one twice in a run.
type ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// free returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago. The kernel hands out ephemeral ports in sequence, so a port it just
// gave us is not handed to the next bind soon.
func (p *ports) free(t testing.TB) int {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used == nil {
		p.used = map[int]bool{}
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !p.used[port] {
			p.used[port] = true
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// proc is a child process whose combined output goes to a log file.
type proc struct {
	name        string
	cmd         *exec.Cmd
	logPath     string
	stopTimeout time.Duration // SIGTERM, then SIGKILL after this long

	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed

	stopOnce sync.Once
	killed   bool // SIGKILL was needed; read after done
}

type procSpec struct {
	name        string
	bin         string
	args        []string
	env         []string // added to the test's environment (minus OTEL_*)
	dir         string
	stopTimeout time.Duration
}

// start starts a child process and registers its stop with t.Cleanup.
// Its output goes to <name>.log among the run artifacts.
func start(t *testing.T, a *artifacts, s procSpec) *proc {
	t.Helper()
	logPath := a.path(s.name + ".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	fmt.Fprintf(f, "# %s %s\n# env: %s\n", s.bin, strings.Join(s.args, " "), strings.Join(s.env, " "))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Env = append(childEnv(), s.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group (a Ctrl-C of the test run is the test's to
	// handle), and killed by the kernel if the test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	p := &proc{name: s.name, cmd: cmd, logPath: logPath, stopTimeout: s.stopTimeout, done: make(chan struct{})}
	if p.stopTimeout == 0 {
		p.stopTimeout = 5 * time.Second
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	t.Logf("started %s (pid %d), log %s", s.name, cmd.Process.Pid, logPath)
	return p
}

// childEnv is the test's environment without OTEL_* variables, so that
// only what a test sets configures the children's telemetry.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits; after stopTimeout it sends SIGKILL. It is
// idempotent, and returns how long the process took to exit.
func (p *proc) stop(t testing.TB) time.Duration {
	var took time.Duration
	p.stopOnce.Do(func() {
		begin := time.Now()
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(p.stopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			t.Logf("%s did not exit %v after SIGTERM: SIGKILL", p.name, p.stopTimeout)
			p.killed = true
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		took = time.Since(begin)
	})
	return took
}

// logTail returns the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errExited is returned by poll when a process it watches has exited.
var errExited = errors.New("process exited")

// poll calls check every interval until it returns true, an error, the
// deadline passes or one of the watched processes exits. Polling is for
// external programs only (their HTTP APIs): never for this process's
// goroutines.
func poll(ctx context.Context, what string, timeout, interval time.Duration, watch []*proc, check func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last error
	for {
		for _, p := range watch {
			if p.exited() {
				return fmt.Errorf("%s: %s %w (%v); log tail:\n%s", what, p.name, errExited, p.waitErr, p.logTail(30))
			}
		}
		ok, err := check(ctx)
		switch {
		case ok:
			return nil
		case err != nil && ctx.Err() == nil:
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not within %v; last error: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not within %v", what, timeout)
		case <-ticker.C:
		}
	}
}

// getJSON GETs u and decodes its JSON body into v; the raw body is
// returned as well (for artifacts and messages).
func getJSON(ctx context.Context, u string, v any) ([]byte, error) {
	body, err := fetch(ctx, u, "application/json")
	if err != nil || v == nil {
		return body, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return body, fmt.Errorf("GET %s: %w: %.300s", u, err, body)
	}
	return body, nil
}

// getHTML GETs u as a browser does (Chromium's Accept header) and returns
// its body as text; non-200 is an error.
func getHTML(ctx context.Context, u string) (string, error) {
	body, err := fetch(ctx, u, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	return string(body), err
}

// fetch GETs u with an Accept header; non-200 is an error.
func fetch(ctx context.Context, u, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, body)
	}
	return body, nil
}

// withQuery returns base with the query parameters kv (key, value, ...).
func withQuery(base string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return base + "?" + q.Encode()
}

// dialable reports whether something accepts TCP connections on addr.
func dialable(ctx context.Context, addr string) (bool, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	_ = c.Close()
	return true, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
