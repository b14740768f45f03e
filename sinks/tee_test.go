package sinks

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// stubSink is a test double of our own Sink interface (not of an AWS API):
// it keeps the batches it accepts so the test decides when and how each is
// acked, or refuses them all with refuse.
type stubSink struct {
	refuse   error
	flushErr error
	closeErr error

	mu      sync.Mutex
	batches []Batch
	flushes int
	closes  int
	// shardFlushes lists the stream/shard of every FlushShard call.
	shardFlushes []string
}

func (s *stubSink) Write(_ context.Context, b Batch) error {
	if s.refuse != nil {
		return s.refuse
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, b)
	return nil
}

func (s *stubSink) Flush(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	return s.flushErr
}

func (s *stubSink) FlushShard(_ context.Context, stream, shard string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shardFlushes = append(s.shardFlushes, stream+"/"+shard)
	return s.flushErr
}

func (s *stubSink) Healthy() error { return nil }

func (s *stubSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	return s.closeErr
}

func (s *stubSink) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// ack acks the i-th batch the sink accepted.
func (s *stubSink) ack(t *testing.T, i int, err error) {
	t.Helper()
	s.mu.Lock()
	if i >= len(s.batches) {
		s.mu.Unlock()
		t.Fatalf("ack of batch %d, but the sink accepted %d", i, len(s.batches))
	}
	b := s.batches[i]
	s.mu.Unlock()
	b.Ack(err)
}

// teeBatch is a batch for the tee tests and its Ack's outcome. The record is
// only passed through: stub sinks never read it.
func teeBatch(t *testing.T, a *acks, name string) Batch {
	rec := resultRecord(t, 1, []row{{entity: "press-1", ws: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), model: "m"}})
	t.Cleanup(rec.Release)
	return Batch{Stream: "factory", Shard: "shardId-000000000000", Range: Range{First: pos(1), Last: pos(2)}, Rec: rec, Ack: a.fn(name)}
}

func notAcked(t *testing.T, a *acks, name, when string) {
	t.Helper()
	if err, ok := a.get(name); ok {
		t.Fatalf("batch %s acked (%v) %s", name, err, when)
	}
}

// The pipeline checkpoints on the tee's ack, so it must wait for the last
// sink: a batch durable in S3 but not yet in DynamoDB is not durable.
func TestTeeAcksOnceEverySinkAcked(t *testing.T) {
	t.Parallel()
	s1, s2, s3 := &stubSink{}, &stubSink{}, &stubSink{}
	tee := Tee(s1, s2, s3)
	a := newAcks()
	if err := tee.Write(context.Background(), teeBatch(t, a, "b")); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*stubSink{s1, s2, s3} {
		if n := s.accepted(); n != 1 {
			t.Fatalf("sink %d got %d batches, want 1", i, n)
		}
	}
	s3.ack(t, 0, nil)
	s1.ack(t, 0, nil)
	notAcked(t, a, "b", "while one of three sinks had not acked")
	s2.ack(t, 0, nil)
	a.wait(t, 10*time.Second, "b") // fails on a non-nil ack
}

func TestTeeAcksWithTheFirstError(t *testing.T) {
	t.Parallel()
	s1, s2, s3 := &stubSink{}, &stubSink{}, &stubSink{}
	tee := Tee(s1, s2, s3)
	a := newAcks()
	if err := tee.Write(context.Background(), teeBatch(t, a, "b")); err != nil {
		t.Fatal(err)
	}
	first := &PermanentError{Sink: "features", Err: errors.New("access denied")}
	second := &PermanentError{Sink: "s3", Err: errors.New("no such bucket")}
	s2.ack(t, 0, first)
	s1.ack(t, 0, nil)
	notAcked(t, a, "b", "before every sink acked, although one failed")
	s3.ack(t, 0, second)
	err, ok := a.get("b")
	if !ok {
		t.Fatal("batch not acked after every sink acked")
	}
	if !errors.Is(err, first) {
		t.Fatalf("acked with %v, want the first sink error %v", err, first)
	}
	if !IsPermanent(err) {
		t.Fatalf("acked with %v: a permanent sink error must stay recognisable", err)
	}
}

// A sink that refuses the batch (its Write fails) must not leave the batch
// acked as durable, and must not leave the sinks that already took it with
// an ack that goes nowhere: the tee acks the batch with the refusal, once
// the sinks that accepted it have acked.
func TestTeeSinkRefusesBatch(t *testing.T) {
	t.Parallel()
	refusal := errors.New("dynamodb sink: queue closed")
	s1, s2 := &stubSink{}, &stubSink{refuse: refusal}
	tee := Tee(s1, s2)
	a := newAcks()
	if err := tee.Write(context.Background(), teeBatch(t, a, "b")); err != nil {
		t.Fatalf("Write = %v: the first sink accepted the batch, so the tee must accept it too and report through Ack", err)
	}
	notAcked(t, a, "b", "while the sink that accepted it had not acked")
	s1.ack(t, 0, nil)
	err, ok := a.get("b")
	if !ok {
		t.Fatal("batch not acked after the accepting sink acked")
	}
	if !errors.Is(err, refusal) {
		t.Fatalf("acked with %v, want the refusal %v", err, refusal)
	}
}

// When the first sink refuses, nobody has the batch: the tee refuses it
// whole, and per the Sink contract Ack is then never called.
func TestTeeFirstSinkRefusesBatch(t *testing.T) {
	t.Parallel()
	refusal := errors.New("s3 sink: closed")
	s1, s2 := &stubSink{refuse: refusal}, &stubSink{}
	tee := Tee(s1, s2)
	a := newAcks()
	if err := tee.Write(context.Background(), teeBatch(t, a, "b")); !errors.Is(err, refusal) {
		t.Fatalf("Write = %v, want the refusal %v", err, refusal)
	}
	if n := s2.accepted(); n != 0 {
		t.Fatalf("the second sink got %d batches after the tee refused the batch", n)
	}
	notAcked(t, a, "b", "after Write refused it")
}

// Write accepting a batch promises exactly one Ack, even with no sinks.
func TestTeeOfNoSinksAcksAtOnce(t *testing.T) {
	t.Parallel()
	a := newAcks()
	if err := Tee().Write(context.Background(), teeBatch(t, a, "b")); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 10*time.Second, "b")
}

// A batch without an Ack function is malformed: the tee must refuse it up
// front like every sink does, not hand it on and panic in a sink's worker
// goroutine when the acks come in.
func TestTeeRefusesBatchWithoutAck(t *testing.T) {
	t.Parallel()
	s1 := &stubSink{}
	b := teeBatch(t, newAcks(), "b")
	b.Ack = nil
	if err := Tee(s1).Write(context.Background(), b); err == nil {
		t.Fatal("Write accepted a batch without Ack")
	}
	if n := s1.accepted(); n != 0 {
		t.Fatalf("the sink got %d batches without Ack", n)
	}
}

// Flush and Close reach every sink even when one fails, and the errors of
// all of them come back, each still matchable with errors.Is.
func TestTeeFlushAndCloseReachEverySink(t *testing.T) {
	t.Parallel()
	flushErr1, flushErr3 := errors.New("flush 1"), errors.New("flush 3")
	closeErr2 := errors.New("close 2")
	s1 := &stubSink{flushErr: flushErr1}
	s2 := &stubSink{closeErr: closeErr2}
	s3 := &stubSink{flushErr: flushErr3}
	tee := Tee(s1, s2, s3)
	ctx := context.Background()
	err := tee.Flush(ctx)
	if !errors.Is(err, flushErr1) || !errors.Is(err, flushErr3) {
		t.Fatalf("Flush = %v, want both sink errors", err)
	}
	err = tee.Close(ctx)
	if !errors.Is(err, closeErr2) {
		t.Fatalf("Close = %v, want %v", err, closeErr2)
	}
	for i, s := range []*stubSink{s1, s2, s3} {
		if s.flushes != 1 || s.closes != 1 {
			t.Errorf("sink %d: %d flushes, %d closes, want 1 and 1", i, s.flushes, s.closes)
		}
	}
	if err := Tee(&stubSink{}, &stubSink{}).Flush(ctx); err != nil {
		t.Fatalf("Flush of healthy sinks = %v", err)
	}
	if err := Tee(&stubSink{}, &stubSink{}).Close(ctx); err != nil {
		t.Fatalf("Close of healthy sinks = %v", err)
	}
}

// FlushShard reaches every sink with the same shard, even when one fails,
// and the errors of all of them come back.
func TestTeeFlushShardReachesEverySink(t *testing.T) {
	t.Parallel()
	flushErr := errors.New("flush 2")
	s1, s2, s3 := &stubSink{}, &stubSink{flushErr: flushErr}, &stubSink{}
	err := Tee(s1, s2, s3).FlushShard(context.Background(), "factory", "shardId-000000000007")
	if !errors.Is(err, flushErr) {
		t.Fatalf("FlushShard = %v, want %v", err, flushErr)
	}
	for i, s := range []*stubSink{s1, s2, s3} {
		if !slices.Equal(s.shardFlushes, []string{"factory/shardId-000000000007"}) || s.flushes != 0 {
			t.Errorf("sink %d: shard flushes %q and %d whole flushes, want one of factory/shardId-000000000007 and none", i, s.shardFlushes, s.flushes)
		}
	}
}
