package sinks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
)

// outageCtx outlives devstacktest.Ctx's two minutes: an outage test waits
// for retries to start and then for recovery, each with a generous deadline
// for a loaded machine.
func outageCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// outageBackoff keeps retries frequent, so recovery is seen soon after the
// endpoint comes back.
var outageBackoff = Backoff{Base: 50 * time.Millisecond, Max: 300 * time.Millisecond}

// waitRetries waits until the sink has counted at least n retries: the
// outage has been seen and backed off n times. An outage test keeps the
// endpoint down for many rounds, so a sink that gave up after a few would
// fail it. Conditions, not sleeps, so a slow machine only makes the test
// slower.
func waitRetries(t *testing.T, reg *prometheus.Registry, sink string, n float64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for counter(t, reg, "streamscore_sink_retries_total", sink) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %v retries counted 90s into the outage", sink, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outageRetries is how many retries an outage test waits for before the
// endpoint comes back.
const outageRetries = 10

// waitAck waits for the named batch's ack and returns its error.
func waitAck(t *testing.T, a *acks, name string, d time.Duration) error {
	t.Helper()
	deadline := time.After(d)
	for {
		if err, ok := a.get(name); ok {
			return err
		}
		select {
		case <-a.ch:
		case <-deadline:
			t.Fatalf("batch %s not acked after %v", name, d)
		}
	}
}

func createFeatureTable(t *testing.T, env *devstacktest.Env) string {
	t.Helper()
	table := env.Name("features")
	if err := devstack.EnsureTable(devstacktest.Ctx(t), env.DynamoDB, devstack.TablePlan{Name: table, HashKey: "entity"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return table
}

// checkFeatureItem reads entity's item (bypassing any proxy) and compares
// it with the row that must have won.
func checkFeatureItem(t *testing.T, ctx context.Context, env *devstacktest.Env, table, stream string, want row) {
	t.Helper()
	out, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"entity": &ddbtypes.AttributeValueMemberS{Value: want.entity}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		t.Errorf("%s: no item", want.entity)
		return
	}
	str := func(m map[string]ddbtypes.AttributeValue, k string) string {
		switch v := m[k].(type) {
		case *ddbtypes.AttributeValueMemberN:
			return v.Value
		case *ddbtypes.AttributeValueMemberS:
			return v.Value
		}
		return fmt.Sprintf("<%T>", m[k])
	}
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	we := want.ws.Add(time.Minute)
	feats, _ := out.Item["features"].(*ddbtypes.AttributeValueMemberM)
	if feats == nil {
		t.Errorf("%s: no features map", want.entity)
		return
	}
	for _, c := range [][3]string{
		{"window_start", str(out.Item, "window_start"), fmt.Sprint(want.ws.UnixMilli())},
		{"window_end", str(out.Item, "window_end"), fmt.Sprint(we.UnixMilli())},
		{"score", str(out.Item, ColScore), num(want.score)},
		{"model_version", str(out.Item, ColModelVersion), want.model},
		{"features.f00", str(feats.Value, "f00"), num(want.feats[0])},
		{"features.f01", str(feats.Value, "f01"), num(want.feats[1])},
		{"result_id", str(out.Item, "result_id"), ResultID(stream, want.entity, want.ws, we, want.model)},
	} {
		if c[1] != c[2] {
			t.Errorf("%s: %s = %s, want %s", want.entity, c[0], c[1], c[2])
		}
	}
}

// A DynamoDB outage stops the feature table's acks and, once its bounded
// queue is full, blocks Write; nothing is dropped or acked as durable. When
// the endpoint comes back every batch is acked with nil and the table holds
// the newest window of every entity, exactly as without the outage.
func TestFeatureTableOutageBacksOffAndLosesNothing(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := outageCtx(t)
	table := createFeatureTable(t, env)
	proxy := env.Proxy(t, env.Endpoints.DynamoDB)
	client := devstack.Endpoints{DynamoDB: proxy.URL()}.Clients().DynamoDB
	m, reg := newMetrics(t)
	// A queue of 2: the worker holds one batch and two more wait.
	s, err := NewFeatureTable(FeatureTableOptions{Client: client, Table: table, Queue: 2, Backoff: outageBackoff, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	const stream = "factory"
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	a := newAcks()
	batch := func(name string, rows ...row) Batch {
		rec := resultRecord(t, 2, rows)
		t.Cleanup(rec.Release)
		return Batch{Stream: stream, Shard: "shardId-000000000001", Rec: rec, Ack: a.fn(name)}
	}
	write := func(b Batch) {
		t.Helper()
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	write(batch("0", row{entity: "press-0", ws: at(0), feats: []float64{0, 1}, score: 0.5, model: "m1"}))
	a.wait(t, 60*time.Second, "0")

	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	// Three batches fill the worker and the queue. Together they hold, per
	// entity, windows out of order, an older window replayed, and an older
	// window after a newer one in the same batch.
	write(batch("1",
		row{entity: "press-1", ws: at(1), feats: []float64{1, 10}, score: 0.1, model: "m1"},
		row{entity: "press-2", ws: at(5), feats: []float64{5, 50}, score: 0.5, model: "m1"}))
	write(batch("2",
		row{entity: "press-1", ws: at(3), feats: []float64{3, 30}, score: 0.3, model: "m1"},
		row{entity: "press-2", ws: at(2), feats: []float64{2, 20}, score: 0.2, model: "m1"}))
	write(batch("3",
		row{entity: "press-1", ws: at(2), feats: []float64{2, 22}, score: 0.22, model: "m1"},
		row{entity: "press-3", ws: at(4), feats: []float64{4, 40}, score: 0.4, model: "m1"},
		row{entity: "press-3", ws: at(1), feats: []float64{1, 11}, score: 0.11, model: "m1"}))

	// Back-pressure: with the worker stuck on batch 1 and batches 2 and 3
	// queued, nothing can make room until DynamoDB answers, so a Write
	// whose context ends first is refused, and its Ack is never called.
	short, cancel := context.WithTimeout(ctx, time.Second)
	err = s.Write(short, batch("refused", row{entity: "press-1", ws: at(9), feats: []float64{9, 90}, score: 0.9, model: "m1"}))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write into a full queue during the outage = %v, want context.DeadlineExceeded", err)
	}
	// A Write with time to spare waits for room. It carries an update of
	// press-2's newest window, which must replace it.
	blocked := make(chan error, 1)
	b4 := batch("4", row{entity: "press-2", ws: at(5), feats: []float64{5, 55}, score: 0.55, model: "m1", update: true})
	go func() { blocked <- s.Write(ctx, b4) }()

	waitRetries(t, reg, "features", outageRetries)
	for _, n := range []string{"1", "2", "3", "4"} {
		notAcked(t, a, n, "while DynamoDB was unreachable")
	}
	select {
	case err := <-blocked:
		t.Fatalf("Write into a full queue returned (%v) while DynamoDB was unreachable", err)
	default:
	}

	if err := proxy.SetEnabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Fatalf("blocked Write after recovery: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("blocked Write still waiting 90s after DynamoDB came back")
	}
	a.wait(t, 90*time.Second, "1", "2", "3", "4")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	notAcked(t, a, "refused", "although Write refused it")

	for _, want := range []row{
		{entity: "press-0", ws: at(0), feats: []float64{0, 1}, score: 0.5, model: "m1"},
		{entity: "press-1", ws: at(3), feats: []float64{3, 30}, score: 0.3, model: "m1"},
		{entity: "press-2", ws: at(5), feats: []float64{5, 55}, score: 0.55, model: "m1"},
		{entity: "press-3", ws: at(4), feats: []float64{4, 40}, score: 0.4, model: "m1"},
	} {
		checkFeatureItem(t, ctx, env, table, stream, want)
	}
}

// An SQS outage holds Send, which is how the pipeline keeps its checkpoint
// behind a poison record: Send returns only once the records are in the
// queue. After the endpoint comes back every record arrives, at least once,
// with its attributes and original bytes; large ones through S3.
func TestDeadLetterSQSOutageLosesNothing(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := outageCtx(t)
	queue := env.CreateQueue(t, false)
	bucket := env.CreateBucket(t)
	proxy := env.Proxy(t, env.Endpoints.SQS)
	client := devstack.Endpoints{SQS: proxy.URL()}.Clients().SQS
	m, reg := newMetrics(t)
	d, err := NewDeadLetter(DeadLetterOptions{SQS: client, QueueURL: queue, S3: env.S3, Bucket: bucket, Backoff: outageBackoff, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	// Two concurrent Sends (as two shards would), one needing two
	// SendMessageBatch calls and one with a record too large for SQS.
	var sendA, sendB []Poison
	for i := range 12 {
		sendA = append(sendA, Poison{Reason: ReasonUndecodable, Detail: fmt.Sprintf("line 1: field \"temp\": not a number (%d)", i),
			Stream: "factory", Shard: "shardId-000000000001", Position: shardpos.Position{Sequence: fmt.Sprintf("4963%052d", i), SubSequence: uint64(i % 2)},
			Data: []byte(fmt.Sprintf("{\"temp\":\"x%d\"}\x00\xff", i))})
	}
	for i := range 3 {
		sendB = append(sendB, Poison{Reason: ReasonLate, Detail: "window closed 10m ago",
			Stream: "factory", Shard: "shardId-000000000002", Position: pos(100 + i), Data: []byte(fmt.Sprintf("late-%d", i))})
	}
	sendB = append(sendB, Poison{Reason: ReasonDeaggregation, Detail: "bad MD5", Stream: "factory", Shard: "shardId-000000000002",
		Position: pos(200), Data: bytes.Repeat([]byte{0xF3, 0x89, 0x9A, 0xC2}, 64<<10)})

	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 2)
	for _, recs := range [][]Poison{sendA, sendB} {
		go func() { results <- d.Send(ctx, recs...) }()
	}
	deadline := time.Now().Add(90 * time.Second)
	for counter(t, reg, "streamscore_sink_retries_total", "deadletter") < outageRetries {
		select {
		case err := <-results:
			t.Fatalf("Send returned (%v) while SQS was unreachable", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d retries counted 90s into the outage", outageRetries)
		}
	}

	if err := proxy.SetEnabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("Send after recovery: %v", err)
			}
		case <-time.After(90 * time.Second):
			t.Fatal("Send still waiting 90s after SQS came back")
		}
	}

	want := map[string]*Poison{}
	for _, recs := range [][]Poison{sendA, sendB} {
		for i := range recs {
			want[recs[i].Shard+"/"+recs[i].Position.String()] = &recs[i]
		}
	}
	got := map[string]int{}
	deadline = time.Now().Add(60 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range out.Messages {
			attr := func(k string) string { return aws.ToString(msg.MessageAttributes[k].StringValue) }
			p := shardpos.Position{Sequence: attr("sequence_number")}
			if _, err := fmt.Sscan(attr("sub_sequence"), &p.SubSequence); err != nil {
				t.Fatalf("sub_sequence %q: %v", attr("sub_sequence"), err)
			}
			key := attr("shard") + "/" + p.String()
			w := want[key]
			if w == nil {
				t.Fatalf("dead letter for unknown record %s", key)
			}
			if attr("reason") != w.Reason || attr("stream") != w.Stream || attr("detail") != w.Detail {
				t.Errorf("%s: attributes %v, want reason %q stream %q detail %q", key, msg.MessageAttributes, w.Reason, w.Stream, w.Detail)
			}
			var data []byte
			switch attr("payload") {
			case "inline":
				if data, err = base64.StdEncoding.DecodeString(aws.ToString(msg.Body)); err != nil {
					t.Fatalf("%s: body: %v", key, err)
				}
			case "s3":
				var ptr Pointer
				if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &ptr); err != nil {
					t.Fatalf("%s: pointer: %v", key, err)
				}
				obj, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ptr.Bucket), Key: aws.String(ptr.Key)})
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				data, err = io.ReadAll(obj.Body)
				obj.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("%s: payload attribute %q", key, attr("payload"))
			}
			if !bytes.Equal(data, w.Data) {
				t.Errorf("%s: payload differs from the original bytes", key)
			}
			got[key]++
		}
	}
	for k := range want {
		if got[k] == 0 {
			t.Errorf("record %s never arrived in the dead-letter queue", k)
		}
	}
	for k, n := range got {
		if n > 1 {
			t.Logf("record %s arrived %d times (at least once is the contract)", k, n)
		}
	}
}

// Send gives up when its context ends, whether it had ended before the call
// or ends while SQS is unreachable, and says why: the caller must not
// checkpoint past the records.
func TestDeadLetterSendStopsWithItsContext(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := outageCtx(t)
	queue := env.CreateQueue(t, false)
	proxy := env.Proxy(t, env.Endpoints.SQS)
	client := devstack.Endpoints{SQS: proxy.URL()}.Clients().SQS
	m, reg := newMetrics(t)
	d, err := NewDeadLetter(DeadLetterOptions{SQS: client, QueueURL: queue, Backoff: outageBackoff, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rec := Poison{Reason: ReasonUnscorable, Detail: "model returned NaN", Stream: "factory", Shard: "shardId-000000000001", Position: pos(7), Data: []byte("{}")}
	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}

	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if err := sendWithin(t, d, expired, rec); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send with an expired context = %v, want context.DeadlineExceeded", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// Cancel once Send is backing off the outage (t.Fatal is not for
		// this goroutine; outageCtx bounds the wait).
		for counter(t, reg, "streamscore_sink_retries_total", "deadletter") == 0 && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	err = sendWithin(t, d, cctx, rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send cancelled during the outage = %v, want context.Canceled", err)
	}
	if counter(t, reg, "streamscore_sink_retries_total", "deadletter") == 0 {
		t.Fatal("Send was cancelled before it retried: the test did not exercise the outage")
	}
	if IsPermanent(err) {
		t.Fatalf("a cancelled Send reported a permanent error: %v", err)
	}
}

// sendWithin runs Send and fails the test if it is still running 60s after
// its context ended.
func sendWithin(t *testing.T, d *DeadLetter, ctx context.Context, recs ...Poison) error {
	t.Helper()
	return within(t, ctx, "Send", func() error { return d.Send(ctx, recs...) })
}

// within runs f and fails the test if it has not returned 60s after ctx
// ended: what gives up on an outage must do so when its context does.
func within(t *testing.T, ctx context.Context, what string, f func() error) error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- f() }()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-res:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still running 60s after its context ended", what)
		return nil
	}
}
