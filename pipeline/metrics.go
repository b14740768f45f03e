package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/windowing"
)

// promObserver exports the pipeline's observations to Prometheus.
type promObserver struct {
	records      *prometheus.CounterVec
	windows      *prometheus.CounterVec
	late         *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	behind       *prometheus.GaugeVec
	checkpointed *prometheus.GaugeVec
	stages       [numStages]prometheus.Histogram
	replayed     *prometheus.CounterVec
	breakers     *prometheus.CounterVec
	rejected     *prometheus.CounterVec

	// The window operators' counters, summed over shards, and their state
	// per shard.
	winEvents     *prometheus.CounterVec
	winLateOK     *prometheus.CounterVec
	winEvicted    *prometheus.CounterVec
	winEvictedEv  *prometheus.CounterVec
	winIdle       *prometheus.CounterVec
	winKeys       *prometheus.GaugeVec
	winStateBytes *prometheus.GaugeVec
	winWatermark  *prometheus.GaugeVec

	monitorProm
	qualityProm
}

var _ Observer = (*promObserver)(nil)

func newPromObserver(reg prometheus.Registerer) (*promObserver, error) {
	stage := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "streamscore", Subsystem: "pipeline", Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(20e-6, 4, 10), // 20 µs .. 5 s
		})
	}
	counter := func(sub, name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: sub, Name: name, Help: help}, labels)
	}
	gauge := func(sub, name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "streamscore", Subsystem: sub, Name: name, Help: help}, labels)
	}
	m := &promObserver{
		records:      counter("pipeline", "records_total", "User records handled, per stream.", "stream"),
		windows:      counter("pipeline", "windows_total", "Windows emitted and scored.", "stream", "window"),
		late:         counter("pipeline", "late_events_total", "Events later than the allowed lateness (dead-lettered or ignored, per the window's late policy).", "stream", "window"),
		deadLetters:  counter("pipeline", "dead_letters_total", "Records sent to the dead-letter queue, by reason.", "stream", "reason"),
		behind:       gauge("pipeline", "behind_latest_seconds", "How far the last read of a shard was behind its tip (MillisBehindLatest).", "stream", "shard"),
		checkpointed: gauge("pipeline", "last_durable_timestamp_seconds", "When the shard's low-water mark last advanced.", "stream", "shard"),
		replayed:     counter("pipeline", "tail_records_replayed_total", "Records of closed parent shards a child replayed to rebuild the windows open at a split or merge.", "stream"),
		breakers:     counter("pipeline", "breaker_state_changes_total", "Circuit breaker state changes of SageMaker endpoints.", "stream", "endpoint"),
		rejected:     counter("pipeline", "model_reloads_rejected_total", "Hot reloads of a model the scorer refused (the running model kept scoring).", "stream", "model"),

		winEvents:     counter("window", "events_total", "Events counted into windows.", "stream", "window"),
		winLateOK:     counter("window", "late_accepted_total", "Late events within the allowed lateness (their windows re-emitted as updates).", "stream", "window"),
		winEvicted:    counter("window", "evicted_keys_total", "Keys whose state was evicted because max_keys or max_state_bytes was reached (their rows are flagged partial).", "stream", "window"),
		winEvictedEv:  counter("window", "evicted_events_total", "Events held by evicted keys in windows still open (each in a row flagged partial, none dropped).", "stream", "window"),
		winIdle:       counter("window", "idle_advances_total", "Watermark advances made on processing time because a shard was idle.", "stream", "window"),
		winKeys:       gauge("window", "open_keys", "Keys holding window state, per shard.", "stream", "shard", "window"),
		winStateBytes: gauge("window", "state_bytes", "Memory held for window state, per shard (what max_state_bytes bounds, plus pools).", "stream", "shard", "window"),
		winWatermark:  gauge("window", "watermark_timestamp_seconds", "The window's event-time watermark, per shard.", "stream", "shard", "window"),
	}
	m.stages = [numStages]prometheus.Histogram{
		StageDecode:   stage("decode_seconds", "Time to decode one batch of records."),
		StageWindow:   stage("window_seconds", "Time one window operator spent on one batch."),
		StageScore:    stage("score_seconds", "Time to score one emission of windows."),
		StageSinkWait: stage("sink_wait_seconds", "Time a write waited for room in the sinks (back-pressure)."),
		StageBatch:    stage("batch_seconds", "Time to handle one batch end to end."),
	}
	cs := []prometheus.Collector{m.records, m.windows, m.late, m.deadLetters, m.behind, m.checkpointed, m.replayed, m.breakers, m.rejected,
		m.winEvents, m.winLateOK, m.winEvicted, m.winEvictedEv, m.winIdle, m.winKeys, m.winStateBytes, m.winWatermark}
	for _, h := range m.stages {
		cs = append(cs, h)
	}
	cs = append(cs, m.monitorProm.init()...)
	cs = append(cs, m.qualityProm.init()...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pipeline: metrics: %w", err)
		}
	}
	return m, nil
}

func (m *promObserver) BatchRead(stream, shard string, records int, behind int64) {
	m.records.WithLabelValues(stream).Add(float64(records))
	if records > 0 {
		m.behind.WithLabelValues(stream, shard).Set(float64(behind) / 1000)
	}
}

func (m *promObserver) Replayed(stream string, n int) {
	m.replayed.WithLabelValues(stream).Add(float64(n))
}

func (m *promObserver) DeadLettered(stream, reason string, n int) {
	m.deadLetters.WithLabelValues(stream, reason).Add(float64(n))
}

func (m *promObserver) Late(stream, window string, n int) {
	m.late.WithLabelValues(stream, window).Add(float64(n))
}

func (m *promObserver) Emitted(stream, window string, rows int) {
	m.windows.WithLabelValues(stream, window).Add(float64(rows))
}

func (m *promObserver) Checkpointed(stream, shard string) {
	m.checkpointed.WithLabelValues(stream, shard).SetToCurrentTime()
}

func (m *promObserver) Stage(s Stage, d time.Duration) { m.stages[s].Observe(d.Seconds()) }

func (m *promObserver) WindowStats(stream, shard, window string, prev, cur windowing.Stats) {
	add := func(c *prometheus.CounterVec, prev, cur uint64) {
		if cur > prev {
			c.WithLabelValues(stream, window).Add(float64(cur - prev))
		}
	}
	add(m.winEvents, prev.Events, cur.Events)
	add(m.winLateOK, prev.LateAccepted, cur.LateAccepted)
	add(m.winEvicted, prev.EvictedKeys, cur.EvictedKeys)
	add(m.winEvictedEv, prev.EvictedEvents, cur.EvictedEvents)
	add(m.winIdle, prev.IdleAdvances, cur.IdleAdvances)
	m.winKeys.WithLabelValues(stream, shard, window).Set(float64(cur.OpenKeys))
	m.winStateBytes.WithLabelValues(stream, shard, window).Set(float64(cur.StateBytes))
	if !cur.Watermark.IsZero() {
		m.winWatermark.WithLabelValues(stream, shard, window).Set(float64(cur.Watermark.UnixNano()) / 1e9)
	}
}

func (m *promObserver) ShardReleased(stream, shard string) {
	l := prometheus.Labels{"stream": stream, "shard": shard}
	m.winKeys.DeletePartialMatch(l)
	m.winStateBytes.DeletePartialMatch(l)
	m.winWatermark.DeletePartialMatch(l)
	m.behind.DeletePartialMatch(l)
}

func (m *promObserver) BreakerChanged(stream, endpoint string) {
	m.breakers.WithLabelValues(stream, endpoint).Inc()
}

func (m *promObserver) ModelRejected(stream, model string) {
	m.rejected.WithLabelValues(stream, model).Inc()
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
				records := sum(p.prom.records)
				rate := (records - lastRecords) / now.Sub(last).Seconds()
				lastRecords, last = records, now
				p.log.Info("status",
					"records_per_second", int(rate), "records", int64(records),
					"windows", int64(sum(p.prom.windows)), "dead_letters", int64(sum(p.prom.deadLetters)),
					"late", int64(sum(p.prom.late)), "alerts", int64(readValue(p.sm.Rows("alerts"))),
					"leases", len(p.cons.HeldLeases()),
					"max_behind_seconds", maxGauge(p.prom.behind))
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
