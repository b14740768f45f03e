package consumer

import (
	"slices"
	"strings"
	"time"
)

// FailureKind says what stopped a held shard.
type FailureKind string

const (
	// FailureRead: Kinesis refused to read the shard with an error that
	// time alone does not fix (access denied, stream or shard not found,
	// invalid argument, a KMS key disabled or not accessible).
	FailureRead FailureKind = "read"
	// FailureHandler: the processor returned an error for one of the shard's
	// batches.
	FailureHandler FailureKind = "handler"
)

// ShardFailure describes a shard this worker holds but does not process
// for now. The shard keeps its lease (no other worker would fare better
// with the same IAM role or the same processor) and is retried with
// exponential backoff (Config.FailureBackoff to MaxFailureBackoff), so
// fixing the cause recovers it without a restart.
type ShardFailure struct {
	Stream, ShardID string
	Kind            FailureKind
	// Err is the latest cause.
	Err error
	// Since is when the shard first failed in this run of failures.
	Since time.Time
	// Failures counts the failures in a row.
	Failures int
}

// Unhealthy returns the shards currently failed on this worker, sorted by
// stream and shard; empty when every held shard is processing. Readiness
// checks should fail while it is not empty.
func (c *Consumer) Unhealthy() []ShardFailure {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	out := make([]ShardFailure, 0, len(c.failures))
	for _, f := range c.failures {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b ShardFailure) int {
		if n := strings.Compare(a.Stream, b.Stream); n != 0 {
			return n
		}
		return strings.Compare(a.ShardID, b.ShardID)
	})
	return out
}

// markFailed records a failure of r's shard, counts it, and logs the first
// of a run of failures once, with its cause.
func (c *Consumer) markFailed(r *shardRun, kind FailureKind, err error, retryIn time.Duration) {
	c.m.shardFailures.WithLabelValues(r.s.cfg.Name, string(kind)).Inc()
	c.failMu.Lock()
	f, ok := c.failures[r.lease.key]
	if !ok || f.Kind != kind {
		f = &ShardFailure{Stream: r.s.cfg.Name, ShardID: r.shardID, Kind: kind, Since: time.Now()}
		c.failures[r.lease.key] = f
		ok = false
	}
	f.Err = err
	f.Failures++
	n := len(c.failures)
	c.failMu.Unlock()
	c.m.failedShards.Set(float64(n))
	if !ok {
		c.log.Error("shard failed; keeping its lease and retrying with backoff", "stream", r.s.cfg.Name, "shard", r.shardID,
			"kind", string(kind), "retry_in", retryIn.Round(time.Millisecond), "err", err)
	} else {
		c.log.Debug("shard still failing", "stream", r.s.cfg.Name, "shard", r.shardID, "kind", string(kind),
			"failures", f.Failures, "retry_in", retryIn.Round(time.Millisecond), "err", err)
	}
}

// clearFailed ends a run of failures of the given kind on r's shard.
func (c *Consumer) clearFailed(r *shardRun, kind FailureKind) {
	c.failMu.Lock()
	f, ok := c.failures[r.lease.key]
	if ok && f.Kind == kind {
		delete(c.failures, r.lease.key)
	}
	n := len(c.failures)
	c.failMu.Unlock()
	if ok && f.Kind == kind {
		c.m.failedShards.Set(float64(n))
		c.log.Info("shard recovered", "stream", r.s.cfg.Name, "shard", r.shardID, "kind", string(kind),
			"failures", f.Failures, "failed_for", time.Since(f.Since).Round(time.Millisecond))
	}
}

// dropFailure forgets any failure of a shard that left this worker.
func (c *Consumer) dropFailure(r *shardRun) {
	c.failMu.Lock()
	delete(c.failures, r.lease.key)
	n := len(c.failures)
	c.failMu.Unlock()
	c.m.failedShards.Set(float64(n))
}
