package lambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/internal/kplnode"
	"github.com/streamscore/streamscore/internal/snsmsg"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

func TestMain(m *testing.M) {
	code := devstacktest.Main(m)
	if bootstrapBuild.dir != "" {
		_ = os.RemoveAll(bootstrapBuild.dir)
	}
	os.Exit(code)
}

const churnModel = "../examples/models/churn.json"

// day is the daily window (examples/churn.yaml: tumbling 24h) whose
// features the tests' users have; loginAt is when they log in.
var (
	day     = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	loginAt = day.Add(32 * time.Hour)
)

// user is one row the pipeline wrote to the feature table: a window's
// features in the model's order (events, logins, purchases,
// support_tickets, spend, sessions, seconds_since_last), NaN for a null.
type user struct {
	entity string
	ws     time.Time
	x      []float64
}

var nan = math.NaN()

// The churn model's verdicts on these (checked by the tests against the
// pipeline's own scorer, never hard-coded): loyal and borderline are
// below 0.7, leaving, quiet and the numeric id above; stale's window is
// too old to use.
var testUsers = []user{
	{"user-loyal", day, []float64{40, 6, 3, 0, 120.5, 6, 300}},
	{"user-leaving", day, []float64{2, 1, 0, 3, 0, 1, 80000}},
	{"user-quiet", day, []float64{5, 1, 0, 2, nan, 1, 70000}},
	{"18273", day, []float64{3, 1, 0, 1, 0, 1, 60000}},
	{"user-borderline", day, []float64{10, 2, 0, 1, 0, 2, 40000}},
	{"user-stale", day.Add(-72 * time.Hour), []float64{2, 1, 0, 3, 0, 1, 80000}},
}

// fixture is a feature table the real sinks.FeatureTable wrote, with what
// the pipeline computed for each row: the result batch (features, score
// and model version, as the pipeline hands it to its sinks) and each
// entity's row in it.
type fixture struct {
	env    *devstacktest.Env
	table  string
	model  *scorer.Model
	result arrow.RecordBatch
	row    map[string]int
	// noFeatures is the pipeline's score for a row with every feature
	// missing: what a user without usable features must get.
	noFeatures float64
}

func loadChurnModel(t testing.TB) *scorer.Model {
	t.Helper()
	m, err := scorer.LoadModel(context.Background(), churnModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newFixture creates a table and writes users through the pipeline's
// scorer and feature table sink.
func newFixture(t testing.TB, users []user) *fixture {
	t.Helper()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	f := &fixture{env: env, table: env.Name("features"), model: loadChurnModel(t), row: map[string]int{}}
	if err := devstack.EnsureTable(ctx, env.DynamoDB, devstack.TablePlan{Name: f.table, HashKey: sinks.FeatureAttrEntity, RangeKey: sinks.FeatureAttrSet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(f.table)})
	})
	f.result = f.scoredBatch(t, users)
	t.Cleanup(f.result.Release)
	for i, u := range users {
		f.row[u.entity] = i
	}
	sink, err := sinks.NewFeatureTable(sinks.FeatureTableOptions{Client: env.DynamoDB, Table: f.table, FeatureSet: DefaultFeatureSet})
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, 1)
	if err := sink.Write(ctx, sinks.Batch{Stream: "app-events", Shard: "shardId-000000000000", Rec: f.result, Ack: func(err error) { acked <- err }}); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	empty := f.scoredBatch(t, []user{{"nobody", day, []float64{nan, nan, nan, nan, nan, nan, nan}}})
	defer empty.Release()
	f.noFeatures = empty.Column(empty.Schema().FieldIndices(sinks.ColScore)[0]).(*array.Float64).Value(0)
	return f
}

// scoredBatch builds the batch the pipeline hands its sinks: the window
// operator's columns (entity renamed to "entity", window bounds, update,
// float64 features, nullable) scored by the embedded scorer, plus score
// and model_version.
func (f *fixture) scoredBatch(t testing.TB, users []user) arrow.RecordBatch {
	t.Helper()
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	fields := []arrow.Field{
		{Name: sinks.ColEntity, Type: arrow.BinaryTypes.String},
		{Name: sinks.ColWindowStart, Type: ts},
		{Name: sinks.ColWindowEnd, Type: ts},
		{Name: sinks.ColUpdate, Type: arrow.FixedWidthTypes.Boolean},
	}
	for _, name := range f.model.Features() {
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	for _, u := range users {
		b.Field(0).(*array.StringBuilder).Append(u.entity)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(u.ws.UnixNano()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(u.ws.Add(24 * time.Hour).UnixNano()))
		b.Field(3).(*array.BooleanBuilder).Append(false)
		for j, v := range u.x {
			if math.IsNaN(v) {
				b.Field(4 + j).AppendNull()
			} else {
				b.Field(4 + j).(*array.Float64Builder).Append(v)
			}
		}
	}
	feats := b.NewRecordBatch()
	defer feats.Release()
	emb, err := scorer.NewEmbedded(f.model, feats.Schema(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var res scorer.Result
	if err := emb.Score(context.Background(), feats, &res); err != nil {
		t.Fatal(err)
	}
	score := array.NewFloat64Builder(memory.DefaultAllocator)
	defer score.Release()
	score.AppendValues(res.Scores[0], nil)
	version := array.NewStringBuilder(memory.DefaultAllocator)
	defer version.Release()
	for i := range users {
		version.Append(res.VersionOf(i))
	}
	sc, ver := score.NewArray(), version.NewArray()
	defer sc.Release()
	defer ver.Release()
	cols := append(append([]arrow.Array{}, feats.Columns()...), sc, ver)
	schema := arrow.NewSchema(append(append([]arrow.Field{}, feats.Schema().Fields()...),
		arrow.Field{Name: sinks.ColScore, Type: arrow.PrimitiveTypes.Float64},
		arrow.Field{Name: sinks.ColModelVersion, Type: arrow.BinaryTypes.String}), nil)
	return array.NewRecordBatch(schema, cols, int64(len(users)))
}

// score is the pipeline's score for entity's window.
func (f *fixture) score(entity string) float64 {
	return f.result.Column(f.result.Schema().FieldIndices(sinks.ColScore)[0]).(*array.Float64).Value(f.row[entity])
}

// config is a configuration reading the fixture's table.
func (f *fixture) config() Config {
	c, err := ConfigFromEnv(envOf(map[string]string{EnvFeatureTable: f.table, EnvModel: churnModel, EnvFunctionName: "login-scorer-test"}))
	if err != nil {
		panic(err)
	}
	return c
}

// lockedBuffer collects the EMF lines of concurrent invocations.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// testBackoff keeps retries of outages quick.
var testBackoff = sinks.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// newHandler builds the handler on the fixture's stack with its clock at
// loginAt; o's zero fields get the stack's clients (and a debug logger to
// the test's log).
func (f *fixture) newHandler(t *testing.T, cfg Config, o Options) (*Handler, *lockedBuffer) {
	t.Helper()
	if o.DynamoDB == nil {
		o.DynamoDB = f.env.DynamoDB
	}
	if o.SNS == nil {
		o.SNS = f.env.SNS
	}
	if o.SQS == nil {
		o.SQS = f.env.SQS
	}
	if o.S3 == nil {
		o.S3 = f.env.S3
	}
	metrics := &lockedBuffer{}
	o.Metrics = metrics
	o.Now = func() time.Time { return loginAt }
	o.Backoff = testBackoff
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := New(devstacktest.Ctx(t), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h, metrics
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// invokeDirect sends one event directly, as an app's backend would.
func invokeDirect(t *testing.T, h *Handler, event string) (*Response, error) {
	t.Helper()
	out, err := h.Invoke(devstacktest.Ctx(t), []byte(event))
	if err != nil {
		return nil, err
	}
	var r Response
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	return &r, nil
}

// nodeAggregate encodes user records into one KPL aggregate with AWS Labs'
// aws-kinesis-agg (the producer side the function must read), through the
// consumer package's script.
func nodeAggregate(t testing.TB, recs [][]byte) []byte {
	t.Helper()
	modules, err := filepath.Abs("../devstack/node/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	var chunk []kplnode.Record
	for i, r := range recs {
		chunk = append(chunk, kplnode.Record{PartitionKey: "pk-" + string(rune('a'+i%26)), Data: r})
	}
	aggs, err := kplnode.Aggregate(modules, [][]kplnode.Record{chunk})
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 1 {
		t.Fatalf("aws-kinesis-agg made %d aggregates of %d records, want 1", len(aggs), len(recs))
	}
	return aggs[0].Data
}

// received is one message read back from a queue subscribed to an alert
// topic.
type received struct {
	alert   sinks.Alert
	subject string
	attrs   map[string]string
}

// drainAlerts reads alerts from a queue subscribed to a topic until want
// have arrived and nothing more came for quiet.
func drainAlerts(t *testing.T, env *devstacktest.Env, queue string, want int, quiet time.Duration) []received {
	t.Helper()
	var out []received
	for _, m := range drainQueue(t, env, queue, want, quiet) {
		n, err := snsmsg.Decode(aws.ToString(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		r := received{subject: n.Subject, attrs: n.Attributes}
		if err := json.Unmarshal([]byte(n.Message), &r.alert); err != nil {
			t.Fatalf("alert body: %v: %s", err, n.Message)
		}
		out = append(out, r)
	}
	return out
}

type queued struct {
	Body  *string
	Attrs map[string]string
}

// drainQueue reads messages (deleting them) until want have arrived and
// nothing more came for quiet, or 45 s passed.
func drainQueue(t *testing.T, env *devstacktest.Env, queue string, want int, quiet time.Duration) []queued {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	var out []queued
	deadline := time.Now().Add(45 * time.Second)
	lastNew := time.Now()
	for time.Now().Before(deadline) {
		if len(out) >= want && time.Since(lastNew) > quiet {
			break
		}
		res, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			q := queued{Body: m.Body, Attrs: map[string]string{}}
			for k, v := range m.MessageAttributes {
				q.Attrs[k] = aws.ToString(v.StringValue)
			}
			out = append(out, q)
			lastNew = time.Now()
			if _, err := env.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// deadLetterBody decodes a dead letter's body: the original bytes, inline
// (base64) or, for a large record, read back from S3 through its pointer.
func deadLetterBody(t *testing.T, env *devstacktest.Env, q queued) []byte {
	t.Helper()
	if q.Attrs["payload"] == "s3" {
		var p sinks.Pointer
		if err := json.Unmarshal([]byte(aws.ToString(q.Body)), &p); err != nil {
			t.Fatal(err)
		}
		obj, err := env.S3.GetObject(devstacktest.Ctx(t), &s3.GetObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(p.Key)})
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Body.Close()
		b, err := io.ReadAll(obj.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := base64.StdEncoding.DecodeString(aws.ToString(q.Body))
	if err != nil {
		t.Fatalf("dead letter body is not base64: %v", err)
	}
	return b
}
