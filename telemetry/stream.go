package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StreamStats is what a diagnostic event stream reports about itself;
// diagnostics.Stream implements it. It is an interface so that the
// diagnostics package stays free of Prometheus and this one free of
// diagnostics: cmd/demo wires them with [WithStreamStats].
//
// The methods are read at scrape time, from the scraping goroutine, so
// they must be safe for concurrent use and cheap: a counter read, not a
// computation (diagnostics.Stream reads its own under a short lock).
type StreamStats interface {
	// Published counts the events the stream has accepted.
	Published() uint64
	// Dropped counts the events lost across all subscribers (drop-oldest
	// on a full buffer).
	Dropped() uint64
	// Subscribers is the number of open subscriptions.
	Subscribers() int
}

// streamMetrics exports a StreamStats as const metrics at scrape time:
// the stream keeps the counts, so there is nothing to update per event.
// The counters carry a created timestamp, the time they were set up (New),
// as client_golang's own counters do: a Prometheus that ingests it adds a
// zero sample there, so that rate() counts the events published before the
// first scrape. (Events a stream published before New fall after that
// zero too: make the stream and the Telemetry before the supervisor.)
type streamMetrics struct {
	s                            StreamStats
	events, dropped, subscribers *prometheus.Desc
	created                      time.Time
}

func newStreamMetrics(s StreamStats, constLabels prometheus.Labels) *streamMetrics {
	return &streamMetrics{
		s:           s,
		created:     time.Now(),
		events:      prometheus.NewDesc("taskscope_stream_events_total", "Events published to the diagnostic stream.", nil, constLabels),
		dropped:     prometheus.NewDesc("taskscope_stream_dropped_total", "Diagnostic stream events dropped across all subscribers because a subscriber's buffer was full.", nil, constLabels),
		subscribers: prometheus.NewDesc("taskscope_stream_subscribers", "Open diagnostic stream subscriptions.", nil, constLabels),
	}
}

func (m *streamMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.events
	ch <- m.dropped
	ch <- m.subscribers
}

func (m *streamMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(m.events, prometheus.CounterValue, float64(m.s.Published()), m.created)
	ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(m.dropped, prometheus.CounterValue, float64(m.s.Dropped()), m.created)
	ch <- prometheus.MustNewConstMetric(m.subscribers, prometheus.GaugeValue, float64(m.s.Subscribers()))
}
