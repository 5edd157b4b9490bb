package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// defaultAddr is loopback: the debug endpoints reveal internals (stacks,
// profiles, errors). The container passes -addr 0.0.0.0:8080.
const defaultAddr = "127.0.0.1:8080"

// Bounds on the steps after the supervisor's shutdown, so that a stuck
// client or an unreachable collector cannot hold the process.
const (
	httpShutdownTimeout = 2 * time.Second
	traceFlushTimeout   = 5 * time.Second
)

type config struct {
	addr            string
	duration        time.Duration
	shutdownTimeout time.Duration
	logFormat       string
	logLevel        slog.Level
	rate            float64
	traceRatio      float64
	traceRatioSet   bool     // -trace-ratio given: it wins over OTEL_TRACES_SAMPLER
	sched           schedule // derived from the flags; tests shorten it
	// stopSignals, when set, restores the default handling of SIGINT and
	// SIGTERM; run calls it as the shutdown begins.
	stopSignals func()
}

func parseFlags(args []string, getenv func(string) string, output io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: demo [flags]\n\nRuns a small service supervised by taskscope; see `go doc ./cmd/demo`.\n\n")
		fs.PrintDefaults()
	}
	addr := defaultAddr
	if v := getenv("TASKSCOPE_DEMO_ADDR"); v != "" {
		addr = v
	}
	fs.StringVar(&cfg.addr, "addr", addr, "HTTP listen address (default from $TASKSCOPE_DEMO_ADDR, else loopback: the debug endpoints reveal internals)")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop after this long (0: run until SIGINT or SIGTERM)")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 3*time.Second, "deadline of the final shutdown; tasks still running then are aborted")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log format on stderr: text (tint; colour only on a terminal without NO_COLOR) or json")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "log level: debug (every task's lifecycle), info, warn or error")
	fs.Float64Var(&cfg.rate, "rate", 40, "messages per second; each one becomes a process task and a lookup task (5 spans)")
	fs.Float64Var(&cfg.traceRatio, "trace-ratio", 1, "share of new traces sampled, ParentBased(TraceIDRatioBased); when not given, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG apply if set")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	fs.Visit(func(f *flag.Flag) { cfg.traceRatioSet = cfg.traceRatioSet || f.Name == "trace-ratio" })
	var problems []error
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		problems = append(problems, fmt.Errorf("-log-format %q: want text or json", cfg.logFormat))
	}
	// Written so that NaN fails too.
	if !(cfg.rate == 0 || cfg.rate >= minRate && cfg.rate <= maxRate) {
		problems = append(problems, fmt.Errorf("-rate %v: want 0 (no messages) or %v to %v messages per second", cfg.rate, minRate, maxRate))
	}
	if !(cfg.traceRatio >= 0 && cfg.traceRatio <= 1) {
		problems = append(problems, fmt.Errorf("-trace-ratio %v: want 0 to 1", cfg.traceRatio))
	}
	if cfg.duration < 0 || cfg.shutdownTimeout < 0 {
		problems = append(problems, errors.New("-duration and -shutdown-timeout must not be negative"))
	}
	if err := errors.Join(problems...); err != nil {
		fmt.Fprintln(output, err)
		return cfg, err
	}
	cfg.sched = defaultSchedule(cfg.rate, cfg.shutdownTimeout)
	return cfg, nil
}

// Bounds of -rate: below minRate a message period does not fit a
// time.Duration.
const minRate, maxRate = 0.001, 10000

func main() { os.Exit(demo(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

// demo is main, returning the exit status. getenv serves the demo's own
// variable, TASKSCOPE_DEMO_ADDR; NO_COLOR and the OTEL_* variables are
// read from the process's environment, as the SDK and autoexport read
// them themselves (tests set them with t.Setenv). The first SIGINT or SIGTERM
// starts the bounded shutdown; once the shutdown has begun, for that or any
// other reason (-duration), a signal kills the process at once, as if
// there were no handler.
func demo(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.stopSignals = stop
	if err := run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

// run is the whole demo: it serves and runs the workload until ctx is done
// or cfg.duration has passed, then shuts down and prints the report on
// stdout. Tests call it directly.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logger, err := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	// Export errors go to the global error handler, the only route the SDK
	// has (rate-limited: one record a minute during an outage); the SDK's
	// other messages (a malformed OTEL_* variable, read by
	// autoexport below) go to the global logger. Without these both would
	// bypass the demo's log format.
	otel.SetErrorHandler(&otelErrors{logger: logger, every: time.Minute})
	otel.SetLogger(otelLogger(logger))
	// The exporter outlives ctx: it must still flush after the signal.
	tr, err := newTracing(context.WithoutCancel(ctx), cfg, logger)
	if err != nil {
		ln.Close()
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if tr.export != nil {
		reg.MustRegister(tr.export.collectors()...)
	}
	stream := diagnostics.NewStream()
	tel, err := telemetry.New(telemetry.WithTracerProvider(tr.tp), telemetry.WithRegisterer(reg), telemetry.WithStreamStats(stream))
	if err != nil {
		ln.Close()
		return errors.Join(err, tr.shutdown(context.Background()))
	}
	books := newBooks("demo")
	logs := diagnostics.NewLogObserver(logger, diagnostics.WithTraceIDs(traceIDs))
	sup := runtime.New("demo",
		// telemetry first: task contexts carry the task's span by the time
		// the log observer sees them, so log lines get its trace_id.
		runtime.WithObserver(tel),
		runtime.WithObserver(logs),
		runtime.WithObserver(stream),
		runtime.WithObserver(books),
	)
	// The HTTP server is supervised too, by a supervisor of its own: it
	// must outlive the workload's shutdown (below). It has no stream: one
	// stream serves one supervisor.
	web := runtime.New("demo-http", runtime.WithObserver(tel), runtime.WithObserver(logs))

	var handler http.Handler = newMux(sup, stream, reg, tr)
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		handler = loopbackHosts(handler) // no DNS rebinding of the loopback default
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Ends the event streams, which would otherwise hold srv.Shutdown.
	srv.RegisterOnShutdown(stream.Close)
	// Serve does not take a context: srv.Shutdown, below, ends it.
	serving := web.Go("serve", func(context.Context) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, runtime.LongRunning())

	base := baseURL(ln.Addr())
	printURLs(stdout, base)
	// The log says where to look too: a log pipeline never sees stdout's list.
	logger.Info("demo running", "url", base+"/", "metrics", base+"/metrics", "tasks", base+"/debug/tasks",
		"rate", cfg.rate, "traces", tr.summary)
	startWorkload(sup, cfg.sched)

	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case <-serving.Done():
		serveErr = serving.Result().Err
		logger.Error("http server failed", "error", serveErr)
	}

	if cfg.stopSignals != nil {
		cfg.stopSignals()
	}
	// The workload first, the HTTP server after it: /metrics, the task
	// page and the event stream show the shutdown as it happens (the
	// stream ends with srv.Shutdown). A service whose handlers spawn tasks
	// would first stop taking traffic (fail its readiness check): spawns
	// on a closed group are rejected.
	logger.Info("shutting down", "cause", context.Cause(ctx), "deadline", cfg.shutdownTimeout.String())
	// The stop is a span of its own, the parent of the shutdown span: the
	// shutdown's log records ("group shutdown aborted tasks") then carry
	// its trace_id. At exit, metrics are rarely scraped again, so the logs
	// and the trace are what tells what was aborted: a record without a
	// trace_id left the reader to search the trace by hand.
	sctx, stopSpan := demoTracer(tr.tp).Start(context.Background(), "demo stop")
	rep := shutdown(sctx, sup, books, cfg.shutdownTimeout)
	stopSpan.End()
	if sc := stopSpan.SpanContext(); sc.IsSampled() {
		rep.traceID = sc.TraceID().String()
	}

	hctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(hctx); err != nil {
		logger.Warn("http shutdown", "error", err)
		srv.Close()
	}
	<-serving.Done() // Serve returns at once once Shutdown has begun
	if err := web.Shutdown(hctx); err != nil {
		logger.Warn("http supervisor shutdown", "error", err)
	}

	fctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
	defer cancel()
	rep.flushErr = tr.shutdown(fctx)
	rep.spans, rep.exportDesc = tr.counts(), tr.exportDesc
	if rep.spans.dropped > 0 {
		logger.Warn("spans were dropped", "dropped", rep.spans.dropped, "queued", rep.spans.queued)
	}
	rep.write(stdout)
	return serveErr
}
