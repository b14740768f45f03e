package dynamo_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// registerExpression is RegisterChallenger's UpdateExpression in
// infra/cdk/retraining.go, word for word (TestRegistrationMatchesTheCDK
// checks it is still there).
const registerExpression = "SET challenger = :m, request_id = :r, event_id = :e, registered_at = :t ADD registrations :one"

// register writes a registration as the state machine's
// RegisterChallenger task does: the same key, expression and types.
func register(t *testing.T, db *dynamodb.Client, table, pipeline, scorer, path, job, request, event, at string) {
	t.Helper()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	if _, err := db.UpdateItem(devstacktest.Ctx(t), &dynamodb.UpdateItemInput{
		TableName:        aws.String(table),
		Key:              map[string]types.AttributeValue{"pipeline": s(pipeline), "scorer": s(scorer + "#challenger")},
		UpdateExpression: aws.String(registerExpression),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":m":   &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"path": s(path), "training_job": s(job)}},
			":r":   s(request),
			":e":   s(event),
			":t":   s(at),
			":one": &types.AttributeValueMemberN{Value: "1"},
		},
	}); err != nil {
		t.Fatal(err)
	}
}

func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	env := devstacktest.New(t)
	name := env.Name("promotions")
	if err := dynamo.EnsureTable(devstacktest.Ctx(t), env.DynamoDB, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return env.DynamoDB, name
}

// TestChallengerRegistration: no item reads as none; the state machine's
// registration reads back field for field; a second registration counts
// 2 and replaces the path; the decision item beside it is untouched by
// it and vice versa, and another scorer's registration is not this one's.
func TestChallengerRegistration(t *testing.T) {
	db, tbl := newTable(t)
	ctx := devstacktest.Ctx(t)
	st, err := dynamo.NewStore(db, dynamo.Config{Table: tbl, Pipeline: "factory", Scorer: "failure",
		Configured: promotion.Model{Key: "v1", Path: "s3://b/models/v1.json", SHA256: "aa"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.Challenger(ctx); err != nil || ok {
		t.Fatalf("no registration: ok %v, err %v; want none", ok, err)
	}
	const job1 = "s3://b/models/retrained/factory/failure/streamscore-r1/output/model.tar.gz"
	register(t, db, tbl, "factory", "failure", job1, "streamscore-r1", "r1", "ev-1", "2026-12-03T13:30:01.123Z")
	register(t, db, tbl, "factory", "churn", "s3://b/other/model.tar.gz", "streamscore-r9", "r9", "ev-9", "2026-12-03T13:30:02Z")
	r, ok, err := st.Challenger(ctx)
	if err != nil || !ok {
		t.Fatalf("registration: ok %v, err %v", ok, err)
	}
	want := dynamo.Registration{Path: job1, TrainingJob: "streamscore-r1", RequestID: "r1", EventID: "ev-1",
		RegisteredAt: time.Date(2026, 12, 3, 13, 30, 1, 123e6, time.UTC), Registrations: 1}
	if !r.RegisteredAt.Equal(want.RegisteredAt) || r.Path != want.Path || r.TrainingJob != want.TrainingJob ||
		r.RequestID != want.RequestID || r.EventID != want.EventID || r.Registrations != 1 {
		t.Fatalf("registration %+v, want %+v", r, want)
	}

	// A promotion writes the decision item; the registration stays.
	d, err := st.Promote(ctx, 0, promotion.Model{Key: "v2", Path: "s3://b/models/v2.json", SHA256: "bb"}, "test", "tester")
	if err != nil {
		t.Fatal(err)
	}
	const job2 = "s3://b/models/retrained/factory/failure/streamscore-r2/output/model.tar.gz"
	register(t, db, tbl, "factory", "failure", job2, "streamscore-r2", "r2", "ev-2", "2026-12-03T14:00:00Z")
	if r, _, err = st.Challenger(ctx); err != nil || r.Path != job2 || r.Registrations != 2 || r.RequestID != "r2" {
		t.Fatalf("second registration %+v (%v), want %s counted 2", r, err, job2)
	}
	cur, err := st.Current(ctx)
	if err != nil || cur.Generation != d.Generation || cur.Champion.Key != "v2" {
		t.Fatalf("decision after a registration: %+v, %v; want generation %d of v2", cur.Entry, err, d.Generation)
	}
}

// TestMalformedRegistrationNamesTheAttribute: an item that is not what
// the state machine writes is refused with the attribute named, not read
// as a model path.
func TestMalformedRegistrationNamesTheAttribute(t *testing.T) {
	db, tbl := newTable(t)
	ctx := devstacktest.Ctx(t)
	st, err := dynamo.NewStore(db, dynamo.Config{Table: tbl, Pipeline: "factory", Scorer: "failure"})
	if err != nil {
		t.Fatal(err)
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	m := func(kv ...string) types.AttributeValue {
		out := map[string]types.AttributeValue{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = s(kv[i+1])
		}
		return &types.AttributeValueMemberM{Value: out}
	}
	good := func() map[string]types.AttributeValue {
		return map[string]types.AttributeValue{
			"pipeline": s("factory"), "scorer": s("failure#challenger"),
			"challenger": m("path", "s3://b/m.tar.gz", "training_job", "j"),
			"request_id": s("r"), "event_id": s("e"), "registered_at": s("2026-12-03T13:30:01Z"), "registrations": n("1"),
		}
	}
	for _, c := range []struct {
		name, want string
		edit       func(map[string]types.AttributeValue)
	}{
		{"no challenger", "challenger: missing", func(it map[string]types.AttributeValue) { delete(it, "challenger") }},
		{"challenger a string", "challenger: not a map", func(it map[string]types.AttributeValue) { it["challenger"] = s("s3://b/m.tar.gz") }},
		{"no path", "challenger.path: missing", func(it map[string]types.AttributeValue) { it["challenger"] = m("training_job", "j") }},
		{"empty path", "challenger.path: empty", func(it map[string]types.AttributeValue) { it["challenger"] = m("path", "") }},
		{"path a number", "challenger.path: not a string", func(it map[string]types.AttributeValue) {
			it["challenger"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"path": n("3")}}
		}},
		{"training_job a map", "challenger.training_job: not a string", func(it map[string]types.AttributeValue) {
			it["challenger"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"path": s("s3://b/m"), "training_job": m()}}
		}},
		{"request_id a number", "request_id: not a string", func(it map[string]types.AttributeValue) { it["request_id"] = n("7") }},
		{"no time", "registered_at: missing", func(it map[string]types.AttributeValue) { delete(it, "registered_at") }},
		{"bad time", `registered_at: "yesterday"`, func(it map[string]types.AttributeValue) { it["registered_at"] = s("yesterday") }},
		{"count a string", "registrations: missing or not a number", func(it map[string]types.AttributeValue) { it["registrations"] = s("1") }},
		{"count zero", "registrations: 0", func(it map[string]types.AttributeValue) { it["registrations"] = n("0") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			it := good()
			c.edit(it)
			if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl), Item: it}); err != nil {
				t.Fatal(err)
			}
			_, ok, err := st.Challenger(ctx)
			if err == nil || ok || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "failure#challenger") {
				t.Fatalf("ok %v, err %v; want an error naming %q and the item", ok, err, c.want)
			}
		})
	}
}

// TestRegistrationMatchesTheCDK: the CDK app (its own module, which this
// one never compiles) still writes what Challenger reads: the sort key's
// suffix, the UpdateExpression and the challenger map's attributes.
func TestRegistrationMatchesTheCDK(t *testing.T) {
	src, err := os.ReadFile("../../infra/cdk/retraining.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`challengerSuffix = "` + dynamo.ChallengerSuffix + `"`,
		`"UpdateExpression": "` + registerExpression + `"`,
		`"` + dynamo.AttrChallengerPath + `":`,
		`"` + dynamo.AttrTrainingJob + `":`,
		`":one": map[string]any{"N": "1"}`,
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("infra/cdk/retraining.go no longer has %s: the registration it writes and the one promotion/dynamo reads differ", want)
		}
	}
	for _, attr := range []string{dynamo.AttrChallenger, dynamo.AttrRequestID, dynamo.AttrEventID, dynamo.AttrRegisteredAt, dynamo.AttrRegistrations} {
		if !strings.Contains(registerExpression, attr+" ") {
			t.Errorf("the registration expression sets no %s", attr)
		}
	}
}
