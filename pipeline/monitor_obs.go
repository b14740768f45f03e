package pipeline

// The drift monitor's signals: Prometheus series and CloudWatch metrics
// named as SageMaker Model Monitor emits them, so dashboards and alarms
// built on those names carry over (docs/monitor.md).

import (
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/sinks"
)

// Model Monitor's CloudWatch metric names, per feature: the baseline
// drift distance, the completeness (share of rows with a value), and the
// values' statistic set (Min, Max, Sum, SampleCount, Average).
const (
	MetricFeatureBaselineDrift = "feature_baseline_drift_"
	MetricFeatureNonNull       = "feature_non_null_"
	MetricFeatureData          = "feature_data_"
	// MetricMonitorViolations counts a period's constraint violations
	// (ours: Model Monitor reports them in files only).
	MetricMonitorViolations = "MonitorViolations"
)

type monitorProm struct {
	monRows     *prometheus.CounterVec
	monParts    *prometheus.CounterVec
	monFailed   *prometheus.CounterVec
	monJudged   *prometheus.CounterVec
	monViolate  *prometheus.CounterVec
	monDrift    *prometheus.GaugeVec
	monDistance *prometheus.GaugeVec
	monDrifted  *prometheus.GaugeVec
	monNonNull  *prometheus.GaugeVec
}

func (m *monitorProm) init() []prometheus.Collector {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "monitor", Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "streamscore", Subsystem: "monitor", Name: name, Help: help}, labels)
	}
	m.monRows = counter("rows_total", "Result rows the drift monitor profiled (updates and partial rows are not).", "window")
	m.monParts = counter("parts_written_total", "Periods' statistics this worker wrote to S3 for the fleet's merge.", "window")
	m.monFailed = counter("failures_total", "Monitor steps that failed, by step (part, judge, bad_part, queue_full).", "window", "step")
	m.monJudged = counter("periods_judged_total", "Periods this worker merged and judged against the baseline.", "window")
	m.monViolate = counter("violations_total", "Constraint violations found, by Model Monitor check type.", "window", "check")
	m.monDrift = gauge("feature_baseline_drift", "The last judged period's baseline drift distance (Model Monitor's feature_baseline_drift_<feature>).", "window", "feature")
	m.monDistance = gauge("feature_distance", "The last judged period's distances from the baseline: l_infinity, ks, psi, jensen_shannon, wasserstein.", "window", "feature", "distance")
	m.monDrifted = gauge("feature_drifted", "1 when the last judged period's baseline_drift_check failed for the feature.", "window", "feature")
	m.monNonNull = gauge("feature_non_null", "The last judged period's completeness (Model Monitor's feature_non_null_<feature>).", "window", "feature")
	return []prometheus.Collector{m.monRows, m.monParts, m.monFailed, m.monJudged, m.monViolate, m.monDrift, m.monDistance, m.monDrifted, m.monNonNull}
}

func (m *monitorProm) MonitorRows(window string, rows int) {
	m.monRows.WithLabelValues(window).Add(float64(rows))
}
func (m *monitorProm) MonitorPart(window string) { m.monParts.WithLabelValues(window).Inc() }
func (m *monitorProm) MonitorFailed(window, what string) {
	m.monFailed.WithLabelValues(window, what).Inc()
}

func (m *monitorProm) MonitorJudged(window string, _ *monitor.Statistics, r *monitor.Report) {
	m.monJudged.WithLabelValues(window).Inc()
	for _, v := range r.Violations {
		m.monViolate.WithLabelValues(window, v.ConstraintCheckType).Inc()
	}
	for _, f := range r.Features {
		m.monDrift.WithLabelValues(window, f.Name).Set(f.Distance)
		m.monNonNull.WithLabelValues(window, f.Name).Set(f.Completeness)
		drifted := 0.0
		if f.Drifted {
			drifted = 1
		}
		m.monDrifted.WithLabelValues(window, f.Name).Set(drifted)
		for _, d := range []struct {
			name string
			v    float64
		}{{"l_infinity", f.Distance}, {"ks", f.KS}, {"psi", f.PSI}, {"jensen_shannon", f.JensenShannon}, {"wasserstein", f.Wasserstein}} {
			m.monDistance.WithLabelValues(window, f.Name, d.name).Set(d.v)
		}
	}
}

func (all observers) MonitorRows(window string, rows int) {
	for _, o := range all {
		o.MonitorRows(window, rows)
	}
}

func (all observers) MonitorPart(window string) {
	for _, o := range all {
		o.MonitorPart(window)
	}
}

func (all observers) MonitorFailed(window, what string) {
	for _, o := range all {
		o.MonitorFailed(window, what)
	}
}

func (all observers) MonitorJudged(window string, cur *monitor.Statistics, r *monitor.Report) {
	for _, o := range all {
		o.MonitorJudged(window, cur, r)
	}
}

// summarizer is the part of the CloudWatch sink the monitor's metrics use.
type summarizer interface {
	Summary(name string, unit cwtypes.StandardUnit, d sinks.Dimensions, s sinks.StatSet)
}

var _ summarizer = (*sinks.CloudWatch)(nil)

func (o cloudWatchObserver) MonitorRows(string, int)      {}
func (o cloudWatchObserver) MonitorPart(string)           {}
func (o cloudWatchObserver) MonitorFailed(string, string) {}

// MonitorJudged sends the period's metrics under Model Monitor's names,
// with the window as a dimension besides the pipeline.
func (o cloudWatchObserver) MonitorJudged(window string, cur *monitor.Statistics, r *monitor.Report) {
	sm, ok := o.cw.(summarizer)
	if !ok {
		return
	}
	d := sinks.Dimensions{Window: window}
	one := func(v float64) sinks.StatSet { return sinks.StatSet{Count: 1, Sum: v, Min: v, Max: v} }
	emit := map[string]bool{}
	for _, f := range r.Features {
		if !f.EmitMetrics {
			continue // the baseline's emit_metrics says no
		}
		emit[f.Name] = true
		sm.Summary(MetricFeatureBaselineDrift+f.Name, cwtypes.StandardUnitNone, d, one(f.Distance))
		sm.Summary(MetricFeatureNonNull+f.Name, cwtypes.StandardUnitNone, d, one(f.Completeness))
	}
	for _, f := range cur.Features {
		if n := f.NumericalStatistics; n != nil && n.Common.NumPresent > 0 && emit[f.Name] {
			sm.Summary(MetricFeatureData+f.Name, cwtypes.StandardUnitNone, d,
				sinks.StatSet{Count: float64(n.Common.NumPresent), Sum: n.Sum, Min: n.Min, Max: n.Max})
		}
	}
	o.cw.Count(MetricMonitorViolations, d, float64(len(r.Violations)))
}
