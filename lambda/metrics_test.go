package lambda

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// validateEMF checks one line against the required structure of the
// Embedded Metric Format specification (the checks sinks' CloudWatch tests
// apply to the pipeline's lines) and returns the decoded root.
func validateEMF(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(line, &root); err != nil {
		t.Fatalf("EMF line is not a JSON object: %v: %s", err, line)
	}
	aw, ok := root["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws object: %s", line)
	}
	if ts, ok := aw["Timestamp"].(float64); !ok || ts < 1e12 {
		t.Fatalf("_aws.Timestamp must be epoch milliseconds: %v", aw["Timestamp"])
	}
	directives, ok := aw["CloudWatchMetrics"].([]any)
	if !ok || len(directives) == 0 {
		t.Fatalf("_aws.CloudWatchMetrics must be a non-empty array: %s", line)
	}
	for _, d := range directives {
		dir := d.(map[string]any)
		if ns, ok := dir["Namespace"].(string); !ok || ns == "" || len(ns) > 256 {
			t.Fatalf("Namespace: %v", dir["Namespace"])
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok {
			t.Fatalf("Dimensions must be an array of dimension sets")
		}
		for _, set := range sets {
			names := set.([]any)
			if len(names) > 30 {
				t.Fatalf("a dimension set has %d dimensions, limit 30", len(names))
			}
			for _, n := range names {
				if v, ok := root[n.(string)].(string); !ok || v == "" {
					t.Fatalf("dimension %v has no string member in the root", n)
				}
			}
		}
		metrics, ok := dir["Metrics"].([]any)
		if !ok || len(metrics) > 100 {
			t.Fatalf("Metrics must be an array of at most 100")
		}
		for _, m := range metrics {
			md := m.(map[string]any)
			name, ok := md["Name"].(string)
			if !ok || name == "" || len(name) > 1024 {
				t.Fatalf("metric Name: %v", md["Name"])
			}
			if u, ok := md["Unit"]; ok {
				if _, ok := u.(string); !ok {
					t.Fatalf("Unit must be a string")
				}
			}
			if _, ok := root[name].(float64); !ok {
				t.Fatalf("metric %s has no numeric member in the root: %v", name, root[name])
			}
		}
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
