package loadtest

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
)

// PutRecordsAPI is the part of the Kinesis client a Publisher uses.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
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

// Publish sends the events and returns when every one was accepted by the
// stream, or an error if some could not be after MaxAttempts.
func (p *Publisher) Publish(ctx context.Context, events []Event) error {
	entries, err := p.entries(events)
	if err != nil {
		return err
	}
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

// put sends one batch, retrying only the records that failed.
func (p *Publisher) put(ctx context.Context, batch []types.PutRecordsRequestEntry) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p.Calls.Add(1)
		out, err := p.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.cfg.Stream), Records: batch})
		var failed []types.PutRecordsRequestEntry
		switch {
		case err != nil:
			var throttled *types.ProvisionedThroughputExceededException
			if !errors.As(err, &throttled) && ctx.Err() != nil {
				return err
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
		sleep := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sleep):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// entries turns events into request entries, aggregating per partition key
// when configured.
func (p *Publisher) entries(events []Event) ([]types.PutRecordsRequestEntry, error) {
	if !p.cfg.Aggregate {
		out := make([]types.PutRecordsRequestEntry, len(events))
		for i, e := range events {
			if len(e.Data) > maxRecordBytes {
				return nil, fmt.Errorf("loadtest: event for key %s is %d bytes, over the 1 MiB record limit", e.Key, len(e.Data))
			}
			out[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(e.Key), Data: e.Data}
		}
		return out, nil
	}
	var order []string
	groups := map[string][][]byte{}
	for _, e := range events {
		if _, ok := groups[e.Key]; !ok {
			order = append(order, e.Key)
		}
		groups[e.Key] = append(groups[e.Key], e.Data)
	}
	var out []types.PutRecordsRequestEntry
	for _, k := range order {
		for _, agg := range Aggregate(k, groups[k], maxRecordBytes) {
			out = append(out, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: agg})
		}
	}
	return out, nil
}

// KPLMagic starts every KPL aggregated record.
var KPLMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// Aggregate packs user records sharing one partition key into KPL
// aggregated records of at most limit bytes each. The wire format is the
// KPL's: magic, an AggregatedRecord protobuf (partition_key_table = 1,
// records = 3 with partition_key_index = 1 and data = 3), then the MD5 of
// the protobuf.
func Aggregate(key string, records [][]byte, limit int) [][]byte {
	var out [][]byte
	for len(records) > 0 {
		pb := protowire.AppendTag(nil, 1, protowire.BytesType)
		pb = protowire.AppendString(pb, key)
		n := 0
		for n < len(records) {
			var rec []byte
			rec = protowire.AppendTag(rec, 1, protowire.VarintType)
			rec = protowire.AppendVarint(rec, 0)
			rec = protowire.AppendTag(rec, 3, protowire.BytesType)
			rec = protowire.AppendBytes(rec, records[n])
			grown := len(pb) + 1 + protowire.SizeBytes(len(rec))
			if n > 0 && len(KPLMagic)+grown+md5.Size > limit {
				break
			}
			pb = protowire.AppendTag(pb, 3, protowire.BytesType)
			pb = protowire.AppendBytes(pb, rec)
			n++
		}
		sum := md5.Sum(pb)
		agg := make([]byte, 0, len(KPLMagic)+len(pb)+md5.Size)
		agg = append(append(append(agg, KPLMagic...), pb...), sum[:]...)
		out = append(out, agg)
		records = records[n:]
	}
	return out
}
