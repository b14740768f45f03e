// Command gobench times the embedded scorer on the model and rows that
// compare.sh also hands to XGBoost, and prints rows per CPU-second, rows
// per wall-clock second and the model's load time in milliseconds.
//
//	gobench -model t100_d6.json -rows rows.f64 -features 30 -batch 4096 -seconds 3
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/streamscore/streamscore/scorer"
)

func main() {
	model := flag.String("model", "", "XGBoost model file")
	rows := flag.String("rows", "", "rows as little-endian float64, row-major")
	features := flag.Int("features", 30, "features per row in -rows")
	batch := flag.Int("batch", 4096, "rows per Predict call")
	seconds := flag.Float64("seconds", 3, "how long to run")
	flag.Parse()
	if err := run(*model, *rows, *features, *batch, *seconds); err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
}

func run(model, rows string, nf, batch int, seconds float64) error {
	t0 := time.Now()
	m, err := scorer.LoadModel(context.Background(), model, nil)
	if err != nil {
		return err
	}
	load := time.Since(t0)
	raw, err := os.ReadFile(rows)
	if err != nil {
		return err
	}
	if len(raw)%(8*nf) != 0 {
		return fmt.Errorf("%s: %d bytes is not a whole number of %d-feature rows", rows, len(raw), nf)
	}
	if len(m.Features()) != nf {
		return fmt.Errorf("model has %d features, rows have %d", len(m.Features()), nf)
	}
	n := len(raw) / (8 * nf)
	cols := make([][]float64, nf)
	for j := range cols {
		cols[j] = make([]float64, n)
	}
	for i := range n {
		for j := range nf {
			cols[j][i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[(i*nf+j)*8:]))
		}
	}
	res, err := scorer.BenchModel(m, scorer.BenchOptions{Cols: cols, Batch: batch, Duration: time.Duration(seconds * float64(time.Second))})
	if err != nil {
		return err
	}
	fmt.Printf("%.0f %.0f %.1f\n", res.RowsPerCPUSec, res.RowsPerSec, float64(load.Microseconds())/1e3)
	return nil
}
