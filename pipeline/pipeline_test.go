package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/loadtest"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/sinks"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// testPipeline is a small pipeline on fresh resources: 1-second tumbling
// windows of sensor readings, a logistic model on vibration, every sink.
type testPipeline struct {
	env                   *devstacktest.Env
	cfg                   *config.Config
	stream, bucket, table string
	dlqURL, alertURL      string
	leaseTable            string
	yaml                  string
	sagemaker             *sagemakerruntime.Client
	// logs receives the pipeline's log when set (default: warnings to stderr).
	logs *slog.Logger
	// registerer receives the pipeline's metrics when set.
	registerer prometheus.Registerer
}

const pipelineYAML = `pipeline: test
consumer:
  application: {{lease}}
  failover_time: 3s
  idle_interval: 100ms
streams:
  - {name: {{stream}}, schema: sensor, shards: 2}
schemas:
  sensor:
    entity: machine_id
    time: ts
    fields:
      - {name: vibration_rms, type: float64}
      - {name: temperature_c, type: float64}
windows:
  - name: w1s
    stream: {{stream}}
    kind: tumbling
    size: 1s
    out_of_orderness: 200ms
    idle_timeout: 3s
    late: dead_letter
    features:
      - {name: vibration_mean, agg: mean, field: vibration_rms}
      - {name: readings, agg: count}
models:
  vib:
    format: linear
    path: {{model}}
scorers:
  - {name: failure, window: w1s, model: vib}
sinks:
  s3: {bucket: {{bucket}}, prefix: results/, roll_age: 1s}
  feature_table: {table: {{table}}}
  dead_letter: {queue: {{dlq}}}
alerts:
  topic: {{topic}}
  rules:
    - {name: hot, scorer: failure, threshold: 0.5, severity: critical, fire_after: 1, cooldown: 1h}
ops:
  status_interval: 0s
`

func newTestPipeline(t *testing.T) *testPipeline {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	tp := &testPipeline{env: env, stream: env.CreateStream(t, 2), bucket: env.CreateBucket(t),
		table: env.Name("features"), leaseTable: env.Name("leases")}
	if err := devstack.EnsureTable(ctx, env.DynamoDB, devstack.TablePlan{Name: tp.table, HashKey: sinks.FeatureAttrEntity, RangeKey: sinks.FeatureAttrSet}); err != nil {
		t.Fatal(err)
	}
	tp.dlqURL = env.CreateQueue(t, false)
	topic, alertURL := env.CreateTopicQueue(t, false)
	tp.alertURL = alertURL
	model := filepath.Join(t.TempDir(), "vib.json")
	// score = logistic(-12 + 20 * vibration_mean): healthy machines (0.3 g)
	// score 0.003, a failing one (0.9 g) 0.998.
	if err := os.WriteFile(model, []byte(`{"streamscore_linear":1,"link":"logistic","intercept":-12,
		"features":[{"name":"vibration_mean","weight":20}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.NewReplacer("{{lease}}", tp.leaseTable, "{{stream}}", tp.stream, "{{model}}", model,
		"{{bucket}}", tp.bucket, "{{table}}", tp.table, "{{dlq}}", tp.dlqURL, "{{topic}}", topic).Replace(pipelineYAML)
	cfg, err := config.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg, tp.yaml = cfg, src
	return tp
}

func (tp *testPipeline) start(t *testing.T, worker string) (stop func() error) {
	t.Helper()
	stop, _ = tp.startPipeline(t, worker)
	return stop
}

func (tp *testPipeline) startPipeline(t *testing.T, worker string) (stop func() error, p *pipeline.Pipeline) {
	t.Helper()
	c := tp.env.Clients
	clients := pipeline.Clients{Kinesis: c.Kinesis, DynamoDB: c.DynamoDB, S3: c.S3, SNS: c.SNS, SQS: c.SQS, CloudWatch: c.CloudWatch,
		EventBridge: tp.env.EventBridge()}
	if tp.sagemaker != nil {
		clients.SageMaker = tp.sagemaker
	}
	logs := tp.logs
	if logs == nil {
		logs = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := pipeline.New(context.Background(), tp.cfg, clients,
		pipeline.Options{WorkerID: worker, SpoolDir: t.TempDir(), Logger: logs, Registerer: tp.registerer,
			Consumer: consumer.Config{RenewInterval: time.Second, ShardSyncInterval: 2 * time.Second, IdleHeartbeat: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return fmt.Errorf("pipeline did not stop within 60s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop, p
}

func (tp *testPipeline) put(t *testing.T, key string, data string) {
	t.Helper()
	if _, err := tp.env.Kinesis.PutRecord(devstacktest.Ctx(t), &kinesis.PutRecordInput{
		StreamName: aws.String(tp.stream), PartitionKey: aws.String(key), Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
}

func reading(machine string, ts time.Time, vib float64) string {
	return fmt.Sprintf(`{"machine_id":%q,"ts":%q,"vibration_rms":%g,"temperature_c":65.5}`, machine, ts.UTC().Format(time.RFC3339Nano), vib)
}

// TestEndToEnd: every good reading is counted in exactly one scored window
// in S3, every bad one is dead-lettered with its reason, the failing machine
// alerts and the healthy ones do not, the feature table holds each machine's
// newest window, and after a graceful stop the checkpoint covers it all.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	reg := prometheus.NewRegistry()
	tp.registerer = reg
	stop, p := tp.startPipeline(t, "worker-a")
	deadline := time.Now().Add(30 * time.Second)
	for p.Ready(context.Background()) != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.Ready(context.Background()); err != nil {
		t.Fatalf("not ready after taking its leases: %v", err)
	}

	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	machines := []string{"press-001", "press-002", "press-003", "press-004"}
	good := 0
	for step := range 30 { // 3 s of event time, a reading per machine every 100 ms
		ts := t0.Add(time.Duration(step) * 100 * time.Millisecond)
		for i, m := range machines {
			vib := 0.3
			if i == 0 {
				vib = 0.9 // press-001 is failing
			}
			tp.put(t, m, reading(m, ts, vib))
			good++
		}
	}
	bad := map[string]string{
		"not json":       `{"machine_id":"press-002","ts":`,
		"missing entity": fmt.Sprintf(`{"ts":%q,"vibration_rms":0.3}`, t0.Format(time.RFC3339)),
		"wrong type":     fmt.Sprintf(`{"machine_id":"press-003","ts":%q,"vibration_rms":"high"}`, t0.Format(time.RFC3339)),
	}
	for _, d := range bad {
		tp.put(t, "press-002", d)
	}
	// Let the windows close, then send a reading 30 s behind: late.
	time.Sleep(3 * time.Second)
	tp.put(t, "press-002", reading("press-002", t0.Add(-30*time.Second), 0.3))

	ctx := devstacktest.Ctx(t)
	var rows []loadtest.ResultRow
	// Generous: under -race beside the package's other tests on a loaded
	// 2-core machine, the rows took over two minutes once.
	deadline = time.Now().Add(4 * time.Minute)
	counted := 0.0
	for time.Now().Before(deadline) {
		got, _, err := loadtest.ReadResults(ctx, tp.env.S3, tp.bucket, "results/", "readings")
		if err != nil {
			t.Fatal(err)
		}
		rows, counted = latestRows(got)
		if int(counted) >= good {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if int(counted) != good {
		t.Fatalf("S3 rows count %v readings, %d good readings were sent", counted, good)
	}
	if want := len(machines) * 3; len(rows) != want {
		t.Errorf("%d distinct windows in S3, want %d (4 machines x 3 one-second windows)", len(rows), want)
	}
	for _, r := range rows {
		hot := r.Entity == "press-001"
		if hot != (r.Score > 0.5) {
			t.Errorf("%s window %s scored %.4f", r.Entity, r.WindowStart.Format(time.TimeOnly), r.Score)
		}
	}

	letters := receiveDeadLetters(t, tp.env, tp.dlqURL, len(bad)+1)
	reasons := map[string]int{}
	for _, l := range letters {
		reasons[l.Reason]++
	}
	if reasons["undecodable"] != len(bad) || reasons["late"] != 1 || len(letters) != len(bad)+1 {
		t.Errorf("dead letters by reason = %v, want 3 undecodable and 1 late", reasons)
	}

	alerts := receiveAlerts(t, tp.env, tp.alertURL, time.Now().Add(20*time.Second))
	alerted := map[string]bool{}
	for _, a := range alerts {
		alerted[a.Entity] = true
		checkTopFeatures(t, a)
	}
	if !alerted["press-001"] || len(alerted) != 1 {
		t.Errorf("alerts for %v, want press-001 only", alerted)
	}

	for _, m := range machines {
		item, err := tp.env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tp.table), ConsistentRead: aws.Bool(true),
			Key: map[string]ddbtypes.AttributeValue{
				sinks.FeatureAttrEntity: &ddbtypes.AttributeValueMemberS{Value: m},
				sinks.FeatureAttrSet:    &ddbtypes.AttributeValueMemberS{Value: sinks.FeatureSet("test", "w1s")},
			}})
		if err != nil {
			t.Fatal(err)
		}
		if len(item.Item) == 0 {
			t.Errorf("feature table has no item for %s", m)
		}
	}

	// The window operators' own counts reach Prometheus through the
	// observer: every good reading counted into a window, the late one
	// beyond it.
	if got := counterValue(t, reg, "streamscore_window_events_total"); int(got) != good {
		t.Errorf("streamscore_window_events_total = %v, want the %d good readings", got, good)
	}
	if got := counterValue(t, reg, "streamscore_pipeline_late_events_total"); got != 1 {
		t.Errorf("streamscore_pipeline_late_events_total = %v, want 1", got)
	}
	if got := gaugeSeries(t, reg, "streamscore_window_state_bytes"); got == 0 {
		t.Error("no streamscore_window_state_bytes series while the shards run")
	}

	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	// The shards' chains ended with the stop: their per-shard series went
	// with them.
	if got := gaugeSeries(t, reg, "streamscore_window_state_bytes"); got != 0 {
		t.Errorf("%d streamscore_window_state_bytes series left after the shards were handed over", got)
	}
	// Every shard's checkpoint is its last record: nothing is held, so a
	// restart would replay nothing.
	last := lastSequences(t, tp.env, tp.stream)
	cps := checkpoints(t, tp.env, tp.leaseTable)
	for shard, seq := range last {
		if cps[shard] != seq {
			t.Errorf("shard %s checkpointed at %q, its last record is %q", shard, cps[shard], seq)
		}
	}
}

// latestRows keeps the final version of each window and sums their counts.
func latestRows(rows []loadtest.ResultRow) ([]loadtest.ResultRow, float64) {
	var out []loadtest.ResultRow
	var n float64
	for _, r := range loadtest.FinalRows(rows) {
		out = append(out, r)
		n += r.Count
	}
	return out, n
}

func receiveDeadLetters(t *testing.T, env *devstacktest.Env, url string, want int) []loadtest.DeadLetter {
	t.Helper()
	var out []loadtest.DeadLetter
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		got, err := loadtest.DrainDeadLetters(devstacktest.Ctx(t), env.SQS, url)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got...)
	}
	return out
}

func receiveAlerts(t *testing.T, env *devstacktest.Env, url string, until time.Time) []sinks.Alert {
	t.Helper()
	var out []sinks.Alert
	for time.Now().Before(until) {
		m, err := env.SQS.ReceiveMessage(devstacktest.Ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range m.Messages {
			var env struct{ Message string }
			_ = json.Unmarshal([]byte(aws.ToString(msg.Body)), &env)
			var a sinks.Alert
			if err := json.Unmarshal([]byte(env.Message), &a); err == nil {
				out = append(out, a)
			}
		}
		if len(out) > 0 && len(m.Messages) == 0 {
			break
		}
	}
	return out
}

// checkTopFeatures: the test model is logistic(-12 + 20 * vibration_mean),
// so a firing score alert names vibration_mean, with the window's value
// (0.9 for the failing machine) and 20 times it as its contribution, which
// with the intercept gives back the alert's score; the window's count
// feature is no model input and must not appear.
func checkTopFeatures(t *testing.T, a sinks.Alert) {
	t.Helper()
	if a.Rule != "hot" || a.State != sinks.StateFiring {
		return
	}
	if len(a.TopFeatures) != 1 {
		t.Errorf("alert for %s at %v: top_features %+v, want vibration_mean only", a.Entity, a.WindowStart, a.TopFeatures)
		return
	}
	c := a.TopFeatures[0]
	score := 1 / (1 + math.Exp(-(-12 + c.Contribution)))
	if c.Feature != "vibration_mean" || math.Abs(c.Value-0.9) > 1e-9 || c.Value != a.Features["vibration_mean"] ||
		c.Contribution != 20*c.Value || math.Abs(score-a.Score) > 1e-12 {
		t.Errorf("alert for %s at %v (score %v, features %v): top feature %+v", a.Entity, a.WindowStart, a.Score, a.Features, c)
	}
}

func lastSequences(t *testing.T, env *devstacktest.Env, stream string) map[string]string {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	shards, err := env.Kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, sh := range shards.Shards {
		it, err := env.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for empty := 0; iter != nil && empty < 2; {
			r, err := env.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Records) == 0 {
				empty++
			} else {
				out[aws.ToString(sh.ShardId)] = aws.ToString(r.Records[len(r.Records)-1].SequenceNumber)
			}
			iter = r.NextShardIterator
		}
	}
	return out
}

// checkpoints reads the lease table (Java KCL schema): shard -> checkpoint.
func checkpoints(t *testing.T, env *devstacktest.Env, table string) map[string]string {
	t.Helper()
	out, err := env.DynamoDB.Scan(devstacktest.Ctx(t), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	cps := map[string]string{}
	for _, it := range out.Items {
		key := it["leaseKey"].(*ddbtypes.AttributeValueMemberS).Value
		if cp, ok := it["checkpoint"].(*ddbtypes.AttributeValueMemberS); ok {
			cps[key[strings.LastIndex(key, ":")+1:]] = cp.Value
		}
	}
	return cps
}

// TestRecordsFromTheAWSCLI feeds the pipeline records put by the Debian AWS
// CLI, a producer we did not write: they are decoded, windowed and scored
// like any others.
func TestRecordsFromTheAWSCLI(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t) // skips under -short: the CLI needs the stack
	const aws = "/usr/bin/aws"
	if _, err := os.Stat(aws); err != nil {
		t.Fatalf("this test drives the Debian AWS CLI at %s (apt-get install awscli): %v", aws, err)
	}
	stop := tp.start(t, "worker-cli")
	// Each CLI call takes a second or more (Python starting up), so stamp
	// the readings with the time they are sent, as a live producer does:
	// readings stamped in the past would arrive after their window closed
	// on the idle timeout.
	for range 5 {
		data := reading("press-cli", time.Now(), 0.9)
		cmd := exec.Command(aws, "kinesis", "put-record", "--endpoint-url", tp.env.Endpoints.Kinesis,
			"--stream-name", tp.stream, "--partition-key", "press-cli", "--data", data,
			"--cli-binary-format", "raw-in-base64-out", "--output", "json")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+devstack.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+devstack.SecretAccessKey,
			"AWS_DEFAULT_REGION="+devstack.Region, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "AWS_PROFILE=") })
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aws kinesis put-record: %v\n%s", err, out)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got, _, err := loadtest.ReadResults(devstacktest.Ctx(t), tp.env.S3, tp.bucket, "results/", "readings")
		if err != nil {
			t.Fatal(err)
		}
		rows, n := latestRows(got)
		if n == 5 {
			for _, r := range rows {
				if r.Entity != "press-cli" || r.Score < 0.5 {
					t.Fatalf("rows = %+v, want windows of press-cli scored high", rows)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the records put by the AWS CLI never reached S3 as a scored window")
}

// TestEndpointDownFallsBackAndAlerts: with the SageMaker endpoint
// unreachable, rows are scored by the fallback model and flagged, and the
// breaker opening is announced on the alert topic.
func TestEndpointDownFallsBackAndAlerts(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	src := strings.Replace(tp.yaml, "  - {name: failure, window: w1s, model: vib}",
		"  - {name: failure, window: w1s, model: vib, endpoint: {name: factory-failure, timeout: 200ms, fallback: vib}}", 1)
	src = strings.Replace(src, "  status_interval: 0s", "  status_interval: 200ms", 1)
	var logs syncBuffer
	tp.logs = slog.New(slog.NewJSONHandler(&logs, nil))
	cfg, err := config.Parse([]byte(src), "endpoint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	// Nothing listens on port 1: every call fails at once.
	tp.sagemaker = sagemakerruntime.NewFromConfig(tp.env.AWS, func(o *sagemakerruntime.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1")
		o.RetryMaxAttempts = 1
	})
	stop := tp.start(t, "worker-fallback")
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	for step := range 30 {
		tp.put(t, "press-001", reading("press-001", t0.Add(time.Duration(step)*100*time.Millisecond), 0.9))
	}
	var rows []loadtest.ResultRow
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		got, _, err := loadtest.ReadResults(devstacktest.Ctx(t), tp.env.S3, tp.bucket, "results/", "readings")
		if err != nil {
			t.Fatal(err)
		}
		if rows, _ = latestRows(got); len(rows) == 3 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(rows) != 3 {
		t.Fatalf("%d windows scored, want 3", len(rows))
	}
	for _, r := range rows {
		if r.Score < 0.5 || !r.Fallback {
			t.Errorf("window %s scored %v (fallback %v), want the fallback model's high score, flagged", r.WindowStart.Format(time.TimeOnly), r.Score, r.Fallback)
		}
	}
	// The breaker alert, and the score alert of the fallback-scored
	// windows, explained by the fallback model.
	breaker, hot := false, false
	deadline = time.Now().Add(30 * time.Second)
	for !(breaker && hot) && time.Now().Before(deadline) {
		m, err := tp.env.SQS.ReceiveMessage(devstacktest.Ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(tp.alertURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range m.Messages {
			breaker = breaker || strings.Contains(aws.ToString(msg.Body), `circuit-breaker`)
			var env struct{ Message string }
			var a sinks.Alert
			if json.Unmarshal([]byte(aws.ToString(msg.Body)), &env) == nil && json.Unmarshal([]byte(env.Message), &a) == nil && a.Rule == "hot" {
				hot = true
				checkTopFeatures(t, a)
			}
		}
	}
	if !breaker {
		t.Error("no circuit-breaker alert reached the alert topic's queue")
	}
	if !hot {
		t.Error("no score alert for the fallback-scored windows")
	}
	// The status line counts what the alert topic published.
	deadline = time.Now().Add(10 * time.Second)
	for !statusShowsAlerts(logs.String()) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !statusShowsAlerts(logs.String()) {
		t.Errorf("no status line counts the published alerts; log:\n%s", lastLogLines(logs.String(), 5))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// statusShowsAlerts reports whether a status line of the JSON log counts at
// least one published alert.
func statusShowsAlerts(log string) bool {
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			Msg    string `json:"msg"`
			Alerts *int   `json:"alerts"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "status" && l.Alerts != nil && *l.Alerts >= 1 {
			return true
		}
	}
	return false
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// syncBuffer is a bytes.Buffer safe for the pipeline's goroutines to log
// into while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
