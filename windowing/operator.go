package windowing

import (
	"fmt"
	"log/slog"
	"math"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/axiomhq/hyperloglog"
)

// DefaultMaxKeys bounds the entities of a window whose MaxKeys is zero.
const DefaultMaxKeys = 100_000

// Options are the optional parts of an Operator.
type Options struct {
	// Mem allocates the feature batches; nil means the Go allocator.
	Mem memory.Allocator
	// Logger receives the warnings (key eviction); nil means slog.Default().
	Logger *slog.Logger
}

// LateEvent is an event that arrived after every window it belongs to was
// closed for good (past allowed lateness), or whose time lies outside the
// decoder's bounds (±2^62 ns, which only a batch not built by Decoder can
// hold). It is not counted in any window; the caller dead-letters or
// ignores it, as its config says.
type LateEvent struct {
	// Row is the event's row in the batch given to Process.
	Row int
	// Offset is the event's source position.
	Offset uint64
	// EventTime is the event's time.
	EventTime time.Time
	// Watermark is the watermark the event was judged against.
	Watermark time.Time
}

// Output is what one call of Process, Advance or Drain produced.
type Output struct {
	// Features holds one row per window emitted, or is nil when none was.
	// The caller releases it.
	Features arrow.RecordBatch
	// Late lists the events handed back as too late. It is valid until the
	// next call on the Operator.
	Late []LateEvent
}

// Stats are the operator's counters, for the pipeline to export as metrics.
type Stats struct {
	Events       uint64 // events counted into windows
	LateAccepted uint64 // late events within allowed lateness (their windows re-emitted)
	LateDropped  uint64 // events beyond allowed lateness, handed back in Output.Late
	Emitted      uint64 // feature rows emitted
	Updates      uint64 // of which flagged update
	IdleAdvances uint64 // watermark advances made on processing time (idle shard)
	EvictedKeys  uint64 // keys with state evicted because MaxKeys or MaxStateBytes was reached
	// EvictedForBytes counts the evictions (of EvictedKeys) made because
	// the live state reached MaxStateBytes.
	EvictedForBytes uint64
	EarlyWindows    uint64 // windows emitted before their end (partial "evicted") because their key was evicted
	// EvictedEvents counts the events an evicted key held in windows still
	// open: each is in a row flagged partial "evicted", none is dropped.
	EvictedEvents uint64
	// PartialLate counts rows flagged partial "late": rows of a window that
	// had closed before its key's current state began (see PartialLate).
	PartialLate uint64
	DroppedIdle uint64 // keys without state forgotten because MaxKeys was reached
	OpenKeys    int    // keys held
	Panes       int    // panes (sessions) held
	// StateBytes is the memory the operator holds for window state: the
	// slab, pane and key metadata, the key table and strings, the sketches
	// (quantile buffers, HyperLogLogs), the LRU queue and the pools of
	// recycled panes. It is what MaxStateBytes bounds, plus the pools'
	// spare capacity (see LiveStateBytes).
	StateBytes int64
	// LiveStateBytes is the part of StateBytes held by live keys and panes:
	// what MaxStateBytes is compared with.
	LiveStateBytes int64
	Watermark      time.Time
}

type keyState struct {
	name           string
	newest, oldest int32 // pane list, ascending in time via paneMeta.newer
	npanes         int32
	epoch          uint32 // last epoch the key was updated in (LRU)
	gen            uint32 // bumped when the id is reused
	live           bool
	lastFired      int64 // last window end index fired (dedup while firing)
	lastGoneT      int64 // last event time of panes already discarded
	// born is the watermark when this state of the key began, if the key
	// had been evicted shortly before (MinInt64 otherwise): rows of windows
	// ending at or before it are flagged partial "late".
	born int64
}

type paneMeta struct {
	idx          int64 // pane index (tumbling/hopping)
	key          int32
	newer, older int32
	pos          int32 // position in its slot list (tumbling/hopping)
	minOff       uint64
	maxOff       uint64
	gen          uint32 // bumped when freed (session heap entries)
	live, dirty  bool
}

// sessMeta is the part of a pane's metadata only sessions need.
type sessMeta struct {
	firedEnd int64 // end at which it was last emitted
	heapAt   int64 // time of its live heap entry
}

type paneSlot struct {
	idx     int64
	handles []int32
	minOff  uint64
}

const none = -1

// Operator computes the windowed features of one window spec over the
// events of one shard. It is not safe for concurrent use: every shard has
// its own Operator, as it has its own goroutine.
//
// Processing time is never read from the system clock: it is passed in, so
// that behaviour (idle timeout) is reproducible in tests.
type Operator struct {
	spec   WindowSpec
	schema Schema
	lay    *layout
	log    *slog.Logger

	session                        bool
	size, slide, gap, k            int64
	ooo, lateness, idle            int64
	wm, maxT                       int64
	maxOff                         uint64
	seen                           bool
	lastRecordAt                   int64
	idleAdvanced                   bool
	maxKeys                        int
	keyIdx                         map[string]int32
	keys                           []keyState
	freeKeys                       []int32
	epoch                          uint32
	epochLeft, epochLen            int
	lruq                           []lruEntry
	lruqHead                       int
	slab                           []float64
	panes                          []paneMeta
	sess                           []sessMeta
	freePanes                      []int32
	hlls                           []*hyperloglog.Sketch
	hllN                           []uint32 // values inserted per HyperLogLog (its size estimate)
	qs                             []qsketch
	slots                          []paneSlot
	lo, hi                         int64
	haveRange                      bool
	sheap                          sessHeap
	pending                        []int32
	upd                            []updKey
	acc                            []float64
	accH                           []*hyperloglog.Sketch
	accQ                           []qsketch
	qscratch                       []weighted
	fscratch                       []float64
	maxBytes                       int64 // MaxStateBytes
	evicted                        evictedKeys
	paneCost                       int64 // bytes of one live pane outside its sketches' buffers
	keyBytes                       int64 // bytes of the live keys (state, string, map entry)
	sketchBytes                    int64 // buffers of the live panes' sketches
	poolSketchBytes                int64 // buffers kept by recycled panes' sketches
	emitFlag                       uint8 // partial flag of the rows emitted now
	outPartial                     *array.StringBuilder
	budgetThisCall                 int
	outSchema                      *arrow.Schema
	out                            *array.RecordBuilder
	outEntity                      *array.StringBuilder
	outStart, outEnd               *array.TimestampBuilder
	outFeat                        []*array.Float64Builder
	outUpdate                      *array.BooleanBuilder
	outOffFirst, outOffLast        *array.Uint64Builder
	late                           []LateEvent
	cols                           []colReader
	evictedThisCall, earlyThisCall int
	stats                          Stats
}

type updKey struct {
	key int32
	end int64
}

// NewOperator returns an operator for window w over events of schema s.
// It validates both and returns their errors (see SpecError).
func NewOperator(w WindowSpec, s Schema, opt Options) (*Operator, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := w.Validate(&s); err != nil {
		return nil, err
	}
	o := &Operator{spec: w, schema: s, lay: compileLayout(&w, &s), log: opt.Logger}
	if o.log == nil {
		o.log = slog.Default()
	}
	o.session = w.Kind == Session
	o.size, o.slide, o.gap = int64(w.Size), int64(w.Slide), int64(w.Gap)
	if w.Kind == Tumbling {
		o.slide = o.size
	}
	o.ooo, o.lateness, o.idle = int64(w.OutOfOrderness), int64(w.AllowedLateness), int64(w.IdleTimeout)
	o.wm, o.maxT = math.MinInt64, math.MinInt64
	o.maxKeys = w.MaxKeys
	if o.maxKeys == 0 {
		o.maxKeys = DefaultMaxKeys
	}
	o.keyIdx = make(map[string]int32)
	// LRU at the granularity of an epoch of events: updating a key stamps
	// it with the epoch (a write to a cache line already loaded), and queues
	// it once per epoch; no list surgery per event.
	o.epochLen = max(1, o.maxKeys/8)
	o.epochLeft = o.epochLen
	if !o.session {
		o.k = o.size / o.slide
		// Panes live from their first event until the last window holding
		// them is past allowed lateness; so at most this many pane indices
		// are live at once (see the package doc).
		r := o.k + (o.ooo+o.lateness)/o.slide + 3
		o.slots = make([]paneSlot, r)
		for i := range o.slots {
			o.slots[i].idx = math.MinInt64
		}
	}
	o.acc = make([]float64, o.lay.words)
	o.accH = make([]*hyperloglog.Sketch, len(o.lay.hlls))
	o.accQ = make([]qsketch, len(o.lay.quants))
	o.maxBytes = w.MaxStateBytes
	if o.maxBytes == 0 {
		o.maxBytes = DefaultMaxStateBytes
	}
	o.paneCost = int64(o.PaneBytes()) + int64(len(o.lay.quants))*int64(unsafe.Sizeof(qsketch{})) +
		int64(len(o.lay.hlls))*(8+4)
	mem := opt.Mem
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	o.outSchema = w.OutputSchema(&s)
	o.out = array.NewRecordBuilder(mem, o.outSchema)
	o.outEntity = o.out.Field(0).(*array.StringBuilder)
	o.outStart = o.out.Field(1).(*array.TimestampBuilder)
	o.outEnd = o.out.Field(2).(*array.TimestampBuilder)
	for i := range w.Features {
		o.outFeat = append(o.outFeat, o.out.Field(3+i).(*array.Float64Builder))
	}
	n := 3 + len(w.Features)
	o.outUpdate = o.out.Field(n).(*array.BooleanBuilder)
	if w.PartialColumn {
		n++
		o.outPartial = o.out.Field(n).(*array.StringBuilder)
	}
	o.outOffFirst = o.out.Field(n + 1).(*array.Uint64Builder)
	o.outOffLast = o.out.Field(n + 2).(*array.Uint64Builder)
	o.cols = make([]colReader, len(o.lay.fields))
	return o, nil
}

// OutputSchema is the schema of the feature batches of window w: the entity
// (named as the schema's entity field), window_start and window_end
// (timestamp[ns, UTC]; the window is [start, end)), one float64 column per
// feature named as the feature, update (bool), partial (utf8, only when
// w.PartialColumn is set; see PartialEvicted and PartialLate), and
// offset_first and offset_last, the range of source positions of the events
// counted.
func (w *WindowSpec) OutputSchema(s *Schema) *arrow.Schema {
	fs := []arrow.Field{
		{Name: s.Entity, Type: arrow.BinaryTypes.String},
		{Name: ColWindowStart, Type: timestampType},
		{Name: ColWindowEnd, Type: timestampType},
	}
	for _, f := range w.Features {
		fs = append(fs, arrow.Field{Name: f.Name, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	fs = append(fs, arrow.Field{Name: ColUpdate, Type: arrow.FixedWidthTypes.Boolean})
	if w.PartialColumn {
		fs = append(fs, arrow.Field{Name: ColPartial, Type: arrow.BinaryTypes.String})
	}
	fs = append(fs,
		arrow.Field{Name: ColOffsetFirst, Type: arrow.PrimitiveTypes.Uint64},
		arrow.Field{Name: ColOffsetLast, Type: arrow.PrimitiveTypes.Uint64})
	return arrow.NewSchema(fs, nil)
}

// Schema returns the schema of the feature batches.
func (o *Operator) Schema() *arrow.Schema { return o.outSchema }

// Release frees the output builders.
func (o *Operator) Release() { o.out.Release() }

// Watermark is the current watermark; windows ending at or before it have
// been emitted.
func (o *Operator) Watermark() time.Time { return nsTime(o.wm) }

func nsTime(ns int64) time.Time {
	if ns == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// OldestNeeded returns the oldest source position still needed: the
// earliest offset of any event held by a pane (including panes kept only
// for allowed lateness) and of the event that set the largest event time
// (so that a replay rebuilds the same watermark). Replaying from it after a
// failover rebuilds the windows still open. ok is false when nothing is
// held: every event processed so far may be checkpointed.
func (o *Operator) OldestNeeded() (offset uint64, ok bool) {
	offset = math.MaxUint64
	if o.session {
		for i := range o.panes {
			if o.panes[i].live && o.panes[i].minOff < offset {
				offset, ok = o.panes[i].minOff, true
			}
		}
	} else {
		for i := range o.slots {
			s := &o.slots[i]
			if len(s.handles) > 0 && s.minOff < offset {
				offset, ok = s.minOff, true
			}
		}
	}
	if ok && o.maxOff < offset {
		offset = o.maxOff
	}
	return offset, ok
}

// Stats returns the counters.
func (o *Operator) Stats() Stats {
	s := o.stats
	s.OpenKeys = len(o.keyIdx)
	s.Panes = len(o.panes) - len(o.freePanes)
	s.StateBytes = o.StateBytes()
	s.LiveStateBytes = o.liveBytes()
	s.Watermark = nsTime(o.wm)
	return s
}

// PaneBytes is the size of one pane: its slab words and its metadata.
func (o *Operator) PaneBytes() int {
	b := o.lay.words*8 + int(unsafe.Sizeof(paneMeta{}))
	if o.session {
		b += int(unsafe.Sizeof(sessMeta{}))
	}
	return b
}

func (o *Operator) resolve(rec arrow.RecordBatch) (ent *array.String, ts []arrow.Timestamp, offs []uint64, err error) {
	sc := rec.Schema()
	col := func(name string) (arrow.Array, error) {
		idx := sc.FieldIndices(name)
		if len(idx) != 1 {
			return nil, fmt.Errorf("windowing: batch has %d columns named %q, want 1", len(idx), name)
		}
		return rec.Column(idx[0]), nil
	}
	a, err := col(o.schema.Entity)
	if err != nil {
		return nil, nil, nil, err
	}
	var ok bool
	if ent, ok = a.(*array.String); !ok {
		return nil, nil, nil, fmt.Errorf("windowing: entity column %q is %s, want utf8", o.schema.Entity, a.DataType())
	}
	if a.NullN() > 0 {
		return nil, nil, nil, fmt.Errorf("windowing: entity column %q has nulls", o.schema.Entity)
	}
	a, err = col(o.schema.Time)
	if err != nil {
		return nil, nil, nil, err
	}
	tsa, ok := a.(*array.Timestamp)
	if !ok || tsa.DataType().(*arrow.TimestampType).Unit != arrow.Nanosecond || a.NullN() > 0 {
		return nil, nil, nil, fmt.Errorf("windowing: time column %q must be timestamp[ns] without nulls, is %s", o.schema.Time, a.DataType())
	}
	ts = tsa.TimestampValues()
	a, err = col(ColOffset)
	if err != nil {
		return nil, nil, nil, err
	}
	oa, ok := a.(*array.Uint64)
	if !ok || a.NullN() > 0 {
		return nil, nil, nil, fmt.Errorf("windowing: offset column %q must be uint64 without nulls", ColOffset)
	}
	offs = oa.Uint64Values()
	for i := range o.lay.fields {
		f := &o.lay.fields[i]
		a, err := col(f.name)
		if err != nil {
			return nil, nil, nil, err
		}
		c, err := newColReader(a, o.cols[i].own)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("windowing: column %q %w", f.name, err)
		}
		if f.typ != TypeString && c.kind == 's' || f.typ == TypeString && c.kind != 's' {
			return nil, nil, nil, fmt.Errorf("windowing: column %q is %s, schema says %s", f.name, a.DataType(), f.typ)
		}
		o.cols[i] = c
	}
	return ent, ts, offs, nil
}

// Process folds a batch of decoded events (as built by Decoder: entity,
// time and offset columns plus the fields the features use) into the
// windows, at processing time now. The watermark is advanced event by
// event, so the windows emitted do not depend on how the events were cut
// into batches.
//
// Process never moves the watermark on processing time: events arriving
// show the source was not idle, and the time since the previous batch
// may be the reader's own (a slow sink, a stalled read, a backlog read
// slower than it was written). Advancing by it would make the reader's
// own backlog late. The idle advance is Advance's, called when the
// source found nothing new.
func (o *Operator) Process(rec arrow.RecordBatch, now time.Time) (Output, error) {
	ent, ts, offs, err := o.resolve(rec)
	if err != nil {
		return Output{}, err
	}
	o.begin()
	n := int(rec.NumRows())
	if n > 0 {
		o.lastRecordAt = now.UnixNano()
		o.idleAdvanced = false
	}
	for i := 0; i < n; i++ {
		t, off := int64(ts[i]), offs[i]
		if t < -maxEventTime || t > maxEventTime {
			// Outside the decoder's bounds, where window arithmetic could
			// overflow: handed back like a late event, never counted.
			o.handBack(i, t, off)
			continue
		}
		if !o.seen || t > o.maxT {
			o.maxT, o.maxOff, o.seen = t, off, true
			if t-o.ooo > o.wm {
				o.advance(t - o.ooo)
			}
		}
		o.tick()
		var key int32
		if o.session {
			key = o.sessionEvent(ent, i, t, off)
		} else {
			key = o.paneEvent(ent, i, t, off)
		}
		if key != none && o.liveBytes() > o.maxBytes {
			o.enforceBudget(key)
		}
	}
	return o.finish(), nil
}

// Advance moves processing time to now without new events; the caller
// calls it when its source found nothing new (the consumer's idle
// heartbeat). When no record came for the idle timeout, the watermark
// advances with processing time (the largest event time seen, minus
// out-of-orderness, plus the time since the last record), so an idle
// shard closes its windows at most the idle timeout after it would have
// with events flowing.
func (o *Operator) Advance(now time.Time) Output {
	o.begin()
	o.advanceIdle(now)
	return o.finish()
}

// Drain emits every window still open, as if the watermark had jumped to
// the end of time (end of a closed shard). Late events after it are handed
// back.
func (o *Operator) Drain() Output {
	o.begin()
	o.advance(math.MaxInt64 - o.lateness - o.size - o.gap - 1)
	o.expireAll()
	return o.finish()
}

func (o *Operator) advanceIdle(now time.Time) {
	if o.idle <= 0 || !o.seen || o.lastRecordAt == 0 {
		return
	}
	idleFor := now.UnixNano() - o.lastRecordAt
	if idleFor < o.idle {
		return
	}
	// Capped so that the sum below stays within int64 whatever clock jump
	// processing time makes (event times are within ±2^62 ns).
	idleFor = min(idleFor, maxEventTime)
	if t := o.maxT - o.ooo + idleFor; t > o.wm {
		if !o.idleAdvanced {
			o.stats.IdleAdvances++
			o.idleAdvanced = true
		}
		o.advance(t)
	}
}

func (o *Operator) begin() {
	o.late = o.late[:0]
	o.evictedThisCall, o.earlyThisCall, o.budgetThisCall = 0, 0, 0
}

func (o *Operator) finish() Output {
	o.flushUpdates()
	if o.evictedThisCall > 0 {
		o.log.Warn("windowing: max_keys reached, evicted least recently updated keys",
			"window", o.spec.Name, "max_keys", o.maxKeys, "evicted", o.evictedThisCall,
			"early_windows", o.earlyThisCall, "evicted_total", o.stats.EvictedKeys)
	}
	if o.budgetThisCall > 0 {
		o.log.Warn("windowing: max_state_bytes reached, evicted least recently updated keys",
			"window", o.spec.Name, "max_state_bytes", o.maxBytes, "evicted", o.budgetThisCall,
			"evicted_for_bytes_total", o.stats.EvictedForBytes)
	}
	out := Output{Late: o.late}
	if o.outOffLast.Len() > 0 {
		out.Features = o.out.NewRecordBatch()
	}
	return out
}
