package training

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/retrain"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/training/trainingtest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

func testConfig(t *testing.T, f *trainingtest.Fixture, challenger string) *config.Config {
	t.Helper()
	cfg := &config.Config{Pipeline: "factory", File: "factory.yaml",
		Models:  map[string]*config.Model{"v1": {Format: "xgboost", Path: "examples/models/factory-failure.json"}},
		Scorers: []config.Scorer{{Name: "failure", Model: "v1"}},
		Sinks:   config.Sinks{S3: &config.S3Sink{Bucket: f.Bucket, Prefix: "results/"}},
		Monitor: config.Monitor{Quality: []config.QualityMonitor{{Scorer: "failure", Threshold: 0.5, Horizon: config.Duration(time.Hour)}}},
	}
	if challenger != "" {
		cfg.Models["v2"] = &config.Model{Format: "xgboost", Path: challenger}
		cfg.Scorers[0].Challenger = "v2"
	}
	return cfg
}

// TestTrainingSet: the training set of the horizon scenario holds exactly
// the rows and labels the quality monitor judges (cross-checked with
// JudgePeriod on the same files), with each window's features as the S3
// sink wrote them first.
func TestTrainingSet(t *testing.T) {
	f := trainingtest.New(t)
	ctx := devstacktest.Ctx(t)
	// Ground truth of hours no prediction of the range can be judged by
	// (before the range; after its end, horizon and delay) is not read:
	// read, these files would stop the build.
	for _, k := range []string{"groundtruth/factory/2026/12/01/00/old.jsonl", "groundtruth/factory/2026/12/04/00/late.jsonl"} {
		if _, err := f.Env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.Bucket), Key: aws.String(k), Body: strings.NewReader("not json\n")}); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	st, err := BuildSet(ctx, SetOptions{S3: f.Env.S3, Results: f.Request.Data.ResultsPrefix + "failure/", GroundTruth: f.Request.Data.GroundTruthPrefix,
		From: f.Request.Data.From, To: f.Request.Data.To, Horizon: time.Hour, Delay: 10 * time.Minute, Dir: t.TempDir()}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if want := "entity,window_end,temp_mean,readings,label,outcome_at"; lines[0] != want {
		t.Fatalf("header %q, want %q", lines[0], want)
	}
	got := slices.Sorted(slices.Values(lines[1:]))
	if !slices.Equal(got, f.Want) {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(f.Want, "\n"))
	}
	if st.Rows != 18 || st.Positives != 8 || st.Duplicates != 1 || st.Outside != 4 || st.PredictionsRead.LeftOut != 2 || st.LabelsRead.Files != 2 {
		t.Errorf("stats %+v: want 18 rows, 8 positive, 1 duplicate, 4 outside, 2 left out, 2 label files", st)
	}
	if _, err := csv.NewReader(strings.NewReader(out.String())).ReadAll(); err != nil {
		t.Errorf("not CSV: %v", err)
	}

	// The quality monitor's own join of the same files agrees.
	results, err := dataset.Open(ctx, f.Env.S3, f.Request.Data.ResultsPrefix+"failure/")
	if err != nil {
		t.Fatal(err)
	}
	labels, err := dataset.Open(ctx, f.Env.S3, f.Request.Data.GroundTruthPrefix+"2026/12/03/")
	if err != nil {
		t.Fatal(err)
	}
	q, err := dataset.JudgePeriod(ctx, results, labels, dataset.PeriodOptions{Horizon: time.Hour, Start: f.Request.Data.From, End: f.Request.Data.To})
	if err != nil {
		t.Fatal(err)
	}
	cm := q.All.Binary.ConfusionMatrix
	if n, pos := cm.TruePositives+cm.FalsePositives+cm.TrueNegatives+cm.FalseNegatives, cm.TruePositives+cm.FalseNegatives; int64(n) != st.Rows || int64(pos) != st.Positives {
		t.Errorf("JudgePeriod labels %v rows, %v positive; the training set %d, %d", n, pos, st.Rows, st.Positives)
	}
}

// TestTrainRun: a request trains a model with train.py for real; it lands
// under its immutable key and at the challenger's path, both loading as
// the scorer loads models, with the features of the results; a second
// run of the same request reuses it.
func TestTrainRun(t *testing.T) {
	trainingtest.NeedXGBoost(t, DefaultPython)
	f := trainingtest.New(t)
	ctx := devstacktest.Ctx(t)
	challenger := "s3://" + f.Bucket + "/models/failure/challenger.json"
	o := Options{Config: testConfig(t, f, challenger), S3: f.Env.S3, Script: "../examples/models/train.py", WorkDir: t.TempDir()}
	res, err := Run(ctx, f.Request, o)
	if err != nil {
		t.Fatal(err)
	}
	wantModel := "s3://" + f.Bucket + "/models/factory/failure/" + f.Request.RequestID + "/model.json"
	if res.Model != wantModel || res.Challenger != challenger || len(res.SHA256) != 64 || res.Reused {
		t.Fatalf("result %+v: want model %s, challenger %s", res, wantModel, challenger)
	}
	if res.Set == nil || res.Set.Rows != 18 || res.Set.Positives != 8 {
		t.Errorf("set %+v: want 18 rows, 8 positive", res.Set)
	}
	for _, uri := range []string{res.Model, res.Challenger} {
		m, err := scorer.LoadModel(ctx, uri, f.Env.S3)
		if err != nil {
			t.Fatalf("loading %s: %v", uri, err)
		}
		if !slices.Equal(m.Features(), []string{"temp_mean", "readings"}) {
			t.Errorf("%s: features %v", uri, m.Features())
		}
	}
	// The key is immutable: S3 refuses to replace it.
	b, k, _ := splitS3(res.Model)
	if _, err := f.Env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(k), Body: strings.NewReader("{}"),
		IfNoneMatch: aws.String("*")}); err == nil {
		t.Errorf("%s was replaced", res.Model)
	}
	again, err := Run(ctx, f.Request, o)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || again.SHA256 != res.SHA256 || again.Model != res.Model {
		t.Errorf("the request again: %+v, want the model reused (sha256 %s)", again, res.SHA256)
	}
}

// TestTrainRunErrors: what a run refuses, naming what is wrong.
func TestTrainRunErrors(t *testing.T) {
	f := trainingtest.New(t)
	ctx := devstacktest.Ctx(t)
	for _, c := range []struct {
		what string
		edit func(*config.Config, *retrain.RetrainingRequested)
		want string
	}{
		{"another pipeline", func(_ *config.Config, r *retrain.RetrainingRequested) { r.Pipeline = "churn" }, `is for pipeline "churn"`},
		{"unknown scorer", func(_ *config.Config, r *retrain.RetrainingRequested) { r.Scorer = "nope" }, `scorer "nope" is not in`},
		{"no quality entry", func(c *config.Config, _ *retrain.RetrainingRequested) { c.Monitor.Quality = nil }, "no monitor.quality entry"},
		{"a tar.gz challenger", func(c *config.Config, _ *retrain.RetrainingRequested) {
			c.Models["v2"] = &config.Model{Path: "s3://b/m/model.tar.gz"}
			c.Scorers[0].Challenger = "v2"
		}, "is a model.tar.gz"},
		{"one class", func(c *config.Config, _ *retrain.RetrainingRequested) { c.Monitor.Quality[0].Horizon = 0 }, "1 labelled rows in (2026-12-03T07:50:00Z, 2026-12-03T08:50:00Z], 1 positive: a classifier needs both classes"},
		{"no interpreter", func(*config.Config, *retrain.RetrainingRequested) {}, "/nonexistent examples/models/train.py: fork/exec /nonexistent"},
		{"no results", func(_ *config.Config, r *retrain.RetrainingRequested) {
			r.Data.ResultsPrefix = "s3://" + f.Bucket + "/none/"
		}, "no results under"},
	} {
		t.Run(c.what, func(t *testing.T) {
			cfg, req := testConfig(t, f, ""), *f.Request
			c.edit(cfg, &req)
			_, err := Run(ctx, &req, Options{Config: cfg, S3: f.Env.S3, Python: "/nonexistent", WorkDir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestTrainParseRequest: the detail alone and the whole event read the
// same; other events and incomplete details are refused.
func TestTrainParseRequest(t *testing.T) {
	detail := `{"schema_version":1,"request_id":"r1","pipeline":"factory","reason":"drift","scorer":"failure","at":"2026-12-03T08:50:00Z",` +
		`"rule":{"periods":2,"cooldown_seconds":3600},"periods":[],"data":{"results_prefix":"s3://b/results/","from":"2026-12-03T07:50:00Z","to":"2026-12-03T08:50:00Z"}}`
	for _, in := range []string{detail, `{"source":"streamscore","detail-type":"Retraining Requested","detail":` + detail + `}`} {
		r, err := ParseRequest([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if r.RequestID != "r1" || r.Scorer != "failure" || !r.Data.To.Equal(trainingtest.At(8, 50)) {
			t.Errorf("%+v", r)
		}
	}
	for in, want := range map[string]string{
		`{"detail-type":"Model Promoted","detail":{}}`:                         `detail-type "Model Promoted"`,
		strings.Replace(detail, `"schema_version":1`, `"schema_version":2`, 1): "schema_version 2",
		strings.Replace(detail, `"r1"`, `"../x"`, 1):                           "request_id",
		strings.Replace(detail, `"from":"2026-12-03T07:50:00Z",`, "", 1):       "data.from",
		`not json`: "not JSON",
	} {
		if _, err := ParseRequest([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
}

// TestTrainWorker: the Step Functions activity worker end to end on the
// local stack's Step Functions: a state machine whose one Task state is
// the training activity, an execution started with the event's detail,
// the worker trains and reports, and the execution succeeds with the
// model's URIs and digest as its output. A request that cannot train
// fails its execution with the worker's error.
func TestTrainWorker(t *testing.T) {
	trainingtest.NeedXGBoost(t, DefaultPython)
	f := trainingtest.New(t)
	ctx := devstacktest.Ctx(t)
	sf := f.Env.StepFunctions()
	activity := f.Env.CreateActivity(t)
	machine := f.Env.CreateStateMachine(t, fmt.Sprintf(`{"StartAt":"Train","States":{"Train":{"Type":"Task","Resource":%q,"End":true}}}`, activity))
	challenger := "s3://" + f.Bucket + "/models/failure/challenger.json"
	w := &Worker{SFN: sf, Activity: activity, Name: "test", Options: Options{Config: testConfig(t, f, challenger), S3: f.Env.S3,
		Script: "../examples/models/train.py", WorkDir: t.TempDir()}}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}()

	execute := func(input []byte) *sfn.DescribeExecutionOutput {
		t.Helper()
		ex, err := sf.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Input: aws.String(string(input))})
		if err != nil {
			t.Fatalf("start execution: %v", err)
		}
		for {
			d, err := sf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: ex.ExecutionArn})
			if err != nil {
				t.Fatalf("describe execution: %v", err)
			}
			if d.Status != sfntypes.ExecutionStatusRunning {
				return d
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the execution is still running: %v", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	input, _ := json.Marshal(f.Request)
	d := execute(input)
	if d.Status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("execution %s: %s %s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
	}
	var out TaskOutput
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
		t.Fatalf("output %q: %v", aws.ToString(d.Output), err)
	}
	if out.Model != "s3://"+f.Bucket+"/"+ModelKey("factory", "failure", f.Request.RequestID) || out.Challenger != challenger || len(out.SHA256) != 64 {
		t.Errorf("output %+v", out)
	}
	if _, err := scorer.LoadModel(ctx, out.Challenger, f.Env.S3, scorer.WithSHA256(out.SHA256)); err != nil {
		t.Errorf("the challenger: %v", err)
	}

	bad := *f.Request
	bad.Scorer = "nope"
	input, _ = json.Marshal(bad)
	d = execute(input)
	if d.Status != sfntypes.ExecutionStatusFailed {
		t.Fatalf("execution of an unknown scorer: %s, want FAILED", d.Status)
	}
	if e, c := aws.ToString(d.Error), aws.ToString(d.Cause); e != ErrorTrainingFailed || !strings.Contains(c, `scorer "nope" is not in factory.yaml`) {
		t.Errorf("failed execution: error %q cause %q", e, c)
	}
}
