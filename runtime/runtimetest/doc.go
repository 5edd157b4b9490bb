// Package runtimetest provides an in-memory [runtime.Observer] for tests
// of code that uses taskscope, in the manner of OTel's tracetest.
//
// # With testing/synctest
//
// A test of a service's periodic or long-running tasks runs in a
// testing/synctest bubble, where time is fake: it sleeps through hours of
// runs at once, and the times and durations the events carry are exact.
// Once synctest.Wait returns, every task is blocked, and the events of
// what it did are recorded. The supervisor is made in the bubble and
// shut down before the bubble ends, from a t.Cleanup with a fresh
// timeout (see "Testing with synctest" in package runtime):
//
//	synctest.Test(t, func(t *testing.T) {
//		var rec runtimetest.Recorder
//		sup := runtime.New("app", runtime.WithObserver(&rec))
//		t.Cleanup(func() {
//			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//			defer cancel()
//			if err := sup.Shutdown(ctx); err != nil {
//				t.Error(err)
//			}
//		})
//		start := time.Now()
//		sup.Every("poll", 10*time.Minute, func(context.Context) error {
//			time.Sleep(time.Second) // the upstream's answer
//			return nil
//		})
//
//		time.Sleep(25 * time.Minute) // runs at 0, 10m1s and 20m2s
//		synctest.Wait()
//		var runs []time.Duration
//		for _, ev := range rec.Events() {
//			if ev.Kind == runtime.KindTaskRunFinished {
//				runs = append(runs, ev.Time.Sub(start))
//			}
//		}
//		if want := []time.Duration{time.Second, 10*time.Minute + 2*time.Second, 20*time.Minute + 3*time.Second}; !slices.Equal(runs, want) {
//			t.Errorf("runs ended at %v, want %v", runs, want)
//		}
//	})
package runtimetest
