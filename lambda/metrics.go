package lambda

import (
	"encoding/json"
	"time"
)

// Metric names of the EMF line, in the style of the pipeline's CloudWatch
// metrics (sinks: WindowsScored, EventsIn).
const (
	MetricScored          = "LoginsScored"
	MetricHighRisk        = "HighRiskLogins"
	MetricFeaturesMissing = "FeaturesMissing"
	MetricPoison          = "PoisonRecords"
	MetricFailures        = "FailedRecords"
	MetricSkipped         = "SkippedEvents"
)

// emfMetric is one entry of an EMF directive's Metrics.
type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// writeMetrics writes this invocation's counts as one Embedded Metric
// Format line: CloudWatch Logs extracts the metrics from the function's
// stdout, so publishing costs no API call and no latency. The pipeline's
// CloudWatch sink writes the same format, but aggregates per interval and
// stamps the interval's start; a frozen Lambda environment has no
// interval, so the line is built here and stamped now.
func (h *Handler) writeMetrics(shape, requestID string, c counts) error {
	line, err := emfLine(h.cfg.MetricsNamespace, h.cfg.FunctionName, h.now(), shape, requestID, h.model.Version(), c)
	if err != nil {
		return err
	}
	h.emfMu.Lock()
	defer h.emfMu.Unlock()
	_, err = h.emf.Write(line)
	return err
}

// emfLine renders one EMF line (newline-terminated). The metrics carry the
// "function" dimension; shape, request and model are searchable properties,
// not dimensions, so they cost no extra metric series.
func emfLine(namespace, function string, at time.Time, shape, requestID, model string, c counts) ([]byte, error) {
	values := []struct {
		name string
		n    int
	}{
		{MetricScored, c.scored}, {MetricHighRisk, c.highRisk}, {MetricFeaturesMissing, c.featuresMissing},
		{MetricPoison, c.poison}, {MetricFailures, c.failures}, {MetricSkipped, c.skipped},
	}
	metrics := make([]emfMetric, len(values))
	line := map[string]any{"function": function, "shape": shape, "model_version": model}
	if requestID != "" {
		line["request_id"] = requestID
	}
	for i, v := range values {
		metrics[i] = emfMetric{Name: v.name, Unit: "Count"}
		line[v.name] = v.n
	}
	line["_aws"] = map[string]any{
		"Timestamp": at.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace": namespace, "Dimensions": [][]string{{"function"}}, "Metrics": metrics,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
