package scorer

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type failingScorer struct{ outputs int }

func (f failingScorer) Outputs() int { return f.outputs }
func (f failingScorer) Score(context.Context, arrow.RecordBatch, *Result) error {
	return errors.New("challenger exploded")
}

func withEntity(t *testing.T, rec arrow.RecordBatch) arrow.RecordBatch {
	b := array.NewStringBuilder(memory.NewGoAllocator())
	for i := range rec.NumRows() {
		b.Append("machine-" + strconv.Itoa(int(i)))
	}
	ent := b.NewArray()
	defer ent.Release()
	fields := append(rec.Schema().Fields(), arrow.Field{Name: "entity", Type: arrow.BinaryTypes.String})
	out := array.NewRecordBatch(arrow.NewSchema(fields, nil), append(rec.Columns(), ent), rec.NumRows())
	t.Cleanup(out.Release)
	return out
}

// Shadow returns champion and challenger scores for the same rows; a
// failing challenger leaves the champion's result intact.
func TestShadow(t *testing.T) {
	champ := loadFixtureModel(t, "binary_logistic.json")
	chall := loadFixtureModel(t, "early_stopping.json")
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(champ.Features())
	rec := recordOf(t, champ.Features(), cols)
	ce, _ := NewEmbedded(champ, nil, nil)
	he, _ := NewEmbedded(chall, nil, nil)
	var res, a, b Result
	s := &Shadow{Champion: ce, Challenger: he}
	if err := s.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	ce.Score(t.Context(), rec, &a)
	he.Score(t.Context(), rec, &b)
	for i := range in.Rows {
		if res.Scores[0][i] != a.Scores[0][i] || res.Shadow.Scores[0][i] != b.Scores[0][i] {
			t.Fatalf("row %d: champion %v/%v challenger %v/%v", i, res.Scores[0][i], a.Scores[0][i], res.Shadow.Scores[0][i], b.Scores[0][i])
		}
	}
	if res.Shadow.Version != chall.Version() || res.Version != champ.Version() {
		t.Fatal("versions not carried")
	}
	s.Challenger = failingScorer{1}
	if err := s.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	if res.Count(SourcePrimary) != in.Rows || res.Shadow.Err == nil || !math.IsNaN(res.Shadow.Scores[0][0]) {
		t.Fatalf("failing challenger: %d primary rows, shadow err %v", res.Count(SourcePrimary), res.Shadow.Err)
	}
}

// The canary sends a stable share of entities to the challenger.
func TestCanary(t *testing.T) {
	champ := loadFixtureModel(t, "binary_logistic.json")
	chall := loadFixtureModel(t, "early_stopping.json")
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(champ.Features())
	rec := withEntity(t, recordOf(t, champ.Features(), cols))
	ce, _ := NewEmbedded(champ, nil, nil)
	he, _ := NewEmbedded(chall, nil, nil)
	c, err := NewCanary(ce, he, "entity", 25)
	if err != nil {
		t.Fatal(err)
	}
	var res, a, b Result
	if err := c.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	ce.Score(t.Context(), rec, &a)
	he.Score(t.Context(), rec, &b)
	canary := 0
	for i := range in.Rows {
		in := InCanary("machine-"+strconv.Itoa(i), 25)
		want, src := a.Scores[0][i], SourcePrimary
		if in {
			want, src = b.Scores[0][i], SourceCanary
			canary++
		}
		if res.Scores[0][i] != want || res.Source[i] != src {
			t.Fatalf("row %d: %v %v, want %v %v", i, res.Scores[0][i], res.Source[i], want, src)
		}
	}
	if canary < in.Rows/8 || canary > in.Rows/2 {
		t.Fatalf("%d of %d rows in a 25%% canary", canary, in.Rows)
	}
	if res.VersionOf(0) == "" || res.CanaryVersion != chall.Version() {
		t.Fatal("canary version not carried")
	}
}
