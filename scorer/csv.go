package scorer

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// FeatureTable is a column-major feature matrix read from CSV.
type FeatureTable struct {
	Names []string
	Cols  [][]float64
	Rows  int
}

// ReadFeatureCSV reads a CSV whose first row names the features; an empty
// cell (or NaN) is a missing value. Errors name the line and column. When
// only is non-nil, other columns are kept out of the table unparsed.
func ReadFeatureCSV(r io.Reader, only []string) (*FeatureTable, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.ReuseRecord = true
	hdr, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("csv: empty input, want a header row of feature names")
	}
	if err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	t := &FeatureTable{}
	seen := map[string]bool{}
	var keep []int // CSV column of each table column
	for i, h := range hdr {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("csv: line 1: column %d has an empty name", i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("csv: line 1: column name %q appears twice", h)
		}
		seen[h] = true
		if only == nil || contains(only, h) {
			t.Names = append(t.Names, h)
			keep = append(keep, i)
		}
	}
	t.Cols = make([][]float64, len(keep))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(hdr) {
			return nil, fmt.Errorf("csv: line %d: %d fields, the header has %d", line, len(rec), len(hdr))
		}
		for j, c := range keep {
			cell := rec[c]
			v, err := parseCell(cell)
			if err != nil {
				return nil, fmt.Errorf("csv: line %d, column %q: %w", line, t.Names[j], err)
			}
			t.Cols[j] = append(t.Cols[j], v)
		}
		t.Rows++
	}
}

func parseCell(cell string) (float64, error) {
	cell = strings.TrimSpace(cell)
	if cell == "" {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(cell, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", cell)
	}
	return v, nil
}

// Select returns the table's columns in the order of names, or an error
// naming every feature the table lacks.
func (t *FeatureTable) Select(names []string) ([][]float64, error) {
	idx := make(map[string]int, len(t.Names))
	for i, n := range t.Names {
		idx[n] = i
	}
	cols := make([][]float64, len(names))
	var missing []string
	for j, n := range names {
		i, ok := idx[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		cols[j] = t.Cols[i]
	}
	if len(missing) > 0 {
		return nil, &MissingFeaturesError{Missing: missing}
	}
	return cols, nil
}

// MissingFeaturesError reports model features absent from the input.
type MissingFeaturesError struct {
	Missing []string
}

func (e *MissingFeaturesError) Error() string {
	return fmt.Sprintf("input lacks %d feature(s) the model needs: %s", len(e.Missing), strings.Join(e.Missing, ", "))
}

// ScoreHeader returns the output column names for a model: "score", or
// score_0..score_k for multi-output models.
func ScoreHeader(outputs int) []string {
	if outputs == 1 {
		return []string{"score"}
	}
	h := make([]string, outputs)
	for k := range h {
		h[k] = "score_" + strconv.Itoa(k)
	}
	return h
}

// PredictCSV scores a feature CSV (see ReadFeatureCSV) and writes a CSV
// with a header (see ScoreHeader) and one row per input row, in order, with
// scores in shortest round-trip form (at least 9 significant digits of
// precision are preserved, 17 when needed).
func PredictCSV(m *Model, in io.Reader, out io.Writer) error {
	t, err := ReadFeatureCSV(in, m.Features())
	if err != nil {
		return err
	}
	cols, err := t.Select(m.Features())
	if err != nil {
		return err
	}
	scores := make([][]float64, m.Outputs())
	for k := range scores {
		scores[k] = make([]float64, t.Rows)
	}
	var s Scratch
	if err := m.Predict(cols, t.Rows, scores, &s); err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	bw.WriteString(strings.Join(ScoreHeader(m.Outputs()), ",") + "\n")
	var buf []byte
	for i := range t.Rows {
		buf = buf[:0]
		for k := range scores {
			if k > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendFloat(buf, scores[k][i], 'g', -1, 64)
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
