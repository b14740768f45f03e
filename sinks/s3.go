package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"

	"github.com/streamscore/streamscore/shardpos"
)

// S3Options configure the Parquet sink.
type S3Options struct {
	// Client talks to S3 (an *s3.Client satisfies it).
	Client transfermanager.S3APIClient
	// Bucket receives the files.
	Bucket string
	// Prefix is prepended to every key, e.g. "results/". The Glue/Athena
	// table's location is s3://Bucket/Prefix.
	Prefix string
	// RollBytes rolls a shard's file once it reaches this size; default 128 MiB.
	RollBytes int64
	// RollAge rolls a shard's file this long after its first row; default
	// defaultRollAge.
	RollAge time.Duration
	// RowGroupBytes starts a new Parquet row group once the buffered one
	// reaches this many bytes; it bounds the memory each open file holds.
	// Default 32 MiB.
	RowGroupBytes int64
	// SpoolDir holds files being written; default os.TempDir().
	SpoolDir string
	// MaxSpoolBytes bounds bytes written but not yet uploaded, across all
	// shards. Beyond it the sink stops taking batches (back-pressure) until
	// uploads catch up. Default 1 GiB.
	MaxSpoolBytes int64
	// Uploads is how many files upload at once; default 4.
	Uploads int
	// PartSize is the multipart part size (the upload manager switches to
	// multipart above 2 parts); default 16 MiB.
	PartSize int64
	// Queue is how many batches Write buffers before it blocks; default 16.
	Queue int
	// ZstdLevel is the zstd compression level; default 1, the fastest.
	// Window features are mostly full-precision doubles whose low bytes do
	// not compress at any level: level 3 made files of window aggregates
	// 1.2 % smaller at the same speed, and encoded rounded readings 14 %
	// slower into files no smaller (docs/sinks.md, Benchmarks).
	ZstdLevel int
	// FeatureStats writes min/max statistics for feature columns too.
	// They are off by default: every row group holds windows of the whole
	// fleet, so a feature's range in one row group is nearly its range in
	// all of them and prunes nothing, while computing it cost 10 % of the
	// encode time. Statistics of the key, time and score columns are
	// always written.
	FeatureStats bool
	// FloatEncoding is how float and double columns (features, scores) are
	// encoded: FloatByteStreamSplit (the default) or FloatPlain for readers
	// older than the encoding (see FloatEncoding).
	FloatEncoding FloatEncoding
	// Backoff is the retry schedule for uploads.
	Backoff Backoff
	// Metrics receives the sink's metrics (label sink="s3").
	Metrics *Metrics
	// Logger receives retry warnings; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for processing_time and rolling; default time.Now.
	Now func() time.Time
}

// defaultRollAge is how long a shard's file stays open when sinks.s3
// roll_age is not set, for the results and the ground truth alike: a
// minute bounds how late a row becomes durable (and so checkpointed)
// without making many small files.
const defaultRollAge = 60 * time.Second

// FloatEncoding names a Parquet encoding for float and double columns.
type FloatEncoding string

const (
	// FloatByteStreamSplit stores each byte of the values in its own
	// stream, so the nearly constant sign and exponent bytes of a feature
	// compress to almost nothing and zstd spends its time only on the
	// mantissas: encoding measured 1.5 to 1.7 times faster than PLAIN and
	// files 1 to 4 % smaller (docs/sinks.md, Benchmarks). Readers need
	// the BYTE_STREAM_SPLIT encoding (parquet-format 2.8): DuckDB (tested),
	// pyarrow, Spark 3.2 and later, Trino since 389; Athena engine 3 tracks
	// Trino but was not tried.
	FloatByteStreamSplit FloatEncoding = "byte_stream_split"
	// FloatPlain is PLAIN encoding, which every Parquet reader reads.
	FloatPlain FloatEncoding = "plain"
)

// S3 writes result batches as zstd Parquet files to S3, one file per shard,
// Hive partition and roll, and acks a batch once every file holding its rows
// has been uploaded. See the package documentation for keys, schema and
// what happens on a replay.
type S3 struct {
	*runner
}

// NewS3 starts a Parquet sink.
func NewS3(o S3Options) (*S3, error) {
	if o.Client == nil || o.Bucket == "" {
		return nil, errors.New("sinks: S3Options.Client and S3Options.Bucket are required")
	}
	if o.Prefix != "" && !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.RollBytes <= 0 {
		o.RollBytes = 128 << 20
	}
	if o.RollAge <= 0 {
		o.RollAge = defaultRollAge
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 32 << 20
	}
	if o.SpoolDir == "" {
		o.SpoolDir = os.TempDir()
	}
	if o.MaxSpoolBytes <= 0 {
		o.MaxSpoolBytes = 1 << 30
	}
	if o.Uploads <= 0 {
		o.Uploads = 4
	}
	if o.PartSize < 5<<20 {
		o.PartSize = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.FloatEncoding {
	case "":
		o.FloatEncoding = FloatByteStreamSplit
	case FloatByteStreamSplit, FloatPlain:
	default:
		return nil, fmt.Errorf("sinks: S3Options.FloatEncoding %q: want %q or %q", o.FloatEncoding, FloatByteStreamSplit, FloatPlain)
	}
	m := o.Metrics.forSink("s3")
	h := newS3Handler(o, m)
	return &S3{runner: newRunner("s3", h, m, h.r.h, o.Queue, time.Second)}, nil
}

func newS3Handler(o S3Options, m *sinkMetrics) *s3Handler {
	return &s3Handler{
		o: o,
		m: m,
		r: newRetrier("s3", o.Backoff, m, o.Logger),
		tm: transfermanager.New(o.Client, func(t *transfermanager.Options) {
			t.PartSizeBytes = o.PartSize
			t.MultipartUploadThreshold = 2 * o.PartSize
		}),
		shards: map[shardKey]*s3Shard{},
		sem:    make(chan struct{}, o.Uploads),
		freed:  make(chan struct{}, 1),
		arrowProps: pqarrow.NewArrowWriterProperties(
			pqarrow.WithCoerceTimestamps(arrow.Millisecond),
			pqarrow.WithTruncatedTimestamps(true),
		),
	}
}

// s3Shard is one shard's state: the roll being written and what is durable.
type s3Shard struct {
	key shardKey
	cur *roll
	// prev is closed when the newest roll of this shard handed to uploads
	// has finished: uploaded (or failed) and its batches acked, after every
	// earlier roll's. Rolls are acked in order, and a flush of the shard
	// waits on it alone.
	prev <-chan struct{}
	// prevOK reports whether that roll succeeded (read after prev closes).
	prevOK *bool
}

// roll is one shard's set of files being written together.
type roll struct {
	first, last shardpos.Position
	opened      time.Time
	schema      *arrow.Schema
	parts       map[string]*partFile // by partition path
	order       []string
	batches     []Batch
	rows        int64
	// maxEnd is the latest window end in the roll (Unix ms). It is part of
	// the key: windows closed by the clock on an idle shard arrive in
	// batches that consume no new input, so their rolls share a position
	// range with the roll before them and would otherwise overwrite it.
	maxEnd int64
}

type partFile struct {
	f  *os.File
	cw *countingWriter
	fw *pqarrow.FileWriter
	// buffered estimates the bytes of the row group still in memory: the
	// writer's own counters only see pages already flushed.
	buffered int64
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (r *roll) bytes() int64 {
	var n int64
	for _, p := range r.parts {
		n += p.cw.n + p.buffered
	}
	return n
}

type s3Handler struct {
	o          S3Options
	m          *sinkMetrics
	r          *retrier
	tm         *transfermanager.Client
	arrowProps pqarrow.ArrowWriterProperties
	// props are the writer properties for files of schema propsFor.
	props    *parquet.WriterProperties
	propsFor *arrow.Schema
	// outSchema caches the output schema for input schema outFor: most
	// batches share the schema of the one before.
	outSchema, outFor *arrow.Schema

	shards map[shardKey]*s3Shard
	sem    chan struct{}
	// spooled counts bytes in rolls handed to uploads and not yet
	// uploaded. Uploads subtract what they release and signal freed
	// without blocking: any number of them may finish while nothing
	// listens (during Close, with thousands of shards).
	spooled atomic.Int64
	freed   chan struct{}
}

func (h *s3Handler) handle(ctx context.Context, b Batch) {
	if b.Rec.NumRows() == 0 {
		b.Ack(nil)
		return
	}
	sh := h.shard(b.Stream, b.Shard)
	// Replayed batches are written again, never skipped by position: after
	// a failover, windows the old owner would have closed on its clock are
	// closed by the new owner's, at positions the old owner had already
	// passed, so "at or before the durable position" does not mean "already
	// in S3". A replay costs duplicate rows, which readers collapse by
	// result_id; skipping could lose them.
	v, err := newView(b.Rec)
	if err != nil {
		b.Ack(&PermanentError{Sink: "s3", Err: fmt.Errorf("batch %s/%s %s..%s: %w", b.Stream, b.Shard, b.Range.First, b.Range.Last, err)})
		return
	}
	out := h.output(b, v)
	defer out.Release()
	if sh.cur != nil && !sh.cur.schema.Equal(out.Schema()) {
		h.roll(ctx, sh)
	}
	if sh.cur == nil {
		sh.cur = &roll{first: b.Range.First, opened: h.o.Now(), schema: out.Schema(), parts: map[string]*partFile{}}
	}
	rl := sh.cur
	if err := h.append(rl, b.Stream, out, v); err != nil {
		// A local write failure (disk full) poisons the whole roll.
		h.fail(rl, &PermanentError{Sink: "s3", Err: err})
		sh.cur = nil
		b.Ack(&PermanentError{Sink: "s3", Err: err})
		return
	}
	rl.batches = append(rl.batches, b)
	rl.rows += out.NumRows()
	for i := range v.n {
		rl.maxEnd = max(rl.maxEnd, v.we.millis(i))
	}
	if b.Range.Last.Compare(rl.last) > 0 {
		rl.last = b.Range.Last
	}
	if rl.bytes() >= h.o.RollBytes {
		h.roll(ctx, sh)
	}
	// Back-pressure: hold the worker (and so Write) while too much waits.
	for h.spooled.Load() > h.o.MaxSpoolBytes {
		select {
		case <-h.freed:
		case <-ctx.Done():
			return
		}
	}
}

func (h *s3Handler) shard(stream, shard string) *s3Shard {
	k := shardKey{stream, shard}
	sh := h.shards[k]
	if sh == nil {
		ok := true
		sh = &s3Shard{key: k, prev: closedChan(), prevOK: &ok}
		h.shards[k] = sh
	}
	return sh
}

// append writes rec into the roll, splitting it into runs of rows that
// share a partition (usually one run).
func (h *s3Handler) append(rl *roll, stream string, rec arrow.RecordBatch, v *view) error {
	n := v.n
	hourOf := func(i int) int64 { return v.ws.nanos(i) / int64(time.Hour) }
	for start := 0; start < n; {
		end := start + 1
		for end < n && hourOf(end) == hourOf(start) {
			end++
		}
		p := partition(stream, v.ws.nanos(start))
		pf, err := h.part(rl, p)
		if err != nil {
			return err
		}
		part := rec
		if start != 0 || end != n {
			part = rec.NewSlice(int64(start), int64(end))
		}
		err = pf.fw.WriteBuffered(part)
		pf.buffered += recordBytes(part)
		if part != rec {
			part.Release()
		}
		if err != nil {
			return fmt.Errorf("encoding parquet for %s: %w", p, err)
		}
		if pf.buffered >= h.o.RowGroupBytes {
			// Writing the next row group flushes this one to the file.
			if err := pf.fw.NewBufferedRowGroupChecked(); err != nil {
				return err
			}
			pf.buffered = 0
		}
		start = end
	}
	return nil
}

func (h *s3Handler) part(rl *roll, p string) (*partFile, error) {
	if pf := rl.parts[p]; pf != nil {
		return pf, nil
	}
	f, err := os.CreateTemp(h.o.SpoolDir, "streamscore-*.parquet")
	if err != nil {
		return nil, fmt.Errorf("spool file: %w", err)
	}
	cw := &countingWriter{w: f}
	fw, err := pqarrow.NewFileWriter(rl.schema, cw, h.writerProps(rl.schema), h.arrowProps)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	pf := &partFile{f: f, cw: cw, fw: fw}
	rl.parts[p] = pf
	rl.order = append(rl.order, p)
	return pf, nil
}

// key is a file's object key: the partition, then the shard, the position
// range of the roll and its latest window end. A replay that rolls at the
// same positions with the same windows writes the same key.
func (h *s3Handler) key(p, shard string, rl *roll) string {
	return fmt.Sprintf("%s%s/%s_%s_%s_%d.parquet", h.o.Prefix, p, shard, rl.first, rl.last, rl.maxEnd)
}

// roll closes the shard's current files and uploads them in the background.
func (h *s3Handler) roll(ctx context.Context, sh *s3Shard) {
	rl := sh.cur
	if rl == nil {
		return
	}
	sh.cur = nil
	var files []spoolFile
	var size int64
	for _, p := range rl.order {
		pf := rl.parts[p]
		err := pf.fw.Close() // closes pf.f too
		if err != nil {
			h.fail(rl, &PermanentError{Sink: "s3", Err: fmt.Errorf("closing parquet file: %w", err)})
			return
		}
		files = append(files, spoolFile{key: h.key(p, sh.key.shard, rl), path: pf.f.Name(), size: pf.cw.n})
		size += pf.cw.n
	}
	h.spooled.Add(size)
	prev, prevOK := sh.prev, sh.prevOK
	done := make(chan struct{})
	ok := new(bool)
	sh.prev, sh.prevOK = done, ok
	go func() {
		defer close(done)
		defer func() {
			h.spooled.Add(-size)
			select {
			case h.freed <- struct{}{}:
			default: // a signal is already pending
			}
		}()
		defer func() {
			for _, f := range files {
				os.Remove(f.path)
			}
		}()
		start := time.Now()
		err := h.uploadAll(ctx, files)
		// Acks go out in roll order, after every earlier roll of the shard.
		<-prev
		if err == nil && !*prevOK {
			err = &PermanentError{Sink: "s3", Err: errors.New("an earlier file of this shard failed")}
		}
		*ok = err == nil
		if err == nil {
			h.m.rows.Add(float64(rl.rows))
			h.m.bytes.Add(float64(size))
			h.m.flushes.Add(float64(len(files)))
			h.m.latency.Observe(time.Since(start).Seconds())
		}
		for _, b := range rl.batches {
			b.Ack(err)
		}
	}()
}

// spoolFile is a closed Parquet file waiting for upload.
type spoolFile struct {
	key  string
	path string
	size int64
}

// uploadAll uploads a roll's files, each retried until it is durable or
// fails permanently.
func (h *s3Handler) uploadAll(ctx context.Context, files []spoolFile) error {
	for _, f := range files {
		select {
		case h.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := h.r.do(ctx, "UploadObject", func(ctx context.Context) error {
			fh, err := os.Open(f.path)
			if err != nil {
				return &PermanentError{Sink: "s3", Err: err}
			}
			defer fh.Close()
			_, err = h.tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
				Bucket: &h.o.Bucket, Key: aws.String(f.key), Body: fh,
				ContentType: aws.String("application/vnd.apache.parquet"),
			})
			return err
		})
		<-h.sem
		if err != nil {
			return fmt.Errorf("uploading s3://%s/%s: %w", h.o.Bucket, f.key, err)
		}
	}
	return nil
}

func (h *s3Handler) fail(rl *roll, err error) {
	for _, pf := range rl.parts {
		pf.fw.Close()
		os.Remove(pf.f.Name())
	}
	for _, b := range rl.batches {
		b.Ack(err)
	}
}

// flush rolls the current files of one shard (only), or of every shard,
// and returns a channel closed once their batches have been acked. A
// shard's rolls ack in order, each after the one before it, so waiting for
// its newest roll waits for all of them: only's wait never depends on
// another shard's uploads.
func (h *s3Handler) flush(ctx context.Context, only *shardKey) <-chan struct{} {
	return flushShards(h.shards, only, func(sh *s3Shard) <-chan struct{} {
		h.roll(ctx, sh)
		return sh.prev
	})
}

func (h *s3Handler) tick(ctx context.Context, now time.Time) {
	for _, sh := range h.shards {
		if sh.cur != nil && now.Sub(sh.cur.opened) >= h.o.RollAge {
			h.roll(ctx, sh)
		}
	}
}

// recordBytes estimates the uncompressed size of rec's values (slices
// counted by their rows, not their shared buffers).
func recordBytes(rec arrow.RecordBatch) int64 {
	n := rec.NumRows()
	var total int64
	for _, c := range rec.Columns() {
		switch a := c.(type) {
		case *array.String:
			if a.Len() > 0 {
				offs := a.ValueOffsets()
				total += int64(offs[len(offs)-1]-offs[0]) + 4*n
			}
		case *array.Boolean:
			total += (n + 7) / 8
		default:
			if fw, ok := c.DataType().(arrow.FixedWidthDataType); ok {
				total += n * int64(fw.BitWidth()/8)
			} else {
				total += 16 * n
			}
		}
	}
	return total
}
