package lambda

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// The deployed binary under the Runtime Interface Emulator, both
// invocation shapes, against the local stack: the model from S3, features
// from the table the pipeline's sink wrote, alerts through SNS to SQS,
// dead letters to SQS, metrics on stdout.
func TestBootstrapUnderRuntimeEmulator(t *testing.T) {
	t.Parallel()
	bootstrap := buildBootstrap(t)
	f := newFixture(t, usersNow())
	topic, alertQueue := f.env.CreateTopicQueue(t, false)
	dlq := f.env.CreateQueue(t, false)
	r := startRIE(t, bootstrap, functionEnv(f, map[string]string{
		EnvFeatureTable: f.table, EnvModel: uploadModel(t, f), EnvAlertTopic: topic, EnvDeadLetterQueue: dlq,
	}))

	// Direct: a login answered with its score.
	status, body := r.invoke(t, []byte(`{"user_id":"user-leaving","event_type":"login","ts":"2026-11-24T08:00:00Z"}`))
	var resp Response
	if err := json.Unmarshal(body, &resp); status != 200 || err != nil {
		t.Fatalf("direct invocation: HTTP %d %s (%v)\n%s", status, body, err, r.out.Bytes())
	}
	if resp.Entity != "user-leaving" || resp.Score != f.score("user-leaving") || !resp.FeaturesFound || !resp.HighRisk ||
		!strings.HasPrefix(resp.ModelVersion, "etag:") || len(resp.TopFeatures) == 0 {
		t.Errorf("direct response %s; want the pipeline's score %v, features found, the S3 model's etag version, top features",
			body, f.score("user-leaving"))
	}

	// Direct, malformed: an error naming the field (HTTP 200: the body says so).
	status, body = r.invoke(t, []byte(`{"event_type":"login"}`))
	var fnErr struct{ ErrorType, ErrorMessage string }
	if err := json.Unmarshal(body, &fnErr); status != 200 || err != nil || fnErr.ErrorType != "EventError" || !strings.Contains(fnErr.ErrorMessage, `"user_id": missing`) {
		t.Errorf("malformed event: HTTP %d %s; want errorType EventError naming user_id", status, body)
	}

	// Kinesis: a KPL aggregate and a plain record; one poison user record.
	agg := kplAggregate([][]byte{login("user-loyal"), login("user-quiet"), []byte(`{"user_id":`)})
	payload := kinesisEvent("app-events", "shardId-000000000004", [][]byte{agg, login("user-leaving"), []byte(`{"user_id":"u9","event_type":"logout"}`)})
	status, body = r.invoke(t, payload)
	var kresp events.KinesisEventResponse
	if err := json.Unmarshal(body, &kresp); status != 200 || err != nil || kresp.BatchItemFailures == nil || len(kresp.BatchItemFailures) != 0 {
		t.Fatalf("kinesis invocation: HTTP %d %s; want an empty batchItemFailures list\n%s", status, body, r.out.Bytes())
	}
	var alerted []string
	for _, a := range drainAlerts(t, f.env, alertQueue, 2, time.Second) {
		alerted = append(alerted, a.alert.Entity)
		if a.alert.Score != f.score(a.alert.Entity) || a.alert.Rule != "churn-at-login" || a.alert.Stream != "app-events" {
			t.Errorf("alert %+v", a.alert)
		}
	}
	slices.Sort(alerted)
	if fmt.Sprint(alerted) != "[user-leaving user-quiet]" {
		t.Errorf("alerts for %v, want [user-leaving user-quiet]", alerted)
	}
	dls := drainQueue(t, f.env, dlq, 1, 500*time.Millisecond)
	if len(dls) != 1 || dls[0].Attrs["sub_sequence"] != "2" || dls[0].Attrs["reason"] != "undecodable" ||
		!bytes.Equal(deadLetterBody(t, f.env, dls[0]), []byte(`{"user_id":`)) {
		t.Errorf("dead letters %+v, want the aggregate's third user record", dls)
	}

	// Metrics: one valid EMF line per invocation on stdout.
	lines := emfOf(r.out.Bytes())
	if len(lines) != 3 {
		t.Fatalf("%d EMF lines for 3 invocations:\n%s", len(lines), r.out.Bytes())
	}
	want := []map[string]float64{
		{MetricScored: 1, MetricHighRisk: 1, MetricFeaturesMissing: 0, MetricPoison: 0, MetricFailures: 0, MetricSkipped: 0},
		{MetricScored: 0, MetricHighRisk: 0, MetricFeaturesMissing: 0, MetricPoison: 1, MetricFailures: 0, MetricSkipped: 0},
		{MetricScored: 3, MetricHighRisk: 2, MetricFeaturesMissing: 0, MetricPoison: 1, MetricFailures: 0, MetricSkipped: 1},
	}
	for i, l := range lines {
		root := validateEMF(t, l)
		if got := emfCounts(t, root); fmt.Sprint(got) != fmt.Sprint(want[i]) || root["function"] != "login-scorer-e2e" {
			t.Errorf("EMF line %d: %v function %v, want %v", i, got, root["function"], want[i])
		}
	}
	if d := r.initDurations(); len(d) == 0 {
		t.Errorf("the emulator reported no init phase:\n%s", r.out.Bytes())
	} else {
		t.Logf("cold start (the emulator's INIT REPORT): %.1f ms", d[0])
	}
}

// A configuration error stops the cold start, and the log says which
// variable is wrong; the invocation fails rather than running half set up.
func TestBootstrapColdStartNamesTheBadVariable(t *testing.T) {
	t.Parallel()
	bootstrap := buildBootstrap(t)
	f := newFixture(t, testUsers[:1])
	r := startRIE(t, bootstrap, functionEnv(f, map[string]string{EnvModel: "model.json", EnvMaxFeatureAge: "two days"}))
	status, body := r.invoke(t, []byte(`{"user_id":"user-loyal","event_type":"login"}`))
	if status == 200 && !bytes.Contains(body, []byte("errorType")) {
		t.Fatalf("invocation succeeded without a configuration: HTTP %d %s", status, body)
	}
	// The emulator answers before the function's output has come through
	// its pipe: wait for the lines, on a loaded machine too.
	wants := []string{`cold start failed`, EnvFeatureTable + `: required`, EnvMaxFeatureAge + `: \"two days\" is not a duration`}
	says := func(out []byte) bool {
		for _, want := range wants {
			if !bytes.Contains(out, []byte(want)) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !says(r.out.Bytes()) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	out := r.out.Bytes()
	for _, want := range wants {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the function's log does not say %q:\n%s", want, out)
		}
	}
}
