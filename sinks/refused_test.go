package sinks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// featureTable creates a table with the layout the sink writes (partition
// key entity, sort key feature_set), dropped with the test.
func featureTable(t *testing.T, env *devstacktest.Env) string {
	t.Helper()
	table := env.Name("features")
	if err := devstack.EnsureTable(devstacktest.Ctx(t), env.DynamoDB, devstack.TablePlan{Name: table, HashKey: FeatureAttrEntity, RangeKey: FeatureAttrSet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return table
}

// deadLetter is a dead-letter message as read back from the queue.
type deadLetter struct {
	attrs map[string]string
	body  []byte
}

// receiveDeadLetters reads want messages from queue (failing after a
// generous deadline), decoding the base64 bodies.
func receiveDeadLetters(t *testing.T, env *devstacktest.Env, queue string, want int) []deadLetter {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	var out []deadLetter
	deadline := time.Now().Add(45 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		res, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			dl := deadLetter{attrs: map[string]string{}}
			for k, v := range m.MessageAttributes {
				dl.attrs[k] = aws.ToString(v.StringValue)
			}
			if dl.body, err = base64.StdEncoding.DecodeString(aws.ToString(m.Body)); err != nil {
				dl.body = []byte(aws.ToString(m.Body)) // an S3 pointer
			}
			out = append(out, dl)
		}
	}
	if len(out) != want {
		t.Fatalf("received %d dead letters, want %d", len(out), want)
	}
	return out
}

// One bad row never holds a batch back: the feature table dead-letters
// each row DynamoDB cannot store (an empty entity, one over the 2,048-byte
// partition key limit, a value outside DynamoDB's number range, which
// dynalite refuses as real DynamoDB does), with the reason, and writes and
// acks the rest.
func TestFeatureTableDeadLettersRefusedRowsAndAcksTheBatch(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := featureTable(t, env)
	queue := env.CreateQueue(t, false)
	m, reg := newMetrics(t)
	dl, err := NewDeadLetter(DeadLetterOptions{SQS: env.SQS, QueueURL: queue, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer // info level, the default: no entity may appear
	s, err := NewFeatureTable(FeatureTableOptions{Client: env.DynamoDB, Table: table, FeatureSet: FeatureSet("factory", "machine_5m"),
		DeadLetters: dl, Metrics: m, Backoff: outageBackoff, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 3000)
	rec := resultRecord(t, 2, []row{
		{entity: "press-1", ws: t0, feats: []float64{1, 2}, score: 0.5, model: "m"},
		{entity: "", ws: t0, feats: []float64{1, 2}, score: 0.5, model: "m"},
		{entity: long, ws: t0, feats: []float64{1, 2}, score: 0.5, model: "m"},
		{entity: "press-2", ws: t0, feats: []float64{1e200, 2}, score: 0.5, model: "m"},
		{entity: "press 3 ü", ws: t0, feats: []float64{3, 4}, score: 0.5, model: "m"},
	})
	defer rec.Release()
	a := newAcks()
	b := Batch{Stream: "factory", Shard: "shardId-000000000001", Range: Range{First: pos(1), Last: pos(5)}, Rec: rec, Ack: a.fn("b")}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 60*time.Second, "b") // fails on an error ack
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after refused rows: %v", err)
	}

	layout := FeatureLayout{}
	for _, e := range []string{"press-1", "press 3 ü"} {
		out, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), Key: layout.Key(e, "factory#machine_5m")})
		if err != nil {
			t.Fatal(err)
		}
		it, err := layout.Unmarshal(out.Item)
		if err != nil || it.Entity != e || it.Features["f01"] != 2 && it.Features["f01"] != 4 {
			t.Errorf("item of %q: %+v, %v", e, it, err)
		}
	}

	got := receiveDeadLetters(t, env, queue, 3)
	reasons := map[string]string{}
	for _, d := range got {
		var doc map[string]any
		if err := json.Unmarshal(d.body, &doc); err != nil {
			t.Fatalf("dead letter body is not the row as JSON: %v: %q", err, d.body)
		}
		e, _ := doc[ColEntity].(string)
		if d.attrs["reason"] != ReasonRefused || d.attrs["stream"] != "factory" || d.attrs["sequence_number"] != pos(5).Sequence {
			t.Errorf("attributes %v", d.attrs)
		}
		if want := ResultID("factory", e, t0, t0.Add(time.Minute), "m"); d.attrs["result_id"] != want || doc[ColResultID] != want {
			t.Errorf("result_id %q / %v, want %s", d.attrs["result_id"], doc[ColResultID], want)
		}
		reasons[e] = d.attrs["detail"]
	}
	for e, want := range map[string]string{"": "entity is empty", long: "3000 bytes, over the 2048-byte limit", "press-2": "ValidationException"} {
		if !strings.Contains(reasons[e], want) {
			t.Errorf("dead letter of entity %.20q: detail %q, want it to contain %q", e, reasons[e], want)
		}
	}
	if n := counter(t, reg, "streamscore_sink_refused_rows_total", "features"); n != 3 {
		t.Errorf("refused rows counted %v, want 3", n)
	}
	out := logs.String()
	if strings.Count(out, "sink refused a row") != 3 {
		t.Errorf("want one info-level line per refused row:\n%s", out)
	}
	for _, e := range []string{"press-2", long[:100]} {
		if strings.Contains(out, e) {
			t.Errorf("an entity id is in the info-level logs:\n%s", out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (the sink's
// goroutines log).
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

// Two pipelines, or two windows, with the same entity keep separate items
// (the sort key is the feature set), each with its own newest window.
func TestFeatureTableKeysByFeatureSet(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := featureTable(t, env)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i, set := range []string{FeatureSet("factory", "machine_5m"), FeatureSet("factory", "machine_1h"), FeatureSet("other", "machine_5m")} {
		s, err := NewFeatureTable(FeatureTableOptions{Client: env.DynamoDB, Table: table, FeatureSet: set})
		if err != nil {
			t.Fatal(err)
		}
		rec := resultRecord(t, 1, []row{{entity: "press-1", ws: t0, dur: time.Duration(i+1) * time.Minute, feats: []float64{float64(i)}, score: 0.1, model: "m"}})
		a := newAcks()
		if err := s.Write(ctx, Batch{Stream: "factory", Shard: "sh", Rec: rec, Ack: a.fn(set)}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		a.wait(t, 30*time.Second, set)
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var layout FeatureLayout
	for i, set := range []string{"factory#machine_5m", "factory#machine_1h", "other#machine_5m"} {
		out, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), Key: layout.Key("press-1", set)})
		if err != nil {
			t.Fatal(err)
		}
		it, err := layout.Unmarshal(out.Item)
		if err != nil {
			t.Fatalf("%s: %v", set, err)
		}
		if it.FeatureSet != set || it.Features["f00"] != float64(i) || !it.WindowEnd.Equal(t0.Add(time.Duration(i+1)*time.Minute)) {
			t.Errorf("%s: %+v", set, it)
		}
	}
}

// A missing table refuses every row: that is an outage of the sink, not a
// bad row. The batch waits unacked (nothing is dead-lettered), Healthy
// names the cause at once, and when the table appears the batch is
// written and acked nil.
func TestFeatureTableMissingTableIsAnOutage(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := env.Name("features")
	m, reg := newMetrics(t)
	refused := &recordingDeadLetters{}
	s, err := NewFeatureTable(FeatureTableOptions{Client: env.DynamoDB, Table: table, FeatureSet: "p#w", DeadLetters: refused, Metrics: m, Backoff: outageBackoff})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	rec := resultRecord(t, 1, []row{{entity: "press-1", ws: time.Now().Truncate(time.Minute), feats: []float64{1}, score: 0.1, model: "m"}})
	defer rec.Release()
	a := newAcks()
	if err := s.Write(ctx, Batch{Stream: "factory", Shard: "sh", Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Healthy() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling a condition, not synchronising on time
	}
	herr := s.Healthy()
	if herr == nil || !strings.Contains(herr.Error(), "ResourceNotFound") {
		t.Fatalf("Healthy with the table missing: %v, want an error naming ResourceNotFound", herr)
	}
	if _, acked := a.get("b"); acked {
		t.Fatal("batch acked while the table is missing")
	}
	if g := gauge(t, reg, "streamscore_sink_failing", "features"); g != 1 {
		t.Errorf("streamscore_sink_failing = %v, want 1", g)
	}
	featureTableNamed(t, env, table)
	a.wait(t, 60*time.Second, "b")
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after the table appeared: %v", err)
	}
	if n := refused.count(); n != 0 {
		t.Errorf("%d rows dead-lettered during an outage, want 0", n)
	}
	if g := gauge(t, reg, "streamscore_sink_failing", "features"); g != 0 {
		t.Errorf("streamscore_sink_failing = %v after recovery, want 0", g)
	}
}

func featureTableNamed(t *testing.T, env *devstacktest.Env, table string) {
	t.Helper()
	if err := devstack.EnsureTable(devstacktest.Ctx(t), env.DynamoDB, devstack.TablePlan{Name: table, HashKey: FeatureAttrEntity, RangeKey: FeatureAttrSet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
}

// recordingDeadLetters counts what it is sent.
type recordingDeadLetters struct {
	mu   sync.Mutex
	recs []Poison
}

func (r *recordingDeadLetters) Send(_ context.Context, recs ...Poison) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, recs...)
	return nil
}

func (r *recordingDeadLetters) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// gauge reads a sink gauge from a registry.
func gauge(t testing.TB, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	return sinkMetric(t, reg, name, sink)
}

func TestCheckEntity(t *testing.T) {
	for _, tc := range []struct {
		entity string
		want   error
	}{
		{"press-1", nil},
		{"user with spaces ü 日本", nil},
		{strings.Repeat("é", MaxEntityBytes/2), nil},
		{"", ErrEntityEmpty},
		{strings.Repeat("x", MaxEntityBytes+1), ErrEntityTooLong},
		{"bad \xff utf8", ErrEntityNotUTF8},
	} {
		if err := CheckEntity([]byte(tc.entity)); !errors.Is(err, tc.want) {
			t.Errorf("CheckEntity(%.20q) = %v, want %v", tc.entity, err, tc.want)
		}
	}
	if err := CheckEntity(make([]byte, 3000)); err == nil || !strings.Contains(err.Error(), "3000 bytes, over the 2048-byte limit") {
		t.Errorf("error %v does not name the size and the limit", err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = CheckEntity([]byte("press-1")) }); n != 0 {
		t.Errorf("CheckEntity allocates %v times for a good entity", n)
	}
}

// FuzzEntityLimits: whatever the id, CheckEntity and the sink's own check
// agree, and an accepted id gives a valid FIFO group id and never a
// refused CloudWatch dimension.
func FuzzEntityLimits(f *testing.F) {
	for _, s := range []string{"press-1", "", "a b", "ü", "\x00", strings.Repeat("x", 200), "sha256-00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckEntity(b)
		if (err == nil) != (checkEntity(string(b)) == nil) {
			t.Fatalf("CheckEntity and checkEntity disagree on %q", b)
		}
		if err == nil && (len(b) == 0 || len(b) > MaxEntityBytes || !utf8.Valid(b)) {
			t.Fatalf("accepted %q", b)
		}
		g := GroupID(string(b))
		if g != GroupID(string(b)) || len(g) < 1 || len(g) > 128 {
			t.Fatalf("group id %q of %q", g, b)
		}
		for i := 0; i < len(g); i++ {
			if g[i] < 0x21 || g[i] > 0x7e {
				t.Fatalf("group id %q of %q has byte %#x, which SNS refuses", g, b, g[i])
			}
		}
		if string(b) != "" {
			d := dimValue(string(b))
			if len(d) < 1 || len(d) > 1024 || strings.TrimSpace(d) == "" {
				t.Fatalf("dimension value %q of %q", d, b)
			}
			for i := 0; i < len(d); i++ {
				if d[i] < 0x20 || d[i] > 0x7e {
					t.Fatalf("dimension value %q of %q has byte %#x", d, b, d[i])
				}
			}
		}
	})
}
