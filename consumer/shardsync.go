package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// listShards returns every shard of the stream, following NextToken.
func (c *Consumer) listShards(ctx context.Context, s *stream) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: &s.cfg.Name}
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		out, err := c.kin.ListShards(ctx, in)
		if err != nil {
			var le *types.LimitExceededException
			if errors.As(err, &le) && backoff.wait(ctx) {
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
	for _, sh := range shards {
		id := deref(sh.ShardId)
		key := s.leaseKey(id)
		if exists[key] {
			continue
		}
		closed := sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
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
	return nil
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
	l := lease{key: s.leaseKey(shardID), checkpoint: Position{Sequence: start}, parents: parents}
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
