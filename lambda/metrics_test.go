package lambda

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/streamscore/streamscore/internal/emfspec"
)

// validateEMF checks one line against the required structure of the
// Embedded Metric Format specification (as sinks' tests check the
// pipeline's lines) and returns the decoded root.
func validateEMF(t *testing.T, line []byte) map[string]any {
	t.Helper()
	root, err := emfspec.Check(line)
	if err != nil {
		t.Fatalf("EMF: %v", err)
	}
	return root
}

// emfCounts reads the metric values of an EMF line produced by this package.
func emfCounts(t *testing.T, root map[string]any) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, name := range []string{MetricScored, MetricHighRisk, MetricFeaturesMissing, MetricPoison, MetricFailures, MetricSkipped} {
		v, ok := root[name].(float64)
		if !ok {
			t.Fatalf("metric %s missing from %v", name, root)
		}
		out[name] = v
	}
	return out
}

// emfLines splits what the handler wrote into validated lines.
func emfLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		lines = append(lines, validateEMF(t, sc.Bytes()))
	}
	return lines
}

func TestEMFLineStructure(t *testing.T) {
	at := time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)
	b, err := emfLine("streamscore", "churn-login", at, "kinesis", "req-1", "sha256:abc",
		counts{scored: 7, highRisk: 2, featuresMissing: 1, poison: 3, failures: 4, skipped: 9})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("want exactly one newline-terminated line: %q", b)
	}
	root := validateEMF(t, bytes.TrimSpace(b))
	want := map[string]float64{MetricScored: 7, MetricHighRisk: 2, MetricFeaturesMissing: 1, MetricPoison: 3, MetricFailures: 4, MetricSkipped: 9}
	for k, v := range emfCounts(t, root) {
		if want[k] != v {
			t.Errorf("%s = %v, want %v", k, v, want[k])
		}
	}
	aw := root["_aws"].(map[string]any)
	if aw["Timestamp"].(float64) != float64(at.UnixMilli()) {
		t.Errorf("Timestamp %v, want the invocation's time %d", aw["Timestamp"], at.UnixMilli())
	}
	dir := aw["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if dir["Namespace"] != "streamscore" || root["function"] != "churn-login" {
		t.Errorf("namespace %v function %v", dir["Namespace"], root["function"])
	}
	if root["shape"] != "kinesis" || root["request_id"] != "req-1" || root["model_version"] != "sha256:abc" {
		t.Errorf("properties: %v", root)
	}
	if got := dir["Dimensions"].([]any); len(got) != 1 || len(got[0].([]any)) != 1 || got[0].([]any)[0] != "function" {
		t.Errorf("dimensions %v, want [[function]]", got)
	}
}
