package config

import (
	"strings"
	"testing"
)

// labelled is minimal plus a labels stream, an S3 sink, a quality monitor
// and a quality rule.
var labelled = strings.Replace(minimal, "schemas:\n", `  - name: l
    schema: label
schemas:
  label:
    entity: machine_id
    time: ts
    fields:
      - {name: failed, type: bool}
      - {name: result_id, type: string}
`, 1) + `sinks:
  s3:
    bucket: b
labels:
  stream: l
  label: failed
  delay: 15m
monitor:
  period: 1m
  quality:
    - {scorer: sc, threshold: 0.9, horizon: 5m}
alerts:
  topic: t
  rules:
    - {name: quality, quality: sc}
`

func TestQualitySectionIsValid(t *testing.T) {
	cfg, err := Parse([]byte(labelled), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Labels; l == nil || l.Stream != "l" || l.Label != "failed" || l.Delay.D().Minutes() != 15 {
		t.Errorf("labels = %+v", l)
	}
	if q := cfg.Monitor.Quality; len(q) != 1 || q[0].Scorer != "sc" || q[0].Threshold != 0.9 || q[0].Horizon.D().Minutes() != 5 {
		t.Errorf("quality = %+v", q)
	}
	if r := cfg.Alerts.Rules[0]; r.Quality != "sc" || r.Scorer != "" {
		t.Errorf("rule = %+v, want a quality rule on sc", r)
	}
	withRetrain := strings.Replace(labelled, "  period: 1m\n", "  period: 1m\n  retrain: {quality_periods: 2, cooldown: 12h, event_bus: flywheel}\n", 1)
	if c, err := Parse([]byte(withRetrain), "p.yaml"); err != nil || c.Monitor.Retrain.QualityPeriods != 2 || c.Monitor.Retrain.EventBus != "flywheel" {
		t.Errorf("retrain section: %+v, %v", c, err)
	}
	// Joined by inference id, no horizon is needed.
	byID := strings.Replace(strings.Replace(labelled, "  delay: 15m\n", "  inference_id: result_id\n", 1), ", horizon: 5m}", "}", 1)
	if _, err := Parse([]byte(byID), "p.yaml"); err != nil {
		t.Errorf("join by inference id: %v", err)
	}
}

func TestQualitySectionProblems(t *testing.T) {
	cases := []struct {
		name, old, new, wantPath, wantInMsg string
	}{
		{"labels stream undefined", "  stream: l\n", "  stream: l9\n", "labels.stream", `undefined stream "l9"`},
		{"labels stream read by a window", "  stream: l\n", "  stream: s\n", "labels.stream", `is read by window "w"`},
		{"label field missing", "  label: failed\n", "", "labels.label", "missing"},
		{"label field unknown", "  label: failed\n", "  label: broke\n", "labels.label", `"broke" is not a field of the labels stream's schema (fields: failed, result_id)`},
		{"inference id not a string", "  label: failed\n", "  label: failed\n  inference_id: failed\n", "labels.inference_id", `field "failed" is a bool: want string`},
		{"no s3 sink", "sinks:\n  s3:\n    bucket: b\n", "", "labels", "configure sinks.s3"},
		{"no labels section", "labels:\n  stream: l\n  label: failed\n  delay: 15m\n", "", "monitor.quality[0]", "labels: missing"},
		{"no horizon without ids", ", horizon: 5m}", "}", "monitor.quality[0].horizon", "labels carry no inference_id"},
		{"horizon on a regression", ", horizon: 5m}", ", horizon: 5m, problem: regression}", "monitor.quality[0].horizon", "cannot judge a regression"},
		{"unknown problem", ", horizon: 5m}", ", horizon: 5m, problem: multiclass}", "monitor.quality[0].problem", `"multiclass" is not one of binary, regression`},
		{"threshold above 1", "threshold: 0.9", "threshold: 1.5", "monitor.quality[0].threshold", "not a probability"},
		{"unknown scorer", "{scorer: sc,", "{scorer: sc9,", "monitor.quality[0].scorer", `undefined scorer "sc9"`},
		{"quality rule on an unjudged scorer", "{name: quality, quality: sc}", "{name: quality, quality: sc2}",
			"alerts.rules[0].quality", `undefined quality-monitored scorer "sc2" (defined: sc)`},
		{"retrain with negative periods", "  period: 1m\n", "  period: 1m\n  retrain: {drift_periods: -1}\n", "monitor.retrain", "must not be negative"},
		{"rule with scorer and quality", "{name: quality, quality: sc}", "{name: quality, quality: sc, scorer: sc}",
			"alerts.rules[0]", "a rule judges one thing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(labelled, tc.old) {
				t.Fatalf("case does not apply: %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(labelled, tc.old, tc.new, 1)), "p.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			found := false
			for _, e := range err.(Errors) {
				if e.Path == tc.wantPath && strings.Contains(e.Msg, tc.wantInMsg) {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s: %q in\n%v", tc.wantPath, tc.wantInMsg, err)
			}
		})
	}
}
