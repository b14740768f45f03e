package training

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/retrain"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// result is a row of a result batch: a ten-minute window ending at end,
// with two features.
type result struct {
	entity  string
	end     time.Time
	temp    float64
	n       int64
	version string
	update  bool
	partial string
}

func batch(rows []result) arrow.RecordBatch {
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	f64, str := arrow.PrimitiveTypes.Float64, arrow.BinaryTypes.String
	s := arrow.NewSchema([]arrow.Field{
		{Name: sinks.ColEntity, Type: str},
		{Name: sinks.ColWindowStart, Type: ts},
		{Name: sinks.ColWindowEnd, Type: ts},
		{Name: "temp_mean", Type: f64},
		{Name: "readings", Type: arrow.PrimitiveTypes.Int64},
		{Name: sinks.ColUpdate, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartial, Type: str},
		{Name: windowing.ColOffsetFirst, Type: arrow.PrimitiveTypes.Uint64},
		{Name: windowing.ColOffsetLast, Type: arrow.PrimitiveTypes.Uint64},
		{Name: sinks.ColScore, Type: f64, Nullable: true},
		{Name: sinks.ColModelVersion, Type: str},
		{Name: sinks.ColFallback, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartialID, Type: str, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	for i, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.entity)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r.end.Add(-10 * time.Minute).UnixNano()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(r.end.UnixNano()))
		b.Field(3).(*array.Float64Builder).Append(r.temp)
		b.Field(4).(*array.Int64Builder).Append(r.n)
		b.Field(5).(*array.BooleanBuilder).Append(r.update)
		b.Field(6).(*array.StringBuilder).Append(r.partial)
		b.Field(7).(*array.Uint64Builder).Append(uint64(i))
		b.Field(8).(*array.Uint64Builder).Append(uint64(i))
		b.Field(9).(*array.Float64Builder).Append(0.5)
		b.Field(10).(*array.StringBuilder).Append(r.version)
		b.Field(11).(*array.BooleanBuilder).Append(false)
		if r.partial != "" {
			b.Field(12).(*array.StringBuilder).Append(fmt.Sprintf("shardId-000000000001/%d", i))
		} else {
			b.Field(12).(*array.StringBuilder).AppendNull()
		}
	}
	return b.NewRecordBatch()
}

// sinkWrite writes rows through the real S3 sink, written at now.
func sinkWrite(t *testing.T, env *devstacktest.Env, bucket, prefix string, now time.Time, seq int, rows []result) {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	sink, err := sinks.NewS3(sinks.S3Options{Client: env.S3, Bucket: bucket, Prefix: prefix, SpoolDir: t.TempDir(),
		RollAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rec := batch(rows)
	defer rec.Release()
	acked := make(chan error, 1)
	first := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*seq+1)}
	last := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*seq+999)}
	if err := sink.Write(ctx, sinks.Batch{Stream: "factory", Shard: "shardId-000000000001", Range: sinks.Range{First: first, Last: last},
		Rec: rec, Ack: func(err error) { acked <- err }}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatalf("the S3 sink failed the batch: %v", err)
	}
}

func gt(id, data, entity, at string) string {
	ext := ""
	if entity != "" {
		ext = fmt.Sprintf(`,"streamscore":{"entity":%q,"time":%q}`, entity, at)
	}
	return fmt.Sprintf(`{"groundTruthData":{"data":%q,"encoding":"CSV"},"eventMetadata":{"eventId":%q},"eventVersion":"0"%s}`+"\n", data, id, ext)
}

func at(h, m int) time.Time { return time.Date(2026, 12, 3, h, m, 0, 0, time.UTC) }

// fixture is the horizon scenario of monitor/dataset's TestJudgePeriodS3,
// with features, in the S3 of the local stack: the results of scorer
// "failure" under results/failure/ as the S3 sink writes them, and the
// ground truth under groundtruth/factory/ as JSON Lines. Range (07:50,
// 08:50], horizon 1h. m-1 fails at 09:20 (the label twice), m-2 at
// 08:30; m-3 has a negative label at 08:45 and a positive one by id for
// its 08:30 window. Each entity has windows ending 08:00 .. 09:00 (09:00
// outside); m-1 one ending 07:50 (outside). An update and a partial row
// are left out; a replay of m-1's 08:20 window, written an hour later and
// listed first, is not the row kept.
type fixture struct {
	env    *devstacktest.Env
	bucket string
	req    *retrain.RetrainingRequested
	want   []string // the training set's rows, sorted, as CSV lines
}

func newFixture(t *testing.T) *fixture {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	f := &fixture{env: env, bucket: env.CreateBucket(t)}
	var rows []result
	for k, e := range []string{"m-1", "m-2", "m-3"} {
		for m := 0; m <= 60; m += 10 {
			rows = append(rows, result{entity: e, end: at(8, 0).Add(time.Duration(m) * time.Minute), temp: float64(60 + 10*k + m/10),
				n: int64(100*k + m), version: "xgb-7"})
		}
	}
	rows = append(rows,
		result{entity: "m-1", end: at(7, 50), temp: 1, n: 1, version: "xgb-7"},
		result{entity: "m-1", end: at(8, 0), temp: 2, n: 2, version: "xgb-7", update: true},
		result{entity: "m-2", end: at(8, 40), temp: 3, n: 3, version: "xgb-7", partial: windowing.PartialEvicted},
	)
	sinkWrite(t, env, f.bucket, "results/failure/", at(9, 1), 1, rows)
	sinkWrite(t, env, f.bucket, "results/failure/", at(10, 1), 2, []result{{entity: "m-1", end: at(8, 20), temp: 4, n: 4, version: "xgb-7"}})

	m3 := sinks.ResultID("factory", "m-3", at(8, 20), at(8, 30), "xgb-7")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(gt("", "1", "m-1", "2026-12-03T09:20:00.000Z") + gt("", "1", "m-1", "2026-12-03T09:20:00.000Z") +
		gt("", "1", "m-2", "2026-12-03T10:00:00.000Z")))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	for k, body := range map[string][]byte{
		"groundtruth/factory/2026/12/03/08/a.jsonl": []byte(gt("", "1", "m-2", "2026-12-03T08:30:00.000Z") +
			gt("", "0", "m-3", "2026-12-03T08:45:00.000Z") + gt(m3, "1", "m-3", "2026-12-03T08:35:00.000Z") +
			gt("", "1", "m-1", "2026-12-03T07:00:00.000Z")),
		"groundtruth/factory/2026/12/03/09/b.jsonl.gz": gz.Bytes(),
	} {
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(k), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	f.req = &retrain.RetrainingRequested{SchemaVersion: 1, RequestID: "rq-" + f.bucket, Pipeline: "factory", Reason: retrain.ReasonQuality,
		Scorer: "failure", At: at(8, 50), Data: retrain.Data{ResultsPrefix: "s3://" + f.bucket + "/results/",
			GroundTruthPrefix: "s3://" + f.bucket + "/groundtruth/factory/", From: at(7, 50), To: at(8, 50)}}

	// m-1: 08:20 .. 08:50 positive (09:20 within the hour after), its
	// outcome 09:20; m-2: 08:00 .. 08:20 positive (08:30); m-3: 08:30
	// positive by id (its label's time the outcome), the rest negative.
	row := func(e string, m int, temp float64, n int64, label, outcome string) string {
		return fmt.Sprintf("%s,2026-12-03T08:%02d:00.000000Z,%g,%d,%s,%s", e, m, temp, n, label, outcome)
	}
	for m := 0; m <= 50; m += 10 {
		l1, o1 := "0", ""
		if m >= 20 {
			l1, o1 = "1", "2026-12-03T09:20:00.000000Z"
		}
		l2, o2 := "0", ""
		if m <= 20 {
			l2, o2 = "1", "2026-12-03T08:30:00.000000Z"
		}
		l3, o3 := "0", ""
		if m == 30 {
			l3, o3 = "1", "2026-12-03T08:35:00.000000Z"
		}
		f.want = append(f.want, row("m-1", m, float64(60+m/10), int64(m), l1, o1), row("m-2", m, float64(70+m/10), int64(100+m), l2, o2),
			row("m-3", m, float64(80+m/10), int64(200+m), l3, o3))
	}
	slices.Sort(f.want)
	return f
}

func (f *fixture) config(t *testing.T, challenger string) *config.Config {
	t.Helper()
	cfg := &config.Config{Pipeline: "factory", File: "factory.yaml",
		Models:  map[string]*config.Model{"v1": {Format: "xgboost", Path: "examples/models/factory-failure.json"}},
		Scorers: []config.Scorer{{Name: "failure", Model: "v1"}},
		Sinks:   config.Sinks{S3: &config.S3Sink{Bucket: f.bucket, Prefix: "results/"}},
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
	f := newFixture(t)
	ctx := devstacktest.Ctx(t)
	var out bytes.Buffer
	st, err := BuildSet(ctx, SetOptions{S3: f.env.S3, Results: f.req.Data.ResultsPrefix + "failure/", GroundTruth: f.req.Data.GroundTruthPrefix,
		From: f.req.Data.From, To: f.req.Data.To, Horizon: time.Hour, Dir: t.TempDir()}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if want := "entity,window_end,temp_mean,readings,label,outcome_at"; lines[0] != want {
		t.Fatalf("header %q, want %q", lines[0], want)
	}
	got := slices.Sorted(slices.Values(lines[1:]))
	if !slices.Equal(got, f.want) {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(f.want, "\n"))
	}
	if st.Rows != 18 || st.Positives != 8 || st.Duplicates != 1 || st.Outside != 4 || st.PredictionsRead.LeftOut != 2 {
		t.Errorf("stats %+v: want 18 rows, 8 positive, 1 duplicate, 4 outside, 2 left out", st)
	}
	if _, err := csv.NewReader(strings.NewReader(out.String())).ReadAll(); err != nil {
		t.Errorf("not CSV: %v", err)
	}

	// The quality monitor's own join of the same files agrees.
	results, err := dataset.Open(ctx, f.env.S3, f.req.Data.ResultsPrefix+"failure/")
	if err != nil {
		t.Fatal(err)
	}
	labels, err := dataset.Open(ctx, f.env.S3, f.req.Data.GroundTruthPrefix)
	if err != nil {
		t.Fatal(err)
	}
	q, err := dataset.JudgePeriod(ctx, results, labels, dataset.PeriodOptions{Horizon: time.Hour, Start: f.req.Data.From, End: f.req.Data.To})
	if err != nil {
		t.Fatal(err)
	}
	cm := q.All.Binary.ConfusionMatrix
	if n, pos := cm.TruePositives+cm.FalsePositives+cm.TrueNegatives+cm.FalseNegatives, cm.TruePositives+cm.FalseNegatives; int64(n) != st.Rows || int64(pos) != st.Positives {
		t.Errorf("JudgePeriod labels %v rows, %v positive; the training set %d, %d", n, pos, st.Rows, st.Positives)
	}
}

// needXGBoost skips a test when the interpreter cannot train.
func needXGBoost(t *testing.T) {
	t.Helper()
	if err := exec.Command(DefaultPython, "-c", "import xgboost, numpy").Run(); err != nil {
		t.Skipf("%s cannot import xgboost and numpy (apt-get install python3-xgboost): %v", DefaultPython, err)
	}
}

// TestTrainRun: a request trains a model with train.py for real; it lands
// under its immutable key and at the challenger's path, both loading as
// the scorer loads models, with the features of the results; a second
// run of the same request reuses it.
func TestTrainRun(t *testing.T) {
	needXGBoost(t)
	f := newFixture(t)
	ctx := devstacktest.Ctx(t)
	challenger := "s3://" + f.bucket + "/models/failure/challenger.json"
	o := Options{Config: f.config(t, challenger), S3: f.env.S3, Script: "../examples/models/train.py", WorkDir: t.TempDir()}
	res, err := Run(ctx, f.req, o)
	if err != nil {
		t.Fatal(err)
	}
	wantModel := "s3://" + f.bucket + "/models/factory/failure/" + f.req.RequestID + "/model.json"
	if res.Model != wantModel || res.Challenger != challenger || len(res.SHA256) != 64 || res.Reused {
		t.Fatalf("result %+v: want model %s, challenger %s", res, wantModel, challenger)
	}
	if res.Set == nil || res.Set.Rows != 18 || res.Set.Positives != 8 {
		t.Errorf("set %+v: want 18 rows, 8 positive", res.Set)
	}
	for _, uri := range []string{res.Model, res.Challenger} {
		m, err := scorer.LoadModel(ctx, uri, f.env.S3)
		if err != nil {
			t.Fatalf("loading %s: %v", uri, err)
		}
		if !slices.Equal(m.Features(), []string{"temp_mean", "readings"}) {
			t.Errorf("%s: features %v", uri, m.Features())
		}
	}
	again, err := Run(ctx, f.req, o)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || again.SHA256 != res.SHA256 || again.Model != res.Model {
		t.Errorf("the request again: %+v, want the model reused (sha256 %s)", again, res.SHA256)
	}
}

// TestTrainRunErrors: what a run refuses, naming what is wrong.
func TestTrainRunErrors(t *testing.T) {
	f := newFixture(t)
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
			r.Data.ResultsPrefix = "s3://" + f.bucket + "/none/"
		}, "no results under"},
	} {
		t.Run(c.what, func(t *testing.T) {
			cfg, req := f.config(t, ""), *f.req
			c.edit(cfg, &req)
			_, err := Run(ctx, &req, Options{Config: cfg, S3: f.env.S3, Python: "/nonexistent", WorkDir: t.TempDir()})
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
		if r.RequestID != "r1" || r.Scorer != "failure" || !r.Data.To.Equal(at(8, 50)) {
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
	needXGBoost(t)
	f := newFixture(t)
	ctx := devstacktest.Ctx(t)
	sf := f.env.StepFunctions()
	activity := f.env.CreateActivity(t)
	machine := f.env.CreateStateMachine(t, fmt.Sprintf(`{"StartAt":"Train","States":{"Train":{"Type":"Task","Resource":%q,"End":true}}}`, activity))
	challenger := "s3://" + f.bucket + "/models/failure/challenger.json"
	w := &Worker{SFN: sf, Activity: activity, Name: "test", Options: Options{Config: f.config(t, challenger), S3: f.env.S3,
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
	input, _ := json.Marshal(f.req)
	d := execute(input)
	if d.Status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("execution %s: %s %s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
	}
	var out TaskOutput
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
		t.Fatalf("output %q: %v", aws.ToString(d.Output), err)
	}
	if out.Model != "s3://"+f.bucket+"/"+ModelKey("factory", "failure", f.req.RequestID) || out.Challenger != challenger || len(out.SHA256) != 64 {
		t.Errorf("output %+v", out)
	}
	if _, err := scorer.LoadModel(ctx, out.Challenger, f.env.S3, scorer.WithSHA256(out.SHA256)); err != nil {
		t.Errorf("the challenger: %v", err)
	}

	bad := *f.req
	bad.Scorer = "nope"
	input, _ = json.Marshal(bad)
	d = execute(input)
	if d.Status != sfntypes.ExecutionStatusFailed {
		t.Fatalf("execution of an unknown scorer: %s, want FAILED", d.Status)
	}
	if e, c := aws.ToString(d.Error), aws.ToString(d.Cause); (e != "" && e != ErrorTrainingFailed) || !strings.Contains(c+e, `scorer "nope"`) {
		t.Errorf("failed execution: error %q cause %q", e, c)
	}
}
