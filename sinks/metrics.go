package sinks

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus series every sink reports, labelled by sink
// name ("s3", "cloudwatch", "alerts", "features", "deadletter"). Create one
// per process and pass it to every sink's options.
type Metrics struct {
	rows     *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	flushes  *prometheus.CounterVec
	retries  *prometheus.CounterVec
	errs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	failing  *prometheus.GaugeVec
	refused  *prometheus.CounterVec
}

// NewMetrics creates the sink metrics and registers them with reg. A nil
// reg leaves them unregistered (useful in tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "rows_total",
			Help: "Result rows (or messages) made durable by the sink.",
		}, []string{"sink"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "bytes_total",
			Help: "Bytes sent to the sink's service.",
		}, []string{"sink"}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "flushes_total",
			Help: "Completed flushes: uploaded files, API batches.",
		}, []string{"sink"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "retries_total",
			Help: "Calls retried after a throttle, a 5xx or a connection failure.",
		}, []string{"sink"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "errors_total",
			Help: "Failed calls by kind: transient (retried), outage (sink-wide: access denied, missing resource; retried until fixed) or permanent (the request itself was refused).",
		}, []string{"sink", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "flush_seconds",
			Help:    "Time from a flush's start to its durability, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"sink"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "inflight_batches",
			Help: "Batches accepted but not yet acked.",
		}, []string{"sink"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "failing",
			Help: "Sink instances whose latest call failed (transient or sink-wide) with no success since. Healthy() reports an outage at once for sink-wide errors (access denied, missing table/topic/bucket) and after OutageAfter for transient ones.",
		}, []string{"sink"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "sink", Name: "refused_rows_total",
			Help: "Rows the sink's service refused on their own (key too long, item too large, invalid value) that went to the dead-letter sink instead.",
		}, []string{"sink"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rows, m.bytes, m.flushes, m.retries, m.errs, m.latency, m.inflight, m.failing, m.refused} {
			if err := reg.Register(c); err != nil {
				return nil, errors.Join(errors.New("sinks: registering metrics"), err)
			}
		}
	}
	return m, nil
}

// Rows is the counter of rows the named sink made durable; for the alerts
// sink, the alerts it published. For status lines.
func (m *Metrics) Rows(sink string) prometheus.Counter { return m.rows.WithLabelValues(sink) }

// sinkMetrics are one sink's curried series.
type sinkMetrics struct {
	rows, bytes, flushes, retries prometheus.Counter
	transient, permanent, outage  prometheus.Counter
	refused                       prometheus.Counter
	latency                       prometheus.Observer
	inflight, failing             prometheus.Gauge
}

func (m *Metrics) forSink(name string) *sinkMetrics {
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	return &sinkMetrics{
		rows:      m.rows.WithLabelValues(name),
		bytes:     m.bytes.WithLabelValues(name),
		flushes:   m.flushes.WithLabelValues(name),
		retries:   m.retries.WithLabelValues(name),
		transient: m.errs.WithLabelValues(name, "transient"),
		permanent: m.errs.WithLabelValues(name, "permanent"),
		outage:    m.errs.WithLabelValues(name, "outage"),
		refused:   m.refused.WithLabelValues(name),
		failing:   m.failing.WithLabelValues(name),
		latency:   m.latency.WithLabelValues(name),
		inflight:  m.inflight.WithLabelValues(name),
	}
}
