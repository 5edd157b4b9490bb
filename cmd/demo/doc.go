// Command demo runs a small service whose every goroutine is a task
// supervised by taskscope, with every observability channel wired: OTel
// spans, Prometheus metrics, slog logs and the diagnostic event stream.
//
//	make demo                    # go build, then run the binary
//
// Prefer the built binary to go run: go run exits with status 1 on Ctrl-C
// whatever the demo returns, and a SIGTERM sent to go run leaves the demo
// running, holding its port.
//
// It needs no other process. On start it prints, on stdout, the line
// "taskscope demo listening on http://HOST:PORT" and then one line per
// endpoint (its "demo running" log record gives the URLs of /, /metrics
// and /debug/tasks too):
//
//	/               landing page linking everything below
//	/metrics        Prometheus metrics from a private registry (Go, process,
//	                taskscope); OpenMetrics with trace_id exemplars on request
//	/debug/tasks    the live task tree (?format=json for its JSON)
//	/debug/events   the event stream as SSE (?format=ndjson for NDJSON)
//	/debug/tracez   OpenTelemetry zpages: recent spans, with no backend
//	/debug/pprof/   Go profiles (tasks carry pprof labels)
//	/api/quote      an API handler: a group per request, three tasks, Wait
//	                then Err (502 when a part fails, 503 while shutting down)
//
// # Flags
//
//	-addr              listen address (default 127.0.0.1:8080, or
//	                   $TASKSCOPE_DEMO_ADDR); port 0 picks a free port.
//	                   On a loopback address the demo answers only to a
//	                   loopback Host (localhost, 127.0.0.1, [::1]): a web
//	                   page that rebinds its name to 127.0.0.1 gets a 403
//	-duration          stop after this long (default 0: until SIGINT/SIGTERM)
//	-shutdown-timeout  deadline of the final shutdown (default 3s)
//	-log-format        text (tint on stderr; colour only on a terminal
//	                   and without NO_COLOR) or json (slog's JSON handler)
//	-log-level         debug, info (default), warn, error; debug logs every
//	                   task's lifecycle
//	-rate              messages per second (default 40); each becomes two
//	                   tasks and five spans, so about 80 tasks/s and 200
//	                   spans/s in all by default
//	-trace-ratio       share of new traces sampled (default 1), with a
//	                   ParentBased(TraceIDRatioBased) sampler; when not
//	                   given, OTEL_TRACES_SAMPLER(_ARG) apply if set
//
// # Traces
//
// The OpenTelemetry SDK lives only in this command. The resource's
// service.name is taskscope-demo unless OTEL_SERVICE_NAME (or
// OTEL_RESOURCE_ATTRIBUTES) says otherwise; its service.version is the
// one stamped at build time (make demo and make up stamp git describe),
// else the build's (the module version of go install ...@version, else the
// VCS revision), unless OTEL_RESOURCE_ATTRIBUTES sets one. Spans are
// always kept for /debug/tracez; they are also exported, configured by the
// standard variables through contrib's autoexport, when
// OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. The export queue holds 16384 spans, exported in batches of up to
// 1024 every second (OTEL_BSP_* override these). A span that finds the
// queue full is dropped and counted, never lost quietly:
// taskscope_demo_spans_dropped_total (with _queued_total,
// _exported_total{result} and the queue's length and capacity), a warning
// at the first drop, and a line in the shutdown report. At exit the
// provider is flushed and shut down. The SDK's own errors and warnings
// (export failures; a malformed OTEL_EXPORTER_OTLP_* variable, which the
// exporter then ignores) are records of the demo's logger, in its format,
// tagged component=opentelemetry. Export failures, one per batch while the
// collector is down, are logged at most once a minute, the first at once,
// each record with the number held back since the last (suppressed);
// _exported_total{result="failure"} counts their spans.
//
// The HTTP endpoints are operator pages and start no spans, so no
// propagator is installed and a traceparent header is not continued. A
// service whose handlers are traced (with otelhttp, say) installs one,
// otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
// propagation.TraceContext{}, propagation.Baggage{})): otelhttp extracts
// with the global propagator, which does nothing until set.
//
// # Workload
//
// One supervisor, "demo", observed by telemetry, a log observer and the
// stream (see workload for the tree): ingest consumers fed by a producer
// in demo.ingest.kafka, one process task per message in demo.pipeline
// (1 in 40 fails validation, 1 in 50 fails in its lookup in
// demo.pipeline.stage.enrich, 1 in 100 overruns its budget and is
// canceled, 1 in 200 panics), periodic maintenance, a fail-fast batch
// every 3 s, and about every 5 s a job group whose stubborn "flush" task
// is aborted by the job's 250ms shutdown deadline and exits late about
// 2.25 s later. Spawns on the closed job are rejected. Every metric the
// shipped dashboards query has series within seconds of the start.
//
// # Stopping
//
// On SIGINT or SIGTERM, or after -duration, the supervisor is shut down
// with -shutdown-timeout. The demo.exporter/legacy-export task never
// stops in time: it is aborted, and returns 300ms after the deadline. The
// report on stdout then gives the drained count, one "aborted:" line per
// straggler followed by the stack it was stuck in, one "late exit:" line
// per abandoned goroutine that returned (waiting up to 1s for them), the
// trace of the stop (a "demo stop" span, parent of the "shutdown demo"
// span; the shutdown's log records carry its trace_id), and the span
// export counts. The HTTP server shuts down gracefully, traces
// are flushed, and the exit status is 0. A second signal kills the process
// at once.
package main
