package consumer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
)

// initialResponseShim works around a gap in the local Kinesis server
// (kinesis-local): real Kinesis opens every SubscribeToShard event stream
// with an initial-response event, which the SDK requires; the emulator
// never sends it. The shim prepends one. Test code only.
type initialResponseShim struct {
	base    http.RoundTripper
	message []byte
}

func newInitialResponseShim(t *testing.T) *initialResponseShim {
	t.Helper()
	var h eventstream.Headers
	h.Set(":message-type", eventstream.StringValue("event"))
	h.Set(":event-type", eventstream.StringValue("initial-response"))
	var buf bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&buf, eventstream.Message{Headers: h, Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &initialResponseShim{base: tr, message: buf.Bytes()}
}

func (s *initialResponseShim) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".SubscribeToShard") {
		return resp, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(s.message), resp.Body), resp.Body}
	return resp, nil
}

// countingKinesis counts the reads made through it.
type countingKinesis struct {
	KinesisAPI
	subscribes, getRecords atomic.Int64
}

func (c *countingKinesis) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, o ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	c.subscribes.Add(1)
	return c.KinesisAPI.SubscribeToShard(ctx, in, o...)
}

func (c *countingKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, o ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	c.getRecords.Add(1)
	return c.KinesisAPI.GetRecords(ctx, in, o...)
}

func TestFanOutDeliversInOrderAndResubscribes(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	table := env.Name("efo")
	efo := kinesis.NewFromConfig(env.AWS, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(env.Endpoints.Kinesis)
		o.HTTPClient = &http.Client{Transport: newInitialResponseShim(t)}
	})
	kin := &countingKinesis{KinesisAPI: efo}
	first := produce(t, env.Kinesis, stream, 100, "a")
	cfg := testConfig(table, "efo", stream)
	cfg.FanOut = true
	cfg.FanOutConsumerName = table + "-reader"
	cfg.SubscriptionLifetime = 1500 * time.Millisecond
	col := newCollector()
	c, err := New(cfg, kin, env.DynamoDB, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c, col.handler("efo", nil))
	waitFor(t, 30*time.Second, "first records", func() bool { return col.has(first) == 0 })
	time.Sleep(2 * cfg.SubscriptionLifetime) // at least one renewal per shard
	second := produce(t, env.Kinesis, stream, 100, "b")
	all := append(first, second...)
	waitFor(t, 30*time.Second, "records produced after resubscribing", func() bool { return col.has(all) == 0 })
	time.Sleep(300 * time.Millisecond)

	got := col.deliveries()
	if len(got) != len(all) {
		t.Fatalf("delivered %d records, want %d exactly once", len(got), len(all))
	}
	lastSeq := map[string]string{}
	for _, d := range got {
		if prev, ok := lastSeq[d.shard]; ok && shardpos.CompareSequence(prev, d.seq) >= 0 {
			t.Fatalf("shard %s: %s delivered after %s", d.shard, d.seq, prev)
		}
		lastSeq[d.shard] = d.seq
	}
	if n := kin.subscribes.Load(); n < 4 {
		t.Errorf("%d SubscribeToShard calls for 2 shards, want renewals before the lifetime ran out", n)
	}
	if n := kin.getRecords.Load(); n != 0 {
		t.Errorf("%d GetRecords calls: fan-out fell back to polling", n)
	}
	summary, err := env.Kinesis.DescribeStreamSummary(devstacktest.Ctx(t), &kinesis.DescribeStreamSummaryInput{StreamName: &stream})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kinesis.DescribeStreamConsumer(devstacktest.Ctx(t), &kinesis.DescribeStreamConsumerInput{
		StreamARN: summary.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String(cfg.FanOutConsumerName)}); err != nil {
		t.Errorf("the fan-out consumer is not registered under FanOutConsumerName %q: %v", cfg.FanOutConsumerName, err)
	}
	t.Logf("%d records over fan-out with %d subscriptions", len(got), kin.subscribes.Load())
}

// failingSubscribe refuses every subscription, as an account over its
// fan-out consumer limit or a network that blocks HTTP/2 would.
type failingSubscribe struct{ countingKinesis }

func (f *failingSubscribe) SubscribeToShard(context.Context, *kinesis.SubscribeToShardInput, ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	f.subscribes.Add(1)
	return nil, errors.New("subscription refused")
}

func TestFanOutFallsBackToPolling(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	kin := &failingSubscribe{countingKinesis{KinesisAPI: env.Kinesis}}
	keys := produce(t, env.Kinesis, stream, 50, "fb")
	cfg := testConfig(env.Name("efo-fallback"), "efo", stream)
	cfg.FanOut = true
	col := newCollector()
	c, err := New(cfg, kin, env.DynamoDB, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c, col.handler("efo", nil))
	waitFor(t, 60*time.Second, "every record, read by polling", func() bool { return col.has(keys) == 0 })
	if n := kin.subscribes.Load(); n < maxSubscribeFailures {
		t.Errorf("%d subscription attempts before falling back, want %d", n, maxSubscribeFailures)
	}
	if kin.getRecords.Load() == 0 {
		t.Error("no GetRecords call: the records did not come by polling")
	}
}
