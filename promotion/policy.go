package promotion

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/streamscore/streamscore/monitor/quality"
)

// DefaultMinLabelled is the number of rows, scored by both models and
// labelled, below which no verdict promotes: with fewer, an AUC or a
// precision moves by more than a typical margin from sampling alone (the
// standard deviation of an AUC near 0.9 on 1000 rows is about 0.01).
const DefaultMinLabelled = 1000

// Policy decides when a challenger replaces its champion. It is judged on
// the quality monitor's statistics of both models over the same labelled
// rows.
type Policy struct {
	// MinLabelled is the least number of rows both models scored that
	// have a label. Zero takes DefaultMinLabelled.
	MinLabelled int64
	// Metric is the metric compared (one of Metrics()); its direction
	// (higher or lower is better) is the metric's own.
	Metric string
	// Margin is how much better than the champion's the challenger's
	// metric must be, in the metric's units. Zero promotes a challenger
	// at least as good.
	Margin float64
	// Guardrails are absolute bounds the challenger must meet whatever its
	// margin.
	Guardrails []Guardrail
}

// Guardrail bounds one metric of the challenger: at least Min, at most
// Max; a nil bound is no bound.
type Guardrail struct {
	Metric   string
	Min, Max *float64
}

// metric is one metric a policy can name, by its statistics.json key
// (quality's table is the one home of the keys and where each sits), and
// which way is better, which is the policy's own knowledge.
type metric struct {
	name        string
	regression  bool
	lowerBetter bool
}

// get reads the metric's value from the statistics; false when they have
// none (no statistics, the other problem type, an absent optional one).
func (m metric) get(s *quality.Statistics) (float64, bool) {
	v, ok := s.Metric(m.name)
	return v.Value, ok
}

// lowerIsBetter are the metrics whose smaller value is the better one.
var lowerIsBetter = []string{"brier_score", "false_positive_rate", "false_negative_rate", "mae", "mse", "rmse"}

// metrics are the metrics a policy compares or bounds: every metric of
// statistics.json but the best-constant-classifier baselines, which
// describe the labels, not a model.
var metrics = func() []metric {
	var out []metric
	for _, regression := range []bool{false, true} {
		for _, name := range quality.MetricNames(regression) {
			if !strings.HasSuffix(name, "_best_constant_classifier") {
				out = append(out, metric{name: name, regression: regression, lowerBetter: slices.Contains(lowerIsBetter, name)})
			}
		}
	}
	return out
}()

func lookup(name string) (metric, bool) {
	i := slices.IndexFunc(metrics, func(m metric) bool { return m.name == name })
	if i < 0 {
		return metric{}, false
	}
	return metrics[i], true
}

// Metrics returns the names a policy's metric and guardrails may use, for
// the problem type: "binary" or "regression".
func Metrics(problem string) []string {
	var out []string
	for _, m := range metrics {
		if m.regression == (problem == "regression") {
			out = append(out, m.name)
		}
	}
	return out
}

// Problem returns the problem type ("binary" or "regression") of a
// metric name, or "" for a name that is not one of Metrics().
func Problem(metricName string) string {
	m, ok := lookup(metricName)
	switch {
	case !ok:
		return ""
	case m.regression:
		return "regression"
	}
	return "binary"
}

// LowerIsBetter reports whether a smaller value of the metric is the
// better one (brier_score, the error rates, mae, mse, rmse).
func LowerIsBetter(metricName string) bool {
	m, _ := lookup(metricName)
	return m.lowerBetter
}

// PolicyError is one problem Validate found. Key is the setting's place
// in the policy with the configuration file's key names ("metric",
// "guardrails[1].min"), so a caller can report it at the key path of the
// file.
type PolicyError struct {
	Key, Reason string
}

func (e *PolicyError) Error() string { return e.Key + ": " + e.Reason }

// Validate checks the policy: a known metric, guardrails on known metrics
// of the same problem type with at least one finite bound, min not above
// max, a finite margin and counts that are not negative. The errors are
// *PolicyError, joined.
func (p Policy) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, &PolicyError{Key: key, Reason: fmt.Sprintf(format, args...)})
	}
	if p.MinLabelled < 0 {
		add("min_labelled", "must not be negative (0 takes the default, %d)", DefaultMinLabelled)
	}
	problem := ""
	switch m, ok := lookup(p.Metric); {
	case p.Metric == "":
		add("metric", "missing: name the metric compared (binary: %s; regression: %s)",
			strings.Join(Metrics("binary"), ", "), strings.Join(Metrics("regression"), ", "))
	case !ok:
		add("metric", "%q is not a metric a policy compares (binary: %s; regression: %s)", p.Metric,
			strings.Join(Metrics("binary"), ", "), strings.Join(Metrics("regression"), ", "))
	default:
		problem = Problem(m.name)
	}
	if math.IsNaN(p.Margin) || math.IsInf(p.Margin, 0) || p.Margin < 0 {
		add("margin", "%v: want a finite number, 0 or more, in the metric's units", p.Margin)
	}
	var seen []string
	for i, g := range p.Guardrails {
		key := fmt.Sprintf("guardrails[%d]", i)
		switch {
		case g.Metric == "":
			add(key+".metric", "missing: name the metric bounded")
		case Problem(g.Metric) == "":
			add(key+".metric", "%q is not a metric a guardrail bounds (binary: %s; regression: %s)", g.Metric,
				strings.Join(Metrics("binary"), ", "), strings.Join(Metrics("regression"), ", "))
		case problem != "" && Problem(g.Metric) != problem:
			add(key+".metric", "%q is a %s metric but metric %q is a %s one: a model is judged as one or the other",
				g.Metric, Problem(g.Metric), p.Metric, problem)
		case slices.Contains(seen, g.Metric):
			add(key+".metric", "%q is bounded twice: put min and max in one guardrail", g.Metric)
		}
		seen = append(seen, g.Metric)
		if g.Min == nil && g.Max == nil {
			add(key, "no bound: give min, max or both")
		}
		for _, b := range []struct {
			name string
			v    *float64
		}{{"min", g.Min}, {"max", g.Max}} {
			if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0)) {
				add(key+"."+b.name, "%v is not a finite number", *b.v)
			}
		}
		if g.Min != nil && g.Max != nil && *g.Min > *g.Max {
			add(key, "min %v is above max %v: no value meets it", *g.Min, *g.Max)
		}
	}
	return errors.Join(errs...)
}

// minLabelled is the policy's minimum with the default applied.
func (p Policy) minLabelled() int64 {
	if p.MinLabelled == 0 {
		return DefaultMinLabelled
	}
	return p.MinLabelled
}
