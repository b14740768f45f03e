package loadtest

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/streamscore/streamscore/internal/retry"
)

// PutRecordsAPI is the part of the Kinesis client a Publisher uses.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// Kinesis PutRecords limits.
const (
	maxRecordsPerCall = 500
	maxBytesPerCall   = 5 << 20
	maxRecordBytes    = 1 << 20
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Stream string
	// Rate limits user records per second; 0 means as fast as the stream
	// takes them.
	Rate float64
	// Aggregate packs the user records of one partition key into KPL
	// aggregated records (magic 0xF3899AC2, protobuf, MD5), as the Kinesis
	// Producer Library does.
	Aggregate bool
	// MaxAttempts bounds the retries of records a PutRecords call failed
	// (throttled or internal errors). Default 20.
	MaxAttempts int
}

// Publisher sends events to a stream with PutRecords: up to 500 records and
// 5 MiB a call, retrying the records a call reports as failed with jittered
// exponential backoff, at a target rate.
type Publisher struct {
	cfg     PublisherConfig
	api     PutRecordsAPI
	limiter *rate.Limiter
	// shards are the open shards' hash key ranges, for aggregating the
	// records bound for one shard together as the KPL does.
	shards []shardRange

	// Counters, safe to read while publishing.
	Records, Bytes, Calls, Retries atomic.Int64
}

// NewPublisher returns a publisher for the stream.
func NewPublisher(api PutRecordsAPI, cfg PublisherConfig) *Publisher {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), max(int(cfg.Rate), maxRecordsPerCall))
	}
	return &Publisher{cfg: cfg, api: api, limiter: lim}
}

// Prepare lists the stream's shards (to aggregate per shard, and to tell
// the accounting where each key went). A run calls it before its clock
// starts; Start calls it too.
func (p *Publisher) Prepare(ctx context.Context) error {
	if p.shards == nil {
		return p.loadShards(ctx)
	}
	return nil
}

// Publish sends the events and returns when every one was accepted by the
// stream, or an error if some could not be after MaxAttempts. It is a
// Sender used once.
func (p *Publisher) Publish(ctx context.Context, events []Event) error {
	s, err := p.Start(ctx, func([]Event, time.Time) {})
	if err != nil {
		return err
	}
	s.Send(events)
	return s.Close()
}

// putAll sends request entries in calls of at most 500 records and 5 MiB,
// at the configured rate.
func (p *Publisher) putAll(ctx context.Context, entries []types.PutRecordsRequestEntry) error {
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < maxRecordsPerCall {
			s := len(entries[n].Data) + len(aws.ToString(entries[n].PartitionKey))
			if size+s > maxBytesPerCall {
				break
			}
			size += s
			n++
		}
		if err := p.limiter.WaitN(ctx, n); err != nil {
			return err
		}
		if err := p.put(ctx, entries[:n]); err != nil {
			return err
		}
		p.Records.Add(int64(n))
		p.Bytes.Add(int64(size))
		entries = entries[n:]
	}
	return nil
}

// put sends one batch, retrying only the records that failed. A call the
// stream refused for good (access denied, no such stream, an invalid
// request) fails at once: retrying it only delays the report.
func (p *Publisher) put(ctx context.Context, batch []types.PutRecordsRequestEntry) error {
	// Waits of 25-75 ms at first, doubling up to 1-3 s: 50 ms to 2 s, half
	// of it either way.
	b := retry.NewBackoff(retry.Policy{Base: 75 * time.Millisecond, Cap: 3 * time.Second, Jitter: 2.0 / 3})
	for attempt := 1; ; attempt++ {
		p.Calls.Add(1)
		out, err := p.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.cfg.Stream), Records: batch})
		var failed []types.PutRecordsRequestEntry
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return err
			}
			if retry.Classify(err).Permanent() {
				return fmt.Errorf("loadtest: PutRecords to %s: %w", p.cfg.Stream, err)
			}
			failed = batch
		default:
			for i, r := range out.Records {
				if r.ErrorCode != nil {
					failed = append(failed, batch[i])
				}
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if attempt >= p.cfg.MaxAttempts {
			return fmt.Errorf("loadtest: %d records still failing after %d PutRecords attempts (last error: %v)", len(failed), attempt, err)
		}
		p.Retries.Add(int64(len(failed)))
		batch = failed
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// entries turns one shard's events into request entries: KPL aggregates
// (each user record keeping its own partition key in the aggregate's key
// table, the aggregate going to their shard under the first one's key), or
// one record per event.
func (p *Publisher) entries(events []Event) ([]types.PutRecordsRequestEntry, error) {
	var out []types.PutRecordsRequestEntry
	if !p.cfg.Aggregate {
		for _, e := range events {
			if len(e.Data) > maxRecordBytes {
				return nil, fmt.Errorf("loadtest: event for key %s is %d bytes, over the 1 MiB record limit", e.Key, len(e.Data))
			}
			out = append(out, types.PutRecordsRequestEntry{PartitionKey: aws.String(e.Key), Data: e.Data})
		}
		return out, nil
	}
	for len(events) > 0 {
		agg, n := AggregateKeys(events, maxRecordBytes)
		out = append(out, types.PutRecordsRequestEntry{PartitionKey: aws.String(events[0].Key), Data: agg})
		events = events[n:]
	}
	return out, nil
}

type shardRange struct{ lo, hi *big.Int }

func (p *Publisher) loadShards(ctx context.Context) error {
	var shards []shardRange
	in := &kinesis.ListShardsInput{StreamName: aws.String(p.cfg.Stream), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}}
	for {
		out, err := p.api.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("loadtest: listing the shards of %s: %w", p.cfg.Stream, err)
		}
		for _, s := range out.Shards {
			lo, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
			hi, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
			if lo != nil && hi != nil {
				shards = append(shards, shardRange{lo, hi})
			}
		}
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	if len(shards) == 0 {
		return fmt.Errorf("loadtest: stream %s has no open shards", p.cfg.Stream)
	}
	p.shards = shards
	return nil
}

// shardOf maps a partition key to its shard as Kinesis does: the MD5 of the
// key, read as a 128-bit number, falls in one shard's hash key range.
func (p *Publisher) shardOf(key string) int {
	sum := md5.Sum([]byte(key))
	h := new(big.Int).SetBytes(sum[:])
	for i, s := range p.shards {
		if h.Cmp(s.lo) >= 0 && h.Cmp(s.hi) <= 0 {
			return i
		}
	}
	return 0
}

// AggregateKeys packs the leading events into one KPL aggregated record of
// at most limit bytes, with a partition key table, and returns it with the
// number of events it holds.
func AggregateKeys(events []Event, limit int) ([]byte, int) {
	var pb []byte
	keys := map[string]uint64{}
	var recs []byte
	n := 0
	for n < len(events) {
		e := events[n]
		idx, ok := keys[e.Key]
		var keyBytes []byte
		if !ok {
			idx = uint64(len(keys))
			keyBytes = protowire.AppendTag(nil, 1, protowire.BytesType)
			keyBytes = protowire.AppendString(keyBytes, e.Key)
		}
		var rec []byte
		rec = protowire.AppendTag(rec, 1, protowire.VarintType)
		rec = protowire.AppendVarint(rec, idx)
		rec = protowire.AppendTag(rec, 3, protowire.BytesType)
		rec = protowire.AppendBytes(rec, e.Data)
		size := len(KPLMagic) + len(pb) + len(keyBytes) + len(recs) + 1 + protowire.SizeBytes(len(rec)) + md5.Size
		if n > 0 && size > limit {
			break
		}
		if !ok {
			keys[e.Key] = idx
			pb = append(pb, keyBytes...)
		}
		recs = protowire.AppendTag(recs, 3, protowire.BytesType)
		recs = protowire.AppendBytes(recs, rec)
		n++
	}
	// Key table entries (field 1) first, then the records (field 3).
	body := append(pb, recs...)
	sum := md5.Sum(body)
	agg := make([]byte, 0, len(KPLMagic)+len(body)+md5.Size)
	agg = append(append(append(agg, KPLMagic...), body...), sum[:]...)
	return agg, n
}

// KPLMagic starts every KPL aggregated record.
var KPLMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// Aggregate packs user records sharing one partition key into KPL
// aggregated records of at most limit bytes each.
func Aggregate(key string, records [][]byte, limit int) [][]byte {
	events := make([]Event, len(records))
	for i, r := range records {
		events[i] = Event{Key: key, Data: r}
	}
	var out [][]byte
	for len(events) > 0 {
		agg, n := AggregateKeys(events, limit)
		out = append(out, agg)
		events = events[n:]
	}
	return out
}
