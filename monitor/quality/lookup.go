package quality

// NamedMetric is one metric of a statistics file by its key.
type NamedMetric struct {
	Name string // its key in statistics.json: accuracy, f1, auc, mae, ...
	Metric
}

// Metrics are the statistics' metrics in Model Monitor's order, binary
// then regression, each by its key; the confusion matrix and the curves
// are not metrics. An optional metric that is absent is left out.
func (s *Statistics) Metrics() []NamedMetric {
	if s == nil {
		return nil
	}
	var out []NamedMetric
	if s.Binary != nil {
		out = appendMetrics(out, binaryMetrics, s.Binary)
	}
	if s.Regression != nil {
		out = appendMetrics(out, regressionMetrics, s.Regression)
	}
	return out
}

// Metric is the metric of the statistics with key name, false when it
// has none (another problem type's, an absent optional one, an unknown
// name).
func (s *Statistics) Metric(name string) (Metric, bool) {
	if s == nil {
		return Metric{}, false
	}
	if d := findDef(binaryMetrics, name); d != nil && s.Binary != nil {
		if m := d.field(s.Binary, false); m != nil {
			return *m, true
		}
	}
	if d := findDef(regressionMetrics, name); d != nil && s.Regression != nil {
		if m := d.field(s.Regression, false); m != nil {
			return *m, true
		}
	}
	return Metric{}, false
}

// MetricNames are the keys of every metric of a problem type, binary
// ("binary_classification") or regression, in Model Monitor's order.
func MetricNames(regression bool) []string {
	if regression {
		return defKeys(regressionMetrics)
	}
	return defKeys(binaryMetrics)
}

func appendMetrics[T any](out []NamedMetric, defs []metricDef[T], m *T) []NamedMetric {
	for i := range defs {
		if mt := defs[i].field(m, false); mt != nil {
			out = append(out, NamedMetric{Name: defs[i].key, Metric: *mt})
		}
	}
	return out
}

func defKeys[T any](defs []metricDef[T]) []string {
	keys := make([]string, len(defs))
	for i := range defs {
		keys[i] = defs[i].key
	}
	return keys
}
