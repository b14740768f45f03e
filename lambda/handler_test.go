package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// A login is scored exactly as the pipeline scored the user's window: the
// same features read back from the table the pipeline's sink wrote, the
// same model, the same score to the bit, and the top features the model's
// contributions rank highest.
func TestDirectScoresLikeThePipeline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers)
	h, metrics := f.newHandler(t, f.config(), Options{})
	for _, u := range testUsers[:5] {
		event := fmt.Sprintf(`{"user_id":%q,"event_type":"login","ts":"2026-11-24T08:00:00Z","platform":"ios"}`, u.entity)
		if u.entity == "18273" {
			event = `{"user_id":18273,"event_type":"login","ts":"2026-11-24T08:00:00Z"}` // a numeric id, keyed as the pipeline keys it
		}
		r, err := invokeDirect(t, h, event)
		if err != nil {
			t.Fatalf("%s: %v", u.entity, err)
		}
		want := f.score(u.entity)
		if r.Entity != u.entity || r.Score != want || !r.FeaturesFound || r.ModelVersion != f.model.Version() || r.Threshold != 0.7 {
			t.Errorf("%s: got %+v, want score %v (the pipeline's), features found, model %s", u.entity, r, want, f.model.Version())
		}
		if r.HighRisk != (want >= 0.7) {
			t.Errorf("%s: high_risk %v at score %v", u.entity, r.HighRisk, want)
		}
		if r.FeaturesWindowEnd == nil || !r.FeaturesWindowEnd.Equal(u.ws.Add(24*time.Hour)) {
			t.Errorf("%s: features_window_end %v, want %v", u.entity, r.FeaturesWindowEnd, u.ws.Add(24*time.Hour))
		}
		ex, err := f.model.Explain(f.result, f.row[u.entity], 0)
		if err != nil {
			t.Fatal(err)
		}
		checkTopFeatures(t, u.entity, r.TopFeatures, ex.Features)
	}
	lines := emfLines(t, metrics.Bytes())
	if len(lines) != 5 {
		t.Fatalf("%d EMF lines for 5 invocations", len(lines))
	}
	high := 0.0
	for _, l := range lines {
		c := emfCounts(t, l)
		if c[MetricScored] != 1 || c[MetricFeaturesMissing] != 0 || c[MetricPoison] != 0 || c[MetricFailures] != 0 {
			t.Errorf("EMF counts %v", c)
		}
		high += c[MetricHighRisk]
		if l["shape"] != "direct" || l["function"] != "login-scorer-test" {
			t.Errorf("EMF line %v", l)
		}
	}
	if high != 3 {
		t.Errorf("%v high-risk logins counted, want 3 (leaving, quiet, 18273)", high)
	}
}

// checkTopFeatures holds top to what alerts promise: at most five of the
// model's contributions for the row, exactly as the model computes them,
// none zero, largest magnitude first, and none left out larger than the
// smallest kept.
func checkTopFeatures(t *testing.T, who string, top []sinks.FeatureContribution, all []scorer.Contribution) {
	t.Helper()
	if len(top) == 0 || len(top) > 5 {
		t.Fatalf("%s: %d top features", who, len(top))
	}
	byName := map[string]scorer.Contribution{}
	for _, c := range all {
		byName[c.Feature] = c
	}
	for i, c := range top {
		m, ok := byName[c.Feature]
		if !ok || m.Contribution != c.Contribution || c.Contribution == 0 || !(m.Value == c.Value || math.IsNaN(m.Value) && math.IsNaN(c.Value)) {
			t.Errorf("%s: top feature %d %+v, the model says %+v", who, i, c, m)
		}
		if i > 0 && math.Abs(c.Contribution) > math.Abs(top[i-1].Contribution) {
			t.Errorf("%s: top features out of order: %+v", who, top)
		}
	}
	smallest := math.Abs(top[len(top)-1].Contribution)
	for _, c := range all {
		if !slices.ContainsFunc(top, func(x sinks.FeatureContribution) bool { return x.Feature == c.Feature }) && math.Abs(c.Contribution) > smallest {
			t.Errorf("%s: %s (contribution %v) left out of %+v", who, c.Feature, c.Contribution, top)
		}
	}
}

// A user with no item, or whose newest window is older than the maximum
// feature age, is scored with every feature missing, and says so.
func TestDirectWithoutUsableFeatures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers)
	h, metrics := f.newHandler(t, f.config(), Options{})
	for _, who := range []string{"user-stale", "user-new"} {
		r, err := invokeDirect(t, h, fmt.Sprintf(`{"user_id":%q,"event_type":"login"}`, who))
		if err != nil {
			t.Fatal(err)
		}
		if r.FeaturesFound || r.FeaturesWindowEnd != nil || r.Score != f.noFeatures {
			t.Errorf("%s: %+v; want no features used and the pipeline's score for an empty row, %v", who, r, f.noFeatures)
		}
		b, _ := json.Marshal(r)
		if !strings.Contains(string(b), `"features_window_end":null`) {
			t.Errorf("%s: response %s does not carry a null features_window_end", who, b)
		}
	}
	// With a longer maximum age the stale window counts again.
	cfg := f.config()
	cfg.MaxFeatureAge = 5 * 24 * time.Hour
	h2, _ := f.newHandler(t, cfg, Options{})
	r, err := invokeDirect(t, h2, `{"user_id":"user-stale","event_type":"login"}`)
	if err != nil {
		t.Fatal(err)
	}
	if !r.FeaturesFound || r.Score != f.score("user-stale") {
		t.Errorf("user-stale within a 5-day maximum age: %+v, want its window's score %v", r, f.score("user-stale"))
	}
	for _, l := range emfLines(t, metrics.Bytes()) {
		if c := emfCounts(t, l); c[MetricFeaturesMissing] != 1 || c[MetricScored] != 1 {
			t.Errorf("EMF counts %v, want one login scored with features missing", c)
		}
	}
}

// An item the function cannot read (a feature of the wrong type) scores
// as missing features rather than failing: failing would block a stream's
// shard on an item the pipeline will overwrite with its next window.
func TestDirectDamagedItemScoresAsMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers[:1])
	ctx := devstacktest.Ctx(t)
	_, err := f.env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(f.table), Item: map[string]ddbtypes.AttributeValue{
		"entity":      &ddbtypes.AttributeValueMemberS{Value: "user-damaged"},
		"feature_set": &ddbtypes.AttributeValueMemberS{Value: DefaultFeatureSet},
		"window_end":  &ddbtypes.AttributeValueMemberN{Value: fmt.Sprint(day.Add(24 * time.Hour).UnixMilli())},
		"features": &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{
			"events": &ddbtypes.AttributeValueMemberS{Value: "forty"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := f.newHandler(t, f.config(), Options{})
	r, err := invokeDirect(t, h, `{"user_id":"user-damaged","event_type":"login"}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.FeaturesFound || r.Score != f.noFeatures {
		t.Errorf("damaged item: %+v, want the no-features score %v", r, f.noFeatures)
	}
}

func TestDirectRejectsBadEventsNamingTheField(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers[:1])
	h, metrics := f.newHandler(t, f.config(), Options{})
	for _, tc := range []struct {
		event, field string
		notLogin     bool
	}{
		{`{"user_id":"u1","event_type":"purchase","amount":3}`, "event_type", true},
		{`{"event_type":"login"}`, "user_id", false},
		{`{"user_id":["u1"],"event_type":"login"}`, "user_id", false},
		{`{"user_id":"u1","event_type":7}`, "event_type", false},
		{`"login"`, "", false},
	} {
		_, err := invokeDirect(t, h, tc.event)
		var ee *EventError
		if !errors.As(err, &ee) || ee.Field != tc.field || errors.Is(err, ErrNotLogin) != tc.notLogin {
			t.Errorf("%s: error %v, want an EventError naming %q (not a login: %v)", tc.event, err, tc.field, tc.notLogin)
		}
		if tc.field != "" && !strings.Contains(err.Error(), `"`+tc.field+`"`) {
			t.Errorf("%s: message %q does not name the field", tc.event, err)
		}
	}
	var poison, skipped float64
	for _, l := range emfLines(t, metrics.Bytes()) {
		c := emfCounts(t, l)
		poison += c[MetricPoison]
		skipped += c[MetricSkipped]
	}
	if poison != 4 || skipped != 1 {
		t.Errorf("EMF: %v poison, %v skipped; want 4 and 1", poison, skipped)
	}
}

// With DynamoDB unreachable a direct invocation fails as unavailable,
// before the invocation's deadline, so the caller can tell it from bad
// input and retry.
func TestDirectFeatureTableDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers[:1])
	proxy := f.env.Proxy(t, f.env.Endpoints.DynamoDB)
	ctx := devstacktest.Ctx(t)
	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	h, _ := f.newHandler(t, f.config(), Options{DynamoDB: dynamoVia(proxy.URL())})
	deadline := time.Now().Add(3 * time.Second)
	ictx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	_, err := h.Invoke(ictx, []byte(`{"user_id":"user-loyal","event_type":"login"}`))
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v, want an UnavailableError", err)
	}
	if time.Now().After(deadline) {
		t.Errorf("answered after the invocation's deadline")
	}
}

// dynamoVia is a DynamoDB client through a toxiproxy proxy.
func dynamoVia(url string) FeatureReader {
	return devstack.Endpoints{DynamoDB: url}.Clients().DynamoDB
}

// Lambda may run several invocations in one environment at once
// (AWS_LAMBDA_MAX_CONCURRENCY); each gets its own answer and metrics line.
func TestConcurrentInvocations(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers)
	topic, _ := f.env.CreateTopicQueue(t, false)
	cfg := f.config()
	cfg.AlertTopicARN = topic
	h, metrics := f.newHandler(t, cfg, Options{})
	ctx := devstacktest.Ctx(t)
	users := []string{"user-loyal", "user-leaving", "user-quiet", "18273", "user-borderline"}
	const workers, each = 8, 10
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				u := users[(w+i)%len(users)]
				if i%2 == 0 {
					out, err := h.Invoke(ctx, kinesisEvent("app-events", "shardId-000000000000", [][]byte{login(u), login(users[i%len(users)])}))
					if err != nil || !strings.Contains(string(out), `"batchItemFailures":[]`) {
						errs <- fmt.Errorf("batch for %s: %s %v", u, out, err)
					}
					continue
				}
				out, err := h.Invoke(ctx, fmt.Appendf(nil, `{"user_id":%q,"event_type":"login"}`, u))
				var r Response
				if err == nil {
					err = json.Unmarshal(out, &r)
				}
				if err != nil || r.Entity != u || r.Score != f.score(u) {
					errs <- fmt.Errorf("%s: %s %v, want score %v", u, out, err, f.score(u))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(emfLines(t, metrics.Bytes())); n != workers*each {
		t.Errorf("%d EMF lines for %d invocations", n, workers*each)
	}
}
