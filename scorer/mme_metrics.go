package scorer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// MultiModelMetrics are the Prometheus metrics of a multi-model server
// (NewMultiModelHandler). A nil *MultiModelMetrics records nothing.
type MultiModelMetrics struct {
	loaded  prometheus.Gauge
	bytes   prometheus.Gauge
	budget  prometheus.Gauge
	loads   *prometheus.CounterVec
	unloads *prometheus.CounterVec
}

// Load outcomes, the result label of streamscore_serve_model_loads_total.
const (
	loadOK                 = "ok"
	loadConflict           = "conflict"
	loadNotFound           = "not_found"
	loadInvalid            = "invalid"
	loadInsufficientMemory = "insufficient_memory"
)

// Unload reasons, the reason label of streamscore_serve_model_unloads_total.
const (
	unloadRequested = "request"
	unloadEvicted   = "evicted"
)

// NewMultiModelMetrics registers the multi-model server's metrics with reg
// (which must not be nil; no global registry is used).
func NewMultiModelMetrics(reg prometheus.Registerer) (*MultiModelMetrics, error) {
	m := &MultiModelMetrics{
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "streamscore", Subsystem: "serve", Name: "models_loaded",
			Help: "Models loaded by the multi-model server (POST /models), ready to score.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "streamscore", Subsystem: "serve", Name: "model_memory_bytes",
			Help: "Memory counted against the budget: the loaded models' compiled size, plus unloaded models still finishing requests.",
		}),
		budget: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "streamscore", Subsystem: "serve", Name: "model_memory_budget_bytes",
			Help: "The multi-model server's memory budget for loaded models (--memory-budget).",
		}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "serve", Name: "model_loads_total",
			Help: "POST /models requests by result (ok; conflict = 409, already loaded; not_found = 404, no such url; invalid = 400; insufficient_memory = 507, SageMaker unloads models and retries).",
		}, []string{"result"}),
		unloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamscore", Subsystem: "serve", Name: "model_unloads_total",
			Help: "Models unloaded, by reason (request = DELETE /models/NAME; evicted = least recently used, to make room for a load).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.loaded, m.bytes, m.budget, m.loads, m.unloads} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *MultiModelMetrics) load(result string) {
	if m == nil {
		return
	}
	m.loads.WithLabelValues(result).Inc()
}

func (m *MultiModelMetrics) unload(reason string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.unloads.WithLabelValues(reason).Add(float64(n))
}

// state records what the store holds; called with the store's lock held,
// so the gauges move in the order the changes happened.
func (m *MultiModelMetrics) state(loaded int, used, budget int64) {
	if m == nil {
		return
	}
	m.loaded.Set(float64(loaded))
	m.bytes.Set(float64(used))
	m.budget.Set(float64(budget))
}
