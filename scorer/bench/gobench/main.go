// Command gobench times the embedded scorer on the model and rows that
// compare.sh also hands to XGBoost, and prints rows per CPU-second, rows
// per wall-clock second and the model's load time in milliseconds.
//
//	gobench -model t100_d6.json -rows rows.f64 -features 30 -batch 4096 -seconds 3
//
// With -same-as OTHER, it first scores every row, rounded to float32, with
// both models and fails unless their scores agree within -tolerance, so that
// two formats of the same trees (compare.sh's LightGBM row) are known to be
// the same model. (Rounded, because XGBoost compares float32 values and
// LightGBM doubles: a double just below a split that rounds onto it goes
// different ways.)
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
	model := flag.String("model", "", "model file (any format LoadModel reads)")
	rows := flag.String("rows", "", "rows as little-endian float64, row-major")
	features := flag.Int("features", 30, "features per row in -rows")
	batch := flag.Int("batch", 4096, "rows per Predict call")
	seconds := flag.Float64("seconds", 3, "how long to run")
	sameAs := flag.String("same-as", "", "a model that must score every row as -model does")
	tol := flag.Float64("tolerance", 1e-5, "largest score difference -same-as allows")
	flag.Parse()
	if err := run(*model, *rows, *features, *batch, *seconds, *sameAs, *tol); err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
}

func run(model, rows string, nf, batch int, seconds float64, sameAs string, tol float64) error {
	ctx := context.Background()
	t0 := time.Now()
	m, err := scorer.LoadModel(ctx, model, nil)
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
	if sameAs != "" {
		other, err := scorer.LoadModel(ctx, sameAs, nil)
		if err != nil {
			return err
		}
		rounded := make([][]float64, nf)
		for j, c := range cols {
			rounded[j] = make([]float64, n)
			for i, v := range c {
				rounded[j][i] = float64(float32(v))
			}
		}
		if err := sameScores(m, other, rounded, n, tol); err != nil {
			return fmt.Errorf("%s and %s: %w", model, sameAs, err)
		}
	}
	res, err := scorer.BenchModel(m, scorer.BenchOptions{Cols: cols, Batch: batch, Duration: time.Duration(seconds * float64(time.Second))})
	if err != nil {
		return err
	}
	fmt.Printf("%.0f %.0f %.1f\n", res.RowsPerCPUSec, res.RowsPerSec, float64(load.Microseconds())/1e3)
	return nil
}

// sameScores scores the n rows of cols with both models and returns an
// error naming the first row whose scores differ by more than tol.
func sameScores(a, b *scorer.Model, cols [][]float64, n int, tol float64) error {
	if len(a.Features()) != len(b.Features()) || a.Outputs() != b.Outputs() {
		return fmt.Errorf("%d features and %d outputs against %d and %d", len(a.Features()), a.Outputs(), len(b.Features()), b.Outputs())
	}
	score := func(m *scorer.Model) ([][]float64, error) {
		out := make([][]float64, m.Outputs())
		for k := range out {
			out[k] = make([]float64, n)
		}
		var s scorer.Scratch
		return out, m.Predict(cols, n, out, &s)
	}
	sa, err := score(a)
	if err != nil {
		return err
	}
	sb, err := score(b)
	if err != nil {
		return err
	}
	for k := range sa {
		for i := range n {
			if d := math.Abs(sa[k][i] - sb[k][i]); !(d <= tol) {
				return fmt.Errorf("row %d output %d: %v against %v", i, k, sa[k][i], sb[k][i])
			}
		}
	}
	return nil
}
