package sinks

// Which columns and rows of a results batch the drift monitor profiles.
// The in-stream monitor (the pipeline) and `streamscore monitor` (reading
// the Parquet files the S3 sink wrote) both ask here, so a baseline made
// from the data lake and the statistics made in the stream describe the
// same columns and the same rows.

import (
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// Columns a scorer with a challenger adds to the result (the pipeline's
// result builder): the challenger's outputs, named like the champion's
// (challenger_score, or challenger_score_0..k), and its model version.
const (
	ColChallengerScore        = "challenger_score"
	ColChallengerModelVersion = "challenger_model_version"
)

// MonitoredColumns returns the indices, in schema order, of the columns of
// a results batch the drift monitor profiles: the features and the model
// outputs (score, score_k, challenger_score, challenger_score_k). The key,
// time, version, flag and bookkeeping columns are left out: they describe
// the pipeline, not the data, and an entity or a timestamp always "drifts".
// Only columns of a type the monitor reads are returned (integers, floats,
// bool, strings), so a nested column in a foreign file is skipped rather
// than refused.
func MonitoredColumns(s *arrow.Schema) []int {
	var out []int
	for i, f := range s.Fields() {
		if monitored(f.Name) && profilable(f.Type) {
			out = append(out, i)
		}
	}
	return out
}

func monitored(name string) bool {
	return isScore(name) || isChallengerScore(name) || isFeature(name)
}

// isChallengerScore reports whether a column holds a challenger's output:
// "challenger_score", or "challenger_score_0".."challenger_score_k".
func isChallengerScore(name string) bool {
	rest, ok := strings.CutPrefix(name, "challenger_")
	return ok && isScore(rest)
}

func profilable(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.STRING, arrow.LARGE_STRING:
		return true
	}
	return false
}

// MonitorSkip returns which rows of a results batch the monitor leaves out,
// and how many rows it keeps (the dataset item count to add). Updates
// (update true, or above 0 in a file that stores it as a number) revise a
// window already counted, and partial rows (partial non-empty, or true)
// hold only part of a window, so profiling either would count a window
// twice or a fragment as a whole. Null means neither.
//
// skip is nil when the batch has no row to leave out, so callers can take
// a path without a call per row; otherwise it reads a bitmap computed once
// for the batch (one scan, one allocation per batch, none per row), which
// every monitored column's pass shares.
func MonitorSkip(rec arrow.RecordBatch) (skip func(row int) bool, kept int) {
	n := int(rec.NumRows())
	var tests []func(int) bool
	for i, f := range rec.Schema().Fields() {
		var t func(int) bool
		switch f.Name {
		case ColUpdate:
			t = positive(rec.Column(i))
		case ColPartial:
			t = nonEmpty(rec.Column(i))
		}
		if t != nil {
			tests = append(tests, t)
		}
	}
	if len(tests) == 0 || n == 0 {
		return nil, n
	}
	var bits []byte
	skipped := 0
	for row := range n {
		for _, t := range tests {
			if t(row) {
				if bits == nil {
					bits = make([]byte, bitutil.BytesForBits(int64(n)))
				}
				bitutil.SetBit(bits, row)
				skipped++
				break
			}
		}
	}
	if skipped == 0 {
		return nil, n
	}
	return func(row int) bool { return bitutil.BitIsSet(bits, row) }, n - skipped
}

// positive tests a flag column that may be stored as bool or a number.
func positive(a arrow.Array) func(int) bool {
	switch c := a.(type) {
	case *array.Boolean:
		return func(i int) bool { return c.IsValid(i) && c.Value(i) }
	case *array.Int8:
		return above(c)
	case *array.Int16:
		return above(c)
	case *array.Int32:
		return above(c)
	case *array.Int64:
		return above(c)
	case *array.Uint8:
		return above(c)
	case *array.Uint16:
		return above(c)
	case *array.Uint32:
		return above(c)
	case *array.Uint64:
		return above(c)
	}
	return nil
}

func above[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](c interface {
	IsValid(int) bool
	Value(int) T
}) func(int) bool {
	return func(i int) bool { return c.IsValid(i) && c.Value(i) > 0 }
}

// nonEmpty tests the partial column: a non-empty reason ("evicted",
// "late"), or true where a file stores it as a flag.
func nonEmpty(a arrow.Array) func(int) bool {
	switch c := a.(type) {
	case *array.String:
		return func(i int) bool { return c.IsValid(i) && c.ValueLen(i) > 0 }
	case *array.LargeString:
		return func(i int) bool { return c.IsValid(i) && c.ValueLen(i) > 0 }
	case *array.Boolean:
		return func(i int) bool { return c.IsValid(i) && c.Value(i) }
	}
	return nil
}
