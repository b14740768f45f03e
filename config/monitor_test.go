package config

import (
	"strings"
	"testing"
)

// monitored is minimal plus an S3 sink, a monitored window and a drift rule.
const monitored = minimal + `sinks:
  s3:
    bucket: b
alerts:
  topic: t
  rules:
    - {name: drift, drift: w}
monitor:
  period: 1m
  windows:
    - {window: w, baseline: s3://b/baselines/w/}
`

func TestMonitorSectionIsValid(t *testing.T) {
	cfg, err := Parse([]byte(monitored), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Monitor; m.Period.D().Minutes() != 1 || len(m.Windows) != 1 || m.Windows[0].Baseline != "s3://b/baselines/w/" {
		t.Errorf("monitor = %+v", m)
	}
	if r := cfg.Alerts.Rules[0]; r.Drift != "w" || r.Scorer != "" {
		t.Errorf("rule = %+v, want a drift rule on w", r)
	}
}

func TestMonitorSectionProblems(t *testing.T) {
	cases := []struct {
		name, old, new, wantPath, wantInMsg string
	}{
		{"monitored window undefined", "{window: w, baseline", "{window: w9, baseline",
			"monitor.windows[0].window", `undefined window "w9"`},
		{"baseline missing", ", baseline: s3://b/baselines/w/}", "}",
			"monitor.windows[0].baseline", "missing: a directory or s3:// prefix"},
		{"scorer of another window", "{window: w, baseline", "{window: w, scorer: nope, baseline",
			"monitor.windows[0].scorer", `undefined scorer "nope"`},
		{"window monitored twice", "    - {window: w, baseline: s3://b/baselines/w/}\n",
			"    - {window: w, baseline: s3://b/baselines/w/}\n    - {window: w, baseline: x}\n",
			"monitor.windows[1].window", `window "w" is monitored twice`},
		{"no s3 sink", "sinks:\n  s3:\n    bucket: b\n", "",
			"monitor.windows", "configure sinks.s3"},
		{"drift rule on an unmonitored window", "{name: drift, drift: w}", "{name: drift, drift: w2}",
			"alerts.rules[0].drift", `undefined monitored window "w2" (defined: w)`},
		{"rule with scorer and drift", "{name: drift, drift: w}", "{name: drift, drift: w, scorer: sc}",
			"alerts.rules[0]", "a rule judges one thing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(monitored, tc.old) {
				t.Fatalf("case does not apply: %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(monitored, tc.old, tc.new, 1)), "p.yaml")
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
