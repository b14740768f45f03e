package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// shardState is one shard's chain: its decoder, one window operator per
// window over its stream, and the bookkeeping that turns sink acks into a
// checkpoint. The handler goroutine owns everything but the fields under
// mu, which sink acks (from any goroutine) update too.
//
// Offsets: every record the shard delivers gets the next uint64 offset.
// Windowing reports the oldest offset an open window needs; each batch in
// flight to the sinks holds the oldest offset its rows were computed from.
// The low-water mark is the smallest of those; every record below it is
// done, so the checkpoint is the position of the record just below it.
type shardState struct {
	p      *Pipeline
	stream string
	shard  string
	plan   *streamPlan
	cp     *consumer.Checkpointer
	dec    *windowing.Decoder
	wins   []*shardWindow

	// Rows of the batch being decoded: original bytes and offsets of the
	// records that decoded, so late events can be dead-lettered whole.
	rowData [][]byte
	rowOff  []uint64
	// The batch being handled and its first offset: its records' exact
	// positions, for the dead letters it produces.
	cur      []consumer.Record
	curFirst uint64
	// run tells this shard state's partial rows from another's.
	run string
	// replaying is set while the parents' tails are fed in: their records
	// count in windows but were judged (dead letters, lateness) by the
	// parents, and their positions are not this shard's.
	replaying bool

	mu       sync.Mutex
	pos      positionIndex // offsets back to Kinesis positions
	next     uint64
	opsLow   uint64 // oldest offset an open window holds (next if none)
	inflight map[uint64]*inflight
	seq      uint64
	marked   uint64 // offsets below this are marked durable
	failure  error  // a permanent sink error or lost lease: stop the shard
}

type shardWindow struct {
	plan *windowPlan
	op   *windowing.Operator
	outs []*shardScorer
}

type shardScorer struct {
	plan      *scorerPlan
	res       scorer.Result
	rb        *resultBuilder
	spanStart uint64
}

type inflight struct {
	low       uint64
	remaining int
}

func newShardState(p *Pipeline, sp *streamPlan, b *consumer.Batch) (*shardState, error) {
	st := &shardState{p: p, stream: b.Stream, shard: b.ShardID, plan: sp, cp: b.Checkpointer, inflight: map[uint64]*inflight{}, run: newRunID()}
	var err error
	if st.dec, err = windowing.NewDecoder(sp.schema, nil); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	st.dec.SetTimeBounds(sp.bounds)
	if sp.checkEntity != nil {
		st.dec.SetEntityCheck(sp.checkEntity)
	}
	for _, wp := range sp.windows {
		op, err := windowing.NewOperator(wp.spec, sp.schema, windowing.Options{Logger: p.log.With("window", wp.cfg.Name, "shard", b.ShardID)})
		if err != nil {
			st.release()
			return nil, fmt.Errorf("pipeline: window %s: %w", wp.cfg.Name, err)
		}
		sw := &shardWindow{plan: wp, op: op}
		for _, sc := range wp.scorers {
			sw.outs = append(sw.outs, &shardScorer{plan: sc, rb: newResultBuilder(op.Schema(), sc.outputs, sc.shadow, nil)})
		}
		st.wins = append(st.wins, sw)
	}
	return st, nil
}

func (st *shardState) release() {
	if st.dec != nil {
		st.dec.Release()
		st.dec = nil
	}
	st.mu.Lock() // acks read wins (span starts) from other goroutines
	wins := st.wins
	st.wins = nil
	st.mu.Unlock()
	for _, w := range wins {
		w.op.Release()
		for _, o := range w.outs {
			o.rb.release()
		}
	}
}

func (st *shardState) failed() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.failure
}

// handle runs one batch through the chain.
func (st *shardState) handle(ctx context.Context, b *consumer.Batch) error {
	if err := st.failed(); err != nil {
		return err
	}
	start := time.Now()
	m := st.p.m
	var poison []sinks.Poison
	st.rowData, st.rowOff = st.rowData[:0], st.rowOff[:0]

	st.mu.Lock()
	first := st.next
	st.pos.add(first, b.Records, st.replaying)
	st.next += uint64(len(b.Records))
	st.mu.Unlock()
	st.cur, st.curFirst = b.Records, first
	defer func() { st.cur = nil }()

	for i := range b.Records {
		r := &b.Records[i]
		off := first + uint64(i)
		err := r.Err
		if err == nil {
			err = st.dec.AppendArrived(r.Data, off, r.ApproximateArrival)
		}
		switch {
		case err == nil:
			st.rowData = append(st.rowData, r.Data)
			st.rowOff = append(st.rowOff, off)
			continue
		case st.replaying:
			continue // a parent's record: the parent dead-lettered it already
		case r.Err != nil:
			poison = append(poison, st.poison(sinks.ReasonDeaggregation, r.Err.Error(), r.Position(), r.Data))
			continue
		}
		var de *windowing.DecodeError
		if !errors.As(err, &de) {
			return fmt.Errorf("pipeline: decoding %s/%s: %w", st.stream, st.shard, err)
		}
		poison = append(poison, st.poison(decodeReason(de), de.Error(), r.Position(), r.Data))
	}
	if !st.replaying {
		st.countIn(b)
	}
	m.decodeSeconds.Observe(time.Since(start).Seconds())

	// A closed shard whose open windows can be rebuilt by its children
	// (they replay its tail) records where that tail begins and leaves the
	// windows to them: each window then has one complete row, on a child.
	tail := b.ShardEnd && st.canHandOver()
	// A worker that was paused past its lease (SIGSTOP, a frozen host)
	// must not write results from stale state over the new owner's.
	if st.cp.Expired() {
		return fmt.Errorf("pipeline: %s/%s: the lease was not renewed for the failover time; no results written: %w", st.stream, st.shard, consumer.ErrLeaseLost)
	}
	now := st.p.now()
	var rec arrow.RecordBatch
	if st.dec.Len() > 0 {
		rec = st.dec.NewRecordBatch()
		defer rec.Release()
	}
	for _, w := range st.wins {
		t := time.Now()
		var out windowing.Output
		var err error
		if rec != nil {
			out, err = w.op.Process(rec, now)
		} else {
			out = w.op.Advance(now)
		}
		if err != nil {
			return fmt.Errorf("pipeline: window %s on %s/%s: %w", w.plan.cfg.Name, st.stream, st.shard, err)
		}
		if b.ShardEnd && !tail {
			// Without a tail for the children to replay, a closed shard
			// emits its open windows now, incomplete, so that its own
			// checkpoint can reach SHARD_END.
			if err := st.emit(ctx, w, out, &poison); err != nil {
				return err
			}
			out = w.op.Drain()
		}
		m.windowSeconds.Observe(time.Since(t).Seconds())
		if err := st.emit(ctx, w, out, &poison); err != nil {
			return err
		}
	}
	if len(poison) > 0 {
		if err := st.p.dlq.Send(ctx, poison...); err != nil {
			return fmt.Errorf("pipeline: dead-letter %d records of %s/%s: %w", len(poison), st.stream, st.shard, err)
		}
		for _, pr := range poison {
			m.deadLetters.WithLabelValues(st.stream, pr.Reason).Inc()
		}
		if cw := st.p.cw; cw != nil {
			cw.Count("DeadLetters", sinks.Dimensions{Stream: st.stream}, float64(len(poison)))
		}
	}

	// The low-water mark from the windows, read here on the shard's own
	// goroutine (operators are not shared) and published for the acks.
	low := st.next
	for _, w := range st.wins {
		if o, ok := w.op.OldestNeeded(); ok && o < low {
			low = o
		}
	}
	if tail {
		low = st.handOverTail(low)
	}
	st.mu.Lock()
	st.opsLow = low
	st.mu.Unlock()
	st.advanceCheckpoint()
	if b.ShardEnd {
		// The consumer checkpoints SHARD_END once everything is durable:
		// get the acks in now.
		if err := st.p.flushSinks(ctx); err != nil {
			return fmt.Errorf("pipeline: flushing sinks at the end of %s/%s: %w", st.stream, st.shard, err)
		}
		st.advanceCheckpoint()
	}
	m.batchSeconds.Observe(time.Since(start).Seconds())
	return st.failed()
}

// emit scores one window output and writes the results to the scorers'
// sinks; late events become poison records (or are counted and ignored).
func (st *shardState) emit(ctx context.Context, w *shardWindow, out windowing.Output, poison *[]sinks.Poison) error {
	m := st.p.m
	for _, le := range out.Late {
		if st.replaying {
			continue // the parent judged this event already
		}
		m.late.WithLabelValues(st.stream, w.plan.cfg.Name).Inc()
		if w.plan.spec.Late != windowing.LateDeadLetter {
			continue
		}
		detail := fmt.Sprintf("window %s: event time %s is behind the watermark %s by more than the allowed lateness %s",
			w.plan.cfg.Name, le.EventTime.Format(time.RFC3339Nano), le.Watermark.Format(time.RFC3339Nano), w.plan.spec.AllowedLateness)
		*poison = append(*poison, st.poison(sinks.ReasonLate, detail, st.position(le.Offset), st.rowData[le.Row]))
	}
	feat := out.Features
	if feat == nil {
		return nil
	}
	defer feat.Release()
	n := int(feat.NumRows())
	m.windows.WithLabelValues(st.stream, w.plan.cfg.Name).Add(float64(n))
	low := minOffset(feat)
	for _, o := range w.outs {
		t := time.Now()
		if err := o.plan.sc.Score(ctx, feat, &o.res); err != nil {
			return fmt.Errorf("pipeline: scorer %s on %s/%s: %w", o.plan.name, st.stream, st.shard, err)
		}
		m.scoreSeconds.Observe(time.Since(t).Seconds())
		for i := range n {
			if o.res.Source[i] == scorer.SourceNone {
				*poison = append(*poison, st.unscorable(feat, i, o))
			}
		}
		res := o.rb.build(feat, &o.res, st.partID)
		st.mu.Lock()
		rng := sinks.Range{First: sinkPos(st.pos.at(o.spanStart)), Last: sinkPos(st.pos.at(st.next - 1))}
		o.spanStart = st.next
		st.seq++
		id := st.seq
		st.inflight[id] = &inflight{low: low, remaining: 1}
		st.mu.Unlock()
		t = time.Now()
		err := o.plan.sink.Write(ctx, sinks.Batch{
			Stream: st.stream, Shard: st.shard, Range: rng, Rec: res,
			Ack: func(err error) { st.ack(id, err) },
		})
		res.Release()
		m.sinkWaitSeconds.Observe(time.Since(t).Seconds())
		if err != nil {
			st.ack(id, nil) // not accepted: nothing in flight, and the shard stops below
			return fmt.Errorf("pipeline: writing %d results of %s to the sinks: %w", n, o.plan.name, err)
		}
	}
	return nil
}

// decodeReason is the dead-letter reason of a record the decoder refused.
func decodeReason(de *windowing.DecodeError) string {
	switch {
	case errors.Is(de, windowing.ErrEventTimeBounds):
		return sinks.ReasonEventTime
	case errors.Is(de, windowing.ErrEntity):
		return sinks.ReasonEntity
	}
	return sinks.ReasonUndecodable
}

func minOffset(feat arrow.RecordBatch) uint64 {
	idx := feat.Schema().FieldIndices(windowing.ColOffsetFirst)
	low := uint64(math.MaxUint64)
	if len(idx) == 0 {
		return 0
	}
	col := feat.Column(idx[0]).(*array.Uint64)
	for i := range col.Len() {
		low = min(low, col.Value(i))
	}
	return low
}

// ack is called by the sinks, from any goroutine.
func (st *shardState) ack(id uint64, err error) {
	st.mu.Lock()
	if in := st.inflight[id]; in != nil {
		if in.remaining--; in.remaining <= 0 {
			delete(st.inflight, id)
		}
	}
	if err != nil && st.failure == nil {
		st.failure = fmt.Errorf("pipeline: a sink failed permanently on %s/%s; the shard stops so its checkpoint stays behind the lost batch: %w", st.stream, st.shard, err)
		st.p.log.Error("sink failed permanently", "stream", st.stream, "shard", st.shard, "err", err)
	}
	st.mu.Unlock()
	if err == nil {
		st.advanceCheckpoint()
	}
}

// advanceCheckpoint marks durable everything below the low-water mark.
func (st *shardState) advanceCheckpoint() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failure != nil {
		return
	}
	low := st.opsLow
	for _, in := range st.inflight {
		low = min(low, in.low)
	}
	if low <= st.marked || low == 0 || low > st.next {
		return
	}
	pos, upTo, ok := st.pos.durableBelow(low)
	if !ok || upTo <= st.marked {
		return
	}
	if err := st.cp.MarkDurable(pos); err != nil {
		st.failure = err
		return
	}
	st.marked = upTo
	// Keep the span of the mark (the next mark is at or after it) and
	// every position a scorer's next Range may still start from.
	keep := upTo - 1
	for _, w := range st.wins {
		for _, o := range w.outs {
			keep = min(keep, o.spanStart)
		}
	}
	st.pos.trim(keep)
	st.p.m.checkpointed.WithLabelValues(st.stream, st.shard).SetToCurrentTime()
}

// partID names a partial row's part: the shard, this shard state's run
// (a new owner or a restart is a new run) and the offset of the part's
// first event. Evictions are not repeated by a replay, so a part is only
// ever the same part within one run; within it the id is exact.
func (st *shardState) partID(off uint64) string {
	return st.shard + "/" + st.run + "/" + strconv.FormatUint(off, 10)
}

// position returns the position of offset off: exact within the batch
// being handled, else as the index has it (at or before the record).
func (st *shardState) position(off uint64) consumer.Position {
	if off >= st.curFirst && off-st.curFirst < uint64(len(st.cur)) {
		return st.cur[off-st.curFirst].Position()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pos.at(off)
}

func sinkPos(p consumer.Position) sinks.Position {
	return sinks.Position{Sequence: p.Sequence, SubSequence: p.SubSequence}
}

func (st *shardState) poison(reason, detail string, pos consumer.Position, data []byte) sinks.Poison {
	return sinks.Poison{Reason: reason, Detail: detail, Stream: st.stream, Shard: st.shard, Position: sinkPos(pos), Data: data}
}

// unscorable renders a row no scorer could score (endpoint down, no
// fallback) as a dead letter: its window and features as JSON, so it can be
// rescored later.
func (st *shardState) unscorable(feat arrow.RecordBatch, row int, o *shardScorer) sinks.Poison {
	doc := map[string]any{"scorer": o.plan.name}
	for i, f := range feat.Schema().Fields() {
		col := feat.Column(i)
		if col.IsNull(row) {
			continue
		}
		doc[f.Name] = col.GetOneForMarshal(row)
	}
	data, _ := json.Marshal(doc)
	detail := "no score from the endpoint or a fallback"
	if o.res.Err != nil {
		detail = o.res.Err.Error()
	}
	offs := feat.Schema().FieldIndices(windowing.ColOffsetLast)
	var pos consumer.Position
	if len(offs) > 0 {
		pos = st.position(feat.Column(offs[0]).(*array.Uint64).Value(row))
	}
	return st.poison(sinks.ReasonUnscorable, detail, pos, data)
}

// newRunID is a short random id for a shard state's run.
func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
