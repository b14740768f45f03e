package sinks

import (
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

type discardCounter struct{ n int64 }

func (d *discardCounter) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// BenchmarkParquetEncode measures the S3 sink's encode path on one core:
// building the output record (result_id hashing, the fixed columns) and
// zstd Parquet encoding of 4,096-row batches with 30 float64 features,
// into a discarding writer so no disk or network is measured.
//
// Two kinds of feature values, because zstd's speed depends on them:
// "aggregates" looks like window output (half full-precision means,
// deviations and quantiles, a third readings with two decimals, the rest
// counts); "rounded" is every feature a one-decimal value from a small
// range, which zstd finds many short repeats in.
func BenchmarkParquetEncode(b *testing.B) {
	for _, data := range []string{"aggregates", "rounded"} {
		for _, c := range []struct {
			name string
			o    S3Options
		}{
			{"default", S3Options{}},
			{"floats=plain", S3Options{FloatEncoding: FloatPlain}},
			{"zstd=3", S3Options{ZstdLevel: 3}},
			{"feature_stats", S3Options{FeatureStats: true}},
		} {
			b.Run("data="+data+"/"+c.name, func(b *testing.B) { benchEncode(b, data, c.o) })
		}
	}
}

// benchFeatures returns 30 feature values for row i of a batch.
func benchFeatures(data string, i int, seed *uint64) []float64 {
	feats := make([]float64, 30)
	for j := range feats {
		*seed = *seed*6364136223846793005 + 1442695040888963407
		u := float64(*seed>>11) / float64(1<<53)
		level := 40 + float64(i%50) // machines differ in their operating point
		switch {
		case data == "rounded":
			feats[j] = math.Round(u*1000) / 10
		case j%6 < 3: // mean, stddev, quantile: full precision
			feats[j] = level + u
		case j%6 < 5: // max, min, delta: one reading, two decimals
			feats[j] = math.Round((level+3*u)*100) / 100
		default: // count
			feats[j] = float64(235 + *seed%10)
		}
	}
	return feats
}

var rgb int64 = 32 << 20

func benchEncode(b *testing.B, data string, o S3Options) {
	const rowsPerBatch = 4096
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	// 64 distinct batches (262,144 rows) in rotation: more than a row
	// group holds, so zstd never sees the same values twice in one page.
	const distinct = 64
	seed := uint64(7)
	var (
		recs  []Batch
		views []*view
	)
	for k := range distinct {
		rows := make([]row, rowsPerBatch)
		for i := range rows {
			rows[i] = row{entity: fmt.Sprintf("press-%05d", i), ws: t0.Add(time.Duration(k) * time.Minute), feats: benchFeatures(data, i, &seed), score: float64(seed%1000) / 1000, model: "xgb-7"}
		}
		rec := resultRecord(b, 30, rows)
		defer rec.Release()
		v, err := newView(rec)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, Batch{Stream: "factory", Shard: "shardId-000000000000", Rec: rec})
		views = append(views, v)
	}
	o.RowGroupBytes, o.Logger, o.Now = rgb, slog.Default(), time.Now
	if o.FloatEncoding == "" {
		o.FloatEncoding = FloatByteStreamSplit
	}
	h := newS3Handler(o, (*Metrics)(nil).forSink("s3"))
	first := h.output(recs[0], views[0])
	sink := &discardCounter{}
	fw, err := pqarrow.NewFileWriter(first.Schema(), sink, h.writerProps(first.Schema()), h.arrowProps)
	if err != nil {
		b.Fatal(err)
	}
	first.Release()
	b.SetBytes(recordBytes(recs[0].Rec))
	b.ReportAllocs()
	b.ResetTimer()
	var buffered int64
	for i := range b.N {
		out := h.output(recs[i%distinct], views[i%distinct])
		if err := fw.WriteBuffered(out); err != nil {
			b.Fatal(err)
		}
		buffered += recordBytes(out)
		out.Release()
		if buffered >= h.o.RowGroupBytes {
			if err := fw.NewBufferedRowGroupChecked(); err != nil {
				b.Fatal(err)
			}
			buffered = 0
		}
	}
	if err := fw.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	rowsDone := float64(b.N) * rowsPerBatch
	b.ReportMetric(rowsDone/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(sink.n)/rowsDone, "parquet-B/row")
}

func BenchmarkResultID(b *testing.B) {
	var scratch [256]byte
	var out [32]byte
	b.ReportAllocs()
	for i := range b.N {
		appendResultID(out[:0], scratch[:0], "factory-sensors", "press-00017", 1795514400000+int64(i), 1795514460000+int64(i), "xgb-7")
	}
}
