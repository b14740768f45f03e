package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/training"
	"github.com/streamscore/streamscore/training/trainingtest"
)

// retrainConfig is a pipeline whose scorer "failure" has a challenger in
// S3 and a quality entry (horizon 1h), reading the fixture's bucket.
const retrainConfig = `pipeline: factory
streams:
  - {name: factory-sensors, schema: sensor, shards: 1}
  - {name: factory-labels, schema: label, shards: 1}
schemas:
  sensor:
    entity: machine_id
    time: ts
    fields:
      - {name: temperature_c, type: float64}
  label:
    entity: machine_id
    time: ts
    fields:
      - {name: failed, type: string}
windows:
  - name: machine_10m
    stream: factory-sensors
    kind: tumbling
    size: 10m
    features:
      - {name: temp_mean, agg: mean, field: temperature_c}
      - {name: readings, agg: count}
models:
  failure_v1: {format: xgboost, path: examples/models/factory-failure.json}
  failure_next: {format: xgboost, path: "CHALLENGER", reload_interval: 30s}
scorers:
  - {name: failure, window: machine_10m, model: failure_v1, challenger: failure_next}
sinks:
  s3: {bucket: BUCKET, prefix: results/}
labels:
  stream: factory-labels
  label: failed
monitor:
  quality:
    - {scorer: failure, threshold: 0.5, horizon: 1h}
`

// retrainSetup writes the fixture and the configuration, and returns the
// configuration's path, the challenger's URI and the stack's variables.
func retrainSetup(t *testing.T) (*trainingtest.Fixture, string, string, []string) {
	f := trainingtest.New(t)
	challenger := "s3://" + f.Bucket + "/models/failure/challenger.json"
	cfgPath := filepath.Join(t.TempDir(), "factory.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.NewReplacer("BUCKET", f.Bucket, "CHALLENGER", challenger).Replace(retrainConfig)), 0o644); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, kv := range f.Env.Endpoints.EnvVars() {
		vars = append(vars, kv[0]+"="+kv[1])
	}
	return f, cfgPath, challenger, vars
}

// TestRetrainTrain: `retrain train` with a whole EventBridge event as the
// request trains on the fixture's labelled rows and prints where the
// model went; the challenger's path holds it, loading with its digest.
func TestRetrainTrain(t *testing.T) {
	trainingtest.NeedXGBoost(t, training.DefaultPython)
	f, cfgPath, challenger, vars := retrainSetup(t)
	detail, _ := json.Marshal(f.Request)
	reqPath := filepath.Join(t.TempDir(), "event.json")
	event := fmt.Sprintf(`{"version":"0","source":"streamscore","detail-type":"Retraining Requested","detail":%s}`, detail)
	if err := os.WriteFile(reqPath, []byte(event), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := run(t, vars, "retrain", "train", "--config", cfgPath, "--request", reqPath, "--work-dir", t.TempDir())
	if err != nil {
		t.Fatalf("retrain train: %v\n%s%s", err, out, errOut)
	}
	var res training.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if res.Model != "s3://"+f.Bucket+"/"+training.ModelKey("factory", "failure", f.Request.RequestID) || res.Challenger != challenger ||
		res.Set == nil || res.Set.Rows != 18 || res.Set.Positives != 8 {
		t.Errorf("result %+v", res)
	}
	if _, err := scorer.LoadModel(devstacktest.Ctx(t), challenger, f.Env.S3, scorer.WithSHA256(res.SHA256)); err != nil {
		t.Errorf("the challenger: %v", err)
	}

	if _, errOut, err := run(t, vars, "retrain", "train", "--config", cfgPath, "--request", cfgPath); err == nil || !strings.Contains(errOut, "request: not JSON") {
		t.Errorf("a request that is not JSON: %v %s", err, errOut)
	}
}

// TestRetrainWorker: `retrain worker` completes a Step Functions
// execution of the local stack whose task is its activity, and stops on
// SIGTERM.
func TestRetrainWorker(t *testing.T) {
	trainingtest.NeedXGBoost(t, training.DefaultPython)
	f, cfgPath, challenger, vars := retrainSetup(t)
	ctx := devstacktest.Ctx(t)
	sf := f.Env.StepFunctions()
	activity := f.Env.CreateActivity(t)
	machine := f.Env.CreateStateMachine(t, fmt.Sprintf(`{"StartAt":"Train","States":{"Train":{"Type":"Task","Resource":%q,"End":true}}}`, activity))

	cmd := exec.Command(binary(t), "retrain", "worker", "--config", cfgPath, "--activity", activity, "--name", "cli-test", "--work-dir", t.TempDir())
	cmd.Dir = "../.."
	cmd.Env = append(append(os.Environ(), vars...), "AWS_ENDPOINT_URL_SFN="+f.Env.Endpoints.CloudWatch)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the worker exited with %v on SIGTERM\n%s", err, errOut.String())
			}
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Errorf("the worker did not stop on SIGTERM\n%s", errOut.String())
		}
	}()

	input, _ := json.Marshal(f.Request)
	ex, err := sf.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Input: aws.String(string(input))})
	if err != nil {
		t.Fatal(err)
	}
	var d *sfn.DescribeExecutionOutput
	for d == nil || d.Status == sfntypes.ExecutionStatusRunning {
		select {
		case <-ctx.Done():
			t.Fatalf("the execution is still running: %v\n%s", ctx.Err(), errOut.String())
		case err := <-exited:
			t.Fatalf("the worker exited: %v\n%s", err, errOut.String())
		case <-time.After(100 * time.Millisecond):
		}
		if d, err = sf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: ex.ExecutionArn}); err != nil {
			t.Fatal(err)
		}
	}
	if d.Status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("execution %s: %s %s\n%s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause), errOut.String())
	}
	var out training.TaskOutput
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil || out.Challenger != challenger || len(out.SHA256) != 64 {
		t.Errorf("output %q: %v", aws.ToString(d.Output), err)
	}
}

// TestRetrainReadRequest: "-" reads stdin; a request over the bound is
// refused rather than read whole.
func TestRetrainReadRequest(t *testing.T) {
	got, err := readRequest(strings.NewReader(`{"detail":{}}`), "-")
	if err != nil || string(got) != `{"detail":{}}` {
		t.Errorf("stdin: %q, %v", got, err)
	}
	if _, err := readRequest(strings.NewReader(strings.Repeat(" ", maxRequestBytes+1)), "-"); err == nil || !strings.Contains(err.Error(), "not an event") {
		t.Errorf("an oversized request: %v", err)
	}
	if _, err := readRequest(nil, filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
}
