package consumer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// flushingHandler marks records durable only in FlushShard, as a pipeline
// whose sinks buffer does: a graceful stop must flush before it hands the
// lease over, or the next owner repeats everything.
type flushingHandler struct {
	mu         sync.Mutex
	last       map[string]*Batch
	lastPos    map[string]Position
	heartbeats map[string]int
	flushed    int
	closed     []string
}

func (h *flushingHandler) ShardClosed(_ string, shardID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = append(h.closed, shardID)
}

func (h *flushingHandler) HandleBatch(_ context.Context, b *Batch) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(b.Records) == 0 && !b.ShardEnd {
		h.heartbeats[b.ShardID]++
		return nil
	}
	cp := *b
	h.last[b.ShardID] = &cp
	h.lastPos[b.ShardID] = b.Last()
	return nil
}

func (h *flushingHandler) FlushShard(_ context.Context, _ string, shardID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flushed++
	if b := h.last[shardID]; b != nil {
		return b.Checkpointer.MarkDurable(h.lastPos[shardID])
	}
	return nil
}

func TestIdleHeartbeatAndFlushBeforeHandOver(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	table := env.Name("hooks")
	keys := produce(t, env.Kinesis, stream, 20, "hb")

	cfg := testConfig(table, "w1", stream)
	cfg.IdleHeartbeat = 300 * time.Millisecond
	h := &flushingHandler{last: map[string]*Batch{}, lastPos: map[string]Position{}, heartbeats: map[string]int{}}
	stop := run(t, newConsumer(t, cfg, env.Kinesis, env.DynamoDB), h)
	waitFor(t, 30*time.Second, "the records and then heartbeats on the idle shard", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.last) == 1 && h.heartbeats[keys[0].shard] >= 3
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if h.flushed != 1 {
		t.Fatalf("FlushShard called %d times on a graceful stop of one shard, want 1", h.flushed)
	}
	if len(h.closed) != 1 || h.closed[0] != keys[0].shard {
		t.Fatalf("ShardClosed calls = %v, want one for %s", h.closed, keys[0].shard)
	}

	// The next worker resumes after everything FlushShard made durable.
	c := newCollector()
	cfg2 := testConfig(table, "w2", stream)
	stop2 := run(t, newConsumer(t, cfg2, env.Kinesis, env.DynamoDB), c.handler("w2", func() bool { return true }))
	more := produce(t, env.Kinesis, stream, 5, "after")
	waitFor(t, 30*time.Second, "the records produced after the hand-over", func() bool { return c.has(more) == 0 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	for _, d := range c.deliveries() {
		for _, k := range keys {
			if d.key == k {
				t.Fatalf("record %v was delivered again after the flushed hand-over", k)
			}
		}
	}
}
