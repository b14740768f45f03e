package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/streamscore/streamscore/internal/retry"
)

// renewParallelism bounds the renewals in flight at once: enough that a
// worker with many leases renews them all within one round even when each
// call is slow, few enough not to flood the table.
const renewParallelism = 16

// renewLoop renews every held lease each RenewInterval, writing the durable
// checkpoint in the same conditional write when it moved. A lease whose
// renewal finds another owner is lost at once; one that cannot be renewed
// for the failover time (DynamoDB unreachable) is given up too, because by
// then another worker may rightly have taken it.
func (c *Consumer) renewLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.renewRound(ctx)
	}
}

// renewDeadline bounds one renewal round. Renewals run concurrently under
// this one deadline, never one timeout after another, so a slow table
// cannot stretch a round: a round that starts one interval after the last
// successful renewal ends before the failover time has passed since it.
func (c *Consumer) renewDeadline() time.Duration {
	return c.cfg.FailoverTime - c.cfg.RenewInterval
}

// renewRound renews every held lease concurrently, with at most
// renewParallelism in flight and one deadline for the round.
func (c *Consumer) renewRound(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.renewDeadline())
	defer cancel()
	sem := make(chan struct{}, renewParallelism)
	var wg sync.WaitGroup
	for _, r := range c.snapshot() {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r.renew(ctx)
		})
	}
	wg.Wait()
}

func (c *Consumer) snapshot() []*shardRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	runs := make([]*shardRun, 0, len(c.held))
	for _, r := range c.held {
		runs = append(runs, r)
	}
	return runs
}

// takeLoop scans the lease table, judges expiry, and takes or steals
// leases. It runs at once, then every RenewInterval, and also wakes exactly
// when the earliest watched lease would expire, so a dead worker's leases
// move within the failover time plus one interval.
func (c *Consumer) takeLoop(ctx context.Context) {
	tracker := newExpiryTracker(c.cfg.FailoverTime)
	for {
		next := c.takeRound(ctx, tracker)
		wait := c.cfg.RenewInterval
		if !next.IsZero() {
			if d := time.Until(next) + 10*time.Millisecond; d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

// takeRound runs one round of the taker and returns the earliest time a
// live lease of another worker could expire.
func (c *Consumer) takeRound(ctx context.Context, tracker *expiryTracker) time.Time {
	leases, err := c.table.list(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("lease scan failed", "err", err)
		}
		return time.Time{}
	}
	now := time.Now()
	mine := make([]lease, 0, len(leases))
	for i := range leases {
		if _, _, ok := c.streamOf(&leases[i]); ok && !leases[i].finished() {
			mine = append(mine, leases[i])
		}
	}
	expired, next := tracker.observe(mine, now)

	c.mu.Lock()
	held := make(map[string]bool, len(c.held))
	for k := range c.held {
		held[k] = true
	}
	c.mu.Unlock()

	byKey := make(map[string]*lease, len(mine))
	views := make([]leaseView, 0, len(mine))
	for i := range mine {
		l := &mine[i]
		byKey[l.key] = l
		views = append(views, leaseView{key: l.key, owner: l.owner, expired: expired[l.key]})
		if held[l.key] && l.owner != "" && l.actualOwner() != c.cfg.WorkerID {
			// Taken from under us: stop processing before the renewer notices.
			if r := c.heldRun(l.key); r != nil {
				r.lose("owner is now " + l.owner)
			}
		}
	}
	p := planTakes(c.cfg.WorkerID, views, held, c.cfg.MaxLeasesPerWorker, c.cfg.MaxLeasesToStealAtOnce, c.rng)
	for _, key := range p.take {
		c.takeLease(ctx, *byKey[key], false)
	}
	for _, key := range p.steal {
		c.takeLease(ctx, *byKey[key], true)
	}
	return next
}

func (c *Consumer) heldRun(key string) *shardRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[key]
}

// takeLease takes l with a write conditional on the owner and counter seen
// in the scan, and starts processing it.
func (c *Consumer) takeLease(ctx context.Context, l lease, steal bool) {
	if ctx.Err() != nil {
		return
	}
	prev := l.owner
	if err := c.table.take(ctx, &l, c.cfg.WorkerID); err != nil {
		if !errors.Is(err, errConflict) && ctx.Err() == nil {
			c.log.Warn("take lease failed", "lease", l.key, "err", err)
		}
		return
	}
	if steal {
		c.m.leasesStolen.Inc()
	}
	c.log.Info("lease taken", "lease", l.key, "from", prev, "steal", steal, "checkpoint", l.checkpoint.Sequence)
	c.startRun(l)
}

// startRun starts processing a lease this worker now owns.
func (c *Consumer) startRun(l lease) {
	c.m.leasesGained.Inc()
	s, shardID, _ := c.streamOf(&l)
	r := newShardRun(c, s, shardID, l)
	c.mu.Lock()
	c.held[l.key] = r
	c.mu.Unlock()
	c.m.leasesHeld.Inc()
	go r.run()
}

// forget removes a finished shard run from the held set.
func (c *Consumer) forget(r *shardRun) {
	c.mu.Lock()
	if c.held[r.lease.key] == r {
		delete(c.held, r.lease.key)
	}
	c.mu.Unlock()
	c.dropFailure(r)
	c.m.leasesHeld.Dec()
	c.m.behind.DeleteLabelValues(r.s.cfg.Name, r.shardID)
	c.m.arrivalAge.DeleteLabelValues(r.s.cfg.Name, r.shardID)
}

// shardEnded wakes children waiting on a parent processed by this worker.
func (c *Consumer) shardEnded() {
	c.mu.Lock()
	close(c.ended)
	c.ended = make(chan struct{})
	c.mu.Unlock()
}

func (c *Consumer) endedChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// syncLoop discovers new shards every ShardSyncInterval.
func (c *Consumer) syncLoop(ctx context.Context) {
	for retry.Sleep(ctx, c.cfg.ShardSyncInterval) {
		for _, s := range c.streams {
			if err := c.syncShards(ctx, s); err != nil && ctx.Err() == nil {
				c.log.Warn("shard sync failed", "stream", s.cfg.Name, "err", err)
			}
		}
	}
}
