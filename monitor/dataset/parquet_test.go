package dataset

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// resultRows is a scripted run of a window with a challenger, as rows of
// the result batch the pipeline hands the sinks: every 10th row from the
// 3rd an update, every 10th from the 7th a part of a window (both with
// outlandish values that must not reach the statistics), every 25th
// missing its vib_max.
type resultRows struct {
	n int
}

func (r resultRows) update(i int) bool  { return i%10 == 3 }
func (r resultRows) partial(i int) bool { return i%10 == 7 }
func (r resultRows) whole(i int) bool   { return !r.update(i) && !r.partial(i) }
func (r resultRows) vibNull(i int) bool { return i%25 == 0 }
func (r resultRows) temp(i int) float64 {
	switch {
	case r.update(i):
		return 1e6
	case r.partial(i):
		return -5e5
	}
	return 60.25 + float64(i%37)*0.5
}

// batch builds rows [from, to) in the pipeline's result layout
// (pipeline/results.go), offsets included, which the sinks drop.
func (r resultRows) batch(t testing.TB, from, to int) arrow.RecordBatch {
	t.Helper()
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	f64, str := arrow.PrimitiveTypes.Float64, arrow.BinaryTypes.String
	s := arrow.NewSchema([]arrow.Field{
		{Name: sinks.ColEntity, Type: str},
		{Name: sinks.ColWindowStart, Type: ts},
		{Name: sinks.ColWindowEnd, Type: ts},
		{Name: "temp_mean", Type: f64, Nullable: true},
		{Name: "vib_max", Type: f64, Nullable: true},
		{Name: sinks.ColUpdate, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartial, Type: str},
		{Name: windowing.ColOffsetFirst, Type: arrow.PrimitiveTypes.Uint64},
		{Name: windowing.ColOffsetLast, Type: arrow.PrimitiveTypes.Uint64},
		{Name: sinks.ColScore, Type: f64, Nullable: true},
		{Name: sinks.ColModelVersion, Type: str},
		{Name: sinks.ColFallback, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartialID, Type: str, Nullable: true},
		{Name: sinks.ColChallengerScore, Type: f64, Nullable: true},
		{Name: sinks.ColChallengerModelVersion, Type: str},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	base := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	for i := from; i < to; i++ {
		ws := base.Add(time.Duration(i/20) * time.Minute)
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("press-%02d", i%20))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(ws.UnixNano()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ws.Add(time.Minute).UnixNano()))
		b.Field(3).(*array.Float64Builder).Append(r.temp(i))
		if r.vibNull(i) {
			b.Field(4).(*array.Float64Builder).AppendNull()
		} else {
			b.Field(4).(*array.Float64Builder).Append(float64(i%11) / 8)
		}
		b.Field(5).(*array.BooleanBuilder).Append(r.update(i))
		partial := ""
		if r.partial(i) {
			partial = windowing.PartialEvicted
		}
		b.Field(6).(*array.StringBuilder).Append(partial)
		b.Field(7).(*array.Uint64Builder).Append(uint64(i))
		b.Field(8).(*array.Uint64Builder).Append(uint64(i))
		b.Field(9).(*array.Float64Builder).Append(float64(i%100) / 100)
		b.Field(10).(*array.StringBuilder).Append("xgb-7")
		b.Field(11).(*array.BooleanBuilder).Append(false)
		if r.partial(i) {
			b.Field(12).(*array.StringBuilder).Append(fmt.Sprintf("shardId-000000000001/%d", i))
		} else {
			b.Field(12).(*array.StringBuilder).AppendNull()
		}
		b.Field(13).(*array.Float64Builder).Append(float64(i%50) / 50)
		b.Field(14).(*array.StringBuilder).Append("xgb-8")
	}
	return b.NewRecordBatch()
}

// writeParquet writes batches to a zstd Parquet file with pqarrow.
func writeParquet(t testing.TB, path string, recs ...arrow.RecordBatch) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(recs[0].Schema(), f,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(128)),
		pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkResultStats asserts what the statistics of resultRows must say:
// the features and outputs only, whole windows only.
func checkResultStats(t *testing.T, s *monitor.Statistics, r resultRows) {
	t.Helper()
	var names []string
	for _, f := range s.Features {
		names = append(names, f.Name)
	}
	if want := []string{"temp_mean", "vib_max", sinks.ColScore, sinks.ColChallengerScore}; !slices.Equal(names, want) {
		t.Errorf("features = %q, want %q: the features and outputs, no bookkeeping", names, want)
	}
	var whole, vibMissing int64
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for i := range r.n {
		if !r.whole(i) {
			continue
		}
		whole++
		if r.vibNull(i) {
			vibMissing++
		}
		lo, hi, sum = min(lo, r.temp(i)), max(hi, r.temp(i)), sum+r.temp(i)
	}
	if s.Dataset.ItemCount != whole {
		t.Errorf("item_count = %d, want %d whole windows (no updates, no parts)", s.Dataset.ItemCount, whole)
	}
	tf := feature(t, s, "temp_mean")
	temp := tf.NumericalStatistics
	if temp == nil || tf.InferredType != monitor.Fractional {
		t.Fatalf("temp_mean: %+v, want Fractional numerical statistics", tf)
	}
	if temp.Min != lo || temp.Max != hi || !near(temp.Sum, sum) || temp.Common.NumPresent != whole {
		t.Errorf("temp_mean: min %v max %v sum %v present %d, want %v %v %v %d",
			temp.Min, temp.Max, temp.Sum, temp.Common.NumPresent, lo, hi, sum, whole)
	}
	if vib := feature(t, s, "vib_max").NumericalStatistics; vib == nil || vib.Common.NumMissing != vibMissing {
		t.Errorf("vib_max: %+v, want %d missing", vib, vibMissing)
	}
	if f := feature(t, s, sinks.ColChallengerScore); f.InferredType != monitor.Fractional {
		t.Errorf("challenger_score: inferred_type %s, want Fractional", f.InferredType)
	}
}

// TestProfileParquet: a Parquet file of our results layout is profiled on
// its features and outputs, whole windows only, whether its rows come in
// one row group or many, or in a directory of files, and checks against
// its own baseline cleanly.
func TestProfileParquet(t *testing.T) {
	r := resultRows{n: 600}
	dir := t.TempDir()
	one := filepath.Join(dir, "results.parquet")
	a, b := r.batch(t, 0, 250), r.batch(t, 250, r.n)
	defer a.Release()
	defer b.Release()
	writeParquet(t, one, a, b)
	base := profileOf(t, nil, one)
	checkResultStats(t, base, r)

	// The same rows as a directory of two files, one without the
	// .parquet extension (found by its magic), plus a marker to skip.
	parts := filepath.Join(dir, "parts")
	if err := os.MkdirAll(parts, 0o755); err != nil {
		t.Fatal(err)
	}
	writeParquet(t, filepath.Join(parts, "a.parquet"), a)
	writeParquet(t, filepath.Join(parts, "b"), b)
	if err := os.WriteFile(filepath.Join(parts, "_SUCCESS"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	split := profileOf(t, nil, parts)
	checkResultStats(t, split, r)

	if rep := monitor.Compare(base, monitor.Suggest(base), split); len(rep.Violations) > 0 {
		t.Errorf("the same rows checked against their own baseline: violations %+v", rep.Violations)
	}
}

// TestProfileS3: the S3 sink's own files, read back through an s3:// prefix
// (every object under it) and an s3:// key, from the local S3 server.
func TestProfileS3(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	sink, err := sinks.NewS3(sinks.S3Options{Client: env.S3, Bucket: bucket, Prefix: "results/", SpoolDir: t.TempDir(), RollAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := resultRows{n: 600}
	acks := make(chan error, 2)
	for k, span := range [][2]int{{0, 300}, {300, r.n}} {
		rec := r.batch(t, span[0], span[1])
		defer rec.Release()
		first := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*k+1)}
		last := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*k+999)}
		if err := sink.Write(ctx, sinks.Batch{Stream: "factory", Shard: "shardId-000000000001", Range: sinks.Range{First: first, Last: last},
			Rec: rec, Ack: func(err error) { acks <- err }}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-acks; err != nil {
			t.Fatalf("the S3 sink failed a batch: %v", err)
		}
	}
	list, err := env.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("results/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 {
		t.Fatalf("the S3 sink wrote %d objects under results/, want the one file of the shard's hour", len(list.Contents))
	}
	key := aws.ToString(list.Contents[0].Key)

	base := profileOf(t, env.S3, "s3://"+bucket+"/results/")
	checkResultStats(t, base, r)

	// The same file by its key, checked against that baseline: the same
	// rows, no violation.
	byKey := profileOf(t, env.S3, "s3://"+bucket+"/"+key)
	checkResultStats(t, byKey, r)
	if rep := monitor.Compare(base, monitor.Suggest(base), byKey); len(rep.Violations) > 0 {
		t.Errorf("s3://%s/%s checked against the prefix's baseline: violations %+v", bucket, key, rep.Violations)
	}

	_, err = profile(t, env.S3, "s3://"+bucket+"/results")
	if want := "s3://" + bucket + "/results: no such object (end the URI with / "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a prefix without its slash: %v, want the object named and the hint", err)
	}
	_, err = profile(t, env.S3, "s3://"+bucket+"/nothing/")
	if want := "s3://" + bucket + "/nothing/: no objects under the prefix"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("an empty prefix: %v, want %q", err, want)
	}
}
