package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskscope/taskscope/runtime"
)

// scopeName is the instrumentation scope of the spans the demo's tasks
// make themselves (the task spans are telemetry's).
const scopeName = "github.com/taskscope/taskscope/cmd/demo"

// schedule paces the workload. The defaults make every outcome and every
// metric of the dashboards appear within a few seconds of the start;
// tests shrink the periods.
type schedule struct {
	rate       float64       // messages per second the producer emits (-rate)
	itemBudget time.Duration // a message's processing budget (WithCancelOn)
	slowWrite  time.Duration // how long a slow message's write takes: past its budget

	compactionEvery, healthEvery, rebalanceEvery time.Duration
	batchEvery, jobEvery                         time.Duration

	jobPatience time.Duration // how long a job may run before it is shut down
	jobDeadline time.Duration // the job's shutdown deadline
	// jobLinger is how long a job's stubborn task keeps flushing once told
	// to stop: past jobDeadline, so it is aborted and exits late while the
	// demo runs; the abandoned gauge is above 0 for about half of each job
	// period.
	jobLinger time.Duration
	// finalLinger is the same for the task that outlives the final
	// shutdown: its late exit comes shortly after the shutdown deadline.
	finalLinger time.Duration
}

// lateExitAfterDeadline is how long after the final shutdown deadline the
// stubborn legacy-export task returns: within the grace the report waits
// for late exits.
const lateExitAfterDeadline = 300 * time.Millisecond

func defaultSchedule(rate float64, shutdownTimeout time.Duration) schedule {
	return schedule{
		rate:            rate,
		itemBudget:      500 * time.Millisecond,
		slowWrite:       2 * time.Second,
		compactionEvery: 2 * time.Second,
		healthEvery:     time.Second,
		rebalanceEvery:  10 * time.Second,
		batchEvery:      3 * time.Second,
		jobEvery:        4 * time.Second, // plus the round itself: a job about every 5 s
		jobPatience:     time.Second,
		jobDeadline:     250 * time.Millisecond,
		jobLinger:       2500 * time.Millisecond,
		finalLinger:     shutdownTimeout + lateExitAfterDeadline,
	}
}

// Which messages misbehave: fixed positions in the message sequence rather
// than dice, so every outcome shows up within seconds of the start, at the
// same rate in every run, whatever -rate is.
const (
	invalidEvery, invalidAt = 40, 7   // parse fails: outcome error, error.type "validation"
	timeoutEvery, timeoutAt = 50, 11  // the lookup's upstream times out: error, "deadline_exceeded"
	slowEvery, slowAt       = 100, 53 // the write overruns the budget: canceled, cause "external"
	panicEvery, panicAt     = 200, 37 // a decoder bug: panic
	partitions              = 3       // consumers in ingest.kafka
	batchShards             = 4       // members of each fail-fast batch
)

// The demo's failures, each with a recognisable error.type (a plain
// errors.New would be counted as *errors.errorString, all alike).
var (
	errRebalance     = errors.New("partition reassigned by rebalance") // a cancel cause
	errSegmentLocked = &demoError{"compaction: segment locked by a reader", "segment_locked"}
	errDownstream    = &demoError{"health check: downstream p99 above 250ms", "slo_breach"}
	errChecksum      = &demoError{"shard 2: checksum mismatch", "checksum_mismatch"}
	errReportBudget  = fmt.Errorf("report over its 400ms budget: %w", context.DeadlineExceeded) // deadline_exceeded
)

// demoError is a failure with the error type telemetry labels it with.
type demoError struct{ msg, errorType string }

func (e *demoError) Error() string     { return e.msg }
func (e *demoError) ErrorType() string { return e.errorType }

// validationError is a rejected message. Its ErrorType names the failure
// class for telemetry's error_type label, instead of the Go type.
type validationError struct{ seq uint64 }

func (e *validationError) Error() string {
	return fmt.Sprintf("message %d: missing field \"user_id\"", e.seq)
}
func (e *validationError) ErrorType() string { return "validation" }

type message struct{ seq uint64 }

// workload is the demo's service. Everything it runs, including the loops
// that drive it, is a task of one supervisor:
//
//	demo.ingest.kafka          producer, consumer-0..2 (LongRunning: no task span; rebalanced every 10 s)
//	demo.ingest                rebalance (Every): cancels a consumer (cause "custom") and restarts it
//	demo.pipeline              process: one task per message, under a budget (WithCancelOn)
//	demo.pipeline.stage.enrich lookup: spawned by process with WithParent, so its span is a child
//	demo.maintenance           compaction (Every 2 s, every 3rd run fails), health-check (Every 1 s, every 7th fails)
//	demo.scheduler             batch-round, job-round (Every): create and shut down the groups below
//	demo.batch                 fail-fast group of shards, made every 3 s; on odd rounds shard-2 fails
//	demo.job                   made about every 5 s, shut down with a short deadline; its flush task is aborted
//	demo.exporter              legacy-export: still running at the final shutdown, aborted, then exits late
type workload struct {
	sup      *runtime.Supervisor
	sched    schedule
	messages chan message

	kafka, pipeline, enrich *runtime.Group

	// State of periodic tasks: each field belongs to one Every task,
	// whose runs never overlap.
	consumers                           [partitions]*runtime.Task
	rebalances, compactions, healthRuns int
	batchRounds                         int
}

// startWorkload starts every task of the demo under sup.
func startWorkload(sup *runtime.Supervisor, sched schedule) {
	w := &workload{sup: sup, sched: sched, messages: make(chan message, 64)}

	ingest := sup.Group("ingest")
	w.kafka = ingest.Group("kafka")
	w.pipeline = sup.Group("pipeline")
	w.enrich = w.pipeline.Group("stage").Group("enrich")

	w.kafka.Go("producer", w.produce, runtime.LongRunning())
	for p := range partitions {
		w.startConsumer(p)
	}
	ingest.Every("rebalance", sched.rebalanceEvery, w.rebalance)

	maintenance := sup.Group("maintenance")
	maintenance.Every("compaction", sched.compactionEvery, w.compact)
	maintenance.Every("health-check", sched.healthEvery, w.healthCheck)

	scheduler := sup.Group("scheduler")
	scheduler.Every("batch-round", sched.batchEvery, w.batchRound)
	scheduler.Every("job-round", sched.jobEvery, w.jobRound)

	sup.Group("exporter").Go("legacy-export", func(ctx context.Context) error {
		return flushOnStop(ctx, sched.finalLinger)
	})
}

// produce feeds the consumers at the configured rate.
func (w *workload) produce(ctx context.Context) error {
	if w.sched.rate <= 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / w.sched.rate))
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case w.messages <- message{seq}:
		}
	}
}

func (w *workload) startConsumer(p int) {
	w.consumers[p] = w.kafka.Go(fmt.Sprintf("consumer-%d", p), w.consume, runtime.LongRunning())
}

// consume hands each message to its own pipeline task until canceled.
func (w *workload) consume(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-w.messages:
			w.dispatch(m)
		}
	}
}

// dispatch starts the message's process task under a processing budget:
// WithCancelOn cancels the task (cause "external") when the budget runs
// out. It returns the budget, released when the task ends: by fn, or
// here when the pipeline is closed (shutdown) and the spawn is rejected,
// since fn then never runs. Without that, each rejected message kept its
// budget's timer for the whole budget.
func (w *workload) dispatch(m message) (budget context.Context) {
	budget, cancel := context.WithTimeout(context.Background(), w.sched.itemBudget)
	t := w.pipeline.Go("process", func(ctx context.Context) error {
		defer cancel()
		return w.process(ctx, m)
	}, runtime.WithCancelOn(budget))
	// A rejected spawn never runs fn, whose defer would release the
	// budget. Result, not Done: Done would make a channel for every
	// message.
	if errors.Is(t.Result().Err, runtime.ErrClosed) {
		cancel()
	}
	return budget
}

// process parses, enriches (in a child task) and stores one message. The
// spans it makes come from the tracer of its context's span, so they are
// children of the task's span.
func (w *workload) process(ctx context.Context, m message) error {
	tracer := tracerFrom(ctx)
	if err := parse(ctx, tracer, m); err != nil {
		return err
	}
	// WithParent puts the lookup's span under this task's; WithCancelOn
	// stops the lookup when this task is canceled.
	lookup := w.enrich.Go("lookup", func(ctx context.Context) error { return lookupRecord(ctx, m) },
		runtime.WithParent(ctx), runtime.WithCancelOn(ctx))
	select {
	case <-lookup.Done():
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if err := lookup.Result().Err; err != nil {
		return fmt.Errorf("enrich: %w", err)
	}
	return w.store(ctx, tracer, m)
}

func parse(ctx context.Context, tracer trace.Tracer, m message) error {
	ctx, span := tracer.Start(ctx, "parse")
	defer span.End()
	if err := sleep(ctx, time.Millisecond); err != nil {
		return err
	}
	switch {
	case m.seq%panicEvery == panicAt:
		var fields []string
		_ = fields[m.seq%8] // the decoder bug: index out of range; the runtime recovers the panic
	case m.seq%invalidEvery == invalidAt:
		err := &validationError{m.seq}
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	return nil
}

// lookupRecord is the lookup task in demo.pipeline.stage.enrich.
func lookupRecord(ctx context.Context, m message) error {
	ctx, span := tracerFrom(ctx).Start(ctx, "cache.get")
	defer span.End()
	if err := sleep(ctx, 2*time.Millisecond); err != nil {
		return err
	}
	if m.seq%timeoutEvery == timeoutAt {
		err := fmt.Errorf("geo service for message %d: %w", m.seq, context.DeadlineExceeded)
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	return nil
}

func (w *workload) store(ctx context.Context, tracer trace.Tracer, m message) error {
	ctx, span := tracer.Start(ctx, "store")
	defer span.End()
	d := time.Millisecond
	if m.seq%slowEvery == slowAt {
		d = w.sched.slowWrite
	}
	return sleep(ctx, d)
}

// rebalance moves one partition to a fresh consumer: an explicit
// Task.Cancel with a custom cause, then a new task.
func (w *workload) rebalance(ctx context.Context) error {
	w.rebalances++
	if w.rebalances == 1 {
		return nil // Every runs at once: nothing to rebalance yet
	}
	p := w.rebalances % partitions
	old := w.consumers[p]
	old.Cancel(errRebalance)
	select {
	case <-old.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	w.startConsumer(p)
	return nil
}

func (w *workload) compact(ctx context.Context) error {
	w.compactions++
	ctx, span := tracerFrom(ctx).Start(ctx, "compact segments")
	defer span.End()
	if err := sleep(ctx, 20*time.Millisecond); err != nil {
		return err
	}
	if w.compactions%3 == 0 {
		span.SetStatus(codes.Error, errSegmentLocked.Error())
		return errSegmentLocked
	}
	return nil
}

func (w *workload) healthCheck(ctx context.Context) error {
	w.healthRuns++
	if err := sleep(ctx, 2*time.Millisecond); err != nil {
		return err
	}
	if w.healthRuns%7 == 0 {
		return errDownstream
	}
	return nil
}

// batchRound runs one fail-fast batch: on odd rounds shard-2 fails and the
// group cancels its siblings with a *runtime.TaskError cause ("fail_fast");
// on even rounds every shard succeeds. The drained group is then shut down
// (cleanly), which detaches it from the tree.
func (w *workload) batchRound(ctx context.Context) error {
	w.batchRounds++
	failing := w.batchRounds%2 == 1
	batch := w.sup.Group("batch", runtime.CancelOnError())
	for i := range batchShards {
		batch.Go(fmt.Sprintf("shard-%d", i), func(ctx context.Context) error {
			if failing && i == 2 {
				if err := sleep(ctx, 30*time.Millisecond); err != nil {
					return err
				}
				return errChecksum
			}
			return sleep(ctx, time.Duration(100+50*i)*time.Millisecond)
		})
	}
	if err := batch.Wait(ctx); err != nil {
		return err // the demo is stopping: its shutdown takes the batch along
	}
	// WithoutCancel keeps the run's span, so the shutdown span is its child.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	return batch.Shutdown(sctx)
}

// jobRound runs one short-lived job group through every way a task can be
// stopped: explicit cancels, a Wait that times out, a shutdown whose
// deadline one task ignores (forced abort now, late exit jobLinger after
// the cancel), and a spawn on the closed group (rejected).
func (w *workload) jobRound(ctx context.Context) error {
	patience := w.sched.jobPatience
	job := w.sup.Group("job")
	job.Go("fetch", func(ctx context.Context) error { return sleep(ctx, 2*patience) })
	job.Go("transform", func(ctx context.Context) error { return sleep(ctx, patience/10) })
	prefetch := job.Go("prefetch", func(ctx context.Context) error {
		<-ctx.Done()
		return context.Cause(ctx)
	})
	report := job.Go("report", func(ctx context.Context) error { return sleep(ctx, 2*patience) })
	job.Go("flush", func(ctx context.Context) error { return flushOnStop(ctx, w.sched.jobLinger) })

	// Single tasks canceled explicitly: the prefetch is no longer needed
	// (cause "canceled"), the report is over its budget (cause "deadline").
	if err := sleep(ctx, patience/5); err != nil {
		return err
	}
	prefetch.Cancel(nil)
	if err := sleep(ctx, patience/5); err != nil {
		return err
	}
	report.Cancel(errReportBudget)

	// The job gets the rest of its patience to finish on its own. It will
	// not (fetch and flush are busy), so Wait times out: a wait_timed_out
	// event naming them.
	wctx, cancelWait := context.WithTimeout(ctx, patience*3/5)
	defer cancelWait()
	err := job.Wait(wctx) // a *TimeoutError, as intended: the events report it
	if ctx.Err() != nil {
		return err
	}
	// Then it is shut down with a short deadline: fetch stops, flush does
	// not and is aborted (the log observer reports where it is stuck).
	sctx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), w.sched.jobDeadline)
	defer cancelShutdown()
	_ = job.Shutdown(sctx) // an *AbortError, as intended: the events report it

	// A retry on the closed group is rejected: it never runs.
	job.Go("retry", func(context.Context) error { return nil })
	return nil
}

// flushOnStop is a stubborn task: it waits for work until told to stop,
// then flushes its buffers with a call that cannot be interrupted and
// takes linger, longer than the shutdown deadline it is given. Shutdown
// aborts it, reporting the stack below, and it returns linger after the
// cancel: its late exit.
func flushOnStop(ctx context.Context, linger time.Duration) error {
	<-ctx.Done()
	flushBuffers(linger)
	return nil
}

// flushBuffers stands for a blocking call that takes no context (a legacy
// client, a syscall).
func flushBuffers(d time.Duration) { time.Sleep(d) }

// sleep waits d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// tracerFrom returns a tracer of the provider behind ctx's span: tasks
// find their tracer in their context, with no global provider.
func tracerFrom(ctx context.Context) trace.Tracer {
	return demoTracer(trace.SpanFromContext(ctx).TracerProvider())
}

// demoTracer is tp's tracer for the demo's own spans. The request spans
// carry semconv's HTTP attributes, so the scope names the semconv version
// they follow (its schema URL), as telemetry's does: a backend that
// translates between versions reads it.
func demoTracer(tp trace.TracerProvider) trace.Tracer {
	return tp.Tracer(scopeName, trace.WithSchemaURL(semconv.SchemaURL))
}
