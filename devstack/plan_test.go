package devstack_test

import (
	"slices"
	"testing"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
)

// The local stack gets the decision table of a scorer with a promotion
// policy, keyed as the promotion store reads and writes it (workers are
// not allowed to create tables, so without it the demo's workers would
// not start), and the review queue alerts.review names.
func TestPlanProvisionsThePromotionTable(t *testing.T) {
	env := devstacktest.New(t)
	table, queue := env.Name("promotions"), env.Name("review")
	cfg, err := config.Parse([]byte(`pipeline: plan
streams: [{name: s, schema: r, shards: 1}, {name: l, schema: lab, shards: 1}]
schemas:
  r: {entity: id, time: ts, fields: [{name: x, type: float64}]}
  lab: {entity: id, time: ts, fields: [{name: y, type: bool}, {name: rid, type: string}]}
windows: [{name: w, stream: s, kind: tumbling, size: 10s, features: [{name: n, agg: count}]}]
models:
  champ: {format: linear, path: m.json}
  chall: {format: linear, path: c.json}
scorers: [{name: sc, window: w, model: champ, challenger: chall, promotion: {metric: auc, table: `+table+`}}]
sinks: {s3: {bucket: b}}
labels: {stream: l, label: y, inference_id: rid}
monitor: {quality: [{scorer: sc, horizon: 10s}]}
alerts:
  topic: t
  rules: [{name: hot, scorer: sc, threshold: 0.9}]
  review: {link: "https://review.example.com/r?id={result_id}", queue: `+queue+`}
`), "plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plan := devstack.PlanFor(pipeline.WindowRetention, cfg)
	var found bool
	for _, tp := range plan.Tables {
		found = found || tp.Name == table
	}
	if !found {
		t.Fatalf("plan tables %+v, want %s", plan.Tables, table)
	}
	if !slices.Contains(plan.Queues, devstack.QueuePlan{Name: queue}) {
		t.Errorf("plan queues %+v, want the review queue %s", plan.Queues, queue)
	}
	ctx := devstacktest.Ctx(t)
	if _, err := devstack.Provision(ctx, env.Clients, devstack.Plan{Tables: plan.Tables}); err != nil {
		t.Fatal(err)
	}
	st, err := dynamo.NewStore(env.DynamoDB, dynamo.Config{Table: table, Pipeline: "plan", Scorer: "sc", Configured: promotion.Model{Key: "champ"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Promote(ctx, 0, promotion.Model{Key: "chall", Path: "c.json"}, "test", "plan test")
	if err != nil {
		t.Fatalf("a decision on the provisioned table: %v", err)
	}
	if d.Generation != 1 || d.Champion.Key != "chall" {
		t.Errorf("decision %+v, want generation 1 with chall", d.Entry)
	}
}
