package main

import (
	"bufio"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseFlags(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}

	t.Run("defaults", func(t *testing.T) {
		cfg, err := parseFlags(nil, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.addr != "127.0.0.1:8080" || cfg.duration != 0 || cfg.shutdownTimeout != 3*time.Second ||
			cfg.logFormat != "text" || cfg.logLevel != slog.LevelInfo || cfg.rate != 40 ||
			cfg.traceRatio != 1 || cfg.traceRatioSet {
			t.Errorf("defaults = %+v", cfg)
		}
		if cfg.sched.finalLinger != cfg.shutdownTimeout+lateExitAfterDeadline {
			t.Errorf("final linger %v: the late exit must come just after the shutdown deadline", cfg.sched.finalLinger)
		}
	})
	t.Run("env sets the default address, the flag wins", func(t *testing.T) {
		cfg, err := parseFlags(nil, env("TASKSCOPE_DEMO_ADDR", "127.0.0.1:9999"), io.Discard)
		if err != nil || cfg.addr != "127.0.0.1:9999" {
			t.Errorf("addr = %q, %v; want the env's", cfg.addr, err)
		}
		cfg, err = parseFlags([]string{"-addr", ":0"}, env("TASKSCOPE_DEMO_ADDR", "127.0.0.1:9999"), io.Discard)
		if err != nil || cfg.addr != ":0" {
			t.Errorf("addr = %q, %v; want the flag's", cfg.addr, err)
		}
	})
	t.Run("flags", func(t *testing.T) {
		cfg, err := parseFlags([]string{"-duration", "25s", "-shutdown-timeout", "1s", "-log-format", "json",
			"-log-level", "debug", "-rate", "5", "-trace-ratio", "0.25"}, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.duration != 25*time.Second || cfg.shutdownTimeout != time.Second || cfg.logFormat != "json" ||
			cfg.logLevel != slog.LevelDebug || cfg.rate != 5 || cfg.traceRatio != 0.25 || !cfg.traceRatioSet {
			t.Errorf("parsed = %+v", cfg)
		}
		if cfg.sched.rate != 5 || cfg.sched.finalLinger != time.Second+lateExitAfterDeadline {
			t.Errorf("schedule %+v does not follow the flags", cfg.sched)
		}
	})
	for _, args := range [][]string{
		{"-log-format", "xml"},
		{"-log-level", "loud"},
		{"-rate", "-1"},
		{"-rate", "NaN"},
		{"-rate", "1e-300"},
		{"-trace-ratio", "2"},
		{"-trace-ratio", "NaN"},
		{"-duration", "-1s"},
		{"extra"},
	} {
		if _, err := parseFlags(args, env(), io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted it", args)
		}
	}
	if _, err := parseFlags([]string{"-h"}, env(), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// TestSignalDuringShutdownKills: once the bounded shutdown has begun, here
// because -duration passed, a SIGINT kills the process at once rather than
// waiting out the shutdown deadline (a minute here: the demo's stubborn
// task holds it). The demo runs in a child process, which the signal kills.
func TestSignalDuringShutdownKills(t *testing.T) {
	if os.Getenv("TASKSCOPE_DEMO_CHILD") == "1" {
		os.Exit(demo([]string{"-addr", "127.0.0.1:0", "-duration", "100ms", "-shutdown-timeout", "1m", "-rate", "0", "-log-format", "json"},
			func(string) string { return "" }, io.Discard, os.Stderr))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignalDuringShutdownKills$")
	cmd.Env = append(os.Environ(), "TASKSCOPE_DEMO_CHILD=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := bufio.NewScanner(stderr)
	for logs.Scan() && !strings.Contains(logs.Text(), `"msg":"shutting down"`) {
	}
	exited := make(chan error, 1)
	go func() { _, _ = io.Copy(io.Discard, stderr); exited <- cmd.Wait() }()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
			t.Fatalf("the demo ended with %v, want killed by SIGINT", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal("a SIGINT during the shutdown did not end the demo")
	}
}

// The URLs printed and logged at startup are ones to open: a server on
// every interface (0.0.0.0 or ::, as in the container) is at localhost.
func TestBaseURL(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "http://localhost:8080"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, "http://localhost:8080"},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}, "http://127.0.0.1:41234"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}, "http://[::1]:80"},
	} {
		if got := baseURL(c.addr); got != c.want {
			t.Errorf("baseURL(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}
