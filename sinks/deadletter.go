package sinks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamscore/streamscore/shardpos"
)

// Reasons a record is dead-lettered.
const (
	ReasonUndecodable   = "undecodable"
	ReasonDeaggregation = "deaggregation"
	ReasonLate          = "late"
	ReasonUnscorable    = "unscorable"
	// ReasonEventTime: the event time lies outside the stream's allowed
	// skew from the record's arrival time.
	ReasonEventTime = "event-time"
	// ReasonEntity: the entity is one no sink could store.
	ReasonEntity = "entity"
	// ReasonRefused is a result row a sink's service refused on its own
	// (a key too long, an item too large, a value it cannot take); the
	// body is the row as JSON and the detail is the service's error.
	ReasonRefused = "sink_refused"
)

// DeadLetters is where a sink sends a result row its service refuses on
// its own, so that one bad row never holds its batch (and the shard's
// checkpoint) back. Send returns once the rows are durable. *DeadLetter
// satisfies it.
type DeadLetters interface {
	Send(ctx context.Context, recs ...Poison) error
}

var _ DeadLetters = (*DeadLetter)(nil)

// Poison is one input record that cannot be processed, with the reason.
type Poison struct {
	// Reason is one of the Reason* constants (or another short token).
	Reason string
	// Detail is the error text, e.g. the decoder's message naming the field.
	Detail string
	// Stream, Shard and Position say where the record came from.
	Stream   string
	Shard    string
	Position shardpos.Position
	// Data is the record's original bytes (for ReasonRefused, the row as
	// JSON).
	Data []byte
	// ResultID, set for a refused result row, tells apart the rows of one
	// batch, which share a position: it is a message attribute and part of
	// the S3 key of a large record.
	ResultID string
}

// DeadLetterSQS is the part of the SQS client the dead-letter queue uses.
type DeadLetterSQS interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// DeadLetterS3 is the part of the S3 client used for records too large for
// an SQS message.
type DeadLetterS3 interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// DeadLetterOptions configure the dead-letter queue.
type DeadLetterOptions struct {
	// SQS and QueueURL name the queue.
	SQS      DeadLetterSQS
	QueueURL string
	// S3 and Bucket receive records whose base64 body would exceed
	// MaxBodyBytes. Without them such a record is sent truncated to fit,
	// with payload "truncated", its original_size and a detail saying
	// where to re-read it (stream, shard, position) while the stream
	// retains it: a dead letter must never fail for its size.
	S3     DeadLetterS3
	Bucket string
	// Prefix is prepended to the S3 keys of large records.
	Prefix string
	// MaxBodyBytes is the largest base64 body sent inline; default 200 KiB,
	// leaving room for attributes under SQS's 256 KiB message and batch limit.
	MaxBodyBytes int
	// Backoff is the retry schedule.
	Backoff Backoff
	// Metrics receives the sink's metrics (label sink="deadletter").
	Metrics *Metrics
	// Logger receives retry warnings; default slog.Default().
	Logger *slog.Logger
}

// DeadLetter sends poison records to SQS: the original bytes base64-encoded
// as the body, the reason, stream, shard and position as message
// attributes, up to 10 messages per SendMessageBatch call. Records too large
// for a message go to S3 under a key derived from their position (a replay
// overwrites it), and the message carries a pointer instead.
type DeadLetter struct {
	o DeadLetterOptions
	m *sinkMetrics
	r *retrier
}

// NewDeadLetter creates a dead-letter queue sink.
func NewDeadLetter(o DeadLetterOptions) (*DeadLetter, error) {
	if o.SQS == nil || o.QueueURL == "" {
		return nil, errors.New("sinks: DeadLetterOptions.SQS and QueueURL are required")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 200 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := o.Metrics.forSink("deadletter")
	return &DeadLetter{o: o, m: m, r: newRetrier("deadletter", o.Backoff, m, o.Logger)}, nil
}

// Pointer is the body of a dead-letter message whose record went to S3.
type Pointer struct {
	Bucket string `json:"s3_bucket"`
	Key    string `json:"s3_key"`
	Size   int    `json:"size"`
}

// Healthy returns nil while SQS (and S3, for large records) answer, and an
// error naming the cause during an outage (see Sink's Healthy).
func (d *DeadLetter) Healthy() error { return d.r.h.check(time.Now()) }

// Send makes recs durable in the dead-letter queue and returns once they
// are, retrying transient failures until ctx ends. The pipeline may
// checkpoint past a poison record only after Send returned nil for it. Safe
// for concurrent use.
func (d *DeadLetter) Send(ctx context.Context, recs ...Poison) error {
	start := time.Now()
	var entries []sqstypes.SendMessageBatchRequestEntry
	size := 0
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		err := d.sendBatch(ctx, entries)
		entries, size = nil, 0
		return err
	}
	for i, p := range recs {
		body, where, err := d.body(ctx, &p)
		if err != nil {
			return err
		}
		e := sqstypes.SendMessageBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(len(entries))),
			MessageBody:       aws.String(body),
			MessageAttributes: d.attributes(p, where),
		}
		n := len(body) + 512 + len(p.Detail)
		if len(entries) == 10 || size+n > 250<<10 {
			if err := flush(); err != nil {
				return fmt.Errorf("dead-lettering record %d of %d: %w", i, len(recs), err)
			}
			e.Id = aws.String("0")
		}
		entries = append(entries, e)
		size += n
	}
	if err := flush(); err != nil {
		return err
	}
	d.m.rows.Add(float64(len(recs)))
	d.m.latency.Observe(time.Since(start).Seconds())
	return nil
}

func (d *DeadLetter) body(ctx context.Context, p *Poison) (body, where string, err error) {
	if base64.StdEncoding.EncodedLen(len(p.Data)) <= d.o.MaxBodyBytes {
		return base64.StdEncoding.EncodeToString(p.Data), "inline", nil
	}
	if d.o.S3 == nil || d.o.Bucket == "" {
		// Failing here would stop the shard on the record for good; a
		// truncated copy with the position lets an operator re-read the
		// whole record from the stream while it retains it.
		keep := d.o.MaxBodyBytes / 4 * 3
		p.Detail = fmt.Sprintf("truncated to %d of %d bytes (no dead-letter bucket configured); the whole record is at stream %s shard %s position %s while the stream retains it: %s",
			keep, len(p.Data), p.Stream, p.Shard, p.Position, p.Detail)
		d.o.Logger.Warn("dead letter truncated: no bucket for large records", "stream", p.Stream, "shard", p.Shard,
			"position", p.Position.String(), "size", len(p.Data), "kept", keep)
		return base64.StdEncoding.EncodeToString(p.Data[:keep]), "truncated", nil
	}
	key := fmt.Sprintf("%sdeadletter/stream=%s/shard=%s/%s.bin", d.o.Prefix, p.Stream, p.Shard, p.Position)
	if p.ResultID != "" {
		key = fmt.Sprintf("%sdeadletter/stream=%s/shard=%s/%s_%s.bin", d.o.Prefix, p.Stream, p.Shard, p.Position, p.ResultID)
	}
	err = d.r.do(ctx, "PutObject", func(ctx context.Context) error {
		_, err := d.o.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(d.o.Bucket), Key: aws.String(key), Body: bytes.NewReader(p.Data)})
		return err
	})
	if err != nil {
		return "", "", err
	}
	d.m.bytes.Add(float64(len(p.Data)))
	b, _ := json.Marshal(Pointer{Bucket: d.o.Bucket, Key: key, Size: len(p.Data)})
	return string(b), "s3", nil
}

func (d *DeadLetter) attributes(p Poison, where string) map[string]sqstypes.MessageAttributeValue {
	s := func(v string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(sqsText(v))}
	}
	a := map[string]sqstypes.MessageAttributeValue{
		"reason":          s(p.Reason),
		"stream":          s(p.Stream),
		"shard":           s(p.Shard),
		"sequence_number": s(p.Position.Sequence),
		"sub_sequence":    {DataType: aws.String("Number"), StringValue: aws.String(strconv.FormatUint(p.Position.SubSequence, 10))},
		"payload":         s(where),
		"result_id":       s(p.ResultID),
	}
	if where == "truncated" {
		a["original_size"] = sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(len(p.Data)))}
	}
	if p.Detail != "" {
		detail := p.Detail
		if len(detail) > 1024 {
			detail = strings.ToValidUTF8(detail[:1024], "")
		}
		a["detail"] = s(detail)
	}
	for k, v := range a {
		if aws.ToString(v.StringValue) == "" {
			delete(a, k) // SQS rejects empty attribute values
		}
	}
	return a
}

// sqsText replaces the characters SQS refuses in a message attribute
// (control characters, invalid UTF-8) with U+FFFD: a detail quoting a bad
// input must not make the dead letter itself a sender fault.
func sqsText(v string) string {
	ok := func(r rune) bool {
		return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000
	}
	if utf8.ValidString(v) && strings.IndexFunc(v, func(r rune) bool { return !ok(r) }) < 0 {
		return v
	}
	return strings.Map(func(r rune) rune {
		if ok(r) && r != utf8.RuneError {
			return r
		}
		return '\uFFFD'
	}, strings.ToValidUTF8(v, "\uFFFD"))
}

// sendBatch sends up to 10 entries, retrying the ones SQS reports failed
// unless SQS blames the sender.
func (d *DeadLetter) sendBatch(ctx context.Context, entries []sqstypes.SendMessageBatchRequestEntry) error {
	err := d.r.do(ctx, "SendMessageBatch", func(ctx context.Context) error {
		out, err := d.o.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(d.o.QueueURL), Entries: entries})
		if err != nil {
			return err
		}
		if len(out.Failed) == 0 {
			return nil
		}
		failed := map[string]sqstypes.BatchResultErrorEntry{}
		for _, f := range out.Failed {
			if f.SenderFault {
				return &PermanentError{Sink: "deadletter", Err: fmt.Errorf("SQS rejected message: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))}
			}
			failed[aws.ToString(f.Id)] = f
		}
		var retry []sqstypes.SendMessageBatchRequestEntry
		for _, e := range entries {
			if _, ok := failed[aws.ToString(e.Id)]; ok {
				retry = append(retry, e)
			}
		}
		entries = retry
		return fmt.Errorf("SQS failed %d of the batch's messages (first: %s)", len(retry), aws.ToString(out.Failed[0].Code))
	})
	if err == nil {
		d.m.flushes.Inc()
	}
	return err
}
