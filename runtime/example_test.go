package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

func Example() {
	sup := runtime.New("app")
	ingest := sup.Group("ingest")

	fetch := ingest.Go("fetch", func(ctx context.Context) error {
		return nil // real work here, honouring ctx
	})
	consumer := ingest.Go("consumer", func(ctx context.Context) error {
		<-ctx.Done() // runs until shutdown
		return ctx.Err()
	})
	<-fetch.Done()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := sup.Shutdown(ctx)

	fmt.Println(fetch.Name(), fetch.Result().Outcome)
	fmt.Println(consumer.Name(), consumer.Result().Outcome, errors.Is(consumer.Result().Cause, runtime.ErrClosed))
	fmt.Println("shutdown:", err)
	// Output:
	// fetch success
	// consumer canceled true
	// shutdown: <nil>
}

func ExampleGroup_Every() {
	sup := runtime.New("app")
	runs := 0
	task := sup.Every("compact", time.Millisecond, func(ctx context.Context) error {
		runs++
		if runs == 3 {
			return runtime.ErrStop // done: ends the task with outcome success
		}
		return nil
	})
	<-task.Done()
	fmt.Println(runs, task.Result().Outcome)
	// Output: 3 success
}

// A fail-fast group is errgroup.WithContext: the first failure cancels the
// siblings, and Err returns it once Wait has seen the group idle.
func ExampleGroup_Err() {
	sup := runtime.New("app")
	g := sup.Group("fetch", runtime.CancelOnError())
	g.Go("users", func(ctx context.Context) error {
		return errors.New("users: connection refused")
	})
	g.Go("orders", func(ctx context.Context) error {
		<-ctx.Done() // canceled by the failure of users
		return ctx.Err()
	})
	if err := g.Wait(context.Background()); err != nil {
		fmt.Println("wait:", err)
	}
	fmt.Println(g.Err())

	// A group lives in a tree. One made per batch leaves it as garbage
	// once dropped, or at once when shut down: after Wait, Shutdown
	// returns at once.
	_ = g.Shutdown(context.Background())
	fmt.Println("groups left:", len(sup.Snapshot().Groups))
	// Output:
	// taskscope: task app.fetch/users#1 failed: users: connection refused
	// groups left: 0
}

// A group per request, used as an errgroup: Wait, then Err. Once the
// supervisor is shut down, the request's tasks are refused, never run,
// and Err says so.
func ExampleGroup_Err_perRequest() {
	sup := runtime.New("api")
	handle := func(ctx context.Context) error {
		g := sup.Group("request")
		g.Go("users", func(context.Context) error { return nil })
		g.Go("orders", func(context.Context) error { return errors.New("orders: timeout") })
		if err := g.Wait(ctx); err != nil {
			return err
		}
		return g.Err()
	}
	fmt.Println(handle(context.Background()))

	_ = sup.Shutdown(context.Background())
	err := handle(context.Background())
	fmt.Println(errors.Is(err, runtime.ErrClosed))
	// Output:
	// taskscope: task api.request/orders#2 failed: orders: timeout
	// true
}

func ExampleGroup_Shutdown() {
	sup := runtime.New("app")
	release := make(chan struct{})
	sup.Group("legacy").Go("stubborn", func(context.Context) error {
		<-release // ignores cancellation
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := sup.Shutdown(ctx)

	var ae *runtime.AbortError
	if errors.As(err, &ae) {
		for _, t := range ae.Aborted {
			fmt.Println("aborted:", t.Group, t.Name, t.State)
		}
	}
	fmt.Println("abandoned:", sup.Abandoned())
	close(release)
	// Output:
	// aborted: app.legacy stubborn abandoned
	// abandoned: 1
}

// Cancel stops one task and says why: fn sees the cause through
// context.Cause, and so does its Result.
func ExampleTask_Cancel() {
	sup := runtime.New("app")
	errReload := errors.New("config reloaded")
	task := sup.Go("watch", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	task.Cancel(errReload)
	<-task.Done()

	res := task.Result()
	fmt.Println(res.Outcome, res.Cause == errReload)
	// Output: canceled true
}

// WithCancelOn ties a task to a request's context: the task is canceled
// when the request ends, and the cause says why. Its ctx.Err() is
// context.Canceled even when the request timed out: the cause tells.
func ExampleWithCancelOn() {
	sup := runtime.New("api")
	req, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()

	task := sup.Go("render", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}, runtime.WithCancelOn(req))
	<-task.Done()

	res := task.Result()
	fmt.Println(res.Outcome, res.Err)
	fmt.Println(errors.Is(res.Cause, runtime.ErrExternal), errors.Is(res.Cause, context.DeadlineExceeded))
	// Output:
	// canceled context canceled
	// true true
}

// Wait reports whether a subtree went idle in time; it cancels nothing, so
// a task still running after a timed-out Wait goes on.
func ExampleGroup_Wait() {
	sup := runtime.New("app")
	jobs := sup.Group("jobs")
	release := make(chan struct{})
	jobs.Go("report", func(context.Context) error {
		<-release
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := jobs.Wait(ctx)
	var te *runtime.TimeoutError
	if errors.As(err, &te) {
		for _, t := range te.Active {
			fmt.Println("still active:", t.Group, t.Name, t.State)
		}
	}
	fmt.Println("deadline:", errors.Is(err, context.DeadlineExceeded))

	close(release)
	fmt.Println("wait:", jobs.Wait(context.Background()))
	// Output:
	// still active: app.jobs report running
	// deadline: true
	// wait: <nil>
}

// Snapshot is what a debug page or a health check reads: the tree, each
// live task's state, and counts for the whole subtree.
func ExampleGroup_Snapshot() {
	sup := runtime.New("app")
	release := make(chan struct{})
	ingest := sup.Group("ingest")
	ingest.Go("consumer", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	flush := ingest.Go("flush", func(context.Context) error {
		<-release // finishes its batch before it heeds a cancel
		return nil
	})
	flush.Cancel(errors.New("draining"))

	snap := sup.Snapshot()
	fmt.Println("running:", snap.Running, "canceling:", snap.Canceling)
	for _, g := range snap.Groups {
		for _, t := range g.Tasks {
			fmt.Println(g.Name, t.Name, t.State)
		}
	}

	close(release)
	_ = sup.Shutdown(context.Background())
	// Output:
	// running: 1 canceling: 1
	// app.ingest consumer running
	// app.ingest flush canceling
}

type requestIDKey struct{}

// WithParent carries a request's values (its trace span, its ID) into a
// task that outlives it; WithCancelOn, not WithParent, would tie the task
// to the request's end.
func ExampleWithParent() {
	sup := runtime.New("api")
	req, cancel := context.WithCancel(context.WithValue(context.Background(), requestIDKey{}, "r-42"))
	task := sup.Go("audit", func(ctx context.Context) error {
		<-req.Done() // the request has ended...
		fmt.Println("request id:", ctx.Value(requestIDKey{}), "canceled:", ctx.Err() != nil)
		return nil
	}, runtime.WithParent(req))
	cancel()
	<-task.Done()
	fmt.Println(task.Result().Outcome)
	// Output:
	// request id: r-42 canceled: false
	// success
}
