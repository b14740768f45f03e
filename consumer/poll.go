package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// fetchResult is one read from a shard, by polling or by fan-out.
type fetchResult struct {
	records      []types.Record
	millisBehind int64
	children     []types.ChildShard
	end          bool // the shard is closed and fully read
	heartbeat    bool // nothing arrived for IdleHeartbeat: an empty result
}

// fetcher reads a shard from a start position onwards.
type fetcher interface {
	next(ctx context.Context) (fetchResult, error)
	close()
}

// backoff is capped exponential backoff with full jitter.
type backoff struct {
	base, cap, cur time.Duration
}

func newBackoff(base, limit time.Duration) *backoff { return &backoff{base: base, cap: limit} }

func (b *backoff) reset() { b.cur = 0 }

// wait sleeps for the next jittered interval; false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur = min(2*b.cur, b.cap)
	}
	return sleep(ctx, b.cur/2+rand.N(b.cur/2+1))
}

// poller reads a shard with GetShardIterator and GetRecords.
type poller struct {
	c       *Consumer
	s       *stream
	shardID string
	start   Position // where to start before any record was read
	after   string   // sequence number of the last Kinesis record read
	iter    *string
	idle    bool // the last read was caught up: pause before the next
	backoff *backoff
	// quietSince is when next last returned; an idle shard returns an
	// empty heartbeat result once IdleHeartbeat has passed since.
	quietSince time.Time
}

func newPoller(c *Consumer, s *stream, shardID string, start Position, after string) *poller {
	return &poller{c: c, s: s, shardID: shardID, start: start, after: after,
		backoff: newBackoff(c.cfg.IdleInterval, 5*time.Second)}
}

func (p *poller) close() {}

// iterator gets an iterator at the last record read, or at the start.
// Records at a start sequence number are filtered by the caller against
// the checkpoint's sub-sequence number.
func (p *poller) iterator(ctx context.Context) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: &p.s.cfg.Name, ShardId: &p.shardID}
	switch {
	case p.after != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = &p.after
	case p.start.Sequence == TrimHorizon || p.start.Sequence == "":
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case p.start.Sequence == Latest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	case p.start.Sequence == AtTimestamp:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		ts := p.s.cfg.InitialTimestamp
		in.Timestamp = &ts
	default:
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = &p.start.Sequence
	}
	out, err := p.c.kin.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("get shard iterator %s/%s (%s): %w", p.s.cfg.Name, p.shardID, in.ShardIteratorType, err)
	}
	return out.ShardIterator, nil
}

// next returns the next non-empty read, the end of the shard, or an error
// when ctx ends. Throttling and transient errors are retried here with
// jittered backoff; an expired iterator is replaced from the last record
// read.
func (p *poller) next(ctx context.Context) (fetchResult, error) {
	if p.quietSince.IsZero() {
		p.quietSince = time.Now()
	}
	for {
		if hb := p.c.cfg.IdleHeartbeat; hb > 0 && p.idle && time.Since(p.quietSince) >= hb {
			p.quietSince = time.Now()
			return fetchResult{heartbeat: true}, nil
		}
		if p.idle && !sleep(ctx, p.c.cfg.IdleInterval) {
			return fetchResult{}, ctx.Err()
		}
		p.idle = false
		if p.iter == nil {
			it, err := p.iterator(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return fetchResult{}, ctx.Err()
				}
				p.retry(ctx, err)
				continue
			}
			p.iter = it
		}
		out, err := p.c.kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: p.iter, Limit: &p.c.cfg.MaxRecords})
		if err != nil {
			if ctx.Err() != nil {
				return fetchResult{}, ctx.Err()
			}
			var expired *types.ExpiredIteratorException
			if errors.As(err, &expired) {
				p.iter = nil
				continue
			}
			p.retry(ctx, err)
			continue
		}
		p.backoff.reset()
		res := fetchResult{records: out.Records, children: out.ChildShards}
		if out.MillisBehindLatest != nil {
			res.millisBehind = *out.MillisBehindLatest
		}
		if n := len(out.Records); n > 0 {
			p.after = deref(out.Records[n-1].SequenceNumber)
		}
		p.iter = out.NextShardIterator
		if p.iter == nil {
			res.end = true
			return res, nil
		}
		p.idle = len(out.Records) == 0 || res.millisBehind == 0
		if len(out.Records) > 0 {
			p.quietSince = time.Now()
			return res, nil
		}
	}
}

// retry counts throttles and waits before the next attempt.
func (p *poller) retry(ctx context.Context, err error) {
	var pte *types.ProvisionedThroughputExceededException
	var kte *types.KMSThrottlingException
	if errors.As(err, &pte) || errors.As(err, &kte) {
		p.c.m.throttles.WithLabelValues(p.s.cfg.Name).Inc()
	} else {
		p.c.log.Warn("read failed; retrying", "stream", p.s.cfg.Name, "shard", p.shardID, "err", err)
	}
	p.backoff.wait(ctx)
}
