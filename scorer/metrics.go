package scorer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scorer's Prometheus metrics. Create one per process with
// NewMetrics and share it between scorers; a nil *Metrics records nothing.
type Metrics struct {
	rowsScored   *prometheus.CounterVec
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	breakerState *prometheus.GaugeVec
	breakerTrans *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	bySource     [4]prometheus.Counter
}

// NewMetrics registers the scorer metrics with reg (which must not be nil;
// no global registry is used).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rowsScored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "scorer", Name: "rows_total",
			Help: "Rows handled by the scorer, by who scored them (primary, fallback, canary, none = handed back unscored).",
		}, []string{"source"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "scorer", Name: "endpoint_requests_total",
			Help: "SageMaker InvokeEndpoint attempts per endpoint (endpoint@model for a multi-model endpoint's target) by outcome (ok, throttled, server_error, timeout, client_error, rejected = breaker open).",
		}, []string{"endpoint", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "streamscore", Subsystem: "scorer", Name: "endpoint_request_seconds",
			Help:    "Latency of successful InvokeEndpoint calls per endpoint (endpoint@model for a multi-model endpoint's target).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 12),
		}, []string{"endpoint"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "streamscore", Subsystem: "scorer", Name: "breaker_state",
			Help: "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
		}, []string{"endpoint"}),
		breakerTrans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "scorer", Name: "breaker_transitions_total",
			Help: "Circuit breaker state changes per endpoint and new state.",
		}, []string{"endpoint", "to"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "scorer", Name: "model_reloads_total",
			Help: "Model hot reloads by result (ok, error).",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "scorer", Name: "model_reload_rejected_total",
			Help: "New model versions refused by hot reload, the running one kept, by model and reason (digest = SHA-256 not the pinned one, invalid = failed to load or over a limit, check = refused by the pipeline's check). Alert on any increase.",
		}, []string{"model", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.rowsScored, m.requests, m.latency, m.breakerState, m.breakerTrans, m.reloads, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for s := range m.bySource {
		m.bySource[s] = m.rowsScored.WithLabelValues(Source(s).String())
	}
	return m, nil
}

func (m *Metrics) rows(s Source, n int) {
	if m == nil || n == 0 {
		return
	}
	m.bySource[s].Add(float64(n))
}

func (m *Metrics) request(endpoint, outcome string) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(endpoint, outcome).Inc()
}

func (m *Metrics) observe(endpoint string, sec float64) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(endpoint).Observe(sec)
}

// forget drops an evicted target's series, so that a stream of model
// names cannot grow them without bound.
func (m *Metrics) forget(endpoint string) {
	if m == nil {
		return
	}
	m.breakerState.DeleteLabelValues(endpoint)
	for _, v := range []*prometheus.MetricVec{m.breakerTrans.MetricVec, m.requests.MetricVec, m.latency.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"endpoint": endpoint})
	}
}

func (m *Metrics) reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("error").Inc()
	}
}

func (m *Metrics) reloadRejected(model, reason string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(model, reason).Inc()
}

func (m *Metrics) breaker(endpoint string, state float64, to string) {
	if m == nil {
		return
	}
	m.breakerState.WithLabelValues(endpoint).Set(state)
	m.breakerTrans.WithLabelValues(endpoint, to).Inc()
}
