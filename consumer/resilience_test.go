package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
)

// faultyKinesis decorates a real Kinesis client: before a shard read goes
// through, a hook may block it or answer an error instead, as Kinesis
// would (an IAM policy denying the shard, an iterator that expired while
// the reader was stalled). Everything else goes to the real server.
type faultyKinesis struct {
	KinesisAPI
	// beforeRead, when set, is called with the operation
	// ("GetShardIterator", "GetRecords") and the shard (empty for
	// GetRecords, whose shard is in the iterator); a non-nil error is
	// returned instead of calling.
	beforeRead func(ctx context.Context, op, shard string) error
	// gotIterator, when set, is told of every iterator Kinesis handed out.
	gotIterator func(shard string, typ ktypes.ShardIteratorType)
}

func (f *faultyKinesis) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, o ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if f.beforeRead != nil {
		if err := f.beforeRead(ctx, "GetShardIterator", aws.ToString(in.ShardId)); err != nil {
			return nil, err
		}
	}
	out, err := f.KinesisAPI.GetShardIterator(ctx, in, o...)
	if err == nil && f.gotIterator != nil {
		f.gotIterator(aws.ToString(in.ShardId), in.ShardIteratorType)
	}
	return out, err
}

func (f *faultyKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, o ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if f.beforeRead != nil {
		if err := f.beforeRead(ctx, "GetRecords", ""); err != nil {
			return nil, err
		}
	}
	return f.KinesisAPI.GetRecords(ctx, in, o...)
}

// syncBuffer is a log sink safe for the consumer's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), substr)
}

func failureOf(c *Consumer, stream, shard string) (ShardFailure, bool) {
	for _, f := range c.Unhealthy() {
		if f.Stream == stream && f.ShardID == shard {
			return f, true
		}
	}
	return ShardFailure{}, false
}

func TestIsFatalReadError(t *testing.T) {
	msg := aws.String("m")
	for _, tc := range []struct {
		err   error
		fatal bool
	}{
		{&ktypes.AccessDeniedException{Message: msg}, true},
		{&ktypes.ResourceNotFoundException{Message: msg}, true},
		{&ktypes.InvalidArgumentException{Message: msg}, true},
		{&ktypes.KMSAccessDeniedException{Message: msg}, true},
		{&ktypes.KMSDisabledException{Message: msg}, true},
		{&ktypes.KMSNotFoundException{Message: msg}, true},
		{fmt.Errorf("get shard iterator s/shardId-0: %w", &ktypes.AccessDeniedException{Message: msg}), true},
		{&ktypes.ProvisionedThroughputExceededException{Message: msg}, false},
		{&ktypes.LimitExceededException{Message: msg}, false},
		{&ktypes.KMSThrottlingException{Message: msg}, false},
		{&ktypes.ExpiredIteratorException{Message: msg}, false},
		{&ktypes.InternalFailureException{Message: msg}, false},
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), false},
		{context.DeadlineExceeded, false},
	} {
		if got := isFatalReadError(tc.err); got != tc.fatal {
			t.Errorf("isFatalReadError(%v) = %v, want %v", tc.err, got, tc.fatal)
		}
	}
}

// failingHandler records what a pipeline with an instant sink would, and
// refuses every non-empty batch of one shard while poisoned, as a sink
// refusing a record would. It counts the processors started per shard.
type failingHandler struct {
	*collector
	inner    func(context.Context, *Batch) error
	bad      string
	poisoned atomic.Bool
	mu       sync.Mutex
	// firsts are the first records of the batches refused.
	firsts []key
	inits  map[string]int
}

func (h *failingHandler) factory() ShardProcessor { return &failingProcessor{h: h} }

type failingProcessor struct {
	h     *failingHandler
	shard string
}

var _ ShardProcessor = (*failingProcessor)(nil)

func (p *failingProcessor) Initialize(_ context.Context, s ShardInfo) error {
	p.shard = s.ShardID
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	p.h.inits[s.ShardID]++
	return nil
}

func (p *failingProcessor) ProcessRecords(ctx context.Context, b *Batch) error {
	h := p.h
	if b.ShardID == h.bad && h.poisoned.Load() && len(b.Records) > 0 {
		h.mu.Lock()
		r := b.Records[0]
		h.firsts = append(h.firsts, key{r.ShardID, r.SequenceNumber, r.SubSequenceNumber})
		h.mu.Unlock()
		return errors.New("test: the sink refuses this batch")
	}
	return h.inner(ctx, b)
}

func (p *failingProcessor) ShardEnded(context.Context) error        { return nil }
func (p *failingProcessor) ShutdownRequested(context.Context) error { return nil }
func (p *failingProcessor) LeaseLost()                              {}

func (h *failingHandler) snapshot() (firsts []key, inits int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.firsts), h.inits[h.bad]
}

// A handler error on one shard fails that shard only: the consumer and the
// other shard go on, the lease stays held, the shard restarts from its
// durable checkpoint with a new processor, recovers once the handler takes
// its batches, and a graceful stop during the backoff still hands over.
func TestHandlerErrorFailsOneShardOnly(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	table := env.Name("herr")
	cfg := testConfig(table, "w1", stream)
	cfg.FailureBackoff, cfg.MaxFailureBackoff = 100*time.Millisecond, 800*time.Millisecond
	logs := &syncBuffer{}
	c, err := New(cfg, env.Kinesis, env.DynamoDB, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	first := produce(t, env.Kinesis, stream, 40, "before")
	bad := first[0].shard
	h := &failingHandler{collector: col, inner: col.deliver("w1", nil), bad: bad, inits: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h.factory) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 60*time.Second, "the first records", func() bool { return col.has(first) == 0 })

	h.poisoned.Store(true)
	second := produce(t, env.Kinesis, stream, 60, "poisoned")
	var badKeys, goodKeys []key
	for _, k := range second {
		if k.shard == bad {
			badKeys = append(badKeys, k)
		} else {
			goodKeys = append(goodKeys, k)
		}
	}
	if len(badKeys) == 0 || len(goodKeys) == 0 {
		t.Fatalf("records landed on one shard only (%d/%d); rerun", len(badKeys), len(goodKeys))
	}
	waitFor(t, 60*time.Second, "the shard failed and retried at least 3 times", func() bool {
		f, ok := failureOf(c, stream, bad)
		return ok && f.Kind == FailureHandler && f.Failures >= 3
	})
	waitFor(t, 60*time.Second, "the other shard's records", func() bool { return col.has(goodKeys) == 0 })
	select {
	case err := <-done:
		t.Fatalf("Run returned after a handler error: %v", err)
	default:
	}
	if !slices.Contains(c.HeldLeases(), bad) {
		t.Fatalf("held leases %v: the failed shard's lease was given up", c.HeldLeases())
	}
	if o := owners(t, env.DynamoDB, table); o["w1"] != 2 {
		t.Fatalf("lease owners %v, want both held by w1", o)
	}
	f, _ := failureOf(c, stream, bad)
	if !strings.Contains(f.Err.Error(), "sink refuses") || f.Since.IsZero() {
		t.Fatalf("failure %+v does not carry the handler's error and its start", f)
	}
	firsts, inits := h.snapshot()
	for _, k := range firsts {
		if k != badKeys[0] {
			t.Fatalf("a retry started at %v, want the record after the durable checkpoint %v", k, badKeys[0])
		}
	}
	// Each retry is a new processor: one for the first attempt, one per
	// restart after a failed one.
	if inits < len(firsts) {
		t.Fatalf("%d processors started for %d failed attempts: a restart reused the failed processor's state", inits, len(firsts))
	}
	if n := logs.count("shard failed"); n != 1 {
		t.Fatalf("%d 'shard failed' log lines for %d failures, want 1", n, len(firsts))
	}
	if got := testutil.ToFloat64(c.m.shardFailures.WithLabelValues(stream, string(FailureHandler))); got < 3 {
		t.Fatalf("shard_failures_total{kind=handler} = %v, want >= 3", got)
	}

	// The sink accepts again: the shard recovers by itself, from its
	// checkpoint, delivering each record once.
	h.poisoned.Store(false)
	waitFor(t, 60*time.Second, "the failed shard's records after recovery", func() bool { return col.has(badKeys) == 0 })
	waitFor(t, 30*time.Second, "the shard reported healthy", func() bool { return len(c.Unhealthy()) == 0 })
	for k, n := range countDeliveries(col) {
		if n != 1 {
			t.Errorf("record %v delivered %d times; a restart from the checkpoint repeats nothing already taken", k, n)
		}
	}

	// A graceful stop while the shard waits in its backoff still releases
	// every lease with its checkpoint.
	h.poisoned.Store(true)
	produce(t, env.Kinesis, stream, 20, "stop")
	waitFor(t, 60*time.Second, "the shard failed again", func() bool { _, ok := failureOf(c, stream, bad); return ok })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after a graceful stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of a graceful stop with a shard in backoff")
	}
	done <- nil // for the cleanup
	lastBad := badKeys[len(badKeys)-1]
	for key, l := range checkpoints(t, env.DynamoDB, table) {
		if l.owner != "" {
			t.Errorf("lease %s still owned by %q after a graceful stop", key, l.owner)
		}
		if key == bad && (l.checkpoint != shardpos.Position{Sequence: lastBad.seq, SubSequence: lastBad.sub}) {
			t.Errorf("failed shard's lease checkpoint %v, want its last record taken %v", l.checkpoint, lastBad)
		}
	}
}

func countDeliveries(col *collector) map[key]int {
	m := map[key]int{}
	for _, d := range col.deliveries() {
		m[d.key]++
	}
	return m
}

// A stream deleted under a running worker (GetRecords and GetShardIterator
// answer ResourceNotFound) fails its shards, visibly, and the worker goes
// on consuming its other stream.
func TestDeletedStreamFailsItsShardsOnly(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	keep := env.CreateStream(t, 1)
	doomed := env.CreateStream(t, 1)
	table := env.Name("gone")
	cfg := testConfig(table, "w1", keep, doomed)
	cfg.FailureBackoff, cfg.MaxFailureBackoff = 100*time.Millisecond, time.Second
	c := newConsumer(t, cfg, env.Kinesis, env.DynamoDB)
	col := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, col.handler("w1", nil)) }()
	t.Cleanup(func() { cancel(); <-done })
	before := append(produce(t, env.Kinesis, keep, 10, "k"), produce(t, env.Kinesis, doomed, 10, "d")...)
	waitFor(t, 60*time.Second, "records of both streams", func() bool { return col.has(before) == 0 })

	if _, err := env.Kinesis.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: &doomed}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the deleted stream's shard reported failed", func() bool {
		f, ok := failureOf(c, doomed, "shardId-000000000000")
		var nf *ktypes.ResourceNotFoundException
		return ok && f.Kind == FailureRead && errors.As(f.Err, &nf)
	})
	after := produce(t, env.Kinesis, keep, 10, "k2")
	waitFor(t, 60*time.Second, "the other stream's new records", func() bool { return col.has(after) == 0 })
	select {
	case err := <-done:
		t.Fatalf("Run returned: %v", err)
	default:
	}
	if u := c.Unhealthy(); len(u) != 1 {
		t.Fatalf("Unhealthy() = %+v, want only the deleted stream's shard", u)
	}
	if got := testutil.ToFloat64(c.m.shardFailures.WithLabelValues(doomed, string(FailureRead))); got < 1 {
		t.Fatalf("shard_failures_total{kind=read} = %v", got)
	}
}

// AccessDenied on one shard (an IAM policy scoped too narrowly) fails that
// shard, logs once, and is retried slowly; fixing the policy recovers it
// without a restart and without losing or repeating a record.
func TestAccessDeniedRecoversWithoutRestart(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	table := env.Name("denied")
	const denied = "shardId-000000000001"
	var deny atomic.Bool
	deny.Store(true)
	fk := &faultyKinesis{KinesisAPI: env.Kinesis}
	fk.beforeRead = func(_ context.Context, op, shard string) error {
		if deny.Load() && op == "GetShardIterator" && shard == denied {
			return &ktypes.AccessDeniedException{Message: aws.String("User is not authorized to perform: kinesis:GetShardIterator on resource shardId-000000000001")}
		}
		return nil
	}
	cfg := testConfig(table, "w1", stream)
	cfg.FailureBackoff, cfg.MaxFailureBackoff = 100*time.Millisecond, time.Second
	logs := &syncBuffer{}
	c, err := New(cfg, fk, env.DynamoDB, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	stop := run(t, c, col.handler("w1", nil))
	keys := produce(t, env.Kinesis, stream, 60, "a")
	var other []key
	for _, k := range keys {
		if k.shard != denied {
			other = append(other, k)
		}
	}
	waitFor(t, 60*time.Second, "the denied shard failed at least 3 times", func() bool {
		f, ok := failureOf(c, stream, denied)
		var ad *ktypes.AccessDeniedException
		return ok && f.Kind == FailureRead && errors.As(f.Err, &ad) && f.Failures >= 3
	})
	waitFor(t, 60*time.Second, "the other shard's records", func() bool { return col.has(other) == 0 })
	if n := logs.count("shard failed"); n != 1 {
		t.Fatalf("%d 'shard failed' log lines, want 1 for the whole run of failures", n)
	}
	deny.Store(false) // the policy is fixed
	waitFor(t, 60*time.Second, "every record after the fix", func() bool { return col.has(keys) == 0 })
	waitFor(t, 30*time.Second, "the shard reported healthy", func() bool { return len(c.Unhealthy()) == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for k, n := range countDeliveries(col) {
		if n != 1 {
			t.Errorf("record %v delivered %d times", k, n)
		}
	}
}

// gate holds a shard's next GetRecords until released and then answers
// ExpiredIteratorException for it, as Kinesis does when a reader stalls
// for more than five minutes between two reads.
type gate struct {
	mu      sync.Mutex
	armed   bool
	blocked chan struct{} // closed when a held call is waiting
	release chan struct{}
}

func (g *gate) arm() (blocked, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
	g.blocked, g.release = make(chan struct{}), make(chan struct{})
	return g.blocked, g.release
}

func (g *gate) before(ctx context.Context, op, _ string) error {
	if op != "GetRecords" {
		return nil
	}
	g.mu.Lock()
	if !g.armed {
		g.mu.Unlock()
		return nil
	}
	g.armed = false
	blocked, release := g.blocked, g.release
	g.mu.Unlock()
	close(blocked)
	select {
	case <-release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return &ktypes.ExpiredIteratorException{Message: aws.String("Iterator expired. The iterator was created at time ... while right now it is ...")}
}

// With a LATEST start, an iterator that expires before the first record
// is re-created where the first began, not at the tip (which would skip
// what arrived meanwhile); after records were read it is re-created after
// the last one. A handler error before anything was durable restarts at
// that same start.
func TestExpiredIteratorAtLatestStartSkipsNothing(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	table := env.Name("expired")
	g := &gate{}
	fk := &faultyKinesis{KinesisAPI: env.Kinesis, beforeRead: g.before}
	cfg := testConfig(table, "w1", stream)
	cfg.Streams[0].InitialPosition = Latest
	cfg.FailureBackoff, cfg.MaxFailureBackoff = 100*time.Millisecond, time.Second
	col := newCollector()
	var failedOnce atomic.Bool
	inner := col.deliver("w1", nil)
	h := ProcessFunc(func(ctx context.Context, b *Batch) error {
		if len(b.Records) > 0 && failedOnce.CompareAndSwap(false, true) {
			return errors.New("test: the first batch fails once, before anything is durable")
		}
		return inner(ctx, b)
	})
	blocked, release := g.arm()
	c := newConsumer(t, cfg, fk, env.DynamoDB)
	stop := run(t, c, h)
	select {
	case <-blocked: // the LATEST iterator exists; its first read is held
	case <-time.After(60 * time.Second):
		t.Fatal("the consumer never read the shard")
	}
	first := produce(t, env.Kinesis, stream, 20, "while-stalled")
	close(release)
	waitFor(t, 60*time.Second, "the records written while the LATEST iterator was stalled", func() bool { return col.has(first) == 0 })
	if !failedOnce.Load() {
		t.Fatal("the handler was never given a batch to fail")
	}

	blocked, release = g.arm()
	select {
	case <-blocked:
	case <-time.After(60 * time.Second):
		t.Fatal("the consumer stopped reading")
	}
	second := produce(t, env.Kinesis, stream, 20, "after-first-read")
	close(release)
	waitFor(t, 60*time.Second, "the records written while the second iterator was stalled", func() bool { return col.has(second) == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	counts := countDeliveries(col)
	for _, k := range append(first, second...) {
		if counts[k] != 1 {
			t.Errorf("record %v delivered %d times, want once", k, counts[k])
		}
	}
}
