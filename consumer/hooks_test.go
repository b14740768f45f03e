package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
)

// flushingHandler makes processors that mark records durable only in
// ShutdownRequested, as a pipeline whose sinks buffer does: a graceful stop
// must flush before it hands the lease over, or the next owner repeats
// everything.
type flushingHandler struct {
	mu         sync.Mutex
	seen       map[string]bool
	heartbeats map[string]int
	flushed    int
	endings    []string
}

func (h *flushingHandler) factory() ShardProcessor { return &flushingProcessor{h: h} }

type flushingProcessor struct {
	h       *flushingHandler
	info    ShardInfo
	lastPos shardpos.Position
}

var _ ShardProcessor = (*flushingProcessor)(nil)

func (p *flushingProcessor) Initialize(_ context.Context, s ShardInfo) error {
	p.info = s
	// Our leases record the shard's hash key range; the pipeline picks
	// its fleet-wide monitor reducer by it.
	if s.StartingHashKey == "" || strings.Trim(s.StartingHashKey, "0123456789") != "" {
		return fmt.Errorf("test: shard %s starts at hash key %q, want a decimal number", s.ShardID, s.StartingHashKey)
	}
	return nil
}

func (p *flushingProcessor) ProcessRecords(_ context.Context, b *Batch) error {
	h := p.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if b.Checkpointer != p.info.Checkpointer {
		return errors.New("test: the batch's checkpointer is not the one Initialize got")
	}
	if len(b.Records) == 0 && !b.ShardEnd {
		h.heartbeats[b.ShardID]++
		return nil
	}
	h.seen[b.ShardID] = true
	p.lastPos = b.Last()
	return nil
}

func (p *flushingProcessor) ShutdownRequested(context.Context) error {
	h := p.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flushed++
	h.endings = append(h.endings, "shutdown "+p.info.ShardID)
	if !p.lastPos.IsZero() {
		return p.info.Checkpointer.MarkDurable(p.lastPos)
	}
	return nil
}

func (p *flushingProcessor) ShardEnded(context.Context) error {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	p.h.endings = append(p.h.endings, "ended "+p.info.ShardID)
	return nil
}

func (p *flushingProcessor) LeaseLost() {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	p.h.endings = append(p.h.endings, "lost "+p.info.ShardID)
}

func TestIdleHeartbeatAndFlushBeforeHandOver(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	table := env.Name("hooks")
	keys := produce(t, env.Kinesis, stream, 20, "hb")

	cfg := testConfig(table, "w1", stream)
	cfg.IdleHeartbeat = 300 * time.Millisecond
	h := &flushingHandler{seen: map[string]bool{}, heartbeats: map[string]int{}}
	stop := run(t, newConsumer(t, cfg, env.Kinesis, env.DynamoDB), h.factory)
	waitFor(t, 30*time.Second, "the records and then heartbeats on the idle shard", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.seen) == 1 && h.heartbeats[keys[0].shard] >= 3
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if h.flushed != 1 {
		t.Fatalf("ShutdownRequested called %d times on a graceful stop of one shard, want 1", h.flushed)
	}
	if len(h.endings) != 1 || h.endings[0] != "shutdown "+keys[0].shard {
		t.Fatalf("processor endings = %v, want one ShutdownRequested for %s", h.endings, keys[0].shard)
	}

	// The next worker resumes after everything ShutdownRequested made durable.
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
