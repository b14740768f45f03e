package pipeline

import (
	"sync"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
)

// durableMarker is the part of the consumer's Checkpointer the low-water
// mark writes to.
type durableMarker interface {
	MarkDurable(shardpos.Position) error
}

var _ durableMarker = (*consumer.Checkpointer)(nil)

// lowWater is a shard's checkpoint rule: it turns sink acks and the
// windows' needs into the position up to which everything is done.
//
// Every record the shard delivers gets the next uint64 offset. The windows
// report the oldest offset an open window needs (setOpsLow); each batch in
// flight to a sink holds the oldest offset its rows were computed from
// (send). The low-water mark is the smallest of those; every record below
// it is done, so the checkpoint is the position of the newest record below
// it that the position index knows exactly (the last record of a read
// batch). A sink's permanent failure stops the marks for good: the
// checkpoint stays behind the lost batch.
//
// The shard's goroutine adds records, sets the windows' low and sends;
// acks arrive from the sinks' goroutines. All of it is under mu.
type lowWater struct {
	mu       sync.Mutex
	cp       durableMarker
	pos      positionIndex // offsets back to Kinesis positions
	next     uint64        // offset of the next record
	opsLow   uint64        // oldest offset an open window holds (next if none)
	inflight map[uint64]uint64
	seq      uint64
	marked   uint64 // offsets below this are marked durable
	// spans[i] is the offset where output i's next result Range starts: a
	// Range covers every record read since that output's last batch.
	spans   []uint64
	failure error
}

func newLowWater(cp durableMarker, outputs int) *lowWater {
	return &lowWater{cp: cp, inflight: map[uint64]uint64{}, spans: make([]uint64, outputs)}
}

// add gives recs the next offsets and returns the first; foreign marks a
// parent's records replayed into this shard (their positions are not
// this shard's to checkpoint).
func (lw *lowWater) add(recs []consumer.Record, foreign bool) uint64 {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	first := lw.next
	lw.pos.add(first, recs, foreign)
	lw.next += uint64(len(recs))
	return first
}

// end is the offset of the next record: everything read is below it.
func (lw *lowWater) end() uint64 {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.next
}

// setOpsLow records the oldest offset the open windows still need.
func (lw *lowWater) setOpsLow(low uint64) {
	lw.mu.Lock()
	lw.opsLow = low
	lw.mu.Unlock()
}

// send registers a batch of output out's results computed from records at
// or after low, and returns its id for ack and the span of positions it
// covers.
func (lw *lowWater) send(out int, low uint64) (id uint64, rng sinks.Range) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	rng = sinks.Range{First: lw.pos.at(lw.spans[out]), Last: lw.pos.at(lw.next - 1)}
	lw.spans[out] = lw.next
	lw.seq++
	lw.inflight[lw.seq] = low
	return lw.seq, rng
}

// ack settles batch id: durable with a nil err, else the shard has failed
// for good. It reports whether the checkpoint moved and, for a failure,
// whether it was the first.
func (lw *lowWater) ack(id uint64, err error) (moved, firstFailure bool) {
	lw.mu.Lock()
	delete(lw.inflight, id)
	if err != nil {
		firstFailure = lw.failure == nil
		if firstFailure {
			lw.failure = err
		}
		lw.mu.Unlock()
		return false, firstFailure
	}
	lw.mu.Unlock()
	return lw.advance(), false
}

// failed returns the error that stopped the marks, or nil.
func (lw *lowWater) failed() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.failure
}

// advance marks durable everything below the low-water mark; it reports
// whether the mark moved.
func (lw *lowWater) advance() bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.failure != nil {
		return false
	}
	low := lw.opsLow
	for _, l := range lw.inflight {
		low = min(low, l)
	}
	if low <= lw.marked || low == 0 || low > lw.next {
		return false
	}
	pos, upTo, ok := lw.pos.durableBelow(low)
	if !ok || upTo <= lw.marked {
		return false
	}
	if err := lw.cp.MarkDurable(pos); err != nil {
		lw.failure = err
		return false
	}
	lw.marked = upTo
	// Keep the span of the mark (the next mark is at or after it) and
	// every position an output's next Range may still start from.
	keep := upTo - 1
	for _, s := range lw.spans {
		keep = min(keep, s)
	}
	lw.pos.trim(keep)
	return true
}

// at returns the position of offset off as the index has it (exact at a
// read batch's ends, else at or before the record).
func (lw *lowWater) at(off uint64) shardpos.Position {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.pos.at(off)
}

// own reports whether offset off is one of the shard's own records (not a
// parent's replayed tail).
func (lw *lowWater) own(off uint64) bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	i := lw.pos.find(off)
	return i >= 0 && !lw.pos.spans[i].foreign
}
