package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// A hand-over flushes one shard: FlushShard uploads and acks that shard's
// batches while every other shard's roll stays open and unacked, until its
// own flush.
func TestS3FlushShardFlushesOnlyThatShard(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	s, err := NewS3(S3Options{Client: env.S3, Bucket: bucket, Prefix: "lake", SpoolDir: t.TempDir(), RollAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	const shard1, shard2 = "shardId-000000000001", "shardId-000000000002"
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	write := func(name, shard string, r Range) {
		t.Helper()
		rec := resultRecord(t, 2, []row{{entity: "press-" + name, ws: t0, score: 0.5, model: "m"}})
		defer rec.Release()
		if err := s.Write(ctx, Batch{Stream: "factory", Shard: shard, Range: r, Rec: rec, Ack: a.fn(name)}); err != nil {
			t.Fatal(err)
		}
	}
	objects := func(shard string) []string {
		t.Helper()
		var out []string
		for _, k := range listKeys(t, env.S3, bucket, "lake/") {
			if strings.Contains(k, "/"+shard+"_") {
				out = append(out, k)
			}
		}
		return out
	}
	write("a1", shard1, Range{First: pos(10), Last: pos(19)})
	write("b1", shard2, Range{First: pos(110), Last: pos(119)})
	write("a2", shard1, Range{First: pos(20), Last: pos(29)})

	if err := s.FlushShard(ctx, "factory", shard1); err != nil {
		t.Fatal(err)
	}
	// FlushShard returns once the shard's batches are acked: no waiting.
	for _, name := range []string{"a1", "a2"} {
		if err, ok := a.get(name); !ok || err != nil {
			t.Fatalf("after FlushShard(%s), batch %s acked=%v err=%v, want acked nil", shard1, name, ok, err)
		}
	}
	notAcked(t, a, "b1", "by a flush of another shard")
	if got := objects(shard1); len(got) != 1 {
		t.Fatalf("objects of %s after its flush: %q, want one", shard1, got)
	}
	if got := objects(shard2); len(got) != 0 {
		t.Fatalf("objects of %s uploaded by a flush of %s: %q", shard2, shard1, got)
	}

	// shard2's roll is still the one b1 opened: b2 joins it, and its own
	// flush uploads both in one file spanning their positions.
	write("b2", shard2, Range{First: pos(120), Last: pos(129)})
	notAcked(t, a, "b1", "before its shard's flush")
	if err := s.FlushShard(ctx, "factory", shard2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b1", "b2"} {
		if err, ok := a.get(name); !ok || err != nil {
			t.Fatalf("after FlushShard(%s), batch %s acked=%v err=%v, want acked nil", shard2, name, ok, err)
		}
	}
	got := objects(shard2)
	if want := fmt.Sprintf("/%s_%s_%s_", shard2, pos(110), pos(129)); len(got) != 1 || !strings.Contains(got[0], want) {
		t.Fatalf("objects of %s: %q, want one spanning %s", shard2, got, want)
	}
	if got := objects(shard1); len(got) != 1 {
		t.Fatalf("objects of %s after the other shard's flush: %q, want still one", shard1, got)
	}
	if n := len(readLake(t, env.S3, bucket, "lake/")); n != 4 {
		t.Fatalf("the lake holds %d rows, want 4", n)
	}

	// A shard the sink never saw has nothing to flush.
	if err := s.FlushShard(ctx, "factory", "shardId-000000000009"); err != nil {
		t.Fatalf("FlushShard of an unknown shard = %v", err)
	}
}

// FlushShard of a shard whose batches are still uploading waits for them,
// and a whole Flush after it still waits for every shard.
func TestS3FlushShardWaitsForItsUploads(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	// A tiny roll size: every batch rolls (and uploads) on its own, so
	// FlushShard finds rolls already in flight, not only an open one.
	s, err := NewS3(S3Options{Client: env.S3, Bucket: bucket, SpoolDir: t.TempDir(), RollBytes: 1, RollAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	var names []string
	for i := range 6 {
		name := fmt.Sprint("s1-", i)
		names = append(names, name)
		rec := resultRecord(t, 2, []row{{entity: "press-1", ws: t0.Add(time.Duration(i) * time.Minute), score: 0.5, model: "m"}})
		if err := s.Write(ctx, Batch{Stream: "factory", Shard: "shardId-000000000001", Range: Range{First: pos(10 * i), Last: pos(10*i + 9)}, Rec: rec, Ack: a.fn(name)}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := s.FlushShard(ctx, "factory", "shardId-000000000001"); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err, ok := a.get(name); !ok || err != nil {
			t.Fatalf("after FlushShard, batch %s acked=%v err=%v, want acked nil", name, ok, err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(listKeys(t, env.S3, bucket, "stream=")); n != 6 {
		t.Fatalf("%d objects, want 6", n)
	}
}

// The CloudWatch sink aggregates every shard into one interval: FlushShard
// publishes it (acking every shard's batches), which is the documented
// cost of a hand-over there.
func TestCloudWatchFlushShardPublishesTheInterval(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	s, err := NewCloudWatch(CloudWatchOptions{EMF: &buf, Namespace: "streamscore-test", Pipeline: "p", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	ctx := context.Background()
	a := newAcks()
	for _, shard := range []string{"shardId-000000000001", "shardId-000000000002"} {
		rec := resultRecord(t, 1, []row{{entity: "press-1", ws: time.Now().Add(-time.Minute), score: 0.5, model: "m"}})
		if err := s.Write(ctx, Batch{Stream: "factory", Shard: shard, Range: Range{First: pos(1), Last: pos(2)}, Rec: rec, Ack: a.fn(shard)}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := s.FlushShard(ctx, "factory", "shardId-000000000001"); err != nil {
		t.Fatal(err)
	}
	for _, shard := range []string{"shardId-000000000001", "shardId-000000000002"} {
		if err, ok := a.get(shard); !ok || err != nil {
			t.Fatalf("batch of %s acked=%v err=%v after FlushShard, want acked nil", shard, ok, err)
		}
	}
	buf.mu.Lock()
	lines := buf.b.Len()
	buf.mu.Unlock()
	if lines == 0 {
		t.Fatal("FlushShard published no EMF")
	}
}

// After Close, FlushShard refuses like Flush.
func TestFlushShardAfterClose(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	s, err := NewCloudWatch(CloudWatchOptions{EMF: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushShard(context.Background(), "factory", "shardId-000000000001"); !errors.Is(err, ErrClosed) {
		t.Fatalf("FlushShard after Close = %v, want ErrClosed", err)
	}
}
