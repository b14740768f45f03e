package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// shardState is one shard's chain on this worker, from the consumer's
// Initialize to its ending (consumer.ShardProcessor): its decoder, one
// window operator per window over its stream, and its checkpoint rule
// (lowWater). The consumer calls it from the shard's goroutine only; sink
// acks reach the lowWater, which has its own lock.
type shardState struct {
	d      *shardDeps
	stream string
	shard  string
	plan   *streamPlan
	cp     *consumer.Checkpointer
	lw     *lowWater
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
	// leads is set while this shard, the stream's first by hash key, makes
	// this worker the reducer of the stream's drift monitors.
	leads bool
	// fresh is set until the first decoded batch of a chain that starts
	// without a checkpoint (the stream's beginning, as far as this shard
	// has it): the monitors learn its first event time.
	fresh bool
}

var _ consumer.ShardProcessor = (*shardState)(nil)

// shardDeps is what a shard's chain needs from the pipeline that runs it.
type shardDeps struct {
	streams map[string]*streamPlan
	// tails reads closed parents' tails for a child that starts at its
	// beginning.
	tails consumer.KinesisAPI
	dlq   deadLetters
	obs   Observer
	log   *slog.Logger
	now   func() time.Time
}

// deadLetters is the part of the dead-letter sink a shard uses.
type deadLetters interface {
	Send(ctx context.Context, poison ...sinks.Poison) error
}

var _ deadLetters = (*sinks.DeadLetter)(nil)

type shardWindow struct {
	plan *windowPlan
	op   *windowing.Operator
	outs []*shardScorer
	// stats are the operator's counters last reported to the observer.
	stats windowing.Stats
}

type shardScorer struct {
	plan *scorerPlan
	out  int // index of this output in the lowWater's spans
	res  scorer.Result
	rb   *resultBuilder
}

// Initialize builds the shard's chain for its stream and replays its
// parents' tails when it starts from its beginning.
func (st *shardState) Initialize(ctx context.Context, s consumer.ShardInfo) error {
	sp, ok := st.d.streams[s.Stream]
	if !ok {
		return fmt.Errorf("pipeline: shard %s of unconfigured stream %q", s.ShardID, s.Stream)
	}
	st.stream, st.shard, st.plan, st.cp, st.run = s.Stream, s.ShardID, sp, s.Checkpointer, newRunID()
	var err error
	if st.dec, err = windowing.NewDecoder(sp.schema, nil); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	st.dec.SetTimeBounds(sp.bounds)
	if sp.checkEntity != nil {
		st.dec.SetEntityCheck(sp.checkEntity)
	}
	outputs := 0
	for _, wp := range sp.windows {
		op, err := windowing.NewOperator(wp.spec, sp.schema, windowing.Options{Logger: st.d.log.With("window", wp.cfg.Name, "shard", s.ShardID)})
		if err != nil {
			st.release()
			return fmt.Errorf("pipeline: window %s: %w", wp.cfg.Name, err)
		}
		sw := &shardWindow{plan: wp, op: op}
		for _, sc := range wp.scorers {
			sw.outs = append(sw.outs, &shardScorer{plan: sc, out: outputs, rb: newResultBuilder(op.Schema(), sc.outputs, sc.shadow, nil)})
			outputs++
		}
		st.wins = append(st.wins, sw)
	}
	st.lw = newLowWater(s.Checkpointer, outputs)
	st.fresh = len(sp.monitors) > 0 && !checkpointed(s.Start)
	if s.StartingHashKey == "0" && len(sp.reducers) > 0 {
		st.leads = true
		for _, r := range sp.reducers {
			r.lead(1)
		}
	}
	if err := st.replayTails(ctx); err != nil {
		st.release()
		return err
	}
	return nil
}

// ProcessRecords runs one batch through the chain. On an error the chain
// is dropped: the consumer restarts the shard from its checkpoint with a
// new one.
func (st *shardState) ProcessRecords(ctx context.Context, b *consumer.Batch) error {
	if err := st.handle(ctx, b); err != nil {
		st.release()
		return err
	}
	return nil
}

// ShardEnded flushes the shard's results out of the sinks, so the acks
// bring the durable position to the shard's last record and the consumer
// can checkpoint SHARD_END.
func (st *shardState) ShardEnded(ctx context.Context) error {
	defer st.release()
	if err := st.flush(ctx); err != nil {
		return fmt.Errorf("pipeline: flushing sinks at the end of %s/%s: %w", st.stream, st.shard, err)
	}
	st.advance()
	return st.lw.failed()
}

// ShutdownRequested makes what the sinks accepted for this shard durable,
// so the checkpoint handed over covers everything already written. Open
// windows are not flushed: the next owner rebuilds them by replaying from
// the checkpoint.
func (st *shardState) ShutdownRequested(ctx context.Context) error {
	defer st.release()
	err := st.flush(ctx)
	st.advance()
	return err
}

// LeaseLost drops the chain: the new owner rebuilds it from the
// checkpoint, and nothing more may be written from here.
func (st *shardState) LeaseLost() { st.release() }

// flush makes every batch this shard handed its stream's sinks durable (or
// failed): acks arrive and the low-water mark advances.
func (st *shardState) flush(ctx context.Context) error {
	var errs []error
	for _, s := range st.plan.sinks {
		if err := s.FlushShard(ctx, st.stream, st.shard); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (st *shardState) release() {
	if st.dec != nil {
		st.dec.Release()
		st.dec = nil
	}
	for _, w := range st.wins {
		w.op.Release()
		for _, o := range w.outs {
			o.rb.release()
		}
	}
	st.wins = nil
	if st.leads {
		st.leads = false
		for _, r := range st.plan.reducers {
			r.lead(-1)
		}
	}
	if st.plan != nil && st.stream != "" {
		// However the chain ends (a lost lease too), its progress must
		// stop holding the monitors' periods open.
		for _, m := range st.plan.monitors {
			m.forget(st.shard)
		}
	}
	if st.stream != "" {
		st.d.obs.ShardReleased(st.stream, st.shard)
	}
}

// countByReason calls f once per reason with how many of poison have it
// (reasons are few; the observer hears per batch, not per record).
func countByReason(poison []sinks.Poison, f func(reason string, n int)) {
	for i := range poison {
		r := poison[i].Reason
		seen := false
		for j := range i {
			if poison[j].Reason == r {
				seen = true
				break
			}
		}
		if seen {
			continue
		}
		n := 0
		for j := i; j < len(poison); j++ {
			if poison[j].Reason == r {
				n++
			}
		}
		f(r, n)
	}
}

// handle runs one batch through the chain.
func (st *shardState) handle(ctx context.Context, b *consumer.Batch) error {
	if err := st.lw.failed(); err != nil {
		return err
	}
	start := time.Now()
	obs := st.d.obs
	var poison []sinks.Poison
	st.rowData, st.rowOff = st.rowData[:0], st.rowOff[:0]

	first := st.lw.add(b.Records, st.replaying)
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
		obs.BatchRead(st.stream, st.shard, len(b.Records), b.MillisBehindLatest)
	}
	obs.Stage(StageDecode, time.Since(start))

	// A closed shard whose open windows can be rebuilt by its children
	// (they replay its tail) records where that tail begins and leaves the
	// windows to them: each window then has one complete row, on a child.
	tail := b.ShardEnd && st.canHandOver()
	// A worker that was paused past its lease (SIGSTOP, a frozen host)
	// must not write results from stale state over the new owner's.
	if st.cp.Expired() {
		return fmt.Errorf("pipeline: %s/%s: the lease was not renewed for the failover time; no results written: %w", st.stream, st.shard, consumer.ErrLeaseLost)
	}
	now := st.d.now()
	var rec arrow.RecordBatch
	if st.dec.Len() > 0 {
		rec = st.dec.NewRecordBatch()
		defer rec.Release()
		if st.fresh {
			st.fresh = false
			st.startMonitors(rec)
		}
	}
	for _, w := range st.wins {
		t := time.Now()
		var out windowing.Output
		var err error
		switch {
		case rec != nil:
			out, err = w.op.Process(rec, now)
		case len(b.Records) == 0 || b.MillisBehindLatest == 0:
			// Nothing valid to process, and nothing waiting behind it: the
			// consumer found the shard empty (its idle heartbeat), or read
			// only poison at its tip. Then a window may take processing
			// time for idle time, so a stream of bad records cannot hold
			// its windows open. Poison read in a backlog is not that: the
			// good records behind it are not late.
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
		obs.Stage(StageWindow, time.Since(t))
		if err := st.emit(ctx, w, out, &poison); err != nil {
			return err
		}
		st.reportStats(w)
	}
	if len(poison) > 0 {
		if err := st.d.dlq.Send(ctx, poison...); err != nil {
			return fmt.Errorf("pipeline: dead-letter %d records of %s/%s: %w", len(poison), st.stream, st.shard, err)
		}
		countByReason(poison, func(reason string, n int) { obs.DeadLettered(st.stream, reason, n) })
	}

	// The low-water mark from the windows, read here on the shard's own
	// goroutine (operators are not shared) and published for the acks.
	low := st.lw.end()
	for _, w := range st.wins {
		if o, ok := w.op.OldestNeeded(); ok && o < low {
			low = o
		}
	}
	if tail {
		low = st.handOverTail(low)
	}
	st.lw.setOpsLow(low)
	st.advance()
	obs.Stage(StageBatch, time.Since(start))
	return st.lw.failed()
}

// reportStats hands the observer what the window operator counted since
// the last batch, and its state now.
func (st *shardState) reportStats(w *shardWindow) {
	cur := w.op.Stats()
	st.d.obs.WindowStats(st.stream, st.shard, w.plan.cfg.Name, w.stats, cur)
	w.stats = cur
}

// emit scores one window output and writes the results to the scorers'
// sinks; late events become poison records (or are counted and ignored).
func (st *shardState) emit(ctx context.Context, w *shardWindow, out windowing.Output, poison *[]sinks.Poison) error {
	obs := st.d.obs
	for _, le := range out.Late {
		if st.replaying {
			continue // the parent judged this event already
		}
		obs.Late(st.stream, w.plan.cfg.Name, 1)
		if w.plan.spec.Late == windowing.LateIgnore {
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
	obs.Emitted(st.stream, w.plan.cfg.Name, n)
	low := minOffset(feat)
	for _, o := range w.outs {
		t := time.Now()
		if err := o.plan.sc.Score(ctx, feat, &o.res); err != nil {
			return fmt.Errorf("pipeline: scorer %s on %s/%s: %w", o.plan.name, st.stream, st.shard, err)
		}
		obs.Stage(StageScore, time.Since(t))
		for i := range n {
			if o.res.Source[i] == scorer.SourceNone {
				*poison = append(*poison, st.unscorable(feat, i, o))
			}
		}
		res := o.rb.build(feat, &o.res, st.partID)
		id, rng := st.lw.send(o.out, low)
		t = time.Now()
		err := o.plan.sink.Write(ctx, sinks.Batch{
			Stream: st.stream, Shard: st.shard, Range: rng, Rec: res,
			Ack: func(err error) { st.ack(id, err) },
		})
		res.Release()
		obs.Stage(StageSinkWait, time.Since(t))
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
	if err != nil {
		err = fmt.Errorf("pipeline: a sink failed permanently on %s/%s; the shard stops so its checkpoint stays behind the lost batch: %w", st.stream, st.shard, err)
	}
	moved, first := st.lw.ack(id, err)
	switch {
	case first:
		st.d.log.Error("sink failed permanently", "stream", st.stream, "shard", st.shard, "err", err)
	case moved:
		st.d.obs.Checkpointed(st.stream, st.shard)
	}
}

// advance moves the checkpoint to the low-water mark.
func (st *shardState) advance() {
	if st.lw.advance() {
		st.d.obs.Checkpointed(st.stream, st.shard)
	}
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
func (st *shardState) position(off uint64) shardpos.Position {
	if off >= st.curFirst && off-st.curFirst < uint64(len(st.cur)) {
		return st.cur[off-st.curFirst].Position()
	}
	return st.lw.at(off)
}

func (st *shardState) poison(reason, detail string, pos shardpos.Position, data []byte) sinks.Poison {
	return sinks.Poison{Reason: reason, Detail: detail, Stream: st.stream, Shard: st.shard, Position: pos, Data: data}
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
	var pos shardpos.Position
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
