package loadtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamscore/streamscore/sinks"
)

// ReceivedAlert is an alert as an ops team's queue receives it.
type ReceivedAlert struct {
	Rule, State, Severity, Stream, Entity string
	Score                                 float64
	WindowStart, WindowEnd                time.Time
	Received                              time.Time
	// TopFeatures names the inputs that drove the score, largest
	// contribution first (empty when the model cannot say).
	TopFeatures []string

	// A drift alert (IsDrift) is about a period of a monitored window, not
	// an entity: Pipeline and Window name it, Drift lists the features it
	// is about (that drifted, on a firing alert), Violations is where the
	// period's constraint_violations.json is.
	Pipeline, Window       string
	PeriodStart, PeriodEnd time.Time
	Drift                  []sinks.DriftFeature
	Violations             string
}

// AlertWatcher subscribes a fresh queue to an alert topic and collects what
// arrives, with the time it arrived.
type AlertWatcher struct {
	sqs      *sqs.Client
	sns      *sns.Client
	queueURL string
	subARN   string

	mu     sync.Mutex
	alerts []ReceivedAlert
	bad    int
}

// WatchAlerts creates a queue, subscribes it to the topic and starts
// receiving. Stop it with Close.
func WatchAlerts(ctx context.Context, sqsc *sqs.Client, snsc *sns.Client, topicARN, queueName string) (*AlertWatcher, error) {
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queueName)})
	if err != nil {
		return nil, fmt.Errorf("loadtest: alert queue: %w", err)
	}
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return nil, fmt.Errorf("loadtest: alert queue: %w", err)
	}
	sub, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(topicARN), Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])})
	if err != nil {
		return nil, fmt.Errorf("loadtest: subscribing to %s: %w", topicARN, err)
	}
	return &AlertWatcher{sqs: sqsc, sns: snsc, queueURL: aws.ToString(q.QueueUrl), subARN: aws.ToString(sub.SubscriptionArn)}, nil
}

// Run receives until ctx ends.
func (w *AlertWatcher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := w.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		now := time.Now()
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			a, ok := parseAlert(aws.ToString(m.Body))
			w.mu.Lock()
			if ok {
				a.Received = now
				w.alerts = append(w.alerts, a)
			} else {
				w.bad++
			}
			w.mu.Unlock()
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			_, _ = w.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(w.queueURL), Entries: del})
		}
	}
}

// parseAlert reads an SNS notification (raw delivery off) wrapping the
// pipeline's alert JSON: a score alert (about an entity) or a drift alert
// (about a window's period). Anything else (a circuit breaker's notice)
// is not an alert the run judges.
func parseAlert(body string) (ReceivedAlert, bool) {
	var env struct {
		Message string `json:"Message"`
	}
	msg := body
	if err := json.Unmarshal([]byte(body), &env); err == nil && env.Message != "" {
		msg = env.Message
	}
	var a sinks.Alert
	if err := json.Unmarshal([]byte(msg), &a); err != nil {
		return ReceivedAlert{}, false
	}
	r := ReceivedAlert{Rule: a.Rule, State: a.State, Severity: a.Severity, Stream: a.Stream, Entity: a.Entity,
		Score: a.Score, WindowStart: a.WindowStart, WindowEnd: a.WindowEnd,
		Pipeline: a.Pipeline, Window: a.Window, PeriodStart: a.PeriodStart, PeriodEnd: a.PeriodEnd, Drift: a.Drift, Violations: a.Violations}
	for _, f := range a.TopFeatures {
		r.TopFeatures = append(r.TopFeatures, f.Feature)
	}
	if r.Entity == "" && !r.IsDrift() {
		return ReceivedAlert{}, false
	}
	return r, true
}

// Alerts returns what arrived so far.
func (w *AlertWatcher) Alerts() []ReceivedAlert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ReceivedAlert(nil), w.alerts...)
}

// Close unsubscribes and deletes the queue.
func (w *AlertWatcher) Close(ctx context.Context) {
	_, _ = w.sns.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: aws.String(w.subARN)})
	_, _ = w.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(w.queueURL)})
}

// ResultRow is one scored window read back from S3.
type ResultRow struct {
	ResultID               string
	Stream, Entity         string
	WindowStart, WindowEnd time.Time
	Count                  float64 // the window's count feature
	Score                  float64
	Update                 bool
	// Partial is "" for a row of a whole window, else "evicted" or
	// "late" (sinks.ColPartial); PartialID names its part.
	Partial, PartialID string
	Fallback           bool // scored by the fallback model
	Processing         time.Time
	// Landed is when the object holding the row was written (LastModified).
	Landed time.Time
	Key    string
}

// ReadResults reads every Parquet file under bucket/prefix back with
// arrow-go: the rows an analyst's query would see.
func ReadResults(ctx context.Context, c *s3.Client, bucket, prefix, countFeature string) ([]ResultRow, int, error) {
	var rows []ResultRow
	files := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, files, fmt.Errorf("loadtest: listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, ".parquet") {
				continue
			}
			// Parquet checks its own pages; asking the SDK to validate a
			// checksum the server may not send (s3rver sends none) only
			// logs a line per object.
			obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key},
				func(o *s3.Options) { o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired })
			if err != nil {
				return nil, files, fmt.Errorf("loadtest: s3://%s/%s: %w", bucket, key, err)
			}
			data, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				return nil, files, err
			}
			got, err := parquetRows(ctx, data, countFeature)
			if err != nil {
				return nil, files, fmt.Errorf("loadtest: s3://%s/%s: %w", bucket, key, err)
			}
			for i := range got {
				got[i].Landed = aws.ToTime(o.LastModified)
				got[i].Key = key
			}
			rows = append(rows, got...)
			files++
		}
	}
	return rows, files, nil
}

func parquetRows(ctx context.Context, data []byte, countFeature string) ([]ResultRow, error) {
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 1<<16)
	defer tr.Release()
	var out []ResultRow
	for tr.Next() {
		rec := tr.RecordBatch()
		col := func(name string) arrow.Array {
			if idx := rec.Schema().FieldIndices(name); len(idx) > 0 {
				return rec.Column(idx[0])
			}
			return nil
		}
		for i := range int(rec.NumRows()) {
			r := ResultRow{
				ResultID:    str(col("result_id"), i),
				Stream:      str(col("stream"), i),
				Entity:      str(col("entity"), i),
				WindowStart: ts(col("window_start"), i),
				WindowEnd:   ts(col("window_end"), i),
				Count:       num(col(countFeature), i),
				Score:       num(col("score"), i),
				Processing:  ts(col("processing_time"), i),
				Partial:     str(col("partial"), i),
				PartialID:   str(col("partial_id"), i),
			}
			if b, ok := col("update").(*array.Boolean); ok {
				r.Update = b.Value(i)
			}
			if b, ok := col("fallback").(*array.Boolean); ok {
				r.Fallback = b.Value(i)
			}
			out = append(out, r)
		}
	}
	return out, tr.Err()
}

func str(a arrow.Array, i int) string {
	switch c := a.(type) {
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Binary:
		return string(c.Value(i))
	case *array.FixedSizeBinary: // result_id: its bytes, shown as the other sinks show it
		return hex.EncodeToString(c.Value(i))
	}
	return ""
}

func ts(a arrow.Array, i int) time.Time {
	if c, ok := a.(*array.Timestamp); ok && c.IsValid(i) {
		return c.Value(i).ToTime(c.DataType().(*arrow.TimestampType).Unit)
	}
	return time.Time{}
}

func num(a arrow.Array, i int) float64 {
	switch c := a.(type) {
	case *array.Float64:
		if c.IsValid(i) {
			return c.Value(i)
		}
	case *array.Float32:
		if c.IsValid(i) {
			return float64(c.Value(i))
		}
	case *array.Int64:
		if c.IsValid(i) {
			return float64(c.Value(i))
		}
	}
	return 0
}

// DeadLetter is one dead-lettered record, by its attributes.
type DeadLetter struct {
	Reason, Stream, Shard string
	// Position is the record's sequence number and sub-sequence.
	Position string
}

// DrainDeadLetters receives every message on the dead-letter queue (deleting
// them) until it stays empty for a few polls.
func DrainDeadLetters(ctx context.Context, c *sqs.Client, queueURL string) ([]DeadLetter, error) {
	var out []DeadLetter
	for empty := 0; empty < 3 && ctx.Err() == nil; {
		m, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			return out, fmt.Errorf("loadtest: dead-letter queue: %w", err)
		}
		if len(m.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for i, msg := range m.Messages {
			attr := func(k string) string {
				if v, ok := msg.MessageAttributes[k]; ok {
					return aws.ToString(v.StringValue)
				}
				return ""
			}
			// A KPL aggregate's user records share a sequence number: the
			// sub-sequence tells them apart (sinks.DeadLetter's attributes).
			out = append(out, DeadLetter{Reason: attr("reason"), Stream: attr("stream"), Shard: attr("shard"),
				Position: attr("sequence_number") + "/" + attr("sub_sequence")})
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msg.ReceiptHandle})
		}
		if _, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: del}); err != nil {
			return out, fmt.Errorf("loadtest: dead-letter queue: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		// Not drained: an empty answer here would read as "nothing was
		// dead-lettered" and blame the pipeline.
		return out, fmt.Errorf("loadtest: dead-letter queue not drained: %w", err)
	}
	return out, nil
}
