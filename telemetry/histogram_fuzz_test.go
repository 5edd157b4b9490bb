package telemetry

import (
	"encoding/binary"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// FuzzHistogramMatchesClientGolang observes the same durations in a
// histogram and in client_golang's with the same classic buckets, native
// schema 3 (bucket factor 1.1) and at most maxNativeBuckets buckets, and
// compares the scrapes: count, zero bucket, classic buckets, schema, spans
// and deltas must be equal, the sum equal up to float rounding.
//
// raw is read as little-endian int64 durations (any sign: negative ones
// count as 0); base, ratio and n add a geometric series base×(1+ratio/1000)^i
// of n durations, so that a run can populate more than maxNativeBuckets
// buckets and make both reduce the resolution.
func FuzzHistogramMatchesClientGolang(f *testing.F) {
	le := func(vs ...int64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
		return b
	}
	f.Add(le(1, 2, 3, 0, -5), int64(0), uint16(0), uint16(0))
	f.Add(le(int64(time.Second), int64(time.Millisecond), math.MaxInt64, math.MinInt64), int64(1), uint16(50), uint16(400))
	f.Add(le(1090507733, 1189207115, 1296839554, 1414213562, 1542210825, 1681792830, 1834008086), int64(1000), uint16(1), uint16(300))
	f.Add([]byte{}, int64(time.Hour), uint16(1000), uint16(200))
	f.Add([]byte{}, int64(0), uint16(0), uint16(0)) // empty
	f.Fuzz(func(t *testing.T, raw []byte, base int64, ratio, n uint16) {
		var ds []time.Duration
		for ; len(raw) >= 8; raw = raw[8:] {
			ds = append(ds, time.Duration(binary.LittleEndian.Uint64(raw)))
		}
		if base > 0 && ratio > 0 {
			x := float64(base)
			for range min(n, 1000) {
				if x >= math.MaxInt64 {
					break
				}
				ds = append(ds, time.Duration(x))
				x *= 1 + float64(ratio)/1000
			}
		}
		h := newHistogramVec("h_seconds", "h", durationBuckets, nil).with()
		ref := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "h_seconds", Help: "h", Buckets: durationBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramZeroThreshold:    prometheus.DefNativeHistogramZeroThreshold,
			NativeHistogramMaxBucketNumber:  maxNativeBuckets,
			NativeHistogramMinResetDuration: 0, // reduce the resolution rather than reset
		})
		var wantSum float64
		for _, d := range ds {
			h.observe(d)
			s := max(d, 0).Seconds()
			ref.Observe(s)
			wantSum += s
		}
		got, want := writeHistogram(t, histogramMetric{h}), writeHistogram(t, ref)
		// client_golang halves the resolution once when an observation
		// takes the populated buckets over the limit, and may be left above
		// it; the histogram halves as often as its limit needs, at the
		// scrape. Its buckets are client_golang's, at a schema no finer,
		// and coarser only while client_golang's are over the limit.
		gotB, wantB := decodeNative(got), decodeNative(want)
		if got.GetSchema() > want.GetSchema() || got.GetSchema() < -4 {
			t.Fatalf("schema %d, want %d (%d durations)", got.GetSchema(), want.GetSchema(), len(ds))
		}
		if len(gotB) > maxNativeBuckets && got.GetSchema() > -4 {
			t.Errorf("%d native buckets at schema %d: over the limit %d", len(gotB), got.GetSchema(), maxNativeBuckets)
		}
		for sc := want.GetSchema(); sc > got.GetSchema(); sc-- {
			if len(wantB) <= maxNativeBuckets {
				t.Errorf("schema %d, but client_golang's %d buckets at schema %d are within the limit", got.GetSchema(), len(wantB), sc)
			}
			wantB = coarser(wantB)
		}
		if !maps.Equal(gotB, wantB) {
			t.Errorf("native buckets differ at schema %d:\ngot  %v\nwant %v", got.GetSchema(), gotB, wantB)
		}
		if got.GetSampleCount() != want.GetSampleCount() || got.GetZeroCount() != want.GetZeroCount() {
			t.Errorf("count %d, zero %d; want %d, %d", got.GetSampleCount(), got.GetZeroCount(), want.GetSampleCount(), want.GetZeroCount())
		}
		if diff := math.Abs(got.GetSampleSum() - wantSum); diff > 1e-9*wantSum+1e-9 {
			t.Errorf("sum %g, want %g", got.GetSampleSum(), wantSum)
		}
		for i, b := range want.Bucket {
			if g := got.Bucket[i]; g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
				t.Errorf("classic bucket %d: le=%g count %d, want le=%g count %d", i, g.GetUpperBound(), g.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
		if len(want.PositiveSpan) == 0 && len(got.PositiveSpan) == 1 && got.PositiveSpan[0].GetLength() == 0 {
			// No positive observation: encodeBuckets gives one empty span
			// on purpose, so that a scraper still sees a native histogram,
			// where client_golang gives none (its zero threshold says so).
			got.PositiveSpan = nil
		}
		if got.GetSchema() == want.GetSchema() && !proto.Equal(&dto.Histogram{PositiveSpan: got.PositiveSpan, PositiveDelta: got.PositiveDelta},
			&dto.Histogram{PositiveSpan: want.PositiveSpan, PositiveDelta: want.PositiveDelta}) {
			t.Errorf("native buckets differ for %v:\ngot  %v %v\nwant %v %v", ds[:min(len(ds), 8)], got.PositiveSpan, got.PositiveDelta, want.PositiveSpan, want.PositiveDelta)
		}
	})
}

// decodeNative returns the positive native buckets of h, by key.
func decodeNative(h *dto.Histogram) map[int]int64 {
	out := map[int]int64{}
	var k int
	var count int64
	i := 0
	for _, sp := range h.PositiveSpan {
		k += int(sp.GetOffset())
		for range sp.GetLength() {
			count += h.PositiveDelta[i]
			if count != 0 {
				out[k] = count
			}
			i, k = i+1, k+1
		}
	}
	return out
}

// coarser returns buckets at the next coarser schema: bucket k, with upper
// bound 2^(k/2^s), falls in the one whose bound is 2^(ceil(k/2)/2^(s-1)).
func coarser(buckets map[int]int64) map[int]int64 {
	out := map[int]int64{}
	for k, v := range buckets {
		out[int(math.Ceil(float64(k)/2))] += v
	}
	return out
}
