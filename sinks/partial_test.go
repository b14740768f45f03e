package sinks

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// withPartial adds the partial column to a result record.
func withPartial(t *testing.T, rec arrow.RecordBatch, vals ...string) arrow.RecordBatch {
	t.Helper()
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(vals, nil)
	col := b.NewArray()
	defer col.Release()
	fields := append(rec.Schema().Fields(), arrow.Field{Name: ColPartial, Type: arrow.BinaryTypes.String})
	cols := append(append([]arrow.Array{}, rec.Columns()...), col)
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

// A part of a window (its key was evicted while it was open) is never
// what the online feature table serves: the item keeps the newest whole
// window.
func TestFeatureTableSkipsPartialRows(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := featureTable(t, env)
	set := FeatureSet("factory", "machine_1m")
	s, err := NewFeatureTable(FeatureTableOptions{Client: env.DynamoDB, Table: table, FeatureSet: set})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rec := resultRecord(t, 2, []row{
		{entity: "press-1", ws: t0, feats: []float64{1, 10}, score: 0.1, model: "m"},
		{entity: "press-1", ws: t0.Add(time.Minute), feats: []float64{2, 20}, score: 0.9, model: "m"},
		{entity: "press-2", ws: t0, feats: []float64{3, 30}, score: 0.9, model: "m"},
	})
	defer rec.Release()
	prec := withPartial(t, rec, "", "evicted", "late")
	defer prec.Release()
	a := newAcks()
	if err := s.Write(ctx, Batch{Stream: "factory", Shard: "sh", Rec: prec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 30*time.Second, "b")
	out, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: FeatureLayout{}.Key("press-1", set)})
	if err != nil {
		t.Fatal(err)
	}
	item, err := FeatureLayout{}.Unmarshal(out.Item)
	if err != nil {
		t.Fatal(err)
	}
	if !item.WindowStart.Equal(t0) {
		t.Errorf("press-1's item is the window at %v, want the whole one at %v, not the partial newer one", item.WindowStart, t0)
	}
	out, err = env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: FeatureLayout{}.Key("press-2", set)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Item) != 0 {
		t.Errorf("press-2 has an item from a partial row only: %v", out.Item)
	}
}
