// Package telemetry turns a taskscope supervisor's events into
// OpenTelemetry spans and Prometheus metrics.
//
// # Wiring
//
//	tel, err := telemetry.New(
//		telemetry.WithTracerProvider(tp),  // default: otel.GetTracerProvider()
//		telemetry.WithRegisterer(reg),     // default: register it yourself
//	)
//	if err != nil { ... }
//	sup := runtime.New("app", runtime.WithObserver(tel))
//
// Serve reg with promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}):
// exemplars are only exposed in the OpenMetrics format. To tell several
// supervisors apart, give each Telemetry [WithConstLabels], or register them
// on registries wrapped with prometheus.WrapRegistererWith.
//
// The package uses the OpenTelemetry API only, never the SDK, and sets no
// global: no otel.Set*, no registration on prometheus.DefaultRegisterer.
//
// # Spans
//
// Each task gets one span, `task <name>`, started when it is spawned and
// carried in its context, so spans made inside the task are its children.
// <name> is the task label: a name folded by the label cap gives
// `task _other` (and `run _other`), so that span names stay
// low-cardinality too; the taskscope.task.name attribute keeps the name.
// The span's parent is the span of the context the task was spawned from (see
// runtime.WithParent), or, with [WithSpanLinks], it starts a new trace
// linked to that span. Status: error, panic and aborted set Error; success
// and canceled leave it Unset. A panic adds an `exception` event with the
// full stack captured where the panic happened. An aborted task's span ends
// at the abort, with the stack its goroutine was stuck in; its late exit
// changes only the metrics (abandoned, and the cancel latency, observed
// then to the goroutine's actual return).
//
// Periodic tasks (Group.Every) get no task span, which would stay open for
// days and be exported only at the end: each run gets a short `run <name>`
// span instead, the root of its own trace, linked to the spawner's span.
// Nor do tasks spawned with runtime.LongRunning (a consumer loop, a
// server): their fn gets a context with no current span, so that the spans
// it makes per message or request start traces of their own instead of
// hanging under a span exported only at shutdown. With tracing off, both
// kinds still get no current span from their spawner: an application that
// traces on its own gets traces of their own for them too. A group shutdown gets a `shutdown <group>` span with the counts of drained
// and aborted tasks and the names of the aborted ones, and the group's
// taskscope.group.id (sibling groups may share a name).
//
// Attributes: taskscope.group, taskscope.task.name, taskscope.task.id,
// taskscope.task.outcome, taskscope.task.run, taskscope.cancel.cause,
// taskscope.cancel.message (on a canceled or aborted task or run: why),
// code.function.name, error.type, taskscope.task.rejected (a spawn on a
// closed group: the span ends at once, canceled), and taskscope.shutdown.*
// on shutdown spans. The instrumentation scope is [ScopeName], at
// [Version], with the schema URL of the semconv version the attributes
// follow.
//
// # Metrics
//
//	taskscope_tasks_started_total{group,task}
//	taskscope_tasks_rejected_total{group,task}
//	taskscope_tasks_finished_total{group,task,outcome,error_type}
//	taskscope_task_duration_seconds{group,task,outcome}          classic and native histogram, trace_id exemplars
//	taskscope_task_cancellations_total{group,task,cause}         task="" for a cancel of a whole group
//	taskscope_task_cancel_latency_seconds{group,task}            classic and native histogram, trace_id exemplars; an aborted task's at its late exit (no exemplar: its span has ended)
//	taskscope_tasks_running{group,task}
//	taskscope_tasks_abandoned{group,task}
//	taskscope_group_shutdown_duration_seconds{group,result}      classic and native histogram, the shutdown span's trace_id exemplars; result: clean or aborted
//	taskscope_periodic_runs_total{group,task,outcome}
//	taskscope_periodic_run_duration_seconds{group,task,outcome}  classic and native histogram, the run's trace_id exemplars; an aborted run's to the abort
//	taskscope_periodic_last_success_timestamp_seconds{group,task}  the spawn time until the first success; while one lives (see below)
//	taskscope_periodic_interval_seconds{group,task}                while one lives (see below); the longest period
//	taskscope_label_overflow_total{label}
//	taskscope_stream_events_total, taskscope_stream_dropped_total, taskscope_stream_subscribers  (with WithStreamStats)
//
// The histograms expose classic buckets (for dashboards and any
// Prometheus) and, in the same series, a native histogram: schema 3
// (buckets about 9 % wide), at most 160 populated buckets (past that, a
// coarser schema). Scrape with protobuf to get the native one.
// Observations made under a sampled span (task, run and shutdown
// durations, and a canceled task's cancel latency) carry its trace ID as a
// trace_id exemplar, at most one per histogram bucket per second:
// Prometheus keeps one per bucket, and building one allocates.
//
// outcome is success, error, canceled, panic or aborted. error_type (the
// error.type attribute on spans) is "panic", "aborted", or for errors
// "goexit", the value of an ErrorType() method in the error chain,
// "deadline_exceeded", "canceled", or else the error's Go type as
// semconv.ErrorType names it ("*errors.errorString"); it is empty for
// success and canceled. cause is runtime.CauseKind of the cancellation
// cause.
//
// A periodic task's duration is its whole life, days for a job spawned at
// startup; how long its runs take is in the run duration histogram, one
// observation per run, so that its count per series is
// taskscope_periodic_runs_total. Runs follow each other at a fixed delay
// (the interval runs from the end of one to the start of the next): a run
// longer than the interval does not overlap the next, it delays it.
//
// Rejected spawns (on a closed group) count as started and as finished with
// outcome canceled, so that started − finished is always what is running;
// they are also counted in taskscope_tasks_rejected_total and stay out of
// the duration histogram. running is spawned minus finished, abandoned is
// aborted minus late exits: both come from events the runtime emits exactly
// once per task, so they do not drift.
//
// The periodic gauges of a (group, task) pair are exported while a
// periodic task of it lives: one that stopped (ErrStop, a cancel, a
// shutdown) must not look stuck for ever. One that a panic ended (or
// runtime.Goexit) did not stop on purpose, and its work is no longer done:
// its gauges stay, the last success frozen, until a periodic task of the
// pair starts again, so that a stall alert on them finds it.
//
// Labels never carry task IDs. The distinct values of group, of task and
// of error_type are each capped ([WithMaxLabelValues], default 256), and
// so are the distinct (group, task) pairs ([WithMaxLabelPairs], default
// 1,024); later values become "_other" (for a pair, its task) and are
// counted in taskscope_label_overflow_total.
//
// # Cost
//
// Metric children are bound once per (group, task), so a spawn and a
// completion cost a few atomic operations and two lock-free map loads, and
// allocate nothing. With a nil or no-op tracer provider tracing is off: no
// span is started and a plain task's context is not wrapped. (The default,
// otel.GetTracerProvider(), counts as on even before the application
// installs a provider: pass WithTracerProvider(nil) to a service that never
// traces.) With tracing on, task spans are started on the spawning
// goroutine, which keeps the SDK's deep call path off the task goroutine's
// small initial stack; run spans start on the task goroutine, whose stack
// grows once first (see [Telemetry.NeedsStack]).
package telemetry
