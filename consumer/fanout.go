package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/streamscore/streamscore/internal/retry"
)

// ownEventStreamCodec gives one SubscribeToShard call its own protocol
// instance. The SDK's protocol keeps event-stream decoding scratch state in
// a codec shared by every call on a client, unsynchronized (smithy-go issue
// 714), so concurrent subscriptions on one client are a data race.
func ownEventStreamCodec(o *kinesis.Options) {
	o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
}

// registerFanOut registers the enhanced fan-out consumer
// (FanOutConsumerName) on the stream, or finds it registered, and waits
// until it is ACTIVE.
func (c *Consumer) registerFanOut(ctx context.Context, s *stream) (string, error) {
	name := c.cfg.FanOutConsumerName
	_, err := c.kin.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: &s.arn, ConsumerName: &name})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return "", fmt.Errorf("register fan-out consumer %s on %s: %w", name, s.cfg.Name, err)
	}
	for {
		out, err := c.kin.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: &s.arn, ConsumerName: &name})
		if err != nil {
			return "", fmt.Errorf("describe fan-out consumer %s on %s: %w", name, s.cfg.Name, err)
		}
		d := out.ConsumerDescription
		if d.ConsumerStatus == types.ConsumerStatusActive {
			return deref(d.ConsumerARN), nil
		}
		if !retry.Sleep(ctx, 200*time.Millisecond) {
			return "", ctx.Err()
		}
	}
}

// maxSubscribeFailures is how many subscriptions in a row may fail before
// the shard falls back to polling.
const maxSubscribeFailures = 3

// subscriber reads a shard through SubscribeToShard, renewing the
// subscription from the continuation sequence number before Kinesis ends it
// at 5 minutes, and falling back to polling when subscriptions keep failing.
type subscriber struct {
	c        *Consumer
	r        *shardRun
	s        *stream
	shardID  string
	start    origin
	cont     string // continuation sequence number of the last event
	es       *kinesis.SubscribeToShardEventStream
	deadline time.Time
	failures int
	backoff  *backoff
	fallback *poller
}

func newSubscriber(r *shardRun, start origin) *subscriber {
	return &subscriber{c: r.c, r: r, s: r.s, shardID: r.shardID, start: start, backoff: newBackoff(200*time.Millisecond, 5*time.Second)}
}

func (f *subscriber) close() {
	if f.es != nil {
		_ = f.es.Close()
		f.es = nil
	}
}

func (f *subscriber) position() *types.StartingPosition {
	switch {
	case f.cont != "":
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: &f.cont}
	case f.start.pos.Sequence == TrimHorizon || f.start.pos.Sequence == "":
		return &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	case f.start.pos.Sequence == Latest:
		return &types.StartingPosition{Type: types.ShardIteratorTypeLatest}
	case f.start.pos.Sequence == AtTimestamp:
		ts := f.start.at
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: &ts}
	default:
		seq := f.start.pos.Sequence
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: &seq}
	}
}

func (f *subscriber) subscribe(ctx context.Context) error {
	pos := f.position()
	asked := time.Now()
	out, err := f.c.kin.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN:      &f.s.consumerARN,
		ShardId:          &f.shardID,
		StartingPosition: pos,
	}, ownEventStreamCodec)
	if err != nil {
		return fmt.Errorf("subscribe to %s/%s: %w", f.s.cfg.Name, f.shardID, err)
	}
	if pos.Type == types.ShardIteratorTypeLatest {
		// A resubscription before the first event (or the polling
		// fallback) must start where this one did, not at a later tip.
		f.start.resolveLatest(asked)
		f.r.origin = f.start
	}
	f.es = out.GetStream()
	f.deadline = time.Now().Add(f.c.cfg.SubscriptionLifetime)
	return nil
}

// fail counts a failed subscription; after too many in a row the shard
// switches to polling from the last position.
func (f *subscriber) fail(ctx context.Context, err error) {
	f.close()
	var inUse *types.ResourceInUseException
	if errors.As(err, &inUse) {
		// The previous subscription (ours, or the previous owner's) is still
		// winding down: Kinesis refuses a new one for a few seconds. That is
		// not a failure of fan-out; wait and retry.
		f.c.log.Debug("previous subscription still active; retrying", "stream", f.s.cfg.Name, "shard", f.shardID)
		retry.Sleep(ctx, time.Second/2+rand.N(time.Second/2))
		return
	}
	f.failures++
	if retry.Classify(err) == retry.Throttled {
		f.c.m.throttles.WithLabelValues(f.s.cfg.Name).Inc()
	}
	if f.failures >= maxSubscribeFailures {
		f.c.log.Warn("fan-out failing; falling back to polling", "stream", f.s.cfg.Name, "shard", f.shardID, "err", err)
		f.fallback = newPoller(f.r, f.start, f.cont)
		return
	}
	f.c.log.Warn("fan-out subscription failed; resubscribing", "stream", f.s.cfg.Name, "shard", f.shardID, "err", err)
	f.backoff.wait(ctx)
}

func (f *subscriber) next(ctx context.Context) (fetchResult, error) {
	// A quiet shard still reports in every IdleHeartbeat (nil channel: never).
	var beat <-chan time.Time
	if hb := f.c.cfg.IdleHeartbeat; hb > 0 && f.fallback == nil {
		t := time.NewTimer(hb)
		defer t.Stop()
		beat = t.C
	}
	for {
		if f.fallback != nil {
			return f.fallback.next(ctx)
		}
		if ctx.Err() != nil {
			return fetchResult{}, ctx.Err()
		}
		if f.es == nil {
			if err := f.subscribe(ctx); err != nil {
				if ctx.Err() != nil {
					return fetchResult{}, ctx.Err()
				}
				f.fail(ctx, err)
				continue
			}
		}
		timer := time.NewTimer(time.Until(f.deadline))
		select {
		case <-beat:
			timer.Stop()
			return fetchResult{heartbeat: true}, nil
		case <-ctx.Done():
			timer.Stop()
			return fetchResult{}, ctx.Err()
		case <-timer.C:
			// Renew before Kinesis ends the subscription, from the
			// continuation sequence number.
			f.close()
			continue
		case ev, ok := <-f.es.Events():
			timer.Stop()
			if !ok {
				err := f.es.Err()
				f.close()
				if err != nil && ctx.Err() == nil {
					f.fail(ctx, err)
				}
				continue
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				continue
			}
			f.failures = 0
			f.backoff.reset()
			v := e.Value
			res := fetchResult{records: v.Records, children: v.ChildShards}
			if v.MillisBehindLatest != nil {
				res.millisBehind = *v.MillisBehindLatest
			}
			if v.ContinuationSequenceNumber == nil {
				res.end = true
				return res, nil
			}
			f.cont = *v.ContinuationSequenceNumber
			if len(v.Records) > 0 {
				return res, nil
			}
		}
	}
}
