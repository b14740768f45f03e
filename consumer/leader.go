package consumer

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/streamscore/streamscore/consumer/assign"
	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/consumer/workerload"
	"github.com/streamscore/streamscore/internal/retry"
)

// leaderFailuresToResign is how many assignment rounds in a row may fail
// before the leader lets the lock go, so that a worker that cannot reach
// the table does not hold the fleet's assignments (Java's
// DEFAULT_FAILURE_COUNT_TO_SWITCH_LEADER).
const leaderFailuresToResign = 3

// reportsMissedForDead is how many metrics reports a worker may miss
// before the leader stops assigning it leases (Java's
// DEFAULT_NO_OF_SKIP_STAT_FOR_DEAD_WORKER_THRESHOLD, counted in this
// worker's MetricsInterval rather than Java's fixed 30 s so that shorter
// intervals notice a dead worker sooner).
const reportsMissedForDead = 2

// reporting reports whether s's worker counts as alive at now: it missed
// fewer than reportsMissedForDead reports. lut is in whole seconds, so a
// second more is allowed for its truncation.
func (c *Consumer) reporting(s coordstate.WorkerMetricStats, now time.Time) bool {
	return now.Sub(s.LastUpdate) <= reportsMissedForDead*c.cfg.KCL3.MetricsInterval+time.Second
}

// leaderState is what the leader remembers between rounds; it starts
// empty on every change of leader, as Java's does, so nothing counts as
// expired in a new leader's first round.
type leaderState struct {
	tracker  *expiryTracker
	handoffs map[string]handoffSeen
	round    int
	failures int
	rng      *rand.Rand
	// leading is holdLock's answer: moves are written only while it holds.
	leading *atomic.Bool
	// moved is the round in which the leader last moved each lease.
	moved map[string]int
}

// handoffSeen is a hand-off in flight as the leader saw it first.
type handoffSeen struct {
	owner, checkpointOwner string
	// until is when the leader stops waiting for it and may move the
	// lease again: the hand-off timeout plus the failover time.
	until time.Time
}

// leaderLoop assigns the leases while this worker holds the leader lock
// (ClientVersion3X): a round every assignment interval. The lock is held
// by its own goroutine (holdLock), so a slow round never lets it lapse.
func (c *Consumer) leaderLoop(ctx context.Context) {
	var leading atomic.Bool
	resign := make(chan struct{}, 1)
	held := make(chan struct{})
	go func() {
		defer close(held)
		c.holdLock(ctx, &leading, resign)
	}()
	defer func() { <-held }()
	var st *leaderState
	for {
		switch on := leading.Load(); {
		case on && st == nil:
			st = &leaderState{
				tracker:  newExpiryTracker(c.cfg.FailoverTime),
				handoffs: map[string]handoffSeen{},
				rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
				leading:  &leading,
				moved:    map[string]int{},
			}
			c.log.Info("leading: assigning leases")
		case !on && st != nil:
			st = nil
			c.log.Info("no longer leading")
		}
		if st != nil {
			if err := c.assignRound(ctx, st); err != nil && ctx.Err() == nil {
				st.failures++
				c.log.Warn("lease assignment failed", "err", err, "failures_in_a_row", st.failures)
				if st.failures >= leaderFailuresToResign {
					leading.Store(false)
					select {
					case resign <- struct{}{}:
					default:
					}
					st = nil
				}
			} else {
				st.failures = 0
			}
		}
		if !retry.Sleep(ctx, c.cfg.KCL3.AssignmentInterval) {
			return
		}
	}
}

// holdLock asks for the leader lock every heartbeat period (taking it
// when it is free or its holder's lease has run out, renewing it while
// held) and publishes the answer in leading. A resignation releases the
// lock and leaves it to the others for one lock lease. On shutdown the
// lock is released so that another worker leads at once.
func (c *Consumer) holdLock(ctx context.Context, leading *atomic.Bool, resign <-chan struct{}) {
	release := func(ctx context.Context) {
		if err := c.k3.leader.Release(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("releasing the leader lock failed; another worker leads once its lease runs out", "err", err)
		}
	}
	defer func() {
		leading.Store(false)
		c.m.leader.Set(0)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FailoverTime)
		defer cancel()
		release(rctx)
	}()
	var pausedUntil time.Time
	for {
		if time.Now().After(pausedUntil) {
			ok, err := c.k3.leader.IsLeader(ctx)
			if err != nil && ctx.Err() == nil {
				c.log.Warn("leader lock check failed", "err", err)
			}
			leading.Store(ok)
			c.m.leader.Set(boolGauge(ok))
		}
		t := time.NewTimer(c.cfg.KCL3.Leader.Heartbeat)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-resign:
			t.Stop()
			release(ctx)
			leading.Store(false)
			c.m.leader.Set(0)
			pausedUntil = time.Now().Add(c.cfg.KCL3.Leader.LeaseDuration)
		case <-t.C:
		}
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// assignRound is one round of the leader: read every lease and every
// worker's metrics, judge expiry, decide, and write the moves.
func (c *Consumer) assignRound(ctx context.Context, st *leaderState) error {
	all, err := c.table.list(ctx)
	if err != nil {
		return err
	}
	stats, err := c.k3.metrics.List(ctx)
	if err != nil {
		if len(stats) == 0 {
			return err
		}
		// Items that do not decode are named in err; the others are good.
		c.log.Warn("worker metrics items unreadable; their workers get no leases", "err", err)
	}
	now := time.Now()
	leases := make([]lease, 0, len(all))
	for i := range all {
		if _, _, ok := c.streamOf(&all[i]); ok && !all[i].finished() {
			leases = append(leases, all[i])
		}
	}
	expired, _ := st.tracker.observe(leases, now)

	var workers []assign.Worker
	for _, s := range stats {
		if s.Stale(now) {
			if err := c.k3.metrics.DeleteStale(ctx, s); err != nil {
				c.log.Warn("deleting a stale worker metrics item failed", "worker", s.WorkerID, "err", err)
			}
			continue
		}
		if !c.reporting(s, now) || !s.Valid() || s.Failing() {
			continue
		}
		w := assign.Worker{ID: s.WorkerID}
		if !s.DefaultMetric() {
			w.Metrics = map[string]assign.Metric{}
			for name, values := range s.Stats {
				v, ok := workerload.EMA(values, workerload.DefaultEMAAlpha)
				r := s.OperatingRange[name]
				if !ok || len(r) == 0 {
					continue
				}
				w.Metrics[name] = assign.Metric{Value: v, Max: r[0]}
			}
		}
		workers = append(workers, w)
	}
	if len(workers) == 0 {
		return nil
	}

	in := make([]assign.Lease, len(leases))
	inHandoff := make(map[string]bool)
	for i := range leases {
		l := &leases[i]
		in[i] = assign.Lease{
			Key:             l.key,
			Owner:           l.owner,
			CheckpointOwner: l.checkpointOwner,
			ThroughputKBps:  l.throughput,
			HasThroughput:   l.hasThroughput,
			Expired:         expired[l.key] || l.actualOwner() == "",
		}
		if l.actualOwner() != "" {
			// Unassigned leases (0) go first, then the longest expired.
			in[i].LastCounterIncrement = st.tracker.since(l.key).UnixNano()
		}
		if l.checkpointOwner == "" {
			continue
		}
		inHandoff[l.key] = true
		h, seen := st.handoffs[l.key]
		if !seen || h.owner != l.owner || h.checkpointOwner != l.checkpointOwner {
			h = handoffSeen{owner: l.owner, checkpointOwner: l.checkpointOwner, until: now.Add(c.cfg.KCL3.HandoffTimeout + c.cfg.FailoverTime)}
			st.handoffs[l.key] = h
		}
		in[i].HandoffBlocked = now.Before(h.until) && !in[i].Expired
	}
	for i := range in {
		// A lease that moved sits out the next balancing round: its new
		// owner must first measure it. Read as it catches up after the
		// move, its throughput looks higher than it is, and on a loaded
		// fleet the leader chased those bursts from worker to worker
		// without settling. Java has no such rule; an expired lease is
		// assigned all the same.
		if r, ok := st.moved[in[i].Key]; ok && st.round-r <= c.cfg.KCL3.BalanceEvery && !in[i].Expired {
			in[i].HandoffBlocked = true
		}
	}
	for k, r := range st.moved {
		if st.round-r > c.cfg.KCL3.BalanceEvery {
			delete(st.moved, k)
		}
	}
	for k := range st.handoffs {
		if !inHandoff[k] {
			delete(st.handoffs, k)
		}
	}
	balance := st.round%c.cfg.KCL3.BalanceEvery == 0
	round := st.round
	st.round++
	moves, err := assign.Decide(c.cfg.KCL3.Assign, in, workers, balance, st.rng)
	if err != nil {
		return err
	}
	byKey := make(map[string]*lease, len(leases))
	for i := range leases {
		byKey[leases[i].key] = &leases[i]
	}
	for _, m := range moves {
		if ctx.Err() != nil || !st.leading.Load() {
			// Stopped, or the lock went to another worker mid-round: its
			// rounds decide from here.
			return nil
		}
		if c.writeMove(ctx, st, byKey[m.Key], m, now) {
			st.moved[m.Key] = round
		}
	}
	return nil
}

// writeMove writes one of the leader's decisions: a graceful hand-off when
// the lease is alive and held, else an assignment at once.
func (c *Consumer) writeMove(ctx context.Context, st *leaderState, l *lease, m assign.Move, now time.Time) bool {
	w := leaderWrite{key: l.key, owner: l.owner, checkpointOwner: l.checkpointOwner}
	graceful := !c.cfg.KCL3.DisableGracefulHandoff && !m.Expired && l.owner != "" && l.checkpointOwner == ""
	var err error
	kind := "assign"
	if graceful {
		kind = "handoff"
		if err = c.table.initiateHandoff(ctx, w, m.To); err == nil {
			st.handoffs[l.key] = handoffSeen{owner: m.To, checkpointOwner: l.owner, until: now.Add(c.cfg.KCL3.HandoffTimeout + c.cfg.FailoverTime)}
		}
	} else {
		err = c.table.assignTo(ctx, w, m.To)
	}
	if err != nil {
		c.m.assignments.WithLabelValues("failed").Inc()
		if !errors.Is(err, errConflict) && ctx.Err() == nil {
			c.log.Warn("lease assignment write failed", "lease", l.key, "to", m.To, "err", err)
		}
		return false
	}
	c.m.assignments.WithLabelValues(kind).Inc()
	c.log.Info("lease assigned by the leader", "lease", l.key, "from", m.From, "to", m.To, "graceful", graceful, "expired", m.Expired)
	return true
}
