package pipeline

// The quality monitor's signals: each judged period's metrics per model
// version under the names Model Monitor's model-quality job gives them
// (accuracy, precision, recall, f1, auc, mae, rmse, ...), in Prometheus
// and CloudWatch (docs/quality.md).

import (
	"math"

	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/sinks"
)

// MetricQualityViolations counts a period's model-quality constraint
// violations of a served model version (ours, as MonitorViolations).
const MetricQualityViolations = "QualityViolations"

type qualityProm struct {
	judged    *prometheus.CounterVec
	failed    *prometheus.CounterVec
	violated  *prometheus.CounterVec
	metric    *prometheus.GaugeVec
	labelled  *prometheus.GaugeVec
	violating *prometheus.GaugeVec
}

func (m *qualityProm) init() []prometheus.Collector {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "quality", Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "streamscore", Subsystem: "quality", Name: name, Help: help}, labels)
	}
	m.judged = counter("periods_judged_total", "Periods whose predictions this worker judged against the labels.", "scorer")
	m.failed = counter("failures_total", "Quality monitor steps that failed, by step (pass, bad_record, alert, period_skipped: a period left unjudged after repeated failures).", "scorer", "step")
	m.violated = counter("violations_total", "Model-quality constraint violations found, by metric.", "scorer", "model_version", "role", "metric")
	m.metric = gauge("metric", "The last judged period's model-quality metric (Model Monitor's names: accuracy, precision, recall, f1, auc, ...).", "scorer", "model_version", "role", "metric")
	m.labelled = gauge("labelled_predictions", "The last judged period's labelled predictions (the metrics' item_count).", "scorer", "model_version", "role")
	m.violating = gauge("metric_violated", "1 when the last judged period's metric violated its constraint.", "scorer", "model_version", "role", "metric")
	return []prometheus.Collector{m.judged, m.failed, m.violated, m.metric, m.labelled, m.violating}
}

func (m *qualityProm) QualityFailed(scorer, step string) {
	m.failed.WithLabelValues(scorer, step).Inc()
}

func (m *qualityProm) QualityJudged(scorer, version, role string, st *quality.Statistics, r *quality.Report) {
	if role == "champion" {
		m.judged.WithLabelValues(scorer).Inc()
	}
	m.labelled.WithLabelValues(scorer, version, role).Set(float64(st.Dataset.ItemCount))
	for _, nm := range st.Metrics() {
		m.metric.WithLabelValues(scorer, version, role, nm.Name).Set(nm.Value)
	}
	if r == nil {
		return
	}
	bad := map[string]bool{}
	for _, v := range r.Violations {
		bad[v.Metric] = true
		m.violated.WithLabelValues(scorer, version, role, v.Metric).Inc()
	}
	for _, nm := range st.Metrics() {
		v := 0.0
		if bad[nm.Name] {
			v = 1
		}
		m.violating.WithLabelValues(scorer, version, role, nm.Name).Set(v)
	}
}

func (all observers) QualityFailed(scorer, step string) {
	for _, o := range all {
		o.QualityFailed(scorer, step)
	}
}

func (all observers) QualityJudged(scorer, version, role string, st *quality.Statistics, r *quality.Report) {
	for _, o := range all {
		o.QualityJudged(scorer, version, role, st, r)
	}
}

func (o cloudWatchObserver) QualityFailed(string, string) {}

// QualityJudged sends a period's metrics under Model Monitor's names with
// the scorer and model version as dimensions; a challenger's too, under
// its own version (a dashboard puts the two side by side).
func (o cloudWatchObserver) QualityJudged(scorer, version, _ string, st *quality.Statistics, r *quality.Report) {
	sm, ok := o.cw.(summarizer)
	if !ok {
		return
	}
	d := sinks.Dimensions{Scorer: scorer, Model: version}
	for _, nm := range st.Metrics() {
		if math.IsNaN(nm.Value) || math.IsInf(nm.Value, 0) {
			continue // too few rows for it: no data, not a zero
		}
		v := nm.Value
		sm.Summary(nm.Name, cwtypes.StandardUnitNone, d, sinks.StatSet{Count: 1, Sum: v, Min: v, Max: v})
	}
	if r != nil {
		o.cw.Count(MetricQualityViolations, d, float64(len(r.Violations)))
	}
}
