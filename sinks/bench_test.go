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
func BenchmarkParquetEncode(b *testing.B) {
	for _, level := range []int{0, 1} {
		b.Run(fmt.Sprintf("zstd=%d", level), func(b *testing.B) { benchEncode(b, level) })
	}
}

func benchEncode(b *testing.B, level int) {
	const rowsPerBatch = 4096
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	// Eight distinct batches in rotation, so zstd cannot just find the
	// previous batch again.
	const distinct = 8
	seed := uint64(7)
	var (
		recs  []Batch
		views []*view
	)
	for k := range distinct {
		rows := make([]row, rowsPerBatch)
		for i := range rows {
			feats := make([]float64, 30)
			for j := range feats {
				seed = seed*6364136223846793005 + 1442695040888963407
				// Sensor-like values: a few significant digits, as
				// aggregates of real readings have.
				feats[j] = math.Round(float64(seed>>40)/float64(1<<24)*1000) / 10
			}
			rows[i] = row{entity: fmt.Sprintf("press-%05d", i), ws: t0.Add(time.Duration(k) * time.Minute), feats: feats, score: float64(seed%1000) / 1000, model: "xgb-7"}
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
	rec, v := recs[0].Rec, views[0]
	h := newS3Handler(S3Options{RowGroupBytes: 32 << 20, ZstdLevel: level, Logger: slog.Default(), Now: time.Now}, (*Metrics)(nil).forSink("s3"))
	first := h.output(recs[0], v)
	sink := &discardCounter{}
	fw, err := pqarrow.NewFileWriter(first.Schema(), sink, h.props, h.arrowProps)
	if err != nil {
		b.Fatal(err)
	}
	first.Release()
	inBytes := recordBytes(rec)
	b.SetBytes(inBytes)
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
		appendResultID(out[:0], scratch[:0], "factory-sensors", "press-00017", int64(i), int64(i)+60e9, "xgb-7")
	}
}
