package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/shardpos"
)

// errFinished ends a shard run whose shard reached SHARD_END.
var errFinished = errors.New("shard finished")

// handlerError carries a processor's error out of the shard loop, with the
// last position of the batch it failed on (zero for an empty batch or a
// failed Initialize or ShardEnded). The processor is dead: it freed its
// state before returning the error.
type handlerError struct {
	err  error
	last shardpos.Position
}

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// run processes the shard until it ends, the lease is lost, or the worker
// stops; then it ends the processor and writes what the outcome requires.
// A processor error never ends it: the shard is marked failed, and after a
// backoff a new processor restarts from the durable checkpoint, while the
// lease stays held and renewed. One bad shard must not stop the consumer,
// or every worker that takes the lease over would stop in turn.
func (r *shardRun) run() {
	c := r.c
	defer close(r.done)
	defer c.forget(r)
	defer r.cancel()
	var err error
	for {
		err = r.process()
		var he *handlerError
		if !errors.As(err, &he) || r.lostFlag.Load() || r.stopCtx.Err() != nil {
			break
		}
		r.failing, r.failedAt = true, he.last
		c.markFailed(r, FailureHandler, he.err, r.failBackoff.next())
		if !r.failBackoff.wait(r.stopCtx) {
			err = r.stopCtx.Err()
			break
		}
	}
	if r.lostFlag.Load() {
		if r.proc != nil {
			r.proc.LeaseLost()
			r.proc = nil
		}
		return
	}
	if errors.Is(err, errFinished) {
		return
	}
	// Graceful stop: write what is durable and let the lease go, so
	// another worker (or this one, later) resumes there.
	ctx, cancel := context.WithTimeout(r.ctx, c.cfg.FailoverTime)
	defer cancel()
	if p := r.proc; p != nil {
		r.proc = nil
		// The processor makes durable what it has already written, so the
		// checkpoint handed over covers it.
		if perr := p.ShutdownRequested(ctx); perr != nil {
			c.log.Warn("processor's shutdown failed; the checkpoint stays where it is", "lease", r.lease.key, "err", perr)
		}
	}
	if r.handoff.Load() {
		if herr := r.handOver(ctx); herr != nil {
			c.log.Warn("hand-off failed; the leader reassigns the lease when it times out", "lease", r.lease.key, "err", herr)
		}
		return
	}
	if rerr := r.release(ctx); rerr != nil {
		c.log.Warn("release failed; the lease will expire instead", "lease", r.lease.key, "err", rerr)
	}
}

// failed turns a processor's error into the shard loop's, with the lost
// lease taking precedence: the processor is gone either way.
func (r *shardRun) failed(err error, last shardpos.Position) error {
	r.proc = nil
	if errors.Is(err, ErrLeaseLost) && !r.lostFlag.Load() {
		// The processor found the lease expired (Checkpointer.Expired):
		// stop here; the lease goes to whoever renews it.
		r.lose("the processor found the lease expired: " + err.Error())
	}
	if r.lostFlag.Load() {
		return ErrLeaseLost
	}
	return &handlerError{err: err, last: last}
}

// resume is where processing (re)starts: after the last position the
// processor marked durable, else at the lease's checkpoint, with a LATEST
// start resolved to where the first iterator began (so a restart before
// anything was durable skips nothing).
func (r *shardRun) resume() origin {
	if d := r.cp.Durable(); isSequenceNumber(d.Sequence) {
		return origin{pos: d}
	}
	r.mu.Lock()
	cp := r.lease.checkpoint
	r.mu.Unlock()
	if isSequenceNumber(cp.Sequence) {
		return origin{pos: cp}
	}
	if cp.Sequence == Latest && r.origin.pos.Sequence == AtTimestamp {
		return r.origin
	}
	return origin{pos: cp, at: r.s.cfg.InitialTimestamp}
}

// handled notes a successful ProcessRecords: a failed shard has recovered
// once a processor took everything up to the batch that failed.
func (r *shardRun) handled(b *Batch) {
	if !r.failing {
		return
	}
	if len(b.Records) > 0 && b.Last().Compare(r.failedAt) < 0 {
		return
	}
	r.failing, r.failedAt = false, shardpos.Position{}
	r.failBackoff.reset()
	r.c.clearFailed(r, FailureHandler)
}

// process reads the shard and hands batches to a new processor.
func (r *shardRun) process() error {
	c := r.c
	r.mu.Lock()
	finished := r.lease.finished()
	r.mu.Unlock()
	if finished {
		return nil
	}
	if err := r.waitParents(); err != nil {
		return err
	}
	start := r.resume()
	proc := c.newProcessor()
	r.proc = proc
	r.mu.Lock()
	startHash := r.lease.startHash
	r.mu.Unlock()
	info := ShardInfo{Stream: r.s.cfg.Name, ShardID: r.shardID, Checkpointer: r.cp, Start: start.pos, StartingHashKey: startHash}
	if err := proc.Initialize(r.ctx, info); err != nil {
		return r.failed(err, shardpos.Position{})
	}
	var f fetcher
	if c.cfg.FanOut && r.s.consumerARN != "" {
		f = newSubscriber(r, start)
	} else {
		f = newPoller(r, start, "")
	}
	defer f.close()

	// Resuming at a checkpoint re-reads its Kinesis record (AT_SEQUENCE_NUMBER)
	// and drops the user records up to and including the checkpoint: that is
	// how a restart resumes in the middle of a KPL aggregate.
	var skip shardpos.Position
	if isSequenceNumber(start.pos.Sequence) {
		skip = start.pos
	}
	name := r.s.cfg.Name
	recordsC := c.m.records.WithLabelValues(name)
	bytesC := c.m.bytes.WithLabelValues(name)
	failC := c.m.deaggFailures.WithLabelValues(name)
	behindG := c.m.behind.WithLabelValues(name, r.shardID)
	ageG := c.m.arrivalAge.WithLabelValues(name, r.shardID)

	deagg := newDeaggregator()
	batch := &Batch{Stream: name, ShardID: r.shardID, Checkpointer: r.cp}
	var last shardpos.Position
	for {
		if err := r.stopCtx.Err(); err != nil {
			return err
		}
		res, err := f.next(r.stopCtx)
		if err != nil {
			return err
		}
		behindG.Set(float64(res.millisBehind))
		batch.Records = batch.Records[:0]
		fails := 0
		var newest time.Time
		for i := range res.records {
			raw := &res.records[i]
			base := Record{Stream: name, ShardID: r.shardID, SequenceNumber: deref(raw.SequenceNumber), PartitionKey: deref(raw.PartitionKey)}
			if raw.ApproximateArrivalTimestamp != nil {
				base.ApproximateArrival = *raw.ApproximateArrivalTimestamp
				newest = base.ApproximateArrival
			}
			from := len(batch.Records)
			var n int
			batch.Records, n = deagg.appendRecords(batch.Records, raw.Data, base)
			fails += n
			if skip.Sequence != "" {
				if shardpos.CompareSequence(base.SequenceNumber, skip.Sequence) > 0 {
					skip = shardpos.Position{}
				} else {
					batch.Records = dropThrough(batch.Records, from, skip)
				}
			}
		}
		if fails > 0 {
			failC.Add(float64(fails))
		}
		if !newest.IsZero() {
			ageG.Set(time.Since(newest).Seconds())
		}
		batch.MillisBehindLatest = res.millisBehind
		batch.ShardEnd = res.end
		if len(batch.Records) > 0 || res.end || res.heartbeat {
			size := 0
			for i := range batch.Records {
				size += len(batch.Records[i].Data)
			}
			recordsC.Add(float64(len(batch.Records)))
			bytesC.Add(float64(size))
			r.tput.Add(size)
			if err := proc.ProcessRecords(r.ctx, batch); err != nil {
				var last shardpos.Position
				if len(batch.Records) > 0 {
					last = batch.Last()
				}
				return r.failed(err, last)
			}
			r.handled(batch)
			if len(batch.Records) > 0 {
				last = batch.Last()
			}
		}
		if res.end {
			return r.endShard(res.children, last)
		}
	}
}

// dropThrough removes, from recs[from:], the records at or before skip.
func dropThrough(recs []Record, from int, skip shardpos.Position) []Record {
	out := recs[:from]
	for i := from; i < len(recs); i++ {
		if recs[i].Position().Compare(skip) > 0 {
			out = append(out, recs[i])
		}
	}
	return out
}

// waitParents blocks until every parent shard (the parent and, after a
// merge, the adjacent parent) is checkpointed at SHARD_END. A parent with
// no lease counts as done: it was never consumed (LATEST start) or its
// lease was cleaned up after it ended.
func (r *shardRun) waitParents() error {
	c := r.c
	for {
		ended := c.endedChan()
		pending := ""
		for _, p := range r.lease.parents {
			l, ok, err := c.table.get(r.stopCtx, r.s.leaseKey(p))
			if err != nil {
				if r.stopCtx.Err() != nil {
					return r.stopCtx.Err()
				}
				c.log.Warn("reading parent lease failed", "lease", r.lease.key, "parent", p, "err", err)
				pending = p
				break
			}
			if ok && !l.finished() {
				pending = p
				break
			}
		}
		if pending == "" {
			return nil
		}
		t := time.NewTimer(c.cfg.ParentPollInterval)
		select {
		case <-r.stopCtx.Done():
			t.Stop()
			return r.stopCtx.Err()
		case <-ended:
		case <-t.C:
		}
		t.Stop()
	}
}

// endShard waits until everything delivered is durable, then checkpoints
// SHARD_END with the children recorded and the lease released.
func (r *shardRun) endShard(children []types.ChildShard, last shardpos.Position) error {
	c := r.c
	ids := make([]string, 0, len(children))
	for _, ch := range children {
		ids = append(ids, deref(ch.ShardId))
	}
	if err := c.createChildLeases(r.stopCtx, r.s, children); err != nil {
		// The periodic shard sync creates them instead.
		c.log.Warn("creating child leases failed", "lease", r.lease.key, "err", err)
	}
	// The processor's last call: it makes what it delivered durable.
	proc := r.proc
	r.proc = nil
	if err := proc.ShardEnded(r.ctx); err != nil {
		return r.failed(err, last)
	}
	if !last.IsZero() {
		if err := r.cp.waitDurable(r.stopCtx, last); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, c.cfg.FailoverTime)
	defer cancel()
	if err := r.finish(ctx, ids); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			return err
		}
		return fmt.Errorf("checkpoint SHARD_END: %w", err)
	}
	c.log.Info("shard ended", "lease", r.lease.key, "children", ids)
	c.shardEnded()
	return errFinished
}
