package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/windowing"
)

// BenchmarkInProcess is the whole per-shard chain without the network:
// sensor JSON replayed from memory -> decode -> 30 s/10 s hopping windows
// with 12 features -> the embedded 100-tree demo model -> result rows ->
// zstd Parquet to a local file. One op is one event.
//
//	go test -run '^$' -bench InProcess -benchtime 2000000x -count 5 ./pipeline/
func BenchmarkInProcess(b *testing.B) {
	cfg, err := config.Load("../examples/demo/factory.yaml")
	if err != nil {
		b.Fatal(err)
	}
	w := cfg.Windows[0]
	schema, err := StreamSchema(cfg, w.Stream)
	if err != nil {
		b.Fatal(err)
	}
	spec := WindowSpecFor(w)
	model, err := scorer.LoadModel(context.Background(), "../"+cfg.Models["failure_xgb"].Path, nil)
	if err != nil {
		b.Fatal(err)
	}

	// 2,000 machines reporting every 250 ms: 8,000 events a second of
	// event time, rendered before the clock starts so the benchmark
	// measures the pipeline, not the generator.
	const machines = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	events := make([][]byte, 0, b.N)
	for i := range b.N {
		ts := start.Add(time.Duration(i/machines) * 250 * time.Millisecond)
		events = append(events, fmt.Appendf(nil,
			`{"machine_id":"press-%04d","ts":"%s","temperature_c":%.2f,"vibration_rms":%.3f,"pressure_bar":%.2f,"rpm":%d,"current_a":%.2f}`,
			i%machines, ts.Format("2006-01-02T15:04:05.000Z"), 60+rng.Float64()*10, 0.3+rng.Float64()*0.1,
			5+rng.Float64()*0.2, 1450+rng.IntN(60), 12+rng.Float64()))
	}

	out, err := os.Create(filepath.Join(b.TempDir(), "results.parquet"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	dec, _ := windowing.NewDecoder(schema, nil)
	defer dec.Release()
	op, err := windowing.NewOperator(spec, schema, windowing.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer op.Release()
	emb, err := scorer.NewEmbedded(model, op.Schema(), nil)
	if err != nil {
		b.Fatal(err)
	}
	rb := newResultBuilder(op.Schema(), emb.Outputs(), 0, nil)
	defer rb.release()
	pw, err := pqarrow.NewFileWriter(rb.schema, out,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(false)),
		pqarrow.NewArrowWriterProperties())
	if err != nil {
		b.Fatal(err)
	}
	var res scorer.Result
	rows := 0
	const batch = 500
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		for j := range n {
			ev := events[i+j]
			if err := dec.Append(ev, uint64(i+j)); err != nil {
				b.Fatal(err)
			}
		}
		i += n
		rec := dec.NewRecordBatch()
		o, err := op.Process(rec, start)
		rec.Release()
		if err != nil {
			b.Fatal(err)
		}
		if o.Features != nil {
			if err := emb.Score(context.Background(), o.Features, &res); err != nil {
				b.Fatal(err)
			}
			r := rb.build(o.Features, &res, nil)
			if err := pw.WriteBuffered(r); err != nil {
				b.Fatal(err)
			}
			rows += int(r.NumRows())
			r.Release()
			o.Features.Release()
		}
	}
	if err := pw.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(rows)/float64(b.N), "windows/event")
}
