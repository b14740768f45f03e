package sinks

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// lakeRow is a row read back from the data lake.
type lakeRow struct {
	key, resultID, entity string
	ws, we                time.Time
	f00, score            float64
	model                 string
	fallback              bool
}

func listKeys(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(devstacktest.Ctx(t), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	slices.Sort(keys)
	return keys
}

// readLake reads every Parquet file under prefix back with arrow-go.
func readLake(t *testing.T, c *s3.Client, bucket, prefix string) []lakeRow {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	var rows []lakeRow
	for _, key := range listKeys(t, c, bucket, prefix) {
		if !bytes.HasSuffix([]byte(key), []byte(".parquet")) {
			continue
		}
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		pf, err := file.NewParquetReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s is not Parquet: %v", key, err)
		}
		checkColumnChunks(t, key, pf.MetaData().RowGroup(0))
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tr := array.NewTableReader(tbl, 0)
		for tr.Next() {
			rec := tr.RecordBatch()
			col := func(name string) arrow.Array {
				idx := rec.Schema().FieldIndices(name)
				if len(idx) != 1 {
					t.Fatalf("%s: column %s missing; schema %s", key, name, rec.Schema())
				}
				return rec.Column(idx[0])
			}
			for _, name := range []string{"offset_first", "offset_last"} {
				if len(rec.Schema().FieldIndices(name)) != 0 {
					t.Errorf("%s: process-local column %s was written", key, name)
				}
			}
			ws := col(ColWindowStart).(*array.Timestamp)
			if u := ws.DataType().(*arrow.TimestampType).Unit; u != arrow.Millisecond {
				t.Errorf("window_start stored in %s, want milliseconds", u)
			}
			for i := range int(rec.NumRows()) {
				rows = append(rows, lakeRow{
					key:      key,
					resultID: hex.EncodeToString(col(ColResultID).(*array.FixedSizeBinary).Value(i)),
					entity:   col(ColEntity).(*array.String).Value(i),
					ws:       time.UnixMilli(int64(ws.Value(i))).UTC(),
					we:       time.UnixMilli(int64(col(ColWindowEnd).(*array.Timestamp).Value(i))).UTC(),
					f00:      col("f00").(*array.Float64).Value(i),
					score:    col(ColScore).(*array.Float64).Value(i),
					model:    col(ColModelVersion).(*array.String).Value(i),
					fallback: col(ColFallback).(*array.Boolean).Value(i),
				})
			}
		}
		tr.Release()
		tbl.Release()
	}
	return rows
}

// checkColumnChunks asserts the documented layout of a row group: zstd for
// every column but result_id (16 random bytes, stored uncompressed),
// BYTE_STREAM_SPLIT for double columns, and statistics for the key, time
// and score columns but not for features.
func checkColumnChunks(t *testing.T, key string, rg *metadata.RowGroupMetaData) {
	t.Helper()
	for c := range rg.NumColumns() {
		cc, err := rg.ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		name := cc.PathInSchema().String()
		wantCodec := "ZSTD"
		if name == ColResultID {
			wantCodec = "UNCOMPRESSED"
		}
		if got := cc.Compression().String(); got != wantCodec {
			t.Errorf("%s: column %s compression %s, want %s", key, name, got, wantCodec)
		}
		if cc.Type() == parquet.Types.Double && !slices.Contains(cc.Encodings(), parquet.Encodings.ByteStreamSplit) {
			t.Errorf("%s: column %s encodings %v, want BYTE_STREAM_SPLIT", key, name, cc.Encodings())
		}
		set, err := cc.StatsSet()
		if err != nil {
			t.Fatal(err)
		}
		switch wantStats := !isFeature(name) && name != ColResultID; {
		case set && !wantStats:
			t.Errorf("%s: column %s has statistics; features and result_id should not", key, name)
		case !set && wantStats && (name == ColWindowStart || name == ColWindowEnd || name == ColScore || name == ColEntity):
			t.Errorf("%s: column %s has no statistics", key, name)
		}
	}
}

func TestS3ParquetRoundTripAndReplay(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	base := time.Date(2026, 11, 24, 9, 58, 0, 0, time.UTC)

	// Batch a straddles the 10:00 hour boundary: its rows land in two
	// partitions of the same roll.
	var rowsA, rowsB []row
	for i := range 6 {
		rowsA = append(rowsA, row{entity: fmt.Sprintf("press-%02d", i%3), ws: base.Add(time.Duration(i) * time.Minute), feats: []float64{float64(i)}, score: float64(i) / 10, model: "xgb-7", fallback: i == 4})
	}
	for i := range 4 {
		rowsB = append(rowsB, row{entity: fmt.Sprintf("press-%02d", i), ws: base.Add(10 * time.Minute), feats: []float64{float64(100 + i)}, score: 0.5, model: "xgb-7"})
	}
	recA, recB := resultRecord(t, 3, rowsA), resultRecord(t, 3, rowsB)
	defer recA.Release()
	defer recB.Release()
	rA := Range{First: pos(100), Last: pos(199)}
	rB := Range{First: pos(200), Last: pos(260)}

	write := func(s Sink, a *acks, tag string) {
		t.Helper()
		for _, b := range []struct {
			name string
			r    Range
			rec  arrow.RecordBatch
		}{{"a", rA, recA}, {"b", rB, recB}} {
			if err := s.Write(ctx, Batch{Stream: "factory", Shard: "shardId-000000000001", Range: b.r, Rec: b.rec, Ack: a.fn(tag + b.name)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		a.wait(t, 30*time.Second, tag+"a", tag+"b")
	}
	newSink := func() *S3 {
		s, err := NewS3(S3Options{Client: env.S3, Bucket: bucket, Prefix: "lake", SpoolDir: t.TempDir(), RollAge: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		closeSink(t, s)
		return s
	}

	a := newAcks()
	write(newSink(), a, "first-")

	var maxEnd time.Time
	for _, r := range append(slices.Clone(rowsA), rowsB...) {
		if e := r.ws.Add(time.Minute); e.After(maxEnd) {
			maxEnd = e
		}
	}
	file := fmt.Sprintf("shardId-000000000001_49630000000000000000000000000000000000000000000000000100.0_49630000000000000000000000000000000000000000000000000260.0_%d.parquet", maxEnd.UnixMilli())
	wantKeys := []string{
		"lake/stream=factory/dt=2026-11-24/hour=09/" + file,
		"lake/stream=factory/dt=2026-11-24/hour=10/" + file,
	}
	if got := listKeys(t, env.S3, bucket, "lake/stream="); !slices.Equal(got, wantKeys) {
		t.Fatalf("object keys:\n got %q\nwant %q", got, wantKeys)
	}
	got := readLake(t, env.S3, bucket, "lake/")
	var want []lakeRow
	for i, r := range append(slices.Clone(rowsA), rowsB...) {
		p := "09"
		if r.ws.Hour() == 10 {
			p = "10"
		}
		f00 := r.feats[0]
		want = append(want, lakeRow{
			key:      "lake/stream=factory/dt=2026-11-24/hour=" + p + "/" + file,
			resultID: ResultID("factory", r.entity, r.ws, r.ws.Add(time.Minute), r.model),
			entity:   r.entity, ws: r.ws, we: r.ws.Add(time.Minute), f00: f00, score: r.score, model: r.model, fallback: r.fallback,
		})
		_ = i
	}
	sortRows := func(rs []lakeRow) {
		slices.SortFunc(rs, func(x, y lakeRow) int {
			if c := x.ws.Compare(y.ws); c != 0 {
				return c
			}
			return bytes.Compare([]byte(x.entity), []byte(y.entity))
		})
	}
	sortRows(got)
	sortRows(want)
	if !slices.Equal(got, want) {
		t.Fatalf("rows read back:\n got %+v\nwant %+v", got, want)
	}

	// Failover: a new sink instance sees the same batches again. It rolls
	// at the same positions with the same windows, so it rewrites the same
	// keys instead of adding files.
	write(newSink(), a, "replay-")
	if got := listKeys(t, env.S3, bucket, "lake/stream="); !slices.Equal(got, wantKeys) {
		t.Fatalf("after replay, object keys:\n got %q\nwant %q", got, wantKeys)
	}
	if n := len(readLake(t, env.S3, bucket, "lake/")); n != len(want) {
		t.Fatalf("after replay the lake holds %d rows, want %d", n, len(want))
	}
}

// TestS3WindowsClosedByTheClockAreKept: on an idle shard windows close on
// processing time, in batches that consume no new input and so carry the
// same position range as the batch before them. Their files must not
// overwrite each other.
func TestS3WindowsClosedByTheClockAreKept(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	s, err := NewS3(S3Options{Client: env.S3, Bucket: bucket, Prefix: "lake", SpoolDir: t.TempDir(), RollAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	a := newAcks()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rng := Range{First: pos(1), Last: pos(9)}
	for i := range 3 {
		rec := resultRecord(t, 2, []row{{entity: "press-1", ws: t0.Add(time.Duration(i) * time.Minute), score: 0.5, model: "m"}})
		name := fmt.Sprint("idle-", i)
		if err := s.Write(ctx, Batch{Stream: "factory", Shard: "shardId-000000000001", Range: rng, Rec: rec, Ack: a.fn(name)}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		a.wait(t, 30*time.Second, name)
		// Later batches on the idle shard consume nothing new.
		rng = Range{Last: pos(9)}
	}
	if n := len(readLake(t, env.S3, bucket, "lake/")); n != 3 {
		t.Fatalf("the lake holds %d of the 3 windows closed on the clock", n)
	}
}

func TestS3RollsBySizeWithMultipart(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	s, err := NewS3(S3Options{Client: env.S3, Bucket: bucket, SpoolDir: t.TempDir(), RollBytes: 21 << 19, PartSize: 5 << 20, RollAge: time.Hour, ZstdLevel: 1})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	// Incompressible features so the file really grows past two parts.
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	var names []string
	seed := uint64(1)
	for i := range 4 {
		rows := make([]row, 40000)
		for j := range rows {
			feats := make([]float64, 20)
			for k := range feats {
				seed = seed*6364136223846793005 + 1442695040888963407
				feats[k] = float64(seed>>11) / (1 << 53)
			}
			rows[j] = row{entity: fmt.Sprintf("e%05d", j), ws: base, feats: feats, model: "m"}
		}
		rec := resultRecord(t, 20, rows)
		name := fmt.Sprint(i)
		names = append(names, name)
		if err := s.Write(ctx, Batch{Stream: "s", Shard: "sh", Range: Range{First: pos(i * 10), Last: pos(i*10 + 9)}, Rec: rec, Ack: a.fn(name)}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(t, time.Minute, names...)
	out, err := env.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("stream=s/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) < 2 {
		t.Fatalf("%d files, want the size limit to roll at least once", len(out.Contents))
	}
	multipart := false
	for _, o := range out.Contents {
		if bytes.Contains([]byte(aws.ToString(o.ETag)), []byte("-")) {
			multipart = true
		}
	}
	if !multipart {
		t.Errorf("no file was uploaded in parts (ETags %v)", out.Contents)
	}
	if n := len(readLake(t, env.S3, bucket, "stream=s/")); n != 160000 {
		t.Fatalf("%d rows in the lake, want 160000", n)
	}
}

func TestS3OutageBacksOffAndLosesNothing(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	proxy := env.Proxy(t, env.Endpoints.S3)
	client := devstack.Endpoints{S3: proxy.URL()}.Clients().S3
	m, reg := newMetrics(t)
	s, err := NewS3(S3Options{Client: client, Bucket: bucket, SpoolDir: t.TempDir(), RollAge: 200 * time.Millisecond,
		Backoff: Backoff{Base: 50 * time.Millisecond, Max: 300 * time.Millisecond}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	batch := func(i int) {
		t.Helper()
		rows := []row{{entity: fmt.Sprintf("e-%d", i), ws: base.Add(time.Duration(i) * time.Minute), model: "m", score: float64(i)}}
		rec := resultRecord(t, 2, rows)
		defer rec.Release()
		if err := s.Write(ctx, Batch{Stream: "s", Shard: "sh", Range: Range{First: pos(i * 10), Last: pos(i*10 + 9)}, Rec: rec, Ack: a.fn(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	batch(0)
	a.wait(t, 20*time.Second, "0")

	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		batch(i)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	for i := 1; i <= 5; i++ {
		if err, ok := a.get(fmt.Sprint(i)); ok {
			t.Fatalf("batch %d acked (%v) while S3 was unreachable", i, err)
		}
	}
	if r := counter(t, reg, "streamscore_sink_retries_total", "s3"); r == 0 {
		t.Fatal("no retries counted during the outage")
	}
	if err := proxy.SetEnabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 60*time.Second, "1", "2", "3", "4", "5")

	rows := readLake(t, env.S3, bucket, "stream=s/")
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.entity]++
	}
	for i := range 6 {
		if n := seen[fmt.Sprintf("e-%d", i)]; n != 1 {
			t.Errorf("entity e-%d appears %d times, want exactly once", i, n)
		}
	}
	if len(rows) != 6 {
		t.Errorf("%d rows in the lake, want 6", len(rows))
	}
}
