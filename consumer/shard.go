package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/consumer/workerload"
	"github.com/streamscore/streamscore/shardpos"
)

// shardRun is one held lease and the goroutine processing its shard.
type shardRun struct {
	c       *Consumer
	s       *stream
	shardID string

	// mu serializes every write to the lease (renewal, checkpoint, release),
	// so the counter each write is conditional on is the one the previous
	// write produced.
	mu        sync.Mutex
	lease     lease
	lastRenew time.Time
	lost      bool
	// unsure: the outcome of the last write is unknown (timeout,
	// connection reset); the next write re-reads the lease first.
	unsure bool
	// lostFlag mirrors lost for readers that must not wait on mu (a
	// renewal may hold it for a DynamoDB round trip).
	lostFlag atomic.Bool
	// renewed mirrors lastRenew (Unix ns) for Checkpointer.Expired, which
	// must not wait on mu either.
	renewed atomic.Int64

	// ctx is cancelled when the lease is lost: the processor must stop.
	ctx    context.Context
	cancel context.CancelFunc
	// stopCtx is cancelled on graceful stop as well: reads stop, the batch
	// in hand finishes.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	done       chan struct{}

	cp *Checkpointer

	// tput measures the shard's throughput, written with each renewal for
	// a KCL 3.x leader to balance on.
	tput *workerload.Throughput
	// handoff is set once a renewal finds that a KCL 3.x leader handed the
	// lease to another worker and left this one its checkpoint owner: the
	// shard stops gracefully and passes the lease on (handoff.go).
	// handoffAt (under mu) is when that was found.
	handoff   atomic.Bool
	handoffAt time.Time

	// The fields below belong to the run goroutine.

	// origin is where reading began before any record was read, with a
	// LATEST start resolved once its first iterator was obtained.
	origin origin
	// proc is the shard's processor while it lives: from before the first
	// read to its ending (nil before, after, and between failed runs).
	proc ShardProcessor
	// failBackoff paces restarts after processor errors. While failing,
	// failedAt is the last position of the batch that failed (zero: an
	// empty batch): the shard has recovered once a processor took a batch
	// reaching it.
	failBackoff *backoff
	failing     bool
	failedAt    shardpos.Position
}

func newShardRun(c *Consumer, s *stream, shardID string, l lease) *shardRun {
	r := &shardRun{c: c, s: s, shardID: shardID, lease: l, lastRenew: time.Now(), done: make(chan struct{})}
	r.renewed.Store(r.lastRenew.UnixNano())
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.stopCtx, r.cancelStop = context.WithCancel(r.ctx)
	r.cp = &Checkpointer{r: r, written: l.checkpoint, changed: make(chan struct{})}
	r.failBackoff = newBackoff(c.cfg.FailureBackoff, c.cfg.MaxFailureBackoff)
	r.tput = &workerload.Throughput{}
	if l.hasThroughput {
		// The lease keeps its weight across a move, as in Java KCL.
		r.tput.Seed(l.throughput)
	}
	return r
}

func (r *shardRun) requestStop() { r.cancelStop() }

// lose marks the lease lost and stops the shard without writing anything.
func (r *shardRun) lose(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loseLocked(why)
}

func (r *shardRun) loseLocked(why string) {
	if r.lost {
		return
	}
	r.lost = true
	r.lostFlag.Store(true)
	r.cancel()
	r.c.m.leasesLost.Inc()
	r.c.log.Warn("lease lost", "lease", r.lease.key, "reason", why)
}

// renew bumps the lease counter, writing the durable checkpoint with it
// when it moved. ctx carries the renewal round's deadline.
func (r *shardRun) renew(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost || r.lease.actualOwner() != r.c.cfg.WorkerID {
		return
	}
	if r.handoffExpiredLocked(ctx) {
		return
	}
	extra := r.throughputAttrs()
	err := r.writeLocked(ctx, func() error {
		if pos, dirty := r.cp.pending(); dirty {
			return r.writeCheckpointLocked(ctx, pos, nil, false, extra)
		}
		return r.c.table.renew(ctx, &r.lease, extra)
	})
	switch {
	case err == nil:
		r.lastRenew = time.Now()
		r.renewed.Store(r.lastRenew.UnixNano())
	case errors.Is(err, errConflict):
		r.loseLocked("renewal found another owner: " + err.Error())
	default:
		if time.Since(r.lastRenew) >= r.c.cfg.FailoverTime {
			r.loseLocked("renewals failed for the failover time: " + err.Error())
		} else {
			r.c.log.Warn("lease renewal failed", "lease", r.lease.key, "err", err)
		}
	}
}

// writeLocked runs write, one conditional write of the lease, so that a
// write whose answer was lost is not mistaken for a lost lease. A timeout
// or a connection reset leaves the outcome unknown: the write may have
// landed and moved the counter, and the next write, conditional on the
// old counter, would then fail. So an unknown outcome makes the next write
// re-read the lease first, and a write that finds the counter moved
// re-reads it too (that is also what an SDK retry of a write that landed
// sees); while the lease still names this worker as owner, the moves were
// ours, the lease is held, and the write is tried once more. errConflict
// is returned only when the lease belongs to someone else or is gone. r.mu
// is held.
func (r *shardRun) writeLocked(ctx context.Context, write func() error) error {
	if r.unsure {
		if err := r.reconcileLocked(ctx); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		err := write()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errConflict) {
			r.unsure = true
			return err
		}
		if rerr := r.reconcileLocked(ctx); rerr != nil {
			return rerr
		}
		if attempt == 1 {
			// Ours, yet the counter moved twice: an older write of ours
			// that was still in flight. Try again next time.
			return fmt.Errorf("lease %q: the counter moved again under this owner: %w", r.lease.key, err)
		}
	}
}

// reconcileLocked re-reads the lease (consistently) after a write whose
// outcome is unknown or that found the counter moved. When the lease still
// names this worker, every change since it took the lease was one of its
// own writes (another worker's take writes its own name), so the counter
// and checkpoint read are adopted. Otherwise it returns errConflict. r.mu
// is held.
func (r *shardRun) reconcileLocked(ctx context.Context) error {
	r.c.m.ambiguous.Inc()
	l, ok, err := r.c.table.get(ctx, r.lease.key)
	if err != nil {
		r.unsure = true
		return err
	}
	if !ok {
		return fmt.Errorf("lease %q was deleted: %w", r.lease.key, errConflict)
	}
	if l.actualOwner() != r.c.cfg.WorkerID || l.checkpointOwner == l.owner {
		return fmt.Errorf("lease %q: owner is now %q: %w", r.lease.key, l.owner, errConflict)
	}
	if l.checkpointOwner != "" && !r.handoff.Load() {
		r.startHandoffLocked(l.owner)
	}
	r.lease.owner, r.lease.checkpointOwner = l.owner, l.checkpointOwner
	if l.counter != r.lease.counter {
		r.c.log.Debug("a lease write of ours landed unacknowledged; adopting it", "lease", r.lease.key,
			"counter", l.counter, "checkpoint", l.checkpoint.Sequence)
	}
	r.lease.counter = l.counter
	r.lease.checkpoint = l.checkpoint
	r.lease.ownerSwitches = l.ownerSwitches
	r.lease.children = l.children
	r.cp.setWritten(l.checkpoint)
	r.unsure = false
	return nil
}

// writeCheckpointLocked writes pos, and extra attributes with it; r.mu is
// held.
func (r *shardRun) writeCheckpointLocked(ctx context.Context, pos shardpos.Position, children []string, release bool, extra map[string]types.AttributeValue) error {
	start := time.Now()
	err := r.c.table.checkpoint(ctx, &r.lease, pos, children, release, extra)
	r.c.m.checkpointTime.Observe(time.Since(start).Seconds())
	if err == nil {
		r.cp.setWritten(pos)
		r.lastRenew = time.Now()
		r.renewed.Store(r.lastRenew.UnixNano())
	}
	return err
}

// flush writes the durable position if it moved. A lost lease gives
// ErrLeaseLost.
func (r *shardRun) flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost {
		return fmt.Errorf("checkpoint %s: %w", r.lease.key, ErrLeaseLost)
	}
	pos, dirty := r.cp.pending()
	if !dirty {
		return nil
	}
	err := r.writeLocked(ctx, func() error { return r.writeCheckpointLocked(ctx, pos, nil, false, nil) })
	if errors.Is(err, errConflict) {
		r.loseLocked("checkpoint found another owner: " + err.Error())
		return fmt.Errorf("checkpoint %s at %s/%d: %w", r.lease.key, pos.Sequence, pos.SubSequence, ErrLeaseLost)
	}
	return err
}

// release writes the durable position and gives the lease up, in one
// conditional write, so that another worker may take it at once.
func (r *shardRun) release(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost {
		return nil
	}
	err := r.writeLocked(ctx, func() error {
		if pos, dirty := r.cp.pending(); dirty {
			return r.writeCheckpointLocked(ctx, pos, nil, true, nil)
		}
		return r.c.table.release(ctx, &r.lease)
	})
	if errors.Is(err, errConflict) {
		// Gone to another worker, or our release landed unacknowledged
		// (the re-read finds no owner): either way nothing is left to do.
		r.lost = true
		r.lostFlag.Store(true)
		r.c.log.Info("lease no longer ours at release", "lease", r.lease.key, "reason", err.Error())
		return nil
	}
	if err == nil {
		r.c.log.Info("lease released", "lease", r.lease.key, "checkpoint", r.lease.checkpoint.Sequence)
	}
	return err
}

// finish checkpoints SHARD_END, records the children, and gives the lease
// up: a finished lease needs no owner.
func (r *shardRun) finish(ctx context.Context, children []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost {
		return fmt.Errorf("checkpoint %s at SHARD_END: %w", r.lease.key, ErrLeaseLost)
	}
	err := r.writeLocked(ctx, func() error {
		return r.writeCheckpointLocked(ctx, shardpos.Position{Sequence: ShardEnd}, children, true, nil)
	})
	if errors.Is(err, errConflict) {
		if l, ok, gerr := r.c.table.get(ctx, r.lease.key); gerr == nil && ok && l.finished() {
			// Our SHARD_END write landed unacknowledged (it released the
			// lease, so the re-read found no owner).
			r.lease.counter, r.lease.owner, r.lease.checkpoint, r.lease.children = l.counter, l.owner, l.checkpoint, l.children
			r.cp.setWritten(l.checkpoint)
			return nil
		}
		r.loseLocked("SHARD_END checkpoint found another owner: " + err.Error())
		return fmt.Errorf("checkpoint %s at SHARD_END: %w", r.lease.key, ErrLeaseLost)
	}
	return err
}
