package pipeline

import (
	"sort"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/shardpos"
)

// maxSpans bounds a shard's position index. Beyond it the older half is
// coarsened by merging neighbours, so the index stays a few hundred KiB
// whatever the checkpoint lag (a day-long window at 100 records/s would
// otherwise hold 9 million positions, about 0.8 GB).
const maxSpans = 1024

// positionIndex maps a shard's process-local offsets back to Kinesis
// positions. It keeps one span per batch read (or per run of merged
// batches): the offsets it covers and the positions of its first and last
// record, not one position per record.
//
// Every use tolerates a position at or before the exact one: a checkpoint
// taken at the last record of an earlier span replays a little more (the
// windows rebuild it, the readers' rule drops the duplicates); a result
// Range that starts earlier still covers its records. Exact positions are
// kept where the pipeline asks for them most: the first and last record of
// each batch (result ranges start and end there) and, through the batch
// being handled, every record of it (late events).
type positionIndex struct {
	spans []posSpan // ascending, contiguous in offsets
	head  int       // spans[:head] are trimmed
}

type posSpan struct {
	first, last       uint64 // offsets, inclusive
	firstPos, lastPos shardpos.Position
	// foreign spans hold a parent shard's records replayed by a child:
	// never a checkpoint of this shard.
	foreign bool
}

// add records a batch of records starting at offset first; foreign for
// records of another shard (a parent's tail).
func (x *positionIndex) add(first uint64, recs []consumer.Record, foreign bool) {
	if len(recs) == 0 {
		return
	}
	x.spans = append(x.spans, posSpan{
		first: first, last: first + uint64(len(recs)) - 1,
		firstPos: recs[0].Position(), lastPos: recs[len(recs)-1].Position(), foreign: foreign,
	})
	if len(x.spans)-x.head > maxSpans {
		x.coarsen()
	}
}

// coarsen halves the resolution of the older half of the live spans. The
// newest spans stay exact: result ranges and new checkpoints use them.
// Spans of a parent's tail merge only with each other.
func (x *positionIndex) coarsen() {
	live := x.spans[x.head:]
	old := len(live) / 2
	out := live[:0]
	for i := 0; i < old; i++ {
		s := live[i]
		if i+1 < old && s.foreign == live[i+1].foreign {
			s.last, s.lastPos = live[i+1].last, live[i+1].lastPos
			i++
		}
		out = append(out, s)
	}
	out = append(out, live[old:]...)
	n := copy(x.spans, out)
	clear(x.spans[n:])
	x.spans, x.head = x.spans[:n], 0
}

// find returns the index of the live span holding off, or -1.
func (x *positionIndex) find(off uint64) int {
	live := x.spans[x.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].last >= off })
	if i == len(live) || live[i].first > off {
		return -1
	}
	return x.head + i
}

// at returns the position of off when it is known exactly (the first or
// last record of a span), else the position of the first record of the
// span holding it: a re-read from there finds the record. The zero
// Position when off is not held.
func (x *positionIndex) at(off uint64) shardpos.Position {
	i := x.find(off)
	if i < 0 {
		return shardpos.Position{}
	}
	if s := &x.spans[i]; off == s.last {
		return s.lastPos
	}
	return x.spans[i].firstPos
}

// durableBelow returns the newest position p such that every record up to
// and including p lies below offset low, and the offset just after p: the
// checkpoint that "everything below low is done" allows.
func (x *positionIndex) durableBelow(low uint64) (shardpos.Position, uint64, bool) {
	if low == 0 {
		return shardpos.Position{}, 0, false
	}
	live := x.spans[x.head:]
	// The last span ending at or before low-1.
	i := sort.Search(len(live), func(i int) bool { return live[i].last >= low })
	if i == 0 {
		return shardpos.Position{}, 0, false
	}
	s := &live[i-1]
	if s.foreign {
		return shardpos.Position{}, 0, false
	}
	return s.lastPos, s.last + 1, true
}

// trim forgets the spans that end before off.
func (x *positionIndex) trim(off uint64) {
	for x.head < len(x.spans) && x.spans[x.head].last < off {
		x.spans[x.head] = posSpan{}
		x.head++
	}
	if x.head > 0 && x.head >= len(x.spans)/2 {
		n := copy(x.spans, x.spans[x.head:])
		clear(x.spans[n:])
		x.spans, x.head = x.spans[:n], 0
	}
}

// len returns the number of live spans.
func (x *positionIndex) len() int { return len(x.spans) - x.head }
