package windowing

import (
	"hash/maphash"
	"math"
	"unsafe"
)

// Memory accounting and the state budget.
//
// Every byte the operator keeps for window state is counted as it is
// taken, so that the budget check on the hot path is a comparison, not a
// walk: the live panes (slab words, metadata, sketch headers) at a fixed
// cost each, the live keys (state, name bytes, map entry), and the
// sketches' buffers as they grow (quantile sketches exactly, by capacity;
// HyperLogLogs by an upper-bound model of the library's sparse and dense
// forms, hllBytes). BenchmarkFactoryStateBytes compares StateBytes with the
// Go heap the operator really holds.

// DefaultMaxStateBytes bounds the live state of one window on one shard
// when WindowSpec.MaxStateBytes is zero: 128 MiB. A task runs one operator
// per window per shard, and the Go heap peaks near twice the live data
// (GOGC=100), so a 2 GiB task holds 8 window-shards at the default with
// room for batches, sinks and the runtime (2 × 8 × 128 MiB = 2 GiB is the
// worst case only if every one is full at once).
const DefaultMaxStateBytes = 128 << 20

// ColPartial is the feature-batch column (utf8, present when
// WindowSpec.PartialColumn is set) that flags rows holding only part of
// their window's events. It is "" for ordinary rows; see PartialEvicted and
// PartialLate for the others and the readers' rule.
const ColPartial = "partial"

// Values of ColPartial.
//
// Readers' rule: rows of one result (entity, window) with partial "" are
// resolved as before (the newest update = true row, else the update =
// false row). A row with partial "evicted" is never superseded and never
// supersedes: it is the only row holding its events. Rows with partial
// "late" supersede each other by the same rule as ordinary rows, grouped by
// offset_first (one group per state of the key), and never supersede an
// ordinary row. The window's events are the union of the ordinary final
// row, every "evicted" row and the final row of each "late" group; no event
// is in two of them. offset_first being process-local, whoever writes the
// rows for readers replaces it with an identity of the part to group and
// deduplicate partial rows by (the pipeline's partial_id).
const (
	// PartialEvicted: the key was evicted (MaxKeys or MaxStateBytes)
	// while this window was open; the row holds the window's events up to
	// the eviction and was emitted before the window's end. Events after
	// the eviction go to a new state of the key and a separate row.
	PartialEvicted = "evicted"
	// PartialLate: the window had closed before the key's current state
	// began (the key was evicted, then seen again after the window closed):
	// the row holds only the late events that arrived since, not the events
	// of any earlier row for the window.
	PartialLate = "late"
)

const (
	partialNone uint8 = iota
	partialEvicted
	partialLate
)

var partialNames = [...]string{partialNone: "", partialEvicted: PartialEvicted, partialLate: PartialLate}

// mapEntryBytes is what one key costs in the key map beyond its string
// bytes: a Go swiss-table slot (16-byte string header, 4-byte id, control
// byte, padding) at a 7/8 load factor.
const mapEntryBytes = 32

// keyCost is the memory one live key takes.
func keyCost(name string) int64 {
	return int64(unsafe.Sizeof(keyState{})) + mapEntryBytes + int64((len(name)+7)&^7)
}

// hllBytes bounds the heap of a HyperLogLog (precision 14) after n inserts
// (n >= distinct values): its sparse form grows about 10 bytes per value
// up to 200 values and 2.6 bytes per value after, until it turns into the
// dense 16 KiB registers. Measured on github.com/axiomhq/hyperloglog
// v0.3.0 with distinct values; duplicates make it an over-estimate.
func hllBytes(n uint32) int64 {
	const dense = 16<<10 + 128
	if n == 0 {
		return 0
	}
	var b int64
	if n <= 200 {
		b = 300 + 10*int64(n)
	} else {
		b = 2300 + 26*int64(n-200)/10
	}
	return min(b, dense)
}

// liveBytes is the state held by live keys and panes: what MaxStateBytes
// bounds.
func (o *Operator) liveBytes() int64 {
	return int64(len(o.panes)-len(o.freePanes))*o.paneCost + o.keyBytes + o.sketchBytes
}

// StateBytes is the memory the operator holds for window state: live
// state (liveBytes) plus the spare capacity of its pools (recycled panes
// and keys, the slices' growth room, the LRU queue, the accumulators).
func (o *Operator) StateBytes() int64 {
	b := int64(cap(o.slab))*8 + int64(cap(o.panes))*int64(unsafe.Sizeof(paneMeta{})) +
		int64(cap(o.sess))*int64(unsafe.Sizeof(sessMeta{})) +
		int64(cap(o.qs))*int64(unsafe.Sizeof(qsketch{})) + int64(cap(o.hlls))*8 + int64(cap(o.hllN))*4 +
		int64(cap(o.keys))*int64(unsafe.Sizeof(keyState{})) + int64(cap(o.freeKeys))*4 + int64(cap(o.freePanes))*4 +
		int64(cap(o.lruq))*int64(unsafe.Sizeof(lruEntry{})) + int64(cap(o.sheap))*int64(unsafe.Sizeof(sessEntry{})) +
		int64(cap(o.pending))*4 + int64(cap(o.qscratch))*int64(unsafe.Sizeof(weighted{})) + int64(cap(o.fscratch))*8
	b += int64(cap(o.slots)) * int64(unsafe.Sizeof(paneSlot{}))
	for i := range o.slots {
		b += int64(cap(o.slots[i].handles)) * 4
	}
	for i := range o.accQ {
		b += o.accQ[i].bytes()
	}
	// key table: the live keys' names and map entries (their keyState is
	// in cap(o.keys) above)
	b += o.keyBytes - int64(len(o.keyIdx))*int64(unsafe.Sizeof(keyState{}))
	return b + o.sketchBytes + o.poolSketchBytes
}

// enforceBudget evicts least recently updated keys until the live state is
// within MaxStateBytes again. The key of the event just counted (cur) is
// never evicted for it: one key larger than the budget is kept, alone.
func (o *Operator) enforceBudget(cur int32) {
	o.expireEvictions()
	for o.liveBytes() > o.maxBytes && len(o.keyIdx) > 1 {
		v := o.lruVictim()
		if v == cur {
			// The current key is the least recent one left: requeue it and
			// take the next.
			k := &o.keys[cur]
			o.lruq = append(o.lruq, lruEntry{id: cur, gen: k.gen, epoch: k.epoch})
			v = o.lruVictim()
			if v == cur {
				return
			}
		}
		o.evict(v, true)
	}
}

// releaseSketches empties the sketches of pane h as it is freed: the
// HyperLogLogs go to the garbage collector, the quantile sketches keep
// small buffers for the next pane (counted as pool, not live, bytes).
func (o *Operator) releaseSketches(h int32) {
	nh := len(o.lay.hlls)
	for i := range nh {
		hi := int(h)*nh + i
		o.sketchBytes -= hllBytes(o.hllN[hi])
		o.hlls[hi], o.hllN[hi] = nil, 0
	}
	nq := len(o.lay.quants)
	for i := range nq {
		q := &o.qs[int(h)*nq+i]
		o.sketchBytes += q.reset()
		b := q.bytes()
		o.sketchBytes -= b
		o.poolSketchBytes += b
	}
}

// evictedKeys remembers, by a 64-bit hash of the name, the keys evicted
// with state for as long as a late event could still reach one of their
// windows (out-of-orderness + size or gap + allowed lateness of
// watermark), so that a new state of such a key flags the rows of windows
// closed before it partial "late". Only evictions are remembered: a key
// rebuilt by a replay after a failover holds every event of its windows,
// and its rows must supersede as ordinary rows do.
type evictedKeys struct {
	seed  maphash.Seed
	at    map[uint64]int64 // hash -> watermark at eviction
	queue []evictedKey     // in eviction order, for expiry
	head  int
}

type evictedKey struct {
	h  uint64
	wm int64
}

// evictedKeyBytes is what one remembered eviction costs: a queue entry and
// a map slot.
const evictedKeyBytes = int64(unsafe.Sizeof(evictedKey{})) + 24

func (o *Operator) rememberEviction(name string) {
	e := &o.evicted
	if e.at == nil {
		e.seed, e.at = maphash.MakeSeed(), make(map[uint64]int64)
	}
	h := maphash.String(e.seed, name)
	e.at[h] = o.wm
	e.queue = append(e.queue, evictedKey{h, o.wm})
	o.keyBytes += evictedKeyBytes
}

// expireEvictions forgets the evictions no late event can reach any more.
func (o *Operator) expireEvictions() {
	e := &o.evicted
	horizon := o.ooo + max(o.size, o.gap) + o.lateness
	for e.head < len(e.queue) && e.queue[e.head].wm <= o.wm-horizon {
		q := e.queue[e.head]
		if e.at[q.h] == q.wm {
			delete(e.at, q.h)
		}
		e.head++
		o.keyBytes -= evictedKeyBytes
	}
	if e.head > 1024 && e.head*2 > len(e.queue) {
		e.queue = e.queue[:copy(e.queue, e.queue[e.head:])]
		e.head = 0
	}
}

// bornAfterEviction is the born watermark of a new state for key name.
func (o *Operator) bornAfterEviction(name string) int64 {
	e := &o.evicted
	if len(e.at) == 0 {
		return math.MinInt64
	}
	o.expireEvictions()
	if _, ok := e.at[maphash.String(e.seed, name)]; ok {
		return o.wm
	}
	return math.MinInt64
}
