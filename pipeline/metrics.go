package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	records         *prometheus.CounterVec
	windows         *prometheus.CounterVec
	late            *prometheus.CounterVec
	deadLetters     *prometheus.CounterVec
	behind          *prometheus.GaugeVec
	checkpointed    *prometheus.GaugeVec
	decodeSeconds   prometheus.Histogram
	windowSeconds   prometheus.Histogram
	scoreSeconds    prometheus.Histogram
	sinkWaitSeconds prometheus.Histogram
	batchSeconds    prometheus.Histogram
	replayed        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	stage := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "streamscore", Subsystem: "pipeline", Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(20e-6, 4, 10), // 20 µs .. 5 s
		})
	}
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "records_total",
			Help: "User records handled, per stream."}, []string{"stream"}),
		windows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "windows_total",
			Help: "Windows emitted and scored."}, []string{"stream", "window"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "late_events_total",
			Help: "Events later than the allowed lateness (dead-lettered or ignored, per the window's late policy)."}, []string{"stream", "window"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "dead_letters_total",
			Help: "Records sent to the dead-letter queue, by reason."}, []string{"stream", "reason"}),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "behind_latest_seconds",
			Help: "How far the last read of a shard was behind its tip (MillisBehindLatest)."}, []string{"stream", "shard"}),
		checkpointed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "last_durable_timestamp_seconds",
			Help: "When the shard's low-water mark last advanced."}, []string{"stream", "shard"}),
		decodeSeconds:   stage("decode_seconds", "Time to decode one batch of records."),
		windowSeconds:   stage("window_seconds", "Time one window operator spent on one batch."),
		scoreSeconds:    stage("score_seconds", "Time to score one emission of windows."),
		sinkWaitSeconds: stage("sink_wait_seconds", "Time a write waited for room in the sinks (back-pressure)."),
		batchSeconds:    stage("batch_seconds", "Time to handle one batch end to end."),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "tail_records_replayed_total",
			Help: "Records of closed parent shards a child replayed to rebuild the windows open at a split or merge."}, []string{"stream"}),
	}
	for _, c := range []prometheus.Collector{m.records, m.windows, m.late, m.deadLetters, m.behind, m.checkpointed,
		m.decodeSeconds, m.windowSeconds, m.scoreSeconds, m.sinkWaitSeconds, m.batchSeconds, m.replayed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pipeline: metrics: %w", err)
		}
	}
	return m, nil
}

// statusLoop writes a one-line progress log every status interval: records
// per second, windows, dead letters, alerts published, leases held, the
// worst lag.
func (p *Pipeline) statusLoop(ctx context.Context) (stop func()) {
	every := p.cfg.Ops.StatusInterval.D()
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		var lastRecords float64
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				records := sum(p.m.records)
				rate := (records - lastRecords) / now.Sub(last).Seconds()
				lastRecords, last = records, now
				p.log.Info("status",
					"records_per_second", int(rate), "records", int64(records),
					"windows", int64(sum(p.m.windows)), "dead_letters", int64(sum(p.m.deadLetters)),
					"late", int64(sum(p.m.late)), "alerts", int64(readValue(p.sm.Rows("alerts"))),
					"leases", len(p.cons.HeldLeases()),
					"max_behind_seconds", maxGauge(p.m.behind))
			}
		}
	}()
	return func() { cancel(); <-done }
}

func sum(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var total float64
	for m := range ch {
		total += readValue(m)
	}
	return total
}

func maxGauge(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var mx float64
	for m := range ch {
		mx = max(mx, readValue(m))
	}
	return mx
}
