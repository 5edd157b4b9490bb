package e2e

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/taskscope/taskscope/dashboards"
	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
	"github.com/taskscope/taskscope/telemetry"
)

// TestDashboardMetricsAreTelemetrys checks the dashboards' metric list
// against what telemetry really exports after a workload that touches
// every metric: same names, types and label names, in both directions.
func TestDashboardMetricsAreTelemetrys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		stream := diagnostics.NewStream()
		tel, err := telemetry.New(telemetry.WithTracerProvider(nil), telemetry.WithRegisterer(reg), telemetry.WithStreamStats(stream))
		if err != nil {
			t.Fatal(err)
		}
		sup := runtime.New("m", runtime.WithObserver(tel), runtime.WithObserver(stream))
		g := sup.Group("g")
		g.Go("ok", func(context.Context) error { return nil })
		g.Go("fail", func(context.Context) error { return errors.New("x") })
		g.Go("cancel", func(ctx context.Context) error { <-ctx.Done(); return nil }).Cancel(nil)
		g.Every("tick", time.Millisecond, func(context.Context) error { return runtime.ErrStop })
		release := make(chan struct{})
		g.Go("stuck", func(context.Context) error { <-release; return nil })
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		_ = sup.Shutdown(ctx)
		sup.Go("rejected", func(context.Context) error { return nil })
		close(release)
		// The periodic gauges are exported while a periodic task lives.
		live := runtime.New("n", runtime.WithObserver(tel))
		live.Every("live", time.Hour, func(context.Context) error { return nil })
		defer live.Shutdown(context.Background())
		synctest.Wait()

		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		exported := map[string]*dto.MetricFamily{}
		for _, mf := range mfs {
			exported[mf.GetName()] = mf
		}
		listed := map[string]bool{}
		for _, m := range dashboards.Metrics {
			listed[m.Name] = true
			mf, ok := exported[m.Name]
			if !ok {
				t.Errorf("dashboards list %s; telemetry does not export it", m.Name)
				continue
			}
			if got := dto.MetricType_name[int32(mf.GetType())]; !typeMatches(m.Type, got) {
				t.Errorf("%s: dashboards say %s, telemetry exports %s", m.Name, m.Type, got)
			}
			if got := labelNames(mf); !slices.Equal(got, sorted(m.Labels)) {
				t.Errorf("%s: dashboards list labels %v, telemetry exports %v", m.Name, m.Labels, got)
			}
		}
		for name := range exported {
			if !listed[name] {
				t.Errorf("telemetry exports %s; the dashboards' list lacks it", name)
			}
		}
	})
}

func typeMatches(want dashboards.MetricType, got string) bool {
	switch want {
	case dashboards.Counter:
		return got == "COUNTER"
	case dashboards.Gauge:
		return got == "GAUGE"
	case dashboards.Histogram:
		return got == "HISTOGRAM"
	}
	return false
}

func labelNames(mf *dto.MetricFamily) []string {
	var names []string
	if len(mf.GetMetric()) > 0 {
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			names = append(names, lp.GetName())
		}
	}
	return sorted(names)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
