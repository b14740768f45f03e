package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/streamscore/streamscore/sinks"
)

// TestLabelNormalisation is the table of what a label field's value
// becomes in the ground truth, for each type the labels schema may give
// it: a bool is 1 or 0, a number its shortest form, a string holding
// either is normalised alike, and anything else is refused, saying why.
func TestLabelNormalisation(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	type row struct {
		v    any // nil: a null
		want string
		err  string
	}
	cases := []struct {
		typ  arrow.DataType
		rows []row
	}{
		{arrow.FixedWidthTypes.Boolean, []row{{true, "1", ""}, {false, "0", ""}, {nil, "", "missing or null"}}},
		{arrow.PrimitiveTypes.Int64, []row{{int64(1), "1", ""}, {int64(0), "0", ""}, {int64(-7), "-7", ""},
			{int64(1234567), "1.234567e+06", ""}, {nil, "", "missing or null"}}},
		{arrow.PrimitiveTypes.Float64, []row{{1.0, "1", ""}, {0.25, "0.25", ""}, {1e21, "1e+21", ""}, {math.Copysign(0, -1), "0", ""},
			{0.30000000000000004, "0.30000000000000004", ""}, {nil, "", "missing or null"}}},
		{arrow.BinaryTypes.String, []row{
			{"1", "1", ""}, {"0", "0", ""}, {"true", "1", ""}, {"FALSE", "0", ""}, {" True ", "1", ""},
			{"1.50", "1.5", ""}, {"-2e3", "-2000", ""}, {"0.0", "0", ""}, {"-0", "0", ""},
			{"maybe", "", `"maybe" is not a number, true or false`},
			{"", "", "no label"}, {"NaN", "", "not a finite number"}, {"1e999", "", "is not a number"},
			{"1,0", "", "is not a number"}, {nil, "", "missing or null"},
		}},
	}
	for _, c := range cases {
		b := array.NewBuilder(mem, c.typ)
		for _, r := range c.rows {
			switch v := r.v.(type) {
			case nil:
				b.AppendNull()
			case bool:
				b.(*array.BooleanBuilder).Append(v)
			case int64:
				b.(*array.Int64Builder).Append(v)
			case float64:
				b.(*array.Float64Builder).Append(v)
			case string:
				b.(*array.StringBuilder).Append(v)
			}
		}
		col := b.NewArray()
		b.Release()
		for i, r := range c.rows {
			got, err := appendLabel([]byte("x"), col, i)
			switch {
			case r.err == "" && (err != nil || string(got) != "x"+r.want):
				t.Errorf("%s %#v: %q, %v; want %q", c.typ, r.v, got, err, r.want)
			case r.err != "" && (err == nil || !strings.Contains(err.Error(), r.err) || string(got) != "x"):
				t.Errorf("%s %#v: %q, %v; want an error with %q and nothing appended", c.typ, r.v, got, err, r.err)
			}
		}
		col.Release()
	}
}

// A label read from a string field costs no allocation: the decoded
// batch's string is read in place.
func TestLabelNormalisationDoesNotAllocate(t *testing.T) {
	b := array.NewStringBuilder(memory.DefaultAllocator)
	b.AppendValues([]string{"true", "0.75", "1"}, nil)
	col := b.NewArray()
	b.Release()
	defer col.Release()
	buf := make([]byte, 0, 32)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range col.Len() {
			var err error
			if buf, err = appendLabel(buf[:0], col, i); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch of 3 labels, want 0", allocs)
	}
}

// The labels written reach CloudWatch as LabelsWritten, per stream,
// summed over the interval (here in EMF, the sink's other output).
func TestLabelsWrittenReachCloudWatch(t *testing.T) {
	var emf bytes.Buffer
	cw, err := sinks.NewCloudWatch(sinks.CloudWatchOptions{EMF: &emf, Pipeline: "p"})
	if err != nil {
		t.Fatal(err)
	}
	obs := cloudWatchObserver{cw}
	obs.LabelsWritten("labels", 3)
	obs.LabelsWritten("labels", 2)
	if err := cw.Close(context.Background()); err != nil { // publishes the interval
		t.Fatal(err)
	}
	var got struct {
		LabelsWritten    float64
		Pipeline, Stream string
	}
	if err := json.Unmarshal(bytes.TrimSpace(emf.Bytes()), &got); err != nil || got.LabelsWritten != 5 || got.Stream != "labels" || got.Pipeline != "p" {
		t.Errorf("EMF %s (%v), want LabelsWritten 5 for pipeline p, stream labels", emf.Bytes(), err)
	}
}
