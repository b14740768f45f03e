package sinks

import (
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/streamscore/streamscore/windowing"
)

func names(s *arrow.Schema, idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, s.Field(i).Name)
	}
	return out
}

// TestMonitoredColumns: of the result layout as the pipeline hands it to
// the sinks and as the S3 sink writes it, the monitor profiles the features
// and every model output, and nothing that describes the pipeline.
func TestMonitoredColumns(t *testing.T) {
	f64 := arrow.PrimitiveTypes.Float64
	str := arrow.BinaryTypes.String
	boolean := arrow.FixedWidthTypes.Boolean
	ts := arrow.FixedWidthTypes.Timestamp_ms
	// The pipeline's result (pipeline/results.go) with two outputs and a
	// challenger, plus what the S3 sink adds and a foreign nested column.
	s := arrow.NewSchema([]arrow.Field{
		{Name: ColResultID, Type: resultIDType},
		{Name: ColEntity, Type: str},
		{Name: ColWindowStart, Type: ts},
		{Name: ColWindowEnd, Type: ts},
		{Name: "temp_mean", Type: f64},
		{Name: "vib_p95", Type: f64},
		{Name: "site", Type: str},
		{Name: "events", Type: arrow.PrimitiveTypes.Int64},
		{Name: ColUpdate, Type: boolean},
		{Name: ColPartial, Type: str},
		{Name: "offset_first", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "offset_last", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "_shard", Type: str},
		{Name: "score_0", Type: f64},
		{Name: "score_1", Type: f64},
		{Name: ColModelVersion, Type: str},
		{Name: ColFallback, Type: boolean},
		{Name: ColPartialID, Type: str},
		{Name: "challenger_score_0", Type: f64},
		{Name: "challenger_score_1", Type: f64},
		{Name: ColChallengerModelVersion, Type: str},
		{Name: "tags", Type: arrow.ListOf(str)},
		{Name: ColEventTime, Type: ts},
		{Name: ColProcessingTime, Type: ts},
	}, nil)
	want := []string{"temp_mean", "vib_p95", "site", "events", "score_0", "score_1", "challenger_score_0", "challenger_score_1"}
	if got := names(s, MonitoredColumns(s)); !slices.Equal(got, want) {
		t.Errorf("MonitoredColumns = %q, want %q", got, want)
	}

	one := arrow.NewSchema([]arrow.Field{
		{Name: ColEntity, Type: str}, {Name: "f00", Type: f64},
		{Name: ColScore, Type: arrow.PrimitiveTypes.Float32}, {Name: ColChallengerScore, Type: f64},
		// Not outputs, though they look alike.
		{Name: "score_x", Type: f64}, {Name: "challenger_scores", Type: f64},
	}, nil)
	want = []string{"f00", ColScore, ColChallengerScore, "score_x", "challenger_scores"}
	if got := names(one, MonitoredColumns(one)); !slices.Equal(got, want) {
		t.Errorf("MonitoredColumns = %q, want %q", got, want)
	}
}

// flagRecord builds a batch with the two flag columns the skip rule reads.
func flagRecord(t *testing.T, update []*bool, partial []*string) arrow.RecordBatch {
	t.Helper()
	mem := memory.DefaultAllocator
	ub := array.NewBooleanBuilder(mem)
	defer ub.Release()
	pb := array.NewStringBuilder(mem)
	defer pb.Release()
	fb := array.NewFloat64Builder(mem)
	defer fb.Release()
	for i := range update {
		if update[i] == nil {
			ub.AppendNull()
		} else {
			ub.Append(*update[i])
		}
		if partial[i] == nil {
			pb.AppendNull()
		} else {
			pb.Append(*partial[i])
		}
		fb.Append(float64(i))
	}
	s := arrow.NewSchema([]arrow.Field{
		{Name: "f00", Type: arrow.PrimitiveTypes.Float64},
		{Name: ColUpdate, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: ColPartial, Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	return array.NewRecordBatch(s, []arrow.Array{fb.NewArray(), ub.NewArray(), pb.NewArray()}, int64(len(update)))
}

func TestMonitorSkip(t *testing.T) {
	yes, no := true, false
	empty, evicted, late := "", windowing.PartialEvicted, windowing.PartialLate
	update := []*bool{&no, &yes, &no, &no, nil, &no, nil, &yes}
	partial := []*string{&empty, &empty, &evicted, nil, &empty, &late, nil, &late}
	wantSkip := []bool{false, true, true, false, false, true, false, true}
	rec := flagRecord(t, update, partial)
	defer rec.Release()

	skip, kept := MonitorSkip(rec)
	if skip == nil {
		t.Fatal("MonitorSkip returned no skip function for a batch with updates and partial rows")
	}
	for i, w := range wantSkip {
		if got := skip(i); got != w {
			t.Errorf("row %d (update %v, partial %v): skip = %v, want %v", i, deref(update[i]), deref(partial[i]), got, w)
		}
	}
	if kept != 4 {
		t.Errorf("kept = %d, want 4", kept)
	}
	if allocs := testing.AllocsPerRun(10, func() {
		for i := range wantSkip {
			_ = skip(i)
		}
	}); allocs != 0 {
		t.Errorf("skip allocates %.0f times per batch pass, want 0", allocs)
	}

	// Whole, original windows only: nothing to skip, no per-row call.
	whole := flagRecord(t, []*bool{&no, nil, &no}, []*string{&empty, nil, nil})
	defer whole.Release()
	if skip, kept := MonitorSkip(whole); skip != nil || kept != 3 {
		t.Errorf("batch of whole windows: skip != nil is %v, kept %d, want nil and 3", skip != nil, kept)
	}

	// No flag columns at all (a training set in Parquet): every row counts.
	plain := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "f00", Type: arrow.PrimitiveTypes.Float64}}, nil),
		[]arrow.Array{rec.Column(0)}, rec.NumRows())
	defer plain.Release()
	if skip, kept := MonitorSkip(plain); skip != nil || kept != len(wantSkip) {
		t.Errorf("batch without flags: skip != nil is %v, kept %d, want nil and %d", skip != nil, kept, len(wantSkip))
	}
}

// TestMonitorSkipNumericAndBoolFlags: files that store update as a number
// (update > 0) or partial as a flag follow the same rule.
func TestMonitorSkipNumericAndBoolFlags(t *testing.T) {
	mem := memory.DefaultAllocator
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	ib.AppendValues([]int32{0, 1, 0, 2, 0}, []bool{true, true, true, true, false})
	bb := array.NewBooleanBuilder(mem)
	defer bb.Release()
	bb.AppendValues([]bool{false, false, true, false, true}, []bool{true, true, true, true, false})
	ia, ba := ib.NewArray(), bb.NewArray()
	defer ia.Release()
	defer ba.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{
		{Name: ColUpdate, Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: ColPartial, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil), []arrow.Array{ia, ba}, 5)
	defer rec.Release()
	skip, kept := MonitorSkip(rec)
	if skip == nil || kept != 2 {
		t.Fatalf("skip != nil is %v, kept %d, want a skip function and 2", skip != nil, kept)
	}
	for i, w := range []bool{false, true, true, true, false} {
		if skip(i) != w {
			t.Errorf("row %d: skip = %v, want %v", i, skip(i), w)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// A challenger's outputs and version are model outputs, not window
// features: the feature table and an alert's feature map leave them out.
func TestChallengerColumnsAreNoFeatures(t *testing.T) {
	for _, name := range []string{ColChallengerScore, "challenger_score_1", ColChallengerModelVersion, ColScore} {
		if isFeature(name) {
			t.Errorf("%s counts as a feature", name)
		}
	}
	if !isFeature("challenger_scores") || !isFeature("vib_mean") {
		t.Error("a feature whose name only looks like a challenger column is no feature")
	}
}
