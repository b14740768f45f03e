package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"gopkg.in/yaml.v3"
)

// monitorSection is appended to examples/factory.yaml: a drift monitor
// of its one window, with a prefix of its own and a local baseline, as
// `streamscore monitor baseline --out` leaves one.
const monitorSection = `
monitor:
  period: 1h
  prefix: drift/        # the stack puts it at monitoring/
  windows:
    - window: machine_5m
      baseline: examples/baselines/machine_5m
`

// monitoredFactory writes examples/factory.yaml with monitor (a monitor
// section) appended to a file in dir.
func monitoredFactory(t testing.TB, dir, monitor string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "factory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), "\nmonitor:") {
		t.Fatal("examples/factory.yaml has a monitor section already: these tests add their own")
	}
	file := filepath.Join(dir, "factory-monitored.yaml")
	if err := os.WriteFile(file, append(src, monitor...), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

var (
	monitoredOnce sync.Once
	monitoredSyn  *synthesized
)

// monitored is the default stack with factory's window monitored and
// churn not, synthesized once per test binary.
func monitored(t testing.TB) *synthesized {
	t.Helper()
	monitoredOnce.Do(func() {
		file := monitoredFactory(t, t.TempDir(), monitorSection)
		monitoredSyn = synth(t, map[string]any{"pipelines": []any{file, "examples/churn.yaml"}})
	})
	if monitoredSyn == nil {
		t.Fatal("the monitored stack did not synthesize")
	}
	return monitoredSyn
}

// TestMonitorGrants: a pipeline with a monitor section gets, on top of
// the default role and for it alone (churn has none): its monitoring
// prefix to write and read, its baseline prefix to read, and ListBucket
// on each of those prefixes only, which the parts' listing needs and
// which makes S3 answer 404, not 403, for an object not there (a period
// not judged yet; a baseline without constraints.json).
func TestMonitorGrants(t *testing.T) {
	s := monitored(t)
	bucket := s.idOf(t, "AWS::S3::Bucket", "Results")
	want := defaultWorkerStatements(t, s)
	want["WriteMonitoring"] = wantStatement{
		[]string{"s3:GetObject", "s3:PutObject"}, []string{under(bucket, "/monitoring/factory/*")}, "",
	}
	want["ListMonitoring"] = wantStatement{
		[]string{"s3:ListBucket"}, []string{getAtt(bucket)}, `{"StringLike":{"s3:prefix":["monitoring/factory/*"]}}`,
	}
	want["ReadBaselines"] = wantStatement{
		[]string{"s3:GetObject"}, []string{under(bucket, "/baselines/factory/machine_5m/*")}, "",
	}
	want["ListBaselines"] = wantStatement{
		[]string{"s3:ListBucket"}, []string{getAtt(bucket)}, `{"StringLike":{"s3:prefix":["baselines/factory/machine_5m/*"]}}`,
	}
	assertStatements(t, s, "WorkerTaskRole", want)
}

// TestMonitoringConfigReferencesStack: the deployed factory configuration
// writes the monitor's files under monitoring/ and reads its baseline
// from baselines/factory/machine_5m/ of the stack's bucket.
func TestMonitoringConfigReferencesStack(t *testing.T) {
	s := monitored(t)
	init := containers(t, s)[initName]
	var factory string
	for _, e := range asList(init["Environment"]) {
		if e := e.(map[string]any); e["Name"] == "STREAMSCORE_CONFIG_FACTORY" {
			factory = compact(e["Value"])
		}
	}
	bucket := `{"Ref":"` + s.idOf(t, "AWS::S3::Bucket", "Results") + `"}`
	for what, want := range map[string]string{
		"prefix":   `prefix: \"monitoring/\"`,
		"baseline": `baseline: \"s3://",` + bucket + `,"/baselines/factory/machine_5m/\"`,
	} {
		if !strings.Contains(factory, want) {
			t.Errorf("factory configuration: %s: %s not in\n%s", what, want, factory)
		}
	}
	if strings.Contains(factory, "drift/") || strings.Contains(factory, "examples/baselines") {
		t.Errorf("factory configuration still names the file's prefix or local baseline:\n%s", factory)
	}
}

// TestMonitoringLifecycle: with a monitor, the monitoring prefix expires
// with the results it describes; baselines, like models, never do; a
// stack without a monitor has no such rule.
func TestMonitoringLifecycle(t *testing.T) {
	rules := func(s *synthesized) map[string]map[string]any {
		id := s.idOf(t, "AWS::S3::Bucket", "Results")
		out := map[string]map[string]any{}
		for _, r := range asList(props(s.resources("AWS::S3::Bucket")[id])["LifecycleConfiguration"].(map[string]any)["Rules"]) {
			rule := r.(map[string]any)
			out[rule["Id"].(string)] = rule
		}
		return out
	}
	m := rules(monitored(t))
	if r := m["monitoring"]; r["Prefix"] != MonitoringPrefix || r["ExpirationInDays"] != 400.0 || r["Status"] != "Enabled" {
		t.Errorf("monitoring rule %s, want prefix %s expired after resultsExpirationDays (400)", compact(r), MonitoringPrefix)
	}
	for id, r := range m {
		if p, _ := r["Prefix"].(string); strings.HasPrefix(p, BaselinesPrefix) || (strings.HasPrefix(BaselinesPrefix, p) && r["ExpirationInDays"] != nil) {
			t.Errorf("rule %s would expire baselines: %s", id, compact(r))
		}
	}
	parts := "monitor-parts-factory-machine_5m"
	if r := m[parts]; r["Prefix"] != MonitorPartsPrefix("factory", "machine_5m") || r["Prefix"] != "monitoring/factory/machine_5m/parts/" ||
		r["ExpirationInDays"] != float64(monitorPartsDays) {
		t.Errorf("parts rule %s, want monitoring/factory/machine_5m/parts/ expired after %d days", compact(r), monitorPartsDays)
	}
	if r, ok := rules(defaults(t))["monitoring"]; ok {
		t.Errorf("a stack without a monitor has a monitoring rule: %s", compact(r))
	}
}

// TestRenderMonitor: Render puts the monitor's files at MonitoringPrefix
// and a local baseline at the stack's baselines/<pipeline>/<window>/,
// keeps a baseline already in the stack's bucket, and leaves the rest of
// the section as written.
func TestRenderMonitor(t *testing.T) {
	d := Deployment{Bucket: "b", LeaseTable: "l", FeatureTable: "f", DeadLetterURL: "https://q", TopicARN: "arn:aws:sns:r:1:t"}
	render := func(baseline string) map[string]any {
		t.Helper()
		section := strings.Replace(monitorSection, "examples/baselines/machine_5m", baseline, 1)
		p, err := LoadPipeline(monitoredFactory(t, t.TempDir(), section))
		if err != nil {
			t.Fatal(err)
		}
		if !p.Monitored() || p.Monitor.Prefix != "drift/" || len(p.Monitor.Windows) != 1 ||
			p.Monitor.Windows[0] != (MonitoredWindow{Window: "machine_5m", Baseline: baseline}) {
			t.Errorf("parsed monitor %+v", p.Monitor)
		}
		out, err := p.Render(d)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "# the stack puts it at monitoring/") {
			t.Errorf("comments lost:\n%s", out)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		return doc["monitor"].(map[string]any)
	}
	for baseline, want := range map[string]string{
		"examples/baselines/machine_5m":          "s3://b/baselines/factory/machine_5m/",
		"/abs/dir/":                              "s3://b/baselines/factory/machine_5m/",
		"s3://b/baselines/factory/machine_5m/":   "s3://b/baselines/factory/machine_5m/",
		"s3://b/my-baselines/2026-11/machine_5m": "s3://b/my-baselines/2026-11/machine_5m",
	} {
		m := render(baseline)
		if m["prefix"] != MonitoringPrefix {
			t.Errorf("%s: monitor.prefix %v, want %s", baseline, m["prefix"], MonitoringPrefix)
		}
		if m["period"] != "1h" {
			t.Errorf("%s: monitor.period %v, want 1h as written", baseline, m["period"])
		}
		w := m["windows"].([]any)[0].(map[string]any)
		if w["baseline"] != want || w["window"] != "machine_5m" {
			t.Errorf("%s: window %v, want baseline %s", baseline, w, want)
		}
	}
}

// TestBaselineKey: the prefix the worker's grant names is the one it
// reads: a kept s3:// baseline's key with the slash dataset.LoadBaseline
// adds.
func TestBaselineKey(t *testing.T) {
	for baseline, want := range map[string]string{
		"baselines/x":                   "baselines/factory/machine_5m/",
		"s3://b/baselines/f/m/":         "baselines/f/m/",
		"s3://b/my-baselines/2026-11/m": "my-baselines/2026-11/m/",
	} {
		p := &Pipeline{File: "f.yaml", Name: "factory", Monitor: &PipelineMonitor{Windows: []MonitoredWindow{{Window: "machine_5m", Baseline: baseline}}}}
		key, local, err := p.BaselineKey(0, "b")
		if err != nil || key != want || local == strings.HasPrefix(baseline, "s3://") {
			t.Errorf("%s: key %q local %v err %v, want %q", baseline, key, local, err, want)
		}
	}
}

// TestRenderRefusesBaselinesItCannotGrant: a baseline in another bucket,
// or one whose key IAM would read as a wildcard or as the whole bucket,
// is refused with the file and key named, at render and at synth.
func TestRenderRefusesBaselinesItCannotGrant(t *testing.T) {
	d := Deployment{Bucket: "b", LeaseTable: "l", FeatureTable: "f", DeadLetterURL: "https://q", TopicARN: "arn:aws:sns:r:1:t"}
	for _, baseline := range []string{"s3://other/baselines/factory/machine_5m/", "s3://b", "s3://b/", "s3://b/baselines/*/", "s3://b/base?", "s3://b/${aws:username}/"} {
		section := strings.Replace(monitorSection, "examples/baselines/machine_5m", baseline, 1)
		file := monitoredFactory(t, t.TempDir(), section)
		p, err := LoadPipeline(file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Render(d)
		if err == nil || !strings.Contains(err.Error(), file+": monitor.windows[0].baseline: "+baseline) {
			t.Errorf("%s: error %v, want one naming %s, monitor.windows[0].baseline and the baseline", baseline, err, file)
		}
	}
	// In the stack the bucket's name is generated: an s3:// baseline
	// naming a bucket cannot be shown to be this one.
	file := monitoredFactory(t, t.TempDir(), strings.Replace(monitorSection, "examples/baselines/machine_5m", "s3://my-baselines/factory/", 1))
	ctx := cdkContext(t)
	ctx["loginLambdaCode"] = stubLambda(t)
	ctx["pipelines"] = []any{file, "examples/churn.yaml"}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(t.TempDir())})
	if _, err := Build(context.Background(), app, t.TempDir()); err == nil || !strings.Contains(err.Error(), file+": monitor.windows[0].baseline: s3://my-baselines/factory/ is outside this stack's bucket") {
		t.Errorf("synth with an outside baseline: error %v", err)
	}
}
