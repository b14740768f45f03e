package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func containers(t testing.TB, s *synthesized) map[string]map[string]any {
	t.Helper()
	td := props(s.resources("AWS::ECS::TaskDefinition")[s.idOf(t, "AWS::ECS::TaskDefinition", "WorkerTask")])
	out := map[string]map[string]any{}
	for _, c := range asList(td["ContainerDefinitions"]) {
		c := c.(map[string]any)
		out[c["Name"].(string)] = c
	}
	return out
}

// TestWorkerTaskDefinition: the worker runs `streamscore run` with one
// --config per pipeline, written by the init container before the worker
// starts; its health check asks the ops server's /healthz; the root file
// system is read-only; SIGTERM gets the Fargate maximum of 120 s to drain
// and hand leases over; logs go to CloudWatch Logs.
func TestWorkerTaskDefinition(t *testing.T) {
	s := defaults(t)
	cs := containers(t, s)
	worker, init := cs[workerName], cs[initName]
	if worker == nil || init == nil {
		t.Fatalf("containers %v, want %s and %s", sortedKeys(cs), workerName, initName)
	}
	wantCmd := []string{"run", "--config", "/etc/streamscore/factory.yaml", "--config", "/etc/streamscore/churn.yaml",
		"--listen", "127.0.0.1:9464", "--spool-dir", "/tmp"}
	if got := strs2(worker["Command"]); !slices.Equal(got, wantCmd) {
		t.Errorf("worker command %v, want %v", got, wantCmd)
	}
	hc := worker["HealthCheck"].(map[string]any)
	if got := strs2(hc["Command"]); !slices.Equal(got, []string{"CMD", "/opt/streamscore/busybox", "wget", "-q", "-T", "3", "-O", "/dev/null", "http://127.0.0.1:9464/healthz"}) {
		t.Errorf("health check %v", got)
	}
	if hc["StartPeriod"] == nil || hc["Retries"] != 3.0 {
		t.Errorf("health check timing %s", compact(hc))
	}
	if worker["Essential"] != true || worker["ReadonlyRootFilesystem"] != true || worker["StopTimeout"] != 120.0 {
		t.Errorf("worker essential %v, read-only root %v, stop timeout %v", worker["Essential"], worker["ReadonlyRootFilesystem"], worker["StopTimeout"])
	}
	if got := compact(worker["DependsOn"]); got != `[{"Condition":"SUCCESS","ContainerName":"init"}]` {
		t.Errorf("worker depends on %s, want init SUCCESS", got)
	}
	if init["Essential"] != false {
		t.Errorf("init container must be non-essential (it exits)")
	}
	logs := worker["LogConfiguration"].(map[string]any)
	if logs["LogDriver"] != "awslogs" || !strings.Contains(compact(logs["Options"]), `"awslogs-group":{"Ref":"`+s.idOf(t, "AWS::Logs::LogGroup", "WorkerLogs")+`"}`) ||
		!strings.Contains(compact(logs["Options"]), `"mode":"non-blocking"`) {
		t.Errorf("worker logs %s", compact(logs))
	}
	if r := props(s.resources("AWS::Logs::LogGroup")[s.idOf(t, "AWS::Logs::LogGroup", "WorkerLogs")])["RetentionInDays"]; r != 30.0 {
		t.Errorf("log retention %v", r)
	}
	if got := compact(worker["Environment"]); !strings.Contains(got, `{"Name":"AWS_REGION","Value":{"Ref":"AWS::Region"}}`) {
		t.Errorf("worker environment %s: AWS_REGION missing", got)
	}
	// Mounts: the worker reads configurations and the probe, writes only
	// its spool.
	mounts := map[string]bool{}
	for _, m := range asList(worker["MountPoints"]) {
		m := m.(map[string]any)
		mounts[m["ContainerPath"].(string)] = m["ReadOnly"].(bool)
	}
	if !mounts[configDir] || !mounts[helperDir] || mounts[scratchDir] {
		t.Errorf("worker mounts (path: read-only) %v", mounts)
	}
	// The init script writes one file per pipeline from the variable
	// holding its configuration.
	script := strs2(init["Command"])
	if len(script) != 3 || script[0] != "sh" || script[1] != "-c" {
		t.Fatalf("init command %v", script)
	}
	for _, want := range []string{
		`printf '%s\n' "$STREAMSCORE_CONFIG_FACTORY" > /etc/streamscore/factory.yaml`,
		`printf '%s\n' "$STREAMSCORE_CONFIG_CHURN" > /etc/streamscore/churn.yaml`,
		"cp /bin/busybox /opt/streamscore/busybox",
		"chmod 1777 /tmp",
	} {
		if !strings.Contains(script[2], want) {
			t.Errorf("init script lacks %q:\n%s", want, script[2])
		}
	}
	td := props(s.resources("AWS::ECS::TaskDefinition")[s.idOf(t, "AWS::ECS::TaskDefinition", "WorkerTask")])
	if td["Cpu"] != "1024" || td["Memory"] != "2048" || compact(td["RuntimePlatform"]) != `{"CpuArchitecture":"X86_64","OperatingSystemFamily":"LINUX"}` {
		t.Errorf("task size/platform: cpu %v memory %v platform %s", td["Cpu"], td["Memory"], compact(td["RuntimePlatform"]))
	}
	if td["TaskRoleArn"] == nil || !strings.Contains(compact(td["TaskRoleArn"]), s.idOf(t, "AWS::IAM::Role", "WorkerTaskRole")) {
		t.Errorf("task role %s", compact(td["TaskRoleArn"]))
	}
}

func strs2(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, x.(string))
	}
	return out
}

// TestWorkerConfigReferencesStack: the configuration in the task
// definition points at this stack's resources (CloudFormation references,
// resolved at deploy time), not at the example names.
func TestWorkerConfigReferencesStack(t *testing.T) {
	s := defaults(t)
	init := containers(t, s)[initName]
	env := map[string]string{}
	for _, e := range asList(init["Environment"]) {
		e := e.(map[string]any)
		env[e["Name"].(string)] = compact(e["Value"])
	}
	factory := env["STREAMSCORE_CONFIG_FACTORY"]
	for what, want := range map[string]string{
		"lease table":  `lease_table: \"",{"Ref":"` + s.idOf(t, "AWS::DynamoDB::Table", "Leasesfactory") + `"}`,
		"bucket":       `{"Ref":"` + s.idOf(t, "AWS::S3::Bucket", "Results") + `"}`,
		"topic":        `{"Ref":"` + s.idOf(t, "AWS::SNS::Topic", "Alerts") + `"}`,
		"queue":        `{"Ref":"` + s.idOf(t, "AWS::SQS::Queue", "DeadLetters") + `"}`,
		"feature tbl":  `{"Ref":"` + s.idOf(t, "AWS::DynamoDB::Table", "FeatureTable") + `"}`,
		"model":        `/models/factory-failure.json`,
		"results path": `prefix: \"results/factory/\"`,
	} {
		if !strings.Contains(factory, want) {
			t.Errorf("factory configuration: %s: %s not in\n%s", what, want, factory)
		}
	}
	for _, stale := range []string{"streamscore-results", "streamscore-alerts", "streamscore-dead-letter", "table: streamscore-features", "examples/models/"} {
		if strings.Contains(factory, stale) {
			t.Errorf("factory configuration still names %q", stale)
		}
	}
	if _, ok := env["STREAMSCORE_CONFIG_CHURN"]; !ok {
		t.Errorf("no churn configuration in %v", sortedKeys(env))
	}
}

// TestWorkerService: desired count from context (default 2), rolling
// deploys that start new tasks before stopping old ones, rollback on
// failure, private subnets only, and a security group with no ingress and
// only HTTPS out.
func TestWorkerService(t *testing.T) {
	s := defaults(t)
	svc := props(s.resources("AWS::ECS::Service")[s.idOf(t, "AWS::ECS::Service", "WorkerService")])
	if svc["DesiredCount"] != 2.0 {
		t.Errorf("desired count %v", svc["DesiredCount"])
	}
	if got := compact(svc["DeploymentConfiguration"]); got != `{"DeploymentCircuitBreaker":{"Enable":true,"Rollback":true},"MaximumPercent":200,"MinimumHealthyPercent":100}` {
		t.Errorf("deployment %s", got)
	}
	net := svc["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)
	if net["AssignPublicIp"] != "DISABLED" || !strings.Contains(compact(net["Subnets"]), "workers") {
		t.Errorf("network %s", compact(net))
	}
	sg := props(s.resources("AWS::EC2::SecurityGroup")[s.idOf(t, "AWS::EC2::SecurityGroup", "WorkerSecurityGroup")])
	if sg["SecurityGroupIngress"] != nil {
		t.Errorf("ingress %s", compact(sg["SecurityGroupIngress"]))
	}
	if got := compact(sg["SecurityGroupEgress"]); got != `[{"CidrIp":"0.0.0.0/0","Description":"AWS APIs and image registries","FromPort":443,"IpProtocol":"tcp","ToPort":443}]` {
		t.Errorf("egress %s", got)
	}
	cluster := props(s.resources("AWS::ECS::Cluster")[s.idOf(t, "AWS::ECS::Cluster", "Cluster")])
	if !strings.Contains(compact(cluster["ClusterSettings"]), `{"Name":"containerInsights","Value":"enabled"}`) {
		t.Errorf("Container Insights (for RunningTaskCount) off: %s", compact(cluster["ClusterSettings"]))
	}

	three := synth(t, map[string]any{"workerDesiredCount": "3", "workerArchitecture": "arm64"}) // as -c gives them
	svc3 := props(three.resources("AWS::ECS::Service")[three.idOf(t, "AWS::ECS::Service", "WorkerService")])
	if svc3["DesiredCount"] != 3.0 {
		t.Errorf("workerDesiredCount=3: desired count %v", svc3["DesiredCount"])
	}
	alarm := props(three.resources("AWS::CloudWatch::Alarm")[three.idOf(t, "AWS::CloudWatch::Alarm", "AlarmWorkerTasks")])
	if alarm["Threshold"] != 3.0 {
		t.Errorf("task alarm threshold %v with 3 desired", alarm["Threshold"])
	}
	td := props(three.resources("AWS::ECS::TaskDefinition")[three.idOf(t, "AWS::ECS::TaskDefinition", "WorkerTask")])
	if !strings.Contains(compact(td["RuntimePlatform"]), `"CpuArchitecture":"ARM64"`) {
		t.Errorf("arm64 platform %s", compact(td["RuntimePlatform"]))
	}
}

// TestRenderedConfigsValidate renders each example configuration with
// concrete names and runs streamscore's own strict validator on the
// result (the binary built from the repository): what the worker gets
// must load.
func TestRenderedConfigsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/streamscore")
	}
	root := filepath.Join("..", "..")
	bin := filepath.Join(t.TempDir(), "streamscore")
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/streamscore")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build streamscore: %v\n%s", err, out)
	}
	d := Deployment{
		Bucket:        "stack-results-1a2b3c",
		LeaseTable:    "Stack-Leasesfactory-XYZ",
		FeatureTable:  "Stack-FeatureTable-XYZ",
		DeadLetterURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/Stack-DeadLetters-XYZ",
		TopicARN:      "arn:aws:sns:eu-west-1:123456789012:Stack-Alerts-XYZ",
	}
	dir := t.TempDir()
	args := []string{"config", "validate"}
	// examples/demo/factory.yaml has a drift monitor: its rendered
	// section must load too.
	// The loop fixture has labels, quality monitors and promotion.
	files := []string{"examples/factory.yaml", "examples/churn.yaml", "examples/demo/factory.yaml", loopFixture}
	for _, f := range files {
		p, err := LoadPipeline(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Render(d)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, p.Name+".yaml")
		if err := os.WriteFile(file, out, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, file)
		// And the values landed where the worker reads them.
		var doc map[string]any
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		sinks := doc["sinks"].(map[string]any)
		if got := doc["consumer"].(map[string]any)["lease_table"]; got != d.LeaseTable {
			t.Errorf("%s: lease_table %v", f, got)
		}
		if got := sinks["dead_letter"].(map[string]any); got["queue"] != d.DeadLetterURL || got["bucket"] != d.Bucket {
			t.Errorf("%s: dead_letter %v", f, got)
		}
		if got := sinks["feature_table"].(map[string]any)["table"]; got != d.FeatureTable {
			t.Errorf("%s: feature table %v", f, got)
		}
		if got := doc["alerts"].(map[string]any)["topic"]; got != d.TopicARN {
			t.Errorf("%s: topic %v", f, got)
		}
		for name, m := range doc["models"].(map[string]any) {
			path := m.(map[string]any)["path"].(string)
			// An s3:// path stays as written (the demo's challenger, in
			// the local demo's bucket): the stack refuses it at synth.
			if _, external := ModelKey(p.Models[name]); external && path == p.Models[name] {
				continue
			}
			if !strings.HasPrefix(path, "s3://"+d.Bucket+"/models/") {
				t.Errorf("%s: model %s path %s", f, name, path)
			}
		}
		if m, ok := doc["monitor"].(map[string]any); ok {
			if m["prefix"] != MonitoringPrefix {
				t.Errorf("%s: monitor.prefix %v", f, m["prefix"])
			}
			ws, _ := m["windows"].([]any)
			for _, w := range ws {
				w := w.(map[string]any)
				if want := "s3://" + d.Bucket + "/" + BaselinesPrefix + p.Name + "/" + w["window"].(string) + "/"; w["baseline"] != want {
					t.Errorf("%s: window %v: baseline %v, want %s", f, w["window"], w["baseline"], want)
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("streamscore %v: %v\n%s", args, err, out)
	}
	if n := strings.Count(string(out), ": ok"); n != len(files) {
		t.Errorf("validate: %d ok, want %d:\n%s", n, len(files), out)
	}
}

// TestRenderKeepsThePipeline: rendering changes the AWS names and nothing
// else: windows, schemas, rules and comments pass through as written.
func TestRenderKeepsThePipeline(t *testing.T) {
	file := filepath.Join("..", "..", "examples", "factory.yaml")
	p, err := LoadPipeline(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Render(Deployment{Bucket: "b", LeaseTable: "l", FeatureTable: "f", DeadLetterURL: "https://q", TopicARN: "arn:aws:sns:r:1:t"})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(file)
	var before, after map[string]any
	if err := yaml.Unmarshal(src, &before); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(out, &after); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pipeline", "streams", "schemas", "windows", "scorers", "ops"} {
		if compact(before[k]) != compact(after[k]) {
			t.Errorf("%s changed:\n%s\n%s", k, compact(before[k]), compact(after[k]))
		}
	}
	if compact(before["alerts"].(map[string]any)["rules"]) != compact(after["alerts"].(map[string]any)["rules"]) {
		t.Errorf("alert rules changed")
	}
	if !strings.Contains(string(out), "# the lease table is named after it") {
		t.Errorf("comments lost:\n%s", out)
	}
	if p.Application != "streamscore-factory" || p.FanOut || len(p.Streams) != 1 || p.Streams[0].Shards != 4 || p.Namespace != "Streamscore" {
		t.Errorf("parsed %+v", p)
	}
	if len(p.Scorers) != 1 || p.Scorers[0].Stream != "factory-sensors" || len(p.Scorers[0].Features) != 12 {
		t.Errorf("scorers %+v", p.Scorers)
	}
}

// TestLoadPipelineErrors: a configuration the stack cannot deploy is
// refused with the file and key named.
func TestLoadPipelineErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"no name":               {"streams: [{name: s}]\n", "pipeline: missing"},
		"bad name":              {"pipeline: a/b\nstreams: [{name: s}]\n", `pipeline: "a/b"`},
		"no streams":            {"pipeline: p\n", "streams: none"},
		"bad window":            {"pipeline: p\nstreams: [{name: s}]\nscorers: [{name: x, window: w}]\nsinks: {s3: {prefix: p/}}\n", `window "w" is not defined`},
		"no namespace":          {"pipeline: p\nstreams: [{name: s}]\nsinks: {cloudwatch: {put_metric_data: true}}\n", "sinks.cloudwatch.namespace"},
		"not yaml":              {"pipeline: [\n", "yaml"},
		"bad monitored window":  {"pipeline: p\nstreams: [{name: s}]\nmonitor: {windows: [{window: m, baseline: d}, {window: '*', baseline: d}]}\n", `monitor.windows[1].window: "*"`},
		"labels stream unknown": {"pipeline: p\nstreams: [{name: s}]\nlabels: {stream: t, label: l}\n", `labels.stream: "t"`},
		"other event bus":       {"pipeline: p\nstreams: [{name: s}]\nmonitor: {retrain: {event_bus: ops}}\n", `monitor.retrain.event_bus: "ops"`},
		"bad promoted scorer":   {"pipeline: p\nstreams: [{name: s}]\nscorers: [{name: 'a b', window: w, promotion: {metric: auc}}]\n", `scorers[0].name: "a b"`},
	} {
		file := filepath.Join(t.TempDir(), "p.yaml")
		if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPipeline(file)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: error %v, want one naming %s and %q", name, err, file, tc.want)
		}
	}
}
