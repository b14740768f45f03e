package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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
	// lostFlag mirrors lost for readers that must not wait on mu (a
	// renewal may hold it for a DynamoDB round trip).
	lostFlag atomic.Bool

	// ctx is cancelled when the lease is lost: the handler must stop.
	ctx    context.Context
	cancel context.CancelFunc
	// stopCtx is cancelled on graceful stop as well: reads stop, the batch
	// in hand finishes.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	done       chan struct{}

	cp *Checkpointer
}

func newShardRun(c *Consumer, s *stream, shardID string, l lease) *shardRun {
	r := &shardRun{c: c, s: s, shardID: shardID, lease: l, lastRenew: time.Now(), done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.stopCtx, r.cancelStop = context.WithCancel(r.ctx)
	r.cp = &Checkpointer{r: r, written: l.checkpoint, changed: make(chan struct{})}
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
// when it moved.
func (r *shardRun) renew(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost || r.lease.owner != r.c.cfg.WorkerID {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.c.cfg.RenewInterval)
	defer cancel()
	var err error
	if pos, dirty := r.cp.pending(); dirty {
		err = r.writeCheckpointLocked(ctx, pos, nil, false)
	} else {
		err = r.c.table.renew(ctx, &r.lease)
	}
	switch {
	case err == nil:
		r.lastRenew = time.Now()
	case errors.Is(err, errConflict):
		r.loseLocked("renewal found another owner or counter")
	default:
		if time.Since(r.lastRenew) >= r.c.cfg.FailoverTime {
			r.loseLocked("renewals failed for the failover time: " + err.Error())
		} else {
			r.c.log.Warn("lease renewal failed", "lease", r.lease.key, "err", err)
		}
	}
}

// writeCheckpointLocked writes pos; r.mu is held.
func (r *shardRun) writeCheckpointLocked(ctx context.Context, pos Position, children []string, release bool) error {
	start := time.Now()
	err := r.c.table.checkpoint(ctx, &r.lease, pos, children, release)
	r.c.m.checkpointTime.Observe(time.Since(start).Seconds())
	if err == nil {
		r.cp.setWritten(pos)
		r.lastRenew = time.Now()
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
	err := r.writeCheckpointLocked(ctx, pos, nil, false)
	if errors.Is(err, errConflict) {
		r.loseLocked("checkpoint found another owner or counter")
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
	var err error
	if pos, dirty := r.cp.pending(); dirty {
		err = r.writeCheckpointLocked(ctx, pos, nil, true)
	} else {
		err = r.c.table.release(ctx, &r.lease)
	}
	if errors.Is(err, errConflict) {
		r.loseLocked("release found another owner or counter")
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
	err := r.writeCheckpointLocked(ctx, Position{Sequence: ShardEnd}, children, true)
	if errors.Is(err, errConflict) {
		r.loseLocked("SHARD_END checkpoint found another owner or counter")
		return fmt.Errorf("checkpoint %s at SHARD_END: %w", r.lease.key, ErrLeaseLost)
	}
	return err
}
