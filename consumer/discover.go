package consumer

import (
	"context"
	"time"

	"github.com/streamscore/streamscore/consumer/assign"
	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/consumer/workerload"
	"github.com/streamscore/streamscore/internal/retry"
)

// discoverLoop starts the leases the leader assigned to this worker
// (ClientVersion3X): at once, then twice per assignment interval, as Java
// KCL 3.x's lease discoverer. A worker never takes a lease itself.
func (c *Consumer) discoverLoop(ctx context.Context) {
	for {
		if err := c.discoverRound(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("looking for assigned leases failed", "err", err)
		}
		if !retry.Sleep(ctx, c.cfg.KCL3.AssignmentInterval/2) {
			return
		}
	}
}

// discoverRound queries the lease-owner index for this worker's leases and
// starts those it does not process yet. The index is eventually
// consistent, so each new one is read again (consistently) and started
// only if it still names this worker and no hand-off to it is in flight:
// while checkpointOwner is set the old owner is still checkpointing.
func (c *Consumer) discoverRound(ctx context.Context) error {
	keys, err := coordstate.LeaseKeysOwnedBy(ctx, c.ddb, c.cfg.LeaseTable, c.cfg.WorkerID)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if ctx.Err() != nil {
			return nil
		}
		if c.heldRun(key) != nil {
			continue
		}
		l, ok, err := c.table.get(ctx, key)
		if err != nil {
			return err
		}
		if !ok || l.owner != c.cfg.WorkerID || l.checkpointOwner != "" || l.finished() {
			continue
		}
		if _, _, mine := c.streamOf(&l); !mine {
			continue
		}
		c.log.Info("lease assigned", "lease", l.key, "checkpoint", l.checkpoint.Sequence)
		c.startRun(l)
	}
	return nil
}

// reportLoop samples this worker's CPU and writes its metrics item, which
// is what makes the leader assign it leases: first after two samples, then
// every MetricsInterval. Without a readable CPU (or with
// DisableWorkerMetrics) the item carries no metric and the leader
// balances this worker on its throughput share.
func (c *Consumer) reportLoop(ctx context.Context) {
	k := &c.cfg.KCL3
	var sampler *workerload.Sampler
	if !k.DisableWorkerMetrics {
		src := k.CPU
		if src == nil {
			var err error
			if src, err = workerload.DetectCPU(workerload.Options{}); err != nil {
				c.log.Info("no CPU utilisation to report; the leader balances this worker on throughput", "err", err)
			}
		}
		if src != nil {
			sampler = workerload.NewSampler(src, k.SampleInterval, coordstate.DefaultPersistedMetricValues, c.log)
			go sampler.Run(ctx)
		}
	}
	// A ticker, not a sleep after each write: a slow write must not space
	// the reports out past the leader's limit for a live worker.
	if !retry.Sleep(ctx, 2*k.SampleInterval) {
		return
	}
	tick := time.NewTicker(k.MetricsInterval)
	defer tick.Stop()
	for {
		s := coordstate.WorkerMetricStats{
			WorkerID:       c.cfg.WorkerID,
			LastUpdate:     time.Now(),
			Stats:          map[string][]float64{},
			OperatingRange: map[string][]float64{},
		}
		if sampler != nil {
			s.Stats[assign.CPUMetric] = sampler.Flush()
			s.OperatingRange[assign.CPUMetric] = []float64{coordstate.DefaultMaxUtilization}
		}
		if err := c.k3.metrics.Put(ctx, s); err != nil && ctx.Err() == nil {
			c.log.Warn("writing worker metrics failed; the leader stops assigning to this worker after two missed reports", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
