package lambda

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/sinks"
)

// The item the pipeline's feature table sink writes is the item the
// function reads: one type, sinks.FeatureLayout, on both sides. Written by
// sinks.FeatureTable under a partition key other than the default, read
// back through the handler's GetItem and decoding, every feature comes
// back as written (a null one as missing) with its window's bounds, and an
// entity never written reads as absent.
func TestFeatureTableItemRoundTrip(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	const key = "user"
	f := &fixture{env: env, table: env.Name("features"), model: loadChurnModel(t)}
	if err := devstack.EnsureTable(ctx, env.DynamoDB, devstack.TablePlan{Name: f.table, HashKey: key, RangeKey: sinks.FeatureAttrSet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(f.table)})
	})
	users := []user{
		{"user-a", day, []float64{40, 6, 3, 0, 120.5, 6, 300}},
		{"user b ✓", day.Add(-24 * time.Hour), []float64{5, 1, nan, 2, 0.1 + 0.2, 1, 70000}},
	}
	rec := f.scoredBatch(t, users)
	defer rec.Release()
	sink, err := sinks.NewFeatureTable(sinks.FeatureTableOptions{Client: env.DynamoDB, Table: f.table, FeatureSet: DefaultFeatureSet, Layout: sinks.FeatureLayout{PartitionKey: key}})
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, 1)
	if err := sink.Write(ctx, sinks.Batch{Stream: "app-events", Shard: "shardId-000000000000", Rec: rec, Ack: func(err error) { acked <- err }}); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}

	cfg, err := ConfigFromEnv(envOf(map[string]string{EnvFeatureTable: f.table, EnvFeatureKey: key, EnvModel: churnModel, EnvFunctionName: "login-scorer-test"}))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := f.newHandler(t, cfg, Options{})
	if len(h.features) != len(users[0].x) {
		t.Fatalf("the model reads %d features, the test users have %d", len(h.features), len(users[0].x))
	}
	for _, u := range users {
		item, err := h.getItem(ctx, u.entity)
		if err != nil {
			t.Fatal(err)
		}
		s, err := h.decodeItem(item, loginAt)
		if err != nil {
			t.Fatalf("%s: %v", u.entity, err)
		}
		if !s.exists || !s.fresh {
			t.Fatalf("%s: exists=%v fresh=%v, want both", u.entity, s.exists, s.fresh)
		}
		if !s.windowStart.Equal(u.ws) || !s.windowEnd.Equal(u.ws.Add(24*time.Hour)) {
			t.Errorf("%s: window [%s, %s), want [%s, %s)", u.entity, s.windowStart, s.windowEnd, u.ws, u.ws.Add(24*time.Hour))
		}
		for j, want := range u.x {
			got := s.x[j]
			if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Errorf("%s: feature %s = %v, want %v", u.entity, h.features[j], got, want)
			}
		}
	}
	item, err := h.getItem(ctx, "user-never-written")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := h.decodeItem(item, loginAt); err != nil || s.exists {
		t.Fatalf("an entity never written: exists=%v err=%v, want absent", s.exists, err)
	}
}
