package telemetry

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// histogramVec is a family of duration histograms whose series carry
// classic buckets and a native histogram together, as a client_golang
// histogram with NativeHistogramBucketFactor does, but observed in whole
// nanoseconds with one atomic add per bucket and one for the sum: every
// task ends with an observation, and client_golang's (a hot/cold count
// swap, a compare-and-swap loop on the float sum and a sync.Map lookup per
// native bucket) cost more than the rest of the metrics together.
//
// The native histogram starts at schema 3 (buckets 2^(1/8) ≈ 9 % wide)
// and is exposed at a coarser schema when more than maxNativeBuckets are
// populated. Counts never reset.
type histogramVec struct {
	desc   *prometheus.Desc
	bounds []float64       // classic upper bounds, seconds
	ns     []time.Duration // the same, as durations

	mu       sync.Mutex            // guards children
	children map[string]*histogram // by label values joined with "\xff"
}

// bucketLabel is the label the exposition gives classic buckets' bounds.
const bucketLabel = "le"

const (
	nativeSchema     = 3
	maxNativeBuckets = 160 // per series, as client_golang's NativeHistogramMaxBucketNumber

	// Native bucket keys at schema 3 of every positive time.Duration: from
	// 1 ns (key -240) to 2^63 ns (key 266), in chunks made on first use so
	// that a series holds only the ranges its tasks take.
	keyMin    = -256
	chunkSize = 64
	chunks    = 9 // (266 - keyMin) / chunkSize, rounded up
)

// schema3Bounds are the fractions (of a power of two) at which schema 3
// buckets end: 2^(i/8 - 1), written out as client_golang's table has them
// (and Prometheus's, which computes the bucket bounds it shows from the
// same values). math.Exp2 is an ulp off for three of them, which put a
// duration whose fraction fell on that ulp one bucket lower.
var schema3Bounds = [1 << nativeSchema]float64{
	0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048,
	0.7071067811865475, 0.7711054127039704, 0.8408964152537144, 0.9170040432046711,
}

func newHistogramVec(name, help string, bounds []float64, constLabels prometheus.Labels, labels ...string) *histogramVec {
	v := &histogramVec{
		desc:     prometheus.NewDesc(name, help, labels, constLabels),
		bounds:   bounds,
		children: map[string]*histogram{},
	}
	for _, b := range bounds {
		v.ns = append(v.ns, time.Duration(b*float64(time.Second)))
	}
	return v
}

// with returns the series of the label values, making it on first use.
// Safe for concurrent use; hot paths keep the result.
func (v *histogramVec) with(labelValues ...string) *histogram {
	key := strings.Join(labelValues, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.children[key]
	if h == nil {
		h = &histogram{
			vec:       v,
			labels:    prometheus.MakeLabelPairs(v.desc, labelValues),
			created:   time.Now(),
			classic:   make([]atomic.Uint64, len(v.bounds)+1),
			exemplars: make([]exemplarSlot, len(v.bounds)+1),
		}
		v.children[key] = h
	}
	return h
}

// Describe implements [prometheus.Collector].
func (v *histogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements [prometheus.Collector].
func (v *histogramVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	all := make([]*histogram, 0, len(v.children))
	for _, h := range v.children {
		all = append(all, h)
	}
	v.mu.Unlock()
	for _, h := range all {
		ch <- histogramMetric{h}
	}
}

// histogram is one series.
type histogram struct {
	vec     *histogramVec
	labels  []*dto.LabelPair
	created time.Time

	// Observations are counted in the native buckets first and in the
	// classic ones second, and a scrape reads them the other way round, so
	// that no classic bucket ever exceeds the count (read from the native
	// buckets).
	zero    atomic.Uint64 // observations of 0 (the native zero bucket)
	native  [chunks]atomic.Pointer[[chunkSize]atomic.Uint64]
	classic []atomic.Uint64 // per bucket, not cumulative; +Inf last

	// The sum in nanoseconds is sumWraps × 2⁶⁴ + sum: 2⁶⁴ ns is 584 years
	// of task time, which a busy service adds up in months.
	sum, sumWraps atomic.Uint64

	exemplars []exemplarSlot // per classic bucket, +Inf last
}

// exemplarSlot is a classic bucket's latest exemplar, and when it was
// taken, for the rate limit (see exemplarInterval).
type exemplarSlot struct {
	at atomic.Int64 // unix ns
	e  atomic.Pointer[dto.Exemplar]
}

// exemplarInterval is the shortest time between two exemplars of one
// histogram bucket. Prometheus exposes one exemplar per classic bucket, so
// more than one a second per bucket only costs: building one allocates a
// dozen objects. Rare buckets (the slow outliers worth a click) still get
// theirs, since the limit is per bucket.
const exemplarInterval = int64(time.Second)

// observe records d (negative durations count as 0).
func (h *histogram) observe(d time.Duration) { h.observeClassic(h.observeNative(d)) }

// observeTraced records d with span's trace ID as an exemplar when span
// (nil for none) is sampled and recording, and the bucket has had no
// exemplar for a second, so that a latency outlier on a dashboard leads to
// its trace. A span that is not recording (no SDK installed) may carry its
// parent's sampled context: a trace this process never recorded.
// IsRecording, which takes the span's lock, is asked only when an exemplar
// is due. now is the event's time: no clock read.
func (h *histogram) observeTraced(d time.Duration, span trace.Span, now time.Time) {
	d = h.observeNative(d)
	i := h.observeClassic(d)
	if span == nil {
		return
	}
	sc := span.SpanContext()
	if !sc.IsSampled() {
		return
	}
	slot := &h.exemplars[i]
	ns, last := now.UnixNano(), slot.at.Load()
	if ns-last >= exemplarInterval && span.IsRecording() && slot.at.CompareAndSwap(last, ns) {
		name, id, v := "trace_id", sc.TraceID().String(), d.Seconds()
		slot.e.Store(&dto.Exemplar{
			Label:     []*dto.LabelPair{{Name: &name, Value: &id}},
			Value:     &v,
			Timestamp: timestamppb.New(now),
		})
	}
}

// observeNative counts d in its native bucket and the sum, and returns it
// (0 if it was negative).
func (h *histogram) observeNative(d time.Duration) time.Duration {
	if d <= 0 {
		h.zero.Add(1)
		return 0
	}
	k := nativeKey(d) - keyMin
	c := h.native[k/chunkSize].Load()
	if c == nil {
		c = h.makeChunk(k / chunkSize)
	}
	c[k%chunkSize].Add(1)
	if h.sum.Add(uint64(d)) < uint64(d) {
		h.sumWraps.Add(1)
	}
	return d
}

// observeClassic counts d in its classic bucket and returns the bucket.
func (h *histogram) observeClassic(d time.Duration) int {
	i := 0
	for i < len(h.vec.ns) && d > h.vec.ns[i] { // upper bounds are inclusive
		i++
	}
	h.classic[i].Add(1)
	return i
}

//go:noinline
func (h *histogram) makeChunk(i int) *[chunkSize]atomic.Uint64 {
	h.native[i].CompareAndSwap(nil, new([chunkSize]atomic.Uint64))
	return h.native[i].Load()
}

// nativeKey is the schema-3 bucket of d > 0: the bucket with upper bound
// 2^(key/8) seconds holds values in (2^((key-1)/8), 2^(key/8)].
func nativeKey(d time.Duration) int {
	frac, exp := math.Frexp(d.Seconds()) // d = frac × 2^exp, frac in [0.5, 1)
	return sort.SearchFloat64s(schema3Bounds[:], frac) + (exp-1)<<nativeSchema
}

// histogramMetric is a scrape of one series.
type histogramMetric struct{ h *histogram }

func (m histogramMetric) Desc() *prometheus.Desc { return m.h.vec.desc }

func (m histogramMetric) Write(out *dto.Metric) error {
	h := m.h
	out.Label = h.labels
	his := &dto.Histogram{CreatedTimestamp: timestamppb.New(h.created)}
	out.Histogram = his

	// Classic first: see histogram.
	cum := make([]uint64, len(h.classic))
	var n uint64
	for i := range h.classic {
		n += h.classic[i].Load()
		cum[i] = n
	}
	buckets := map[int]int64{}
	zero := h.zero.Load()
	count := zero
	for c := range h.native {
		if p := h.native[c].Load(); p != nil {
			for i := range p {
				if v := p[i].Load(); v > 0 {
					buckets[c*chunkSize+i+keyMin] = int64(v)
					count += v
				}
			}
		}
	}
	his.SampleCount = &count
	his.SampleSum = new((float64(h.sumWraps.Load())*(1<<64) + float64(h.sum.Load())) / float64(time.Second))

	for i, bound := range h.vec.bounds {
		his.Bucket = append(his.Bucket, &dto.Bucket{
			CumulativeCount: &cum[i],
			UpperBound:      &bound,
			Exemplar:        h.exemplars[i].e.Load(),
		})
	}
	if e := h.exemplars[len(h.vec.bounds)].e.Load(); e != nil { // +Inf: only with an exemplar
		his.Bucket = append(his.Bucket, &dto.Bucket{CumulativeCount: &count, UpperBound: new(math.Inf(1)), Exemplar: e})
	}
	for _, b := range his.Bucket {
		if b.Exemplar != nil {
			his.Exemplars = append(his.Exemplars, b.Exemplar)
		}
	}

	schema := int32(nativeSchema)
	for len(buckets) > maxNativeBuckets && schema > -4 {
		buckets, schema = halveResolution(buckets), schema-1
	}
	his.Schema = &schema
	his.ZeroThreshold = new(prometheus.DefNativeHistogramZeroThreshold)
	his.ZeroCount = &zero
	his.PositiveSpan, his.PositiveDelta = encodeBuckets(buckets)
	return nil
}

// halveResolution merges the buckets of one schema into those of the next
// coarser one: bucket k becomes bucket ceil(k/2).
func halveResolution(buckets map[int]int64) map[int]int64 {
	out := make(map[int]int64, len(buckets)/2+1)
	for k, v := range buckets {
		out[(k+1)>>1] += v // an arithmetic shift: floor((k+1)/2) = ceil(k/2)
	}
	return out
}

// encodeBuckets returns the native histogram spans and deltas of buckets.
// Gaps of up to two empty buckets are encoded inside a span, as
// client_golang does; an empty histogram gets one empty span, so that a
// scraper still sees a native histogram.
func encodeBuckets(buckets map[int]int64) ([]*dto.BucketSpan, []int64) {
	if len(buckets) == 0 {
		return []*dto.BucketSpan{{Offset: new(int32(0)), Length: new(uint32(0))}}, nil
	}
	keys := slices.Sorted(maps.Keys(buckets))
	var (
		spans  []*dto.BucketSpan
		deltas []int64
		prev   int64
		next   int
	)
	for i, k := range keys {
		if gap := k - next; i == 0 || gap > 2 {
			spans = append(spans, &dto.BucketSpan{Offset: new(int32(gap)), Length: new(uint32(0))})
		} else {
			for range gap {
				*spans[len(spans)-1].Length++
				deltas = append(deltas, -prev)
				prev = 0
			}
		}
		*spans[len(spans)-1].Length++
		deltas = append(deltas, buckets[k]-prev)
		prev, next = buckets[k], k+1
	}
	return spans, deltas
}
