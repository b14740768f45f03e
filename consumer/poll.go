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

// backoff is the shared backoff (internal/retry) with equal jitter, under
// the names the shard's loops use: every wait is at least half its
// interval, so a retry paced to spare a failing service stays slow.
type backoff struct{ retry.Backoff }

func newBackoff(base, limit time.Duration) *backoff {
	return &backoff{retry.Backoff{Policy: retry.Policy{Base: base, Cap: limit, Jitter: retry.EqualJitter}}}
}

func (b *backoff) reset() { b.Reset() }

// next returns the interval the next wait is drawn from (its upper
// bound), without waiting.
func (b *backoff) next() time.Duration { return b.Next() }

// wait sleeps for the next jittered interval; false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool { return b.Wait(ctx) }

// failing reports whether the backoff has waited since its last reset.
func (b *backoff) failing() bool { return b.Attempt() > 0 }

// latestSkew is how far before the moment a LATEST iterator was obtained
// the consumer goes back when it must re-create that iterator (it expired
// before the first record was read). AT_TIMESTAMP compares with Kinesis'
// arrival times, on the service's clock: the margin covers the difference
// between the clocks, so a record written after the start is never
// skipped; the price is that records up to this much older may be
// delivered too, which a LATEST start (whose boundary is fuzzy anyway)
// allows.
const latestSkew = 5 * time.Second

// origin is where a shard's reading began before any record was read:
// the lease's checkpoint, with LATEST resolved to the moment its first
// iterator was obtained, so that a second iterator (after an expiry or a
// restart) starts where the first did and not at a later tip.
type origin struct {
	pos shardpos.Position // TrimHorizon, Latest, AtTimestamp or a sequence number
	at  time.Time         // the timestamp for AtTimestamp
}

// resolveLatest turns a LATEST origin into AT_TIMESTAMP of when the first
// LATEST iterator was asked for, less latestSkew.
func (o *origin) resolveLatest(asked time.Time) {
	if o.pos.Sequence == Latest {
		*o = origin{pos: shardpos.Position{Sequence: AtTimestamp}, at: asked.Add(-latestSkew)}
	}
}

// poller reads a shard with GetShardIterator and GetRecords.
type poller struct {
	c       *Consumer
	r       *shardRun
	s       *stream
	shardID string
	start   origin // where to start before any record was read
	after   string // sequence number of the last Kinesis record read
	iter    *string
	idle    bool // the last read was caught up: pause before the next
	// empty: the last read returned no records. Only then is a heartbeat
	// due: after records, the shard is read again first, however long
	// the processor took with them, since more may have come meanwhile.
	empty   bool
	backoff *backoff
	// fatal paces retries after errors that need an operator (slowly).
	fatal *backoff
	// failing counts retryable errors in a row, to warn once per run.
	failing int
	// expired counts expired iterators in a row: a second one without a
	// successful read in between waits like any other retry.
	expired int
	// quietSince is when next last returned; an idle shard returns an
	// empty heartbeat result once IdleHeartbeat has passed since.
	quietSince time.Time
}

func newPoller(r *shardRun, start origin, after string) *poller {
	c := r.c
	return &poller{c: c, r: r, s: r.s, shardID: r.shardID, start: start, after: after,
		backoff: newBackoff(c.cfg.IdleInterval, 5*time.Second),
		fatal:   newBackoff(c.cfg.FailureBackoff, c.cfg.MaxFailureBackoff)}
}

func (p *poller) close() {}

// iterator gets an iterator after the last record read or, before any was
// read, at the start. Records at a start sequence number are filtered by
// the caller against the checkpoint's sub-sequence number.
func (p *poller) iterator(ctx context.Context) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: &p.s.cfg.Name, ShardId: &p.shardID}
	switch {
	case p.after != "":
		// Never LATEST once anything was read: that would skip whatever
		// arrived since.
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = &p.after
	case p.start.pos.Sequence == TrimHorizon || p.start.pos.Sequence == "":
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case p.start.pos.Sequence == Latest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	case p.start.pos.Sequence == AtTimestamp:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		ts := p.start.at
		in.Timestamp = &ts
	default:
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = &p.start.pos.Sequence
	}
	asked := time.Now()
	out, err := p.c.kin.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("get shard iterator %s/%s (%s): %w", p.s.cfg.Name, p.shardID, in.ShardIteratorType, err)
	}
	if in.ShardIteratorType == types.ShardIteratorTypeLatest {
		p.start.resolveLatest(asked)
		p.r.origin = p.start
	}
	return out.ShardIterator, nil
}

// next returns the next non-empty read, the end of the shard, or an error
// when ctx ends. Throttling and transient errors are retried here with
// jittered backoff; an expired iterator is replaced after the last record
// read (or at the resolved start); errors that need an operator mark the
// shard failed and are retried slowly until they stop.
func (p *poller) next(ctx context.Context) (fetchResult, error) {
	if p.quietSince.IsZero() {
		p.quietSince = time.Now()
	}
	for {
		if hb := p.c.cfg.IdleHeartbeat; hb > 0 && p.empty && time.Since(p.quietSince) >= hb {
			p.quietSince = time.Now()
			return fetchResult{heartbeat: true}, nil
		}
		if p.idle && !retry.Sleep(ctx, p.c.cfg.IdleInterval) {
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
			if retry.Classify(err) == retry.Expired {
				p.iter = nil
				p.expired++
				if p.expired > 1 {
					p.backoff.wait(ctx)
				}
				continue
			}
			p.retry(ctx, err)
			continue
		}
		p.recovered()
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
		p.empty = len(out.Records) == 0
		if len(out.Records) > 0 {
			p.quietSince = time.Now()
			return res, nil
		}
	}
}

// recovered resets the retry state after a successful read.
func (p *poller) recovered() {
	p.backoff.reset()
	p.expired = 0
	if p.failing > 0 {
		p.c.log.Info("reads recovered", "stream", p.s.cfg.Name, "shard", p.shardID, "failures", p.failing)
		p.failing = 0
	}
	if p.fatal.failing() {
		p.fatal.reset()
		p.c.clearFailed(p.r, FailureRead)
	}
}

// retry classifies a read error, counts it, and waits before the next
// attempt: briefly for throttling and transient errors, slowly (with the
// shard marked failed) for errors that need an operator.
func (p *poller) retry(ctx context.Context, err error) {
	if isFatalReadError(err) {
		p.c.markFailed(p.r, FailureRead, err, p.fatal.next())
		p.fatal.wait(ctx)
		return
	}
	if retry.Classify(err) == retry.Throttled {
		p.c.m.throttles.WithLabelValues(p.s.cfg.Name).Inc()
	} else if p.failing++; p.failing == 1 {
		p.c.log.Warn("read failed; retrying", "stream", p.s.cfg.Name, "shard", p.shardID, "err", err)
	}
	p.backoff.wait(ctx)
}

// isFatalReadError reports whether a GetShardIterator, GetRecords or
// SubscribeToShard error needs an operator rather than time: the shared
// classifier's permanent classes (access denied, credentials refused, the
// stream or consumer missing, a KMS key disabled or out of reach, an
// invalid argument). A read cannot be dead-lettered, so a request Kinesis
// refuses as invalid stops the shard like a refused permission does.
// Everything else (throttling, 5xx, connection resets, timeouts, expired
// iterators) is retried at the normal pace.
func isFatalReadError(err error) bool { return retry.Classify(err).Permanent() }
