package pipeline

import (
	"context"
	"fmt"

	"github.com/streamscore/streamscore/consumer"
)

// Windows across a reshard. A closed shard's open windows would otherwise
// be emitted twice, each row with part of the window: the parent's from the
// events before the split or merge, the child's from those after, and no
// row with them all. Instead, at SHARD_END the parent records in its lease
// where the records of its open windows begin (the tail) and drops those
// windows; a child that starts from its beginning replays its parents'
// tails first, keeping the records that hash into its range, so its windows
// hold every event and its row is the only one. The child's checkpoint
// stays at its start until the replayed records are no longer needed, so a
// child that fails over replays the tails again (the parents' leases are
// kept until then).

// tailBatch is how many replayed records go through the chain at once.
const tailBatch = 1000

// canHandOver reports whether the shard's open windows can be left to its
// children: their oldest record must be one of this shard's own. A shard
// that ends while still holding its own parents' tail (a split right
// after a split) emits its windows incomplete instead, as before tails.
func (st *shardState) canHandOver() bool {
	low, held := st.lw.end(), false
	for _, w := range st.wins {
		if o, ok := w.op.OldestNeeded(); ok && o < low {
			low, held = o, true
		}
	}
	return !held || st.lw.own(low)
}

// handOverTail records, for the SHARD_END checkpoint, that the open windows
// need the shard's records from offset low on, and returns the low-water
// mark without them: the children own those windows now.
func (st *shardState) handOverTail(low uint64) uint64 {
	end := st.lw.end()
	if low >= end {
		return end
	}
	pos := st.lw.at(low) // at or before the oldest record held
	st.cp.SetTail(pos)
	st.d.log.Info("shard ended with open windows; its children replay them", "stream", st.stream, "shard", st.shard,
		"tail_from", pos.Sequence, "records", end-low)
	return end
}

// replayTails feeds a new child shard its parents' tails before its own
// records, when it starts from its beginning.
func (st *shardState) replayTails(ctx context.Context) error {
	lin, err := st.cp.Lineage(ctx)
	if err != nil {
		return fmt.Errorf("pipeline: %s/%s: %w", st.stream, st.shard, err)
	}
	if len(lin.Tails) == 0 {
		return nil
	}
	st.replaying = true
	defer func() { st.replaying = false }()
	n := 0
	err = consumer.ReplayTails(ctx, st.d.tails, st.stream, lin, tailBatch, func(recs []consumer.Record) error {
		n += len(recs)
		return st.handle(ctx, &consumer.Batch{Stream: st.stream, ShardID: st.shard, Records: recs, Checkpointer: st.cp})
	})
	if err != nil {
		return err
	}
	st.d.obs.Replayed(st.stream, n)
	st.d.log.Info("replayed the parents' tails", "stream", st.stream, "shard", st.shard, "parents", len(lin.Tails), "records", n)
	return nil
}
