package sinks

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func TestFeatureTableKeepsNewestWindow(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := featureTable(t, env)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	set := FeatureSet("factory", "machine_1m")
	s, err := NewFeatureTable(FeatureTableOptions{Client: env.DynamoDB, Table: table, FeatureSet: set, TTL: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	write := func(name string, rows ...row) {
		t.Helper()
		rec := resultRecord(t, 2, rows)
		defer rec.Release()
		if err := s.Write(ctx, Batch{Stream: "factory", Shard: "sh", Rec: rec, Ack: a.fn(name)}); err != nil {
			t.Fatal(err)
		}
		a.wait(t, 30*time.Second, name)
	}
	// press-1: newest window first, then an older one arrives (replay).
	write("new", row{entity: "press-1", ws: t0.Add(5 * time.Minute), feats: []float64{5, 50}, score: 0.9, model: "m2"},
		// press-2: in one batch, an older window after a newer one.
		row{entity: "press-2", ws: t0.Add(3 * time.Minute), feats: []float64{3, 30}, score: 0.3, model: "m2"},
		row{entity: "press-2", ws: t0.Add(1 * time.Minute), feats: []float64{1, 10}, score: 0.1, model: "m2"})
	write("old", row{entity: "press-1", ws: t0, feats: []float64{0, 0}, score: 0.1, model: "m1"})
	// press-2: an update of the stored window overwrites it.
	write("update", row{entity: "press-2", ws: t0.Add(3 * time.Minute), feats: []float64{3, 33}, score: 0.35, model: "m2", update: true})
	// press-1: a replay after a failover rebuilds the stored window from
	// only the events after the checkpoint; the complete version stays.
	write("replay", row{entity: "press-1", ws: t0.Add(5 * time.Minute), feats: []float64{5, 20}, score: 0.2, model: "m2"})

	get := func(e string) map[string]ddbtypes.AttributeValue {
		out, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: FeatureLayout{}.Key(e, set)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	num := func(item map[string]ddbtypes.AttributeValue, k string) string {
		if v, ok := item[k].(*ddbtypes.AttributeValueMemberN); ok {
			return v.Value
		}
		return fmt.Sprintf("<%T>", item[k])
	}
	p1 := get("press-1")
	if got, want := num(p1, "window_start"), fmt.Sprint(t0.Add(5*time.Minute).UnixMilli()); got != want {
		t.Errorf("press-1 window_start = %s, want %s (the newer window)", got, want)
	}
	if got := num(p1, "score"); got != "0.9" {
		t.Errorf("press-1 score = %s, want 0.9", got)
	}
	if got := p1[ColModelVersion].(*ddbtypes.AttributeValueMemberS).Value; got != "m2" {
		t.Errorf("press-1 model_version = %s, want m2", got)
	}
	if got, want := num(p1, "ttl"), fmt.Sprint(now.Add(time.Hour).Unix()); got != want {
		t.Errorf("press-1 ttl = %s, want %s", got, want)
	}
	if got := num(p1["features"].(*ddbtypes.AttributeValueMemberM).Value, "f01"); got != "50" {
		t.Errorf("press-1 features.f01 = %s, want 50", got)
	}
	wantID := ResultID("factory", "press-1", t0.Add(5*time.Minute), t0.Add(6*time.Minute), "m2")
	if got := p1["result_id"].(*ddbtypes.AttributeValueMemberS).Value; got != wantID {
		t.Errorf("press-1 result_id = %s, want %s", got, wantID)
	}
	p2 := get("press-2")
	if got, want := num(p2, "window_start"), fmt.Sprint(t0.Add(3*time.Minute).UnixMilli()); got != want {
		t.Errorf("press-2 window_start = %s, want %s", got, want)
	}
	if got := num(p2, "score"); got != "0.35" {
		t.Errorf("press-2 score = %s, want 0.35 (the update)", got)
	}
}
