package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/shardpos"
)

// GroundTruthS3 is the part of the S3 client the ground-truth sink uses.
type GroundTruthS3 interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// GroundTruthOptions configure the ground-truth sink.
type GroundTruthOptions struct {
	// Client and Bucket say where the files go (sinks.s3.bucket).
	Client GroundTruthS3
	Bucket string
	// Prefix is prepended to every key: GroundTruthPrefix's answer.
	Prefix string
	// RollAge rolls a shard's files this long after their first label;
	// default defaultRollAge, the S3 sink's.
	RollAge time.Duration
	// RollBytes rolls a shard's files once they hold this many bytes;
	// default 8 MiB. Files are built in memory, so this is smaller than
	// the Parquet sink's spooled 128 MiB.
	RollBytes int64
	// MaxBufferedBytes bounds the memory the sink holds across all
	// shards, open or uploading: the lines, and each batch's Arrow record
	// until its ack (the runner keeps it; gtHeldBytes). Beyond it every
	// open file is rolled and the sink stops taking batches
	// (back-pressure) until uploads free room. Default 64 MiB.
	MaxBufferedBytes int64
	// Uploads is how many files upload at once; default 4.
	Uploads int
	// Queue is how many batches Write buffers before it blocks; default 16.
	Queue int
	// Backoff is the retry schedule for uploads.
	Backoff Backoff
	// Metrics receives the sink's metrics (label sink="groundtruth"):
	// rows_total counts the labels made durable.
	Metrics *Metrics
	// Logger receives retry warnings; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for rolling by age; default time.Now.
	Now func() time.Time
}

// GroundTruth writes labels to S3 as SageMaker Model Monitor's ground-truth
// JSON Lines, one file per shard, event hour and roll, and acks a batch once
// every file holding its labels is uploaded. Batches are built with
// GroundTruthBuilder; docs/sinks.md has the keys and the line format.
type GroundTruth struct {
	*runner
}

var (
	_ Sink    = (*GroundTruth)(nil)
	_ handler = (*gtHandler)(nil)
)

// GroundTruthPrefix is where a pipeline's ground truth lives in the bucket:
// the labels section's prefix, or "groundtruth/<pipeline>/" when it has
// none. The writer and the quality reducer both call it, so they agree.
func GroundTruthPrefix(pipeline, configured string) string {
	if configured == "" {
		return "groundtruth/" + pipeline + "/"
	}
	if !strings.HasSuffix(configured, "/") {
		configured += "/"
	}
	return configured
}

// GroundTruthHourPrefix is the prefix of the files holding labels whose
// event time falls in t's hour (UTC): prefix + "yyyy/mm/dd/hh/", Model
// Monitor's ground-truth layout.
func GroundTruthHourPrefix(prefix string, t time.Time) string {
	return prefix + t.UTC().Format("2006/01/02/15/")
}

// NewGroundTruth starts a ground-truth sink.
func NewGroundTruth(o GroundTruthOptions) (*GroundTruth, error) {
	if o.Client == nil || o.Bucket == "" {
		return nil, errors.New("sinks: GroundTruthOptions.Client and GroundTruthOptions.Bucket are required")
	}
	if o.Prefix != "" && !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.RollAge <= 0 {
		o.RollAge = defaultRollAge
	}
	if o.RollBytes <= 0 {
		o.RollBytes = 8 << 20
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = 64 << 20
	}
	if o.Uploads <= 0 {
		o.Uploads = 4
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := o.Metrics.forSink("groundtruth")
	h := &gtHandler{o: o, m: m, r: newRetrier("groundtruth", o.Backoff, m, o.Logger),
		shards: map[shardKey]*gtShard{}, sem: make(chan struct{}, o.Uploads), freed: make(chan struct{}, 1)}
	return &GroundTruth{runner: newRunner("groundtruth", h, m, h.r.h, o.Queue, time.Second)}, nil
}

type gtHandler struct {
	o      GroundTruthOptions
	m      *sinkMetrics
	r      *retrier
	shards map[shardKey]*gtShard
	sem    chan struct{}
	// buffered counts the bytes held (lines and batches), open or
	// uploading; uploads subtract theirs and signal freed without
	// blocking.
	buffered atomic.Int64
	freed    chan struct{}
	line     []byte // scratch for one line
}

// gtShard is one shard's open roll and the chain of its uploads.
type gtShard struct {
	key shardKey
	cur *gtRoll
	// prev is closed once the newest roll handed to uploads has acked its
	// batches, after every earlier roll's; prevOK says whether it succeeded.
	prev   <-chan struct{}
	prevOK *bool
}

// gtRoll is one shard's files being filled together: one per event hour.
type gtRoll struct {
	first, last shardpos.Position
	opened      time.Time
	hours       []gtFile // few: labels arrive within hours of each other
	batches     []Batch
	rows        int64
	bytes       int64 // the files' size
	held        int64 // what the roll holds in memory: its share of buffered
}

type gtFile struct {
	hour int64 // hours since the Unix epoch
	buf  []byte
}

func (h *gtHandler) handle(ctx context.Context, b Batch) {
	n := int(b.Rec.NumRows())
	if n == 0 {
		b.Ack(nil)
		return
	}
	v, err := newGTView(b.Rec)
	if err != nil {
		b.Ack(&PermanentError{Sink: "groundtruth", Err: fmt.Errorf("batch %s/%s %s..%s: %w", b.Stream, b.Shard, b.Range.First, b.Range.Last, err)})
		return
	}
	sh := h.shards[shardKey{b.Stream, b.Shard}]
	if sh == nil {
		ok := true
		sh = &gtShard{key: shardKey{b.Stream, b.Shard}, prev: closedChan(), prevOK: &ok}
		h.shards[sh.key] = sh
	}
	if sh.cur == nil {
		sh.cur = &gtRoll{first: b.Range.First, opened: h.o.Now()}
	}
	rl := sh.cur
	var added int64
	for i := range n {
		ns := v.ts.nanos(i)
		h.line = v.appendLine(h.line[:0], i, ns)
		f := rl.file(floorDiv(ns, int64(time.Hour)))
		f.buf = append(f.buf, h.line...)
		added += int64(len(h.line))
	}
	held := added + gtHeldBytes(b.Rec)
	rl.bytes += added
	rl.held += held
	h.buffered.Add(held)
	rl.batches = append(rl.batches, b)
	rl.rows += int64(n)
	if b.Range.Last.Compare(rl.last) > 0 {
		rl.last = b.Range.Last
	}
	if rl.bytes >= h.o.RollBytes {
		h.roll(ctx, sh)
	}
	if h.buffered.Load() > h.o.MaxBufferedBytes {
		// Open files count too, and only uploads free room: send them all
		// on their way, then hold the worker (and so Write) until there is.
		for _, s := range h.shards {
			h.roll(ctx, s)
		}
		for h.buffered.Load() > h.o.MaxBufferedBytes {
			select {
			case <-h.freed:
			case <-ctx.Done():
				return
			}
		}
	}
}

// gtBatchObjects is the heap a batch holds beyond its buffers until its
// ack: the record, its arrays and their buffers' headers, the runner's
// wrapper around Ack. Measured: a one-label batch held 3.9 KB, 0.7 KB of
// it buffer capacity.
const gtBatchObjects = 3 << 10

// gtHeldBytes estimates the memory a batch holds until its ack: its
// buffers' capacity (a builder's buffers start at 32 rows, so a batch of
// one label holds as much as one of 32) and gtBatchObjects.
func gtHeldBytes(rec arrow.RecordBatch) int64 {
	n := int64(gtBatchObjects)
	for _, c := range rec.Columns() {
		for _, b := range c.Data().Buffers() {
			if b != nil {
				n += int64(b.Cap())
			}
		}
	}
	return n
}

// file returns the roll's file for an event hour, opening it if needed.
func (rl *gtRoll) file(hour int64) *gtFile {
	for i := range rl.hours {
		if rl.hours[i].hour == hour {
			return &rl.hours[i]
		}
	}
	rl.hours = append(rl.hours, gtFile{hour: hour})
	return &rl.hours[len(rl.hours)-1]
}

// key is a file's object key: the hour's prefix, then the shard and the
// position range of the roll. A replay that rolls at the same positions
// writes the same keys.
func (h *gtHandler) key(shard string, rl *gtRoll, hour int64) string {
	return GroundTruthHourPrefix(h.o.Prefix, time.Unix(hour*3600, 0)) + shard + "_" + rl.first.String() + "_" + rl.last.String() + ".jsonl"
}

// roll hands the shard's open files to an upload and acks their batches,
// in roll order, once they are all in S3.
func (h *gtHandler) roll(ctx context.Context, sh *gtShard) {
	rl := sh.cur
	if rl == nil {
		return
	}
	sh.cur = nil
	prev, prevOK := sh.prev, sh.prevOK
	done := make(chan struct{})
	ok := new(bool)
	sh.prev, sh.prevOK = done, ok
	go func() {
		defer close(done)
		defer func() {
			h.buffered.Add(-rl.held)
			select {
			case h.freed <- struct{}{}:
			default: // a signal is already pending
			}
		}()
		start := time.Now()
		err := h.upload(ctx, sh.key.shard, rl)
		<-prev
		if err == nil && !*prevOK {
			err = &PermanentError{Sink: "groundtruth", Err: errors.New("an earlier file of this shard failed")}
		}
		*ok = err == nil
		if err == nil {
			h.m.rows.Add(float64(rl.rows))
			h.m.bytes.Add(float64(rl.bytes))
			h.m.flushes.Add(float64(len(rl.hours)))
			h.m.latency.Observe(time.Since(start).Seconds())
		}
		for _, b := range rl.batches {
			b.Ack(err)
		}
	}()
}

// upload puts the roll's files, each retried until it is durable or fails
// permanently.
func (h *gtHandler) upload(ctx context.Context, shard string, rl *gtRoll) error {
	for _, f := range rl.hours {
		key := h.key(shard, rl, f.hour)
		select {
		case h.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := h.r.do(ctx, "PutObject", func(ctx context.Context) error {
			_, err := h.o.Client.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(h.o.Bucket), Key: aws.String(key), Body: bytes.NewReader(f.buf),
				ContentLength: aws.Int64(int64(len(f.buf))), ContentType: aws.String("application/jsonl"),
			})
			return err
		})
		<-h.sem
		if err != nil {
			return fmt.Errorf("uploading s3://%s/%s: %w", h.o.Bucket, key, err)
		}
	}
	return nil
}

// flush rolls one shard's files (only), or every shard's, and returns a
// channel closed once their batches are acked: a shard's rolls ack in
// order, so its newest roll's channel waits for all of them.
func (h *gtHandler) flush(ctx context.Context, only *shardKey) <-chan struct{} {
	return flushShards(h.shards, only, func(sh *gtShard) <-chan struct{} {
		h.roll(ctx, sh)
		return sh.prev
	})
}

func (h *gtHandler) tick(ctx context.Context, now time.Time) {
	for _, sh := range h.shards {
		if sh.cur != nil && now.Sub(sh.cur.opened) >= h.o.RollAge {
			h.roll(ctx, sh)
		}
	}
}
