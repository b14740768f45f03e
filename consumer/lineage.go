package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/shardpos"
)

// Attributes streamscore adds to a finished lease: where the records its
// processor still needed at SHARD_END begin. Java KCL ignores attributes it
// does not know, so the table stays one it can read.
const (
	attrTailSequence    = "streamscoreTailSequence"
	attrTailSubSequence = "streamscoreTailSubSequence"
)

// Lineage is where a shard comes from, for a processor that must see, before
// the shard's own records, the records its parents' open windows held when
// they ended (SetTail): a window that spans a split or a merge then holds
// every event in one row, on the child.
type Lineage struct {
	// Start is the checkpoint the shard started from: a sentinel
	// (TRIM_HORIZON, ...) when it has never been checkpointed.
	Start shardpos.Position
	// StartingHashKey and EndingHashKey bound the shard's hash key range
	// (decimal, inclusive), as its lease has them.
	StartingHashKey, EndingHashKey string
	// Tails are the parents' tails still to replay: only when the shard
	// has never been checkpointed, and only parents whose leases recorded
	// one.
	Tails []Tail
}

// Tail is the part of a finished parent shard that a child replays: its
// records from From (inclusive) to the shard's end.
type Tail struct {
	ShardID string
	From    shardpos.Position
}

// SetTail records, with the SHARD_END checkpoint the consumer writes next,
// that the processor's open windows still need the shard's records from pos
// on. Call it while handling the batch that has ShardEnd set; the processor
// may then drop its open windows instead of emitting them incomplete.
func (cp *Checkpointer) SetTail(pos shardpos.Position) {
	r := cp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lease.tail = pos
}

// Lineage returns where the shard comes from. It reads the parents' leases
// when the shard has never been checkpointed; a parent whose lease is gone
// has no tail to replay.
func (cp *Checkpointer) Lineage(ctx context.Context) (Lineage, error) {
	r := cp.r
	r.mu.Lock()
	l := Lineage{Start: r.lease.checkpoint, StartingHashKey: r.lease.startHash, EndingHashKey: r.lease.endHash}
	parents := append([]string(nil), r.lease.parents...)
	r.mu.Unlock()
	if isSequenceNumber(l.Start.Sequence) || l.Start.Sequence == ShardEnd {
		return l, nil
	}
	for _, p := range parents {
		pl, ok, err := r.c.table.get(ctx, r.s.leaseKey(p))
		if err != nil {
			return l, fmt.Errorf("consumer: reading the lease of %s, a parent of %s: %w", p, r.shardID, err)
		}
		if ok && pl.finished() && isSequenceNumber(pl.tail.Sequence) {
			l.Tails = append(l.Tails, Tail{ShardID: p, From: pl.tail})
		}
	}
	return l, nil
}

// tailAttrs adds a finished lease's tail to the attributes written.
func (l *lease) tailAttrs(set map[string]types.AttributeValue) {
	if !isSequenceNumber(l.tail.Sequence) {
		return
	}
	set[attrTailSequence] = &types.AttributeValueMemberS{Value: l.tail.Sequence}
	set[attrTailSubSequence] = numAttr(int64(l.tail.SubSequence))
}

// readTail decodes a lease's tail attributes.
func (l *lease) readTail(item map[string]types.AttributeValue) error {
	seq, err := getS(item, attrTailSequence, false)
	if err != nil || seq == "" {
		return err
	}
	sub, err := getN(item, attrTailSubSequence)
	if err != nil {
		return err
	}
	if sub < 0 {
		return fmt.Errorf("attribute %s: negative value %d", attrTailSubSequence, sub)
	}
	l.tail = shardpos.Position{Sequence: seq, SubSequence: uint64(sub)}
	return nil
}

// childrenStarted reports whether every child of a finished shard has
// checkpointed past its own beginning: until then a child that fails over
// replays the parent's tail again, so the parent's lease must stay.
func childrenStarted(s *stream, ids []string, byKey map[string]*lease) bool {
	for _, id := range ids {
		cl := byKey[s.leaseKey(id)]
		if cl == nil || !(isSequenceNumber(cl.checkpoint.Sequence) || cl.finished()) {
			return false
		}
	}
	return true
}

// Expired reports whether this worker has not renewed the shard's lease for
// the failover time: another worker may own it by now, even though this one
// has not yet learned so (a process paused by SIGSTOP, a long GC, a host
// that froze). A processor checks it before it writes results, so a worker
// that wakes up late never writes over the new owner's with stale state.
func (cp *Checkpointer) Expired() bool {
	r := cp.r
	if r.lostFlag.Load() {
		return true
	}
	return time.Since(time.Unix(0, r.renewed.Load())) >= r.c.cfg.FailoverTime
}
