package telemetry

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestHistogramMatchesClientGolang observes the same durations in a
// histogram and in a client_golang histogram with the same classic buckets
// and a native bucket factor giving the same schema, and compares what a
// scrape sees: count, sum, classic buckets, schema, zero bucket, spans and
// deltas. The "bounds" case observes each classic bound and its neighbours:
// a bucket holds its upper bound (le).
func TestHistogramMatchesClientGolang(t *testing.T) {
	var atBounds []time.Duration
	for _, b := range durationBuckets {
		d := time.Duration(b * float64(time.Second))
		atBounds = append(atBounds, d-1, d, d, d+1)
	}
	cases := []struct {
		name   string
		n      int
		spread float64         // log10 of the largest duration in ns
		factor float64         // client_golang's bucket factor for the schema expected
		ds     []time.Duration // observed instead of n random durations
	}{
		{"bounds", 0, 0, 1.1, atBounds},
		{"few", 20, 4, 1.1, nil},
		{"nanoseconds-to-100µs", 3000, 5, 1.1, nil},        // 133 buckets at schema 3
		{"nanoseconds-to-seconds", 3000, 9, 1.2, nil},      // 240 at schema 3, 120 at 2
		{"nanoseconds-to-31-years", 5000, 18, 1.5, nil},    // 240 at schema 2, 120 at 1
		{"nanoseconds-to-250-years", 5000, 18.9, 1.5, nil}, // up to the largest Duration
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(c.n), 7))
			vec := newHistogramVec("h_seconds", "h", durationBuckets, nil, "l")
			h := vec.with("x")
			ref := prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "h_seconds", Help: "h", Buckets: durationBuckets,
				NativeHistogramBucketFactor: c.factor, NativeHistogramZeroThreshold: prometheus.DefNativeHistogramZeroThreshold,
			})
			ds := c.ds
			for i := range c.n {
				d := time.Duration(pow10(rng.Float64() * c.spread))
				if i%97 == 0 {
					d = 0
				}
				ds = append(ds, d)
			}
			for _, d := range ds {
				h.observe(d)
				ref.Observe(d.Seconds())
			}
			got, want := writeHistogram(t, histogramMetric{h}), writeHistogram(t, ref)
			if got.GetSchema() != want.GetSchema() {
				t.Fatalf("schema %d, want %d", got.GetSchema(), want.GetSchema())
			}
			if got.GetSampleCount() != want.GetSampleCount() || got.GetZeroCount() != want.GetZeroCount() {
				t.Errorf("count %d, zero %d; want %d, %d", got.GetSampleCount(), got.GetZeroCount(), want.GetSampleCount(), want.GetZeroCount())
			}
			if diff := got.GetSampleSum() - want.GetSampleSum(); diff > 1e-6*want.GetSampleSum() || diff < -1e-6*want.GetSampleSum() {
				t.Errorf("sum %g, want %g", got.GetSampleSum(), want.GetSampleSum())
			}
			for i, b := range want.Bucket {
				if g := got.Bucket[i]; g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
					t.Errorf("classic bucket %d: le=%g count %d, want le=%g count %d", i, g.GetUpperBound(), g.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
				}
			}
			if !proto.Equal(&dto.Histogram{PositiveSpan: got.PositiveSpan, PositiveDelta: got.PositiveDelta},
				&dto.Histogram{PositiveSpan: want.PositiveSpan, PositiveDelta: want.PositiveDelta}) {
				t.Errorf("native buckets differ:\ngot  %v %v\nwant %v %v", got.PositiveSpan, got.PositiveDelta, want.PositiveSpan, want.PositiveDelta)
			}
		})
	}
}

func pow10(x float64) float64 {
	v := 1.0
	for ; x >= 1; x-- {
		v *= 10
	}
	return v * (1 + 9*x) // a rough 10^x, enough to spread the values
}

func writeHistogram(t *testing.T, m prometheus.Metric) *dto.Histogram {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.Histogram
}

// TestHistogramScrapeIsConsistent scrapes while observing: no classic
// bucket ever exceeds the count, and the count is the native buckets' sum.
func TestHistogramScrapeIsConsistent(t *testing.T) {
	h := newHistogramVec("h_seconds", "h", durationBuckets, nil).with()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
					h.observe(time.Duration(i%5000+w) * time.Microsecond)
				}
			}
		})
	}
	for range 200 {
		his := writeHistogram(t, histogramMetric{h})
		var native uint64
		var prev int64
		for _, d := range his.PositiveDelta {
			prev += d
			native += uint64(prev)
		}
		if native+his.GetZeroCount() != his.GetSampleCount() {
			t.Fatalf("native buckets hold %d, zero %d, count %d", native, his.GetZeroCount(), his.GetSampleCount())
		}
		for _, b := range his.Bucket {
			if b.GetCumulativeCount() > his.GetSampleCount() {
				t.Fatalf("bucket le=%g holds %d > count %d", b.GetUpperBound(), b.GetCumulativeCount(), his.GetSampleCount())
			}
		}
	}
	close(stop)
	wg.Wait()
}

// TestNativeBucketBoundsMatchClientGolang: durations that land exactly on
// (or an ulp from) a schema-3 bucket bound go to the bucket client_golang
// (and Prometheus, whose bounds are the same table) puts them in. The
// bounds computed with math.Exp2 are an ulp off client_golang's for three
// of the eight fractions, so such a value went one bucket lower.
func TestNativeBucketBoundsMatchClientGolang(t *testing.T) {
	vec := newHistogramVec("h_seconds", "h", durationBuckets, nil, "l")
	for i := range 1 << nativeSchema {
		for _, b := range []float64{math.Exp2(float64(i)/(1<<nativeSchema) - 1), schema3Bounds[i]} {
			for _, frac := range []float64{math.Nextafter(b, 0), b, math.Nextafter(b, 1)} {
				for e := -20; e <= 33; e++ {
					target := math.Ldexp(frac, e)
					c := int64(math.Round(target * 1e9))
					for d := time.Duration(c - 3); d <= time.Duration(c+3); d++ {
						if d <= 0 || d.Seconds() != target {
							continue
						}
						h := vec.with(d.String())
						h.observe(d)
						ref := prometheus.NewHistogram(prometheus.HistogramOpts{
							Name: "h_seconds", Help: "h", Buckets: durationBuckets,
							NativeHistogramBucketFactor: 1.1, NativeHistogramZeroThreshold: prometheus.DefNativeHistogramZeroThreshold,
						})
						ref.Observe(d.Seconds())
						got, want := writeHistogram(t, histogramMetric{h}), writeHistogram(t, ref)
						if got.GetSchema() != want.GetSchema() || got.PositiveSpan[0].GetOffset() != want.PositiveSpan[0].GetOffset() {
							t.Errorf("%d ns (%v s, fraction %v): schema %d bucket %d, client_golang schema %d bucket %d",
								int64(d), d.Seconds(), frac, got.GetSchema(), got.PositiveSpan[0].GetOffset(), want.GetSchema(), want.PositiveSpan[0].GetOffset())
						}
					}
				}
			}
		}
	}
}
