package pipeline

// Ground truth in (docs/quality.md): the labels stream's shards decode
// each record with the stream's schema, turn it into a label and write it
// to the ground-truth sink, and checkpoint only what that sink has made
// durable in S3.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// labelsPlan is what the labels section asks of its stream's shards.
type labelsPlan struct {
	// label and inferenceID are schema fields; inferenceID may be empty.
	label, inferenceID string
	sink               sinks.Sink
}

// planLabels marks the labels section's stream as carrying labels.
func (pl *plan) planLabels(cfg *config.Config) error {
	l := cfg.Labels
	if l == nil {
		return nil
	}
	sp, ok := pl.streams[l.Stream]
	if !ok {
		return fmt.Errorf("pipeline: %s: labels.stream: undefined stream %q", cfg.File, l.Stream)
	}
	if len(sp.windows) > 0 {
		return fmt.Errorf("pipeline: %s: labels.stream: stream %q is read by window %s: a labels stream carries labels only", cfg.File, l.Stream, sp.windows[0].cfg.Name)
	}
	sp.labels = &labelsPlan{label: l.Label, inferenceID: l.InferenceID}
	return nil
}

// buildLabels starts the ground-truth sink, in sinks.s3's bucket and with
// its roll age.
func (p *Pipeline) buildLabels(c Clients) error {
	l := p.cfg.Labels
	if l == nil {
		return nil
	}
	c3 := p.cfg.Sinks.S3
	if c3 == nil {
		return fmt.Errorf("pipeline: %s: labels: the ground truth is written to sinks.s3.bucket: configure sinks.s3", p.cfg.File)
	}
	sk, err := sinks.NewGroundTruth(sinks.GroundTruthOptions{
		Client: c.S3, Bucket: c3.Bucket, Prefix: sinks.GroundTruthPrefix(p.cfg.Pipeline, l.Prefix),
		RollAge: c3.RollAge.D(), Metrics: p.sm, Logger: p.log,
	})
	if err != nil {
		return fmt.Errorf("pipeline: ground-truth sink: %w", err)
	}
	p.sinks = append(p.sinks, sk)
	p.pl.streams[l.Stream].labels.sink = sk
	return nil
}

// streamProcessor is the consumer's processor for every shard: at
// Initialize it becomes the chain of the shard's stream, a labelShard for
// the labels stream and a shardState for the others. The consumer calls
// nothing before Initialize.
type streamProcessor struct {
	d *shardDeps
	consumer.ShardProcessor
}

// Initialize picks the chain by stream and initializes it.
func (sp *streamProcessor) Initialize(ctx context.Context, s consumer.ShardInfo) error {
	if st := sp.d.streams[s.Stream]; st != nil && st.labels != nil {
		sp.ShardProcessor = &labelShard{d: sp.d}
	} else {
		sp.ShardProcessor = &shardState{d: sp.d}
	}
	return sp.ShardProcessor.Initialize(ctx, s)
}

// labelShard is one labels shard's chain on this worker. The consumer
// calls it from the shard's goroutine only; sink acks reach the lowWater,
// which has its own lock.
type labelShard struct {
	d             *shardDeps
	stream, shard string
	lp            *labelsPlan
	cp            *consumer.Checkpointer
	lw            *lowWater
	dec           *windowing.Decoder
	gt            *sinks.GroundTruthBuilder
	// labelCol and idCol are the decoded batch's columns of the label
	// and the inference id (-1: none).
	labelCol, idCol int
	// recs[i] is the index in the consumer's batch of decoded row i, for
	// the dead letters of bad labels.
	recs   []int
	poison []sinks.Poison
	// data and id are scratch for one label's normalised text.
	data, id []byte
}

var _ consumer.ShardProcessor = (*labelShard)(nil)

// Initialize builds the decoder, with the stream's time bounds and entity
// check as the windows' shards have them. A labels shard has nothing to
// rebuild from its parents: its children start after it ends.
func (ls *labelShard) Initialize(_ context.Context, s consumer.ShardInfo) error {
	sp := ls.d.streams[s.Stream]
	ls.stream, ls.shard, ls.lp, ls.cp = s.Stream, s.ShardID, sp.labels, s.Checkpointer
	if ls.lp.sink == nil {
		return fmt.Errorf("pipeline: labels stream %s has no ground-truth sink", s.Stream)
	}
	var err error
	if ls.dec, err = windowing.NewDecoder(sp.schema, nil); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	ls.dec.SetTimeBounds(sp.bounds)
	if sp.checkEntity != nil {
		ls.dec.SetEntityCheck(sp.checkEntity)
	}
	// The config checks the fields' types (labels.label, labels.inference_id);
	// checked again here, where a mismatch would otherwise read as no label.
	col := func(path, name string, types ...arrow.Type) (int, error) {
		idx := ls.dec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			return -1, fmt.Errorf("pipeline: %s %q is not a field of stream %s's schema", path, name, s.Stream)
		}
		if t := ls.dec.Schema().Field(idx[0]).Type; !slices.Contains(types, t.ID()) {
			return -1, fmt.Errorf("pipeline: %s %q is a %s field: want %v", path, name, t, types)
		}
		return idx[0], nil
	}
	ls.idCol = -1
	ls.labelCol, err = col("labels.label", ls.lp.label, arrow.BOOL, arrow.INT64, arrow.FLOAT64, arrow.STRING)
	if err == nil && ls.lp.inferenceID != "" {
		ls.idCol, err = col("labels.inference_id", ls.lp.inferenceID, arrow.STRING)
	}
	if err != nil {
		ls.release()
		return err
	}
	ls.gt = sinks.NewGroundTruthBuilder(nil)
	ls.lw = newLowWater(s.Checkpointer, 1)
	return nil
}

// ProcessRecords writes one batch's labels. On an error the chain is
// dropped: the consumer restarts the shard from its checkpoint.
func (ls *labelShard) ProcessRecords(ctx context.Context, b *consumer.Batch) error {
	if err := ls.handle(ctx, b); err != nil {
		ls.release()
		return err
	}
	return nil
}

// ShardEnded makes every label of the shard durable, so the checkpoint
// reaches its last record and SHARD_END can be written.
func (ls *labelShard) ShardEnded(ctx context.Context) error {
	defer ls.release()
	if err := ls.lp.sink.FlushShard(ctx, ls.stream, ls.shard); err != nil {
		return fmt.Errorf("pipeline: flushing the ground truth at the end of %s/%s: %w", ls.stream, ls.shard, err)
	}
	ls.advance()
	return ls.lw.failed()
}

// ShutdownRequested uploads the shard's open files, so the checkpoint
// handed over covers every label written.
func (ls *labelShard) ShutdownRequested(ctx context.Context) error {
	defer ls.release()
	err := ls.lp.sink.FlushShard(ctx, ls.stream, ls.shard)
	ls.advance()
	return err
}

// LeaseLost drops the chain; the new owner replays from the checkpoint.
func (ls *labelShard) LeaseLost() { ls.release() }

func (ls *labelShard) release() {
	if ls.dec != nil {
		ls.dec.Release()
		ls.dec = nil
	}
	if ls.gt != nil {
		ls.gt.Release()
		ls.gt = nil
	}
	if ls.stream != "" {
		ls.d.obs.ShardReleased(ls.stream, ls.shard)
	}
}

// handle decodes a batch, dead-letters what is no label, writes the
// labels and moves the checkpoint to what is durable.
func (ls *labelShard) handle(ctx context.Context, b *consumer.Batch) error {
	if err := ls.lw.failed(); err != nil {
		return err
	}
	start := time.Now()
	obs := ls.d.obs
	first := ls.lw.add(b.Records, false)
	poison := ls.poison[:0]
	defer func() { clear(poison); ls.poison = poison[:0] }() // drop the records' bytes
	ls.recs = ls.recs[:0]
	for i := range b.Records {
		r := &b.Records[i]
		err := r.Err
		if err == nil {
			err = ls.dec.AppendArrived(r.Data, first+uint64(i), r.ApproximateArrival)
		}
		switch {
		case err == nil:
			ls.recs = append(ls.recs, i)
			continue
		case r.Err != nil:
			poison = append(poison, ls.letter(r, sinks.ReasonDeaggregation, r.Err.Error()))
			continue
		}
		var de *windowing.DecodeError
		if !errors.As(err, &de) {
			return fmt.Errorf("pipeline: decoding %s/%s: %w", ls.stream, ls.shard, err)
		}
		poison = append(poison, ls.letter(r, decodeReason(de), de.Error()))
	}
	obs.BatchRead(ls.stream, ls.shard, len(b.Records), b.MillisBehindLatest)
	if ls.dec.Len() > 0 {
		rec := ls.dec.NewRecordBatch()
		poison = ls.labels(rec, b.Records, poison)
		rec.Release()
	}
	obs.Stage(StageDecode, time.Since(start))
	// A worker paused past its lease must not write over the new owner.
	if ls.cp.Expired() {
		return fmt.Errorf("pipeline: %s/%s: the lease was not renewed for the failover time; no labels written: %w", ls.stream, ls.shard, consumer.ErrLeaseLost)
	}
	if ls.gt.Len() > 0 {
		if err := ls.write(ctx, first); err != nil {
			return err
		}
	}
	if len(poison) > 0 {
		if err := ls.d.dlq.Send(ctx, poison...); err != nil {
			return fmt.Errorf("pipeline: dead-letter %d records of %s/%s: %w", len(poison), ls.stream, ls.shard, err)
		}
		countByReason(poison, func(reason string, n int) { obs.DeadLettered(ls.stream, reason, n) })
	}
	// Nothing but the labels in flight holds the checkpoint back.
	ls.lw.setOpsLow(ls.lw.end())
	ls.advance()
	obs.Stage(StageBatch, time.Since(start))
	return ls.lw.failed()
}

// labels turns the decoded rows into labels, appending the records whose
// label or inference id is bad to poison.
func (ls *labelShard) labels(rec arrow.RecordBatch, recs []consumer.Record, poison []sinks.Poison) []sinks.Poison {
	// The decoder's layout: entity, event time (ns), the fields, offset.
	entity := rec.Column(0).(*array.String)
	ts := rec.Column(1).(*array.Timestamp)
	label := rec.Column(ls.labelCol)
	var ids *array.String
	if ls.idCol >= 0 {
		ids = rec.Column(ls.idCol).(*array.String)
	}
	for row := range int(rec.NumRows()) {
		r := &recs[ls.recs[row]]
		var err error
		if ls.data, err = appendLabel(ls.data[:0], label, row); err != nil {
			poison = append(poison, ls.letter(r, sinks.ReasonBadLabel, fmt.Sprintf("label field %q: %v", ls.lp.label, err)))
			continue
		}
		ls.id = ls.id[:0]
		if ids != nil && ids.IsValid(row) && ids.Value(row) != "" {
			if ls.id, err = sinks.AppendInferenceID(ls.id, ids.Value(row)); err != nil {
				poison = append(poison, ls.letter(r, sinks.ReasonBadInferenceID, fmt.Sprintf("inference id field %q: %v", ls.lp.inferenceID, err)))
				continue
			}
		}
		ls.gt.Append(entity.Value(row), int64(ts.Value(row)), ls.data, ls.id)
	}
	return poison
}

// appendLabel appends the ground-truth text of row's label in col
// (sinks.AppendGroundTruthData): a bool is 1 or 0, a number itself, and a
// string is read by the rule every label input follows
// (dataset.ParseLabel: a number, true or false, blank space around it
// ignored).
func appendLabel(dst []byte, col arrow.Array, row int) ([]byte, error) {
	v, err := labelValue(col, row)
	if err != nil {
		return dst, err
	}
	return sinks.AppendGroundTruthData(dst, v)
}

func labelValue(col arrow.Array, row int) (float64, error) {
	if col.IsNull(row) {
		return 0, errors.New("missing or null")
	}
	switch a := col.(type) {
	case *array.Boolean:
		if a.Value(row) {
			return 1, nil
		}
		return 0, nil
	case *array.Int64:
		return float64(a.Value(row)), nil
	case *array.Float64:
		return a.Value(row), nil
	case *array.String:
		// Value is a view of the batch's buffer: no copy per label.
		return dataset.ParseLabel(a.Value(row), false)
	}
	return 0, fmt.Errorf("a %s field cannot hold a label", col.DataType())
}

// write hands the built labels to the ground-truth sink. Their Range
// starts after the last batch written, so records that held no label are
// covered too; low is the offset of the batch's first record.
func (ls *labelShard) write(ctx context.Context, low uint64) error {
	out := ls.gt.NewRecordBatch()
	defer out.Release()
	n := int(out.NumRows())
	id, rng := ls.lw.send(0, low)
	t := time.Now()
	err := ls.lp.sink.Write(ctx, sinks.Batch{Stream: ls.stream, Shard: ls.shard, Range: rng, Rec: out,
		Ack: func(err error) { ls.ack(id, n, err) }})
	ls.d.obs.Stage(StageSinkWait, time.Since(t))
	if err != nil {
		ls.lw.ack(id, nil) // not accepted: nothing in flight, and the shard stops
		return fmt.Errorf("pipeline: writing %d labels of %s/%s to the ground-truth sink: %w", n, ls.stream, ls.shard, err)
	}
	return nil
}

// ack is called by the sink, from any goroutine, once n labels are in S3
// (err nil) or never will be.
func (ls *labelShard) ack(id uint64, n int, err error) {
	if err != nil {
		err = fmt.Errorf("pipeline: the ground-truth sink failed permanently on %s/%s; the shard stops so its checkpoint stays behind the lost labels: %w", ls.stream, ls.shard, err)
	} else {
		ls.d.obs.LabelsWritten(ls.stream, n)
	}
	moved, first := ls.lw.ack(id, err)
	switch {
	case first:
		ls.d.log.Error("ground-truth sink failed permanently", "stream", ls.stream, "shard", ls.shard, "err", err)
	case moved:
		ls.d.obs.Checkpointed(ls.stream, ls.shard)
	}
}

// advance moves the checkpoint to the low-water mark.
func (ls *labelShard) advance() {
	if ls.lw != nil && ls.lw.advance() {
		ls.d.obs.Checkpointed(ls.stream, ls.shard)
	}
}

func (ls *labelShard) letter(r *consumer.Record, reason, detail string) sinks.Poison {
	return sinks.Poison{Reason: reason, Detail: detail, Stream: ls.stream, Shard: ls.shard, Position: r.Position(), Data: r.Data}
}
