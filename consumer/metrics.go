package consumer

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's Prometheus collectors. Labels stay low in
// cardinality: per stream, with per-shard series only for the lag gauge,
// which is deleted when the shard leaves the worker.
type metrics struct {
	records        *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	behind         *prometheus.GaugeVec
	arrivalAge     *prometheus.GaugeVec
	leasesHeld     prometheus.Gauge
	leasesGained   prometheus.Counter
	leasesLost     prometheus.Counter
	leasesStolen   prometheus.Counter
	leasesCleaned  prometheus.Counter
	checkpointTime prometheus.Histogram
	throttles      *prometheus.CounterVec
	deaggFailures  *prometheus.CounterVec
	shardFailures  *prometheus.CounterVec
	failedShards   prometheus.Gauge
	ambiguous      prometheus.Counter
	handoffs       prometheus.Counter
	assignments    *prometheus.CounterVec
	leader         prometheus.Gauge
	clientVersion  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "streamscore", "consumer"
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_total", Help: "User records delivered to the shard processors (after KPL deaggregation)."}, []string{"stream"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_total", Help: "Payload bytes of the user records delivered to the shard processors."}, []string{"stream"}),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "millis_behind_latest", Help: "MillisBehindLatest of the last read, per shard held by this worker."}, []string{"stream", "shard"}),
		arrivalAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "iterator_age_seconds", Help: "Age of the newest record of the last non-empty batch (now minus its approximate arrival time)."}, []string{"stream", "shard"}),
		leasesHeld: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "leases_held", Help: "Leases held by this worker."}),
		leasesGained: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "leases_gained_total", Help: "Leases this worker took (unowned, expired or stolen)."}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "leases_lost_total", Help: "Leases this worker lost to another worker or to renewal failures."}),
		leasesStolen: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "leases_stolen_total", Help: "Leases this worker stole from a more loaded worker to balance."}),
		leasesCleaned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "leases_cleaned_total", Help: "Leases of finished shards this worker deleted (CompletedLeaseRetention)."}),
		checkpointTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoint_seconds", Help: "Latency of checkpoint writes to the lease table.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "throttles_total", Help: "ProvisionedThroughputExceeded answers from Kinesis."}, []string{"stream"}),
		deaggFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "deaggregation_failures_total", Help: "KPL aggregates that could not be deaggregated and were delivered whole, flagged."}, []string{"stream"}),
		shardFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "shard_failures_total", Help: "Failures that stopped a held shard until a retry: kind=handler (the shard processor returned an error) or kind=read (Kinesis refused the read: access denied, not found, invalid argument, KMS)."}, []string{"stream", "kind"}),
		failedShards: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "failed_shards", Help: "Held shards currently failed and waiting for a retry (Consumer.Unhealthy)."}),
		ambiguous: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "lease_writes_ambiguous_total", Help: "Lease writes whose outcome was unknown (timeout, connection reset) or that found the counter moved, resolved by re-reading the lease."}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "handoffs_total", Help: "Graceful hand-offs this worker started as the old owner (KCL 3.x): the leader moved a lease it held."}),
		assignments: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "assignments_total", Help: "Lease moves written by this worker as KCL 3.x leader: kind=assign (unassigned, expired or timed-out hand-off), handoff (graceful), failed."}, []string{"kind"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "leader", Help: "1 while this worker holds the KCL 3.x leader lock and assigns leases."}),
		clientVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "client_version", Help: "1 for the KCL client version this worker runs in (CLIENT_VERSION_UPGRADE_FROM_2X, _2X, _3X_WITH_ROLLBACK, _3X); absent with ClientVersion2X."}, []string{"version"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.records, m.bytes, m.behind, m.arrivalAge, m.leasesHeld, m.leasesGained,
		m.leasesLost, m.leasesStolen, m.leasesCleaned, m.checkpointTime, m.throttles, m.deaggFailures,
		m.shardFailures, m.failedShards, m.ambiguous, m.handoffs, m.assignments, m.leader, m.clientVersion} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("consumer: metrics already registered with this registerer (one Consumer per registerer, or wrap it with prometheus.WrapRegistererWith)")
			}
			return nil, err
		}
	}
	return m, nil
}
