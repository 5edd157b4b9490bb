package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/runtime/runtimetest"
	"github.com/taskscope/taskscope/telemetry"
)

// The tests in this file are a service author's own tests, written inside
// testing/synctest bubbles with every observer attached (as runtime's doc
// tells them to, under "Testing with synctest"): time is the bubble's, so
// every duration, age and timestamp the four channels report is exact.

// svcObservers is everything a service test wires up, made inside the
// bubble.
type svcObservers struct {
	rec    *runtimetest.Recorder
	sr     *tracetest.SpanRecorder
	reg    *prometheus.Registry
	logs   *lockedBuffer
	stream *diagnostics.Stream

	mu       sync.Mutex
	streamed []runtime.Event // what a subscriber of the stream read
}

// lockedBuffer is a log destination shared by task goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newObservedService returns a supervisor named svc observed by telemetry
// (an SDK tracer recording in memory, a fresh registry), a log observer at
// debug, a stream with one subscriber, and a recorder. The subscriber
// reads until the test's context ends (just before its cleanups run).
func newObservedService(t *testing.T) (*runtime.Supervisor, *svcObservers) {
	t.Helper()
	o := &svcObservers{rec: &runtimetest.Recorder{}, sr: tracetest.NewSpanRecorder(), reg: prometheus.NewRegistry(), logs: &lockedBuffer{}, stream: diagnostics.NewStream()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.sr))
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithRegisterer(o.reg), telemetry.WithStreamStats(o.stream))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sup := runtime.New("svc",
		runtime.WithObserver(tel),
		runtime.WithObserver(diagnostics.NewLogObserver(logger)),
		runtime.WithObserver(o.stream),
		runtime.WithObserver(o.rec))
	sub := o.stream.Subscribe(t.Context())
	go func() {
		for ev := range sub.Events() {
			o.mu.Lock()
			o.streamed = append(o.streamed, ev)
			o.mu.Unlock()
		}
	}()
	return sup, o
}

// checkStreamAgrees: the subscriber read the events the recorder got
// (events of different goroutines may come in another order).
func (o *svcObservers) checkStreamAgrees(t *testing.T) {
	t.Helper()
	synctest.Wait() // the subscriber has read what was published
	count := func(evs []runtime.Event) map[string]int {
		m := map[string]int{}
		for _, ev := range evs {
			m[ev.Kind+" "+ev.Task]++
		}
		return m
	}
	o.mu.Lock()
	streamed := count(o.streamed)
	o.mu.Unlock()
	recorded := count(o.rec.Events())
	if len(streamed) != len(recorded) {
		t.Errorf("stream read %v, recorder got %v", streamed, recorded)
	}
	for k, n := range recorded {
		if streamed[k] != n {
			t.Errorf("%s: stream read %d, recorder got %d", k, streamed[k], n)
		}
	}
}

// spanDurations returns the durations of the ended spans named name, in
// the order they ended.
func (o *svcObservers) spanDurations(name string) []time.Duration {
	var out []time.Duration
	for _, s := range o.sr.Ended() {
		if s.Name() == name {
			out = append(out, s.EndTime().Sub(s.StartTime()))
		}
	}
	return out
}

// gauge or counter value, or a histogram's sum, of the series of name with
// the given labels.
func (o *svcObservers) metric(t *testing.T, name string, lbls map[string]string) float64 {
	t.Helper()
	mfs, err := o.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range lbls {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == k && lp.GetValue() == v
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no series %s%v", name, lbls)
	return 0
}

func durationsOf(rec *runtimetest.Recorder, kind, task string) []time.Duration {
	var out []time.Duration
	for _, ev := range rec.Events() {
		if ev.Kind == kind && ev.Task == task {
			out = append(out, ev.Duration)
		}
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A poller with Every: a run takes 2s of fake time, the second fails. The
// runs, their ages and durations are the bubble's, on every channel.
func TestSynctestServicePoller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup, o := newObservedService(t)
		start := time.Now()
		polls := 0
		sup.Every("poll", 10*time.Second, func(ctx context.Context) error {
			polls++
			select {
			case <-time.After(2 * time.Second): // the upstream's answer
			case <-ctx.Done():
				return ctx.Err()
			}
			if polls == 2 {
				return errors.New("upstream down")
			}
			return nil
		})

		time.Sleep(25 * time.Second) // runs at 0s, 12s, 24s
		synctest.Wait()
		ti := sup.Snapshot().Tasks[0]
		if ti.Runs != 3 || !ti.RunStarted.Equal(start.Add(24*time.Second)) || !ti.Started.Equal(start) {
			t.Errorf("snapshot: runs %d, run started at +%v, task at +%v; want 3, +24s, +0s", ti.Runs, ti.RunStarted.Sub(start), ti.Started.Sub(start))
		}
		if lr := ti.LastRun; lr.Run != 2 || lr.Outcome != runtime.Error || lr.Duration != 2*time.Second || !lr.Ended.Equal(start.Add(14*time.Second)) {
			t.Errorf("LastRun = %+v, want run 2 failed at +14s after 2s", lr)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sup.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 25*time.Second {
			t.Errorf("Shutdown returned at +%v, want +25s (the run in progress stops at once)", d)
		}

		want := []time.Duration{2 * time.Second, 2 * time.Second, time.Second}
		if got := durationsOf(o.rec, runtime.KindTaskRunFinished, "poll"); !equalDurations(got, want) {
			t.Errorf("run_finished durations %v, want %v", got, want)
		}
		if got := o.spanDurations("run poll"); !equalDurations(got, want) {
			t.Errorf("run span durations %v, want %v", got, want)
		}
		if got := o.metric(t, "taskscope_periodic_run_duration_seconds", map[string]string{"outcome": "success"}); got != 2 {
			t.Errorf("successful runs took %vs in the histogram, want 2", got)
		}
		if got := o.metric(t, "taskscope_task_duration_seconds", map[string]string{"task": "poll"}); got != 25 {
			t.Errorf("task duration %vs in the histogram, want 25", got)
		}
		logs := o.logs.String()
		for _, line := range []string{
			`time=2000-01-01T00:00:14.000Z level=WARN msg="periodic run failed"`,
			`error="upstream down" duration=2s`,
			`msg="task canceled"`,
		} {
			if !strings.Contains(logs, line) {
				t.Errorf("logs lack %q:\n%s", line, logs)
			}
		}
		o.checkStreamAgrees(t)
	})
}

// A worker pool fed by a channel, one job panics and one makes its worker
// ignore cancellation: the shutdown deadline passes in fake time, aborts
// it, and its goroutine's late exit is reported once it is released (it
// must be: the bubble ends only when every goroutine of it has returned).
func TestSynctestServiceShutdownAbortsStuckWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup, o := newObservedService(t)
		start := time.Now()
		jobs := make(chan int)
		hung := make(chan struct{}) // a dependency that never answers
		pool := sup.Group("pool")
		for range 3 {
			pool.Go("worker", func(ctx context.Context) error {
				for {
					select {
					case j := <-jobs:
						time.Sleep(time.Duration(j) * time.Second)
						switch j {
						case 2:
							panic("bad job")
						case 3:
							<-hung // ignores ctx
						}
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			})
		}
		for j := 1; j <= 3; j++ {
			jobs <- j
		}
		time.Sleep(time.Minute)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := sup.Shutdown(ctx)
		var ae *runtime.AbortError
		if !errors.As(err, &ae) || len(ae.Aborted) != 1 || ae.Aborted[0].Name != "worker" {
			t.Fatalf("Shutdown = %v, want one aborted worker", err)
		}
		if d := time.Since(start); d != 65*time.Second {
			t.Errorf("Shutdown returned at +%v, want +65s (its 5s deadline)", d)
		}
		if !strings.Contains(err.Error(), "(age 1m5s)") {
			t.Errorf("AbortError gives the age in bubble time: %v", err)
		}
		if sup.Abandoned() != 1 {
			t.Errorf("Abandoned = %d, want 1", sup.Abandoned())
		}
		if got := o.metric(t, "taskscope_tasks_abandoned", map[string]string{"task": "worker"}); got != 1 {
			t.Errorf("abandoned gauge %v, want 1", got)
		}
		if o := o.rec.Outcomes(); o[runtime.Panic] != 1 || o[runtime.Canceled] != 1 || o[runtime.Aborted] != 1 {
			t.Errorf("outcomes %v, want one each of panic, canceled, aborted", o)
		}
		for _, s := range o.sr.Ended() {
			if s.Name() == "task worker" && s.Status().Code == codes.Error && s.EndTime().Sub(start) == 65*time.Second {
				goto spanFound
			}
		}
		t.Errorf("no task span ended with an error at the abort, +65s")
	spanFound:

		close(hung) // let the abandoned goroutine return, as the bubble needs
		synctest.Wait()
		if sup.Abandoned() != 0 {
			t.Errorf("Abandoned after the late exit = %d", sup.Abandoned())
		}
		var lateExit runtime.Event
		for _, ev := range o.rec.Events() {
			if ev.Kind == runtime.KindTaskLateExit {
				lateExit = ev
			}
		}
		if lateExit.CancelLatency != 5*time.Second || lateExit.Duration != 65*time.Second {
			t.Errorf("late_exit: cancel latency %v, duration %v; want 5s (from the shutdown's cancel) and 1m5s", lateExit.CancelLatency, lateExit.Duration)
		}
		o.checkStreamAgrees(t)
	})
}

// A request handler fans out to two backends, tied to the request with
// WithCancelOn: the request's deadline passes in fake time and cancels the
// slow part, whose context carried that deadline.
func TestSynctestServiceFanOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup, o := newObservedService(t)
		start := time.Now()
		handle := func(req context.Context) (error, []time.Time) {
			g := sup.Group("request")
			deadlines := make([]time.Time, 2)
			for i, latency := range []time.Duration{time.Second, 10 * time.Second} {
				g.Go("backend", func(ctx context.Context) error {
					deadlines[i], _ = ctx.Deadline()
					select {
					case <-time.After(latency):
						return nil
					case <-ctx.Done():
						return context.Cause(ctx)
					}
				}, runtime.WithCancelOn(req))
			}
			if err := g.Wait(context.Background()); err != nil {
				return err, deadlines
			}
			return g.Err(), deadlines
		}

		req, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err, deadlines := handle(req)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, runtime.ErrExternal) {
			t.Errorf("handler's error %v, want the request's deadline", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("handler returned at +%v, want +3s", d)
		}
		for i, dl := range deadlines {
			if !dl.Equal(start.Add(3 * time.Second)) {
				t.Errorf("backend %d's deadline +%v, want +3s", i, dl.Sub(start))
			}
		}
		if got, want := o.spanDurations("task backend"), []time.Duration{time.Second, 3 * time.Second}; !equalDurations(got, want) {
			t.Errorf("span durations %v, want %v", got, want)
		}
		if got := o.metric(t, "taskscope_task_cancel_latency_seconds", map[string]string{"task": "backend"}); got != 0 {
			t.Errorf("cancel latency %vs, want 0 (the backend stopped at once)", got)
		}
		ctx, cancelShutdown := context.WithTimeout(context.Background(), time.Second)
		defer cancelShutdown()
		if err := sup.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		o.checkStreamAgrees(t)
	})
}
