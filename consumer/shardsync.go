package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/internal/retry"
	"github.com/streamscore/streamscore/shardpos"
)

// listShards returns every shard of the stream, following NextToken.
func (c *Consumer) listShards(ctx context.Context, s *stream) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: &s.cfg.Name}
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		out, err := c.kin.ListShards(ctx, in)
		if err != nil {
			if retry.Classify(err) == retry.Throttled && backoff.wait(ctx) {
				continue
			}
			return nil, fmt.Errorf("list shards of %s: %w", s.cfg.Name, err)
		}
		backoff.reset()
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		// With a NextToken, the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// syncShards creates leases for shards that have none.
//
// On a stream with no leases yet, every shard gets a lease at the
// configured initial position; with LATEST, closed shards get none (there
// is nothing after "latest" in them) and their open children start at
// LATEST. Shards discovered later are new, so they start at TRIM_HORIZON
// and wait for their parents. Creation is conditional, so workers racing
// here agree.
//
// A closed shard without a lease whose children have leases is not given
// one: it was read to its end and its lease cleaned up, or it was skipped
// by a LATEST start. A lease now would read it again from TRIM_HORIZON.
//
// After the sync, finished leases no longer needed are deleted
// (cleanupLeases).
func (c *Consumer) syncShards(ctx context.Context, s *stream) error {
	shards, err := c.listShards(ctx, s)
	if err != nil {
		return err
	}
	leases, err := c.table.list(ctx)
	if err != nil {
		return err
	}
	exists := make(map[string]bool, len(leases))
	initial := true
	for i := range leases {
		exists[leases[i].key] = true
		if st, _, ok := c.streamOf(&leases[i]); ok && st == s {
			initial = false
		}
	}
	children := childrenOf(shards)
	leased := func(ids []string) bool {
		for _, id := range ids {
			if exists[s.leaseKey(id)] {
				return true
			}
		}
		return false
	}
	for _, sh := range shards {
		id := deref(sh.ShardId)
		key := s.leaseKey(id)
		if exists[key] {
			continue
		}
		closed := sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
		if !initial && closed && leased(children[id]) {
			continue
		}
		start := TrimHorizon
		if initial {
			start = s.cfg.InitialPosition
			if start == Latest && closed {
				continue
			}
		}
		l := c.newLease(s, id, start, parentsOf(deref(sh.ParentShardId), deref(sh.AdjacentParentShardId)), sh.HashKeyRange)
		created, err := c.table.create(ctx, l)
		if err != nil {
			return err
		}
		if created {
			c.log.Info("lease created", "lease", key, "checkpoint", start, "parents", l.parents)
		}
	}
	return c.cleanupLeases(ctx, s, shards, children, leases, exists)
}

// childrenOf maps each shard id to the shards that name it as parent or
// adjacent parent.
func childrenOf(shards []types.Shard) map[string][]string {
	out := map[string][]string{}
	for _, sh := range shards {
		for _, p := range parentsOf(deref(sh.ParentShardId), deref(sh.AdjacentParentShardId)) {
			out[p] = append(out[p], deref(sh.ShardId))
		}
	}
	return out
}

// cleanupLeases deletes the leases of s's shards that were read to their
// end and are no longer needed: every child shard has a lease (children
// wait for a parent only while its lease says it is unfinished, and a
// missing parent counts as finished), or the shard has aged out of the
// stream. A lease is deleted only after it has been seen eligible for
// CompletedLeaseRetention, so a shard sync that listed the table before
// the children's leases existed cannot race the deletion, and operators
// see SHARD_END for a while.
func (c *Consumer) cleanupLeases(ctx context.Context, s *stream, shards []types.Shard, children map[string][]string, leases []lease, exists map[string]bool) error {
	if c.cfg.CompletedLeaseRetention < 0 {
		return nil
	}
	listed := make(map[string]bool, len(shards))
	for _, sh := range shards {
		listed[deref(sh.ShardId)] = true
	}
	now := time.Now()
	c.cleanupMu.Lock()
	defer c.cleanupMu.Unlock()
	if c.cleanup == nil {
		c.cleanup = map[string]time.Time{}
	}
	byKey := make(map[string]*lease, len(leases))
	for i := range leases {
		byKey[leases[i].key] = &leases[i]
	}
	for i := range leases {
		l := &leases[i]
		st, id, ok := c.streamOf(l)
		if !ok || st != s {
			continue
		}
		eligible := l.finished() && (!listed[id] || allLeased(s, children[id], exists))
		// A tail stays until every child is past its beginning: a child
		// that fails over before then replays the tail again.
		if eligible && listed[id] && isSequenceNumber(l.tail.Sequence) && !childrenStarted(s, children[id], byKey) {
			eligible = false
		}
		if !eligible {
			delete(c.cleanup, l.key)
			continue
		}
		first, seen := c.cleanup[l.key]
		if !seen {
			c.cleanup[l.key] = now
			continue
		}
		if now.Sub(first) < c.cfg.CompletedLeaseRetention {
			continue
		}
		deleted, err := c.table.deleteFinished(ctx, l.key)
		if err != nil {
			return err
		}
		delete(c.cleanup, l.key)
		if deleted {
			c.m.leasesCleaned.Inc()
			c.log.Info("finished lease deleted", "lease", l.key, "children", children[id], "in_stream", listed[id])
		}
	}
	return nil
}

// allLeased reports whether ids is not empty and every shard in it has a
// lease.
func allLeased(s *stream, ids []string, exists map[string]bool) bool {
	for _, id := range ids {
		if !exists[s.leaseKey(id)] {
			return false
		}
	}
	return len(ids) > 0
}

// createChildLeases makes sure the children named by GetRecords or
// SubscribeToShard at a shard's end have leases, so they need not wait for
// the next ListShards.
func (c *Consumer) createChildLeases(ctx context.Context, s *stream, children []types.ChildShard) error {
	for _, ch := range children {
		l := c.newLease(s, deref(ch.ShardId), TrimHorizon, ch.ParentShards, ch.HashKeyRange)
		if _, err := c.table.create(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

func (c *Consumer) newLease(s *stream, shardID, start string, parents []string, hr *types.HashKeyRange) lease {
	l := lease{key: s.leaseKey(shardID), checkpoint: shardpos.Position{Sequence: start}, parents: parents}
	if hr != nil {
		l.startHash, l.endHash = deref(hr.StartingHashKey), deref(hr.EndingHashKey)
	}
	if s.id != "" {
		l.streamID, l.shardID = s.id, shardID
	}
	return l
}

func parentsOf(ids ...string) []string {
	var out []string
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}
