package lambda

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/sinks"
)

func login(entity string) []byte {
	return fmt.Appendf(nil, `{"user_id":%q,"event_type":"login","ts":"2026-11-24T08:00:00Z","session_id":"s-%s"}`, entity, entity)
}

// invokeBatch sends a Kinesis event source mapping batch and decodes the
// partial batch response.
func invokeBatch(t *testing.T, ctx context.Context, h *Handler, payload []byte) events.KinesisEventResponse {
	t.Helper()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("a Kinesis batch must never fail as a whole (that retries all of it): %v", err)
	}
	var resp events.KinesisEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	if resp.BatchItemFailures == nil {
		t.Fatalf("response %s: batchItemFailures must be a list", out)
	}
	return resp
}

func seqOf(t *testing.T, payload []byte, i int) string {
	t.Helper()
	var ev events.KinesisEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Records[i].Kinesis.SequenceNumber
}

// pipelineAlerts publishes the fixture's result batch through the
// pipeline's alert sink (a rule at the function's threshold, explained
// by the model as the pipeline explains it) and returns what arrived,
// by entity: the shape the function's alerts must match.
func pipelineAlerts(t *testing.T, f *fixture) map[string]sinks.Alert {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	topic, queue := f.env.CreateTopicQueue(t, false)
	a, err := sinks.NewAlerts(sinks.AlertOptions{
		Client: f.env.SNS, TopicARN: topic,
		Rules: []sinks.AlertRule{{Name: "churn-risk", Levels: []sinks.AlertLevel{{Severity: "warning", Threshold: 0.7}}}},
		Explain: func(rec arrow.RecordBatch, i int, model, score string) []sinks.FeatureContribution {
			ex, err := f.model.Explain(rec, i, 0)
			if err != nil {
				t.Error(err)
				return nil
			}
			var out []sinks.FeatureContribution
			for _, c := range ex.Features {
				out = append(out, sinks.FeatureContribution{Feature: c.Feature, Value: c.Value, Contribution: c.Contribution})
			}
			return out
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, 1)
	if err := a.Write(ctx, sinks.Batch{Stream: "app-events", Shard: "shardId-000000000000", Rec: f.result, Ack: func(err error) { acked <- err }}); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[string]sinks.Alert{}
	for _, r := range drainAlerts(t, f.env, queue, 1, 500*time.Millisecond) {
		out[r.alert.Entity] = r.alert
	}
	return out
}

// One shard's batch with everything a stream carries: plain and KPL
// records (aggregated by AWS Labs' encoder), logins and other events, a
// user logging in twice, users without usable features, and poison of
// every kind. Every login is scored as the pipeline scores its window;
// high-risk ones alert once, in the pipeline's alert shape; poison lands
// in the dead-letter queue with its position and original bytes (a large
// one through S3); the batch succeeds as a whole.
func TestKinesisBatchScoresAlertsAndDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers)
	env := f.env
	topic, alertQueue := env.CreateTopicQueue(t, false)
	dlq := env.CreateQueue(t, false)
	bucket := env.CreateBucket(t)
	cfg := f.config()
	cfg.AlertTopicARN, cfg.DeadLetterQueueURL, cfg.DeadLetterBucket, cfg.DeadLetterPrefix = topic, dlq, bucket, "login/"
	h, metrics := f.newHandler(t, cfg, Options{})

	notJSON := []byte(`{"user_id":"user-x","event_type":"login"`)
	agg := nodeAggregate(t, [][]byte{login("user-loyal"), login("user-quiet"), notJSON, []byte(`{"user_id":18273,"event_type":"login"}`), login("user-leaving")})
	corrupt := bytes.Clone(agg)
	corrupt[len(corrupt)-1] ^= 0xff
	noUser := []byte(`{"event_type":"login","ts":"2026-11-24T08:00:00Z"}`)
	huge := append([]byte(`{"user_id":"user-big","event_type":"login","pad":"`), bytes.Repeat([]byte("z"), 180<<10)...) // unterminated
	data := [][]byte{
		login("user-leaving"), // 0
		[]byte(`{"user_id":"user-loyal","event_type":"purchase","amount":20}`), // 1: skipped
		agg,                 // 2: loyal, quiet, poison, 18273, leaving again
		corrupt,             // 3: poison (deaggregation)
		noUser,              // 4: poison (no user_id)
		huge,                // 5: poison, too large for SQS
		login("user-new"),   // 6: no item
		login("user-stale"), // 7: window too old
		login("user-borderline"),
	}
	payload := kinesisEvent("app-events", "shardId-000000000007", data)
	resp := invokeBatch(t, devstacktest.Ctx(t), h, payload)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch item failures %+v, want none", resp.BatchItemFailures)
	}

	// Alerts: the three high-risk users, once each, as the pipeline
	// would have alerted on their windows.
	want := pipelineAlerts(t, f)
	got := drainAlerts(t, env, alertQueue, 3, time.Second)
	var entities []string
	for _, r := range got {
		entities = append(entities, r.alert.Entity)
		a, p := r.alert, want[r.alert.Entity]
		if a.Rule != "churn-at-login" || a.State != sinks.StateFiring || a.Severity != "warning" || a.Stream != "app-events" ||
			a.Model != f.model.Version() || a.Threshold != 0.7 {
			t.Errorf("alert %+v", a)
		}
		if a.Score != p.Score || a.Model != p.Model || !a.WindowStart.Equal(p.WindowStart) || !a.WindowEnd.Equal(p.WindowEnd) {
			t.Errorf("%s: score %v model %s window %v-%v; the pipeline alerted %v %s %v-%v",
				a.Entity, a.Score, a.Model, a.WindowStart, a.WindowEnd, p.Score, p.Model, p.WindowStart, p.WindowEnd)
		}
		ja, _ := json.Marshal(a.TopFeatures)
		jp, _ := json.Marshal(p.TopFeatures)
		if len(a.TopFeatures) == 0 || string(ja) != string(jp) {
			t.Errorf("%s: top_features %s, the pipeline's alert has %s", a.Entity, ja, jp)
		}
		if fmt.Sprint(a.Features) != fmt.Sprint(p.Features) {
			t.Errorf("%s: features %v, the pipeline's alert has %v", a.Entity, a.Features, p.Features)
		}
		if r.attrs["entity"] != a.Entity || r.attrs["rule"] != "churn-at-login" || r.attrs["severity"] != "warning" ||
			!strings.Contains(r.subject, a.Entity) || !strings.HasPrefix(r.subject, "[WARNING] churn-at-login firing") {
			t.Errorf("%s: subject %q attributes %v", a.Entity, r.subject, r.attrs)
		}
	}
	slices.Sort(entities)
	if fmt.Sprint(entities) != "[18273 user-leaving user-quiet]" {
		t.Errorf("alerted %v, want each high-risk user once: [18273 user-leaving user-quiet]", entities)
	}

	// Dead letters: the four poison records, where they were, what was wrong.
	seq := func(i int) string { return seqOf(t, payload, i) }
	wantDL := map[string]struct {
		reason, detail string
		data           []byte
	}{
		seq(2) + ".2": {sinks.ReasonUndecodable, "not a JSON object", notJSON},
		seq(3) + ".0": {sinks.ReasonDeaggregation, "MD5", corrupt},
		seq(4) + ".0": {sinks.ReasonUndecodable, `"user_id": missing`, noUser},
		seq(5) + ".0": {sinks.ReasonUndecodable, "not a JSON object", huge},
	}
	dls := drainQueue(t, env, dlq, len(wantDL), 500*time.Millisecond)
	if len(dls) != len(wantDL) {
		t.Fatalf("%d dead letters, want %d", len(dls), len(wantDL))
	}
	for _, q := range dls {
		key := q.Attrs["sequence_number"] + "." + q.Attrs["sub_sequence"]
		w, ok := wantDL[key]
		if !ok {
			t.Errorf("unexpected dead letter at %s: %v", key, q.Attrs)
			continue
		}
		delete(wantDL, key)
		if q.Attrs["reason"] != w.reason || !strings.Contains(q.Attrs["detail"], w.detail) ||
			q.Attrs["stream"] != "app-events" || q.Attrs["shard"] != "shardId-000000000007" {
			t.Errorf("dead letter %s: attributes %v, want reason %s, detail saying %q", key, q.Attrs, w.reason, w.detail)
		}
		if body := deadLetterBody(t, env, q); !bytes.Equal(body, w.data) {
			t.Errorf("dead letter %s: body of %d bytes is not the original %d bytes", key, len(body), len(w.data))
		}
		if len(w.data) > 150<<10 && q.Attrs["payload"] != "s3" {
			t.Errorf("dead letter %s of %d bytes went inline, want via S3", key, len(w.data))
		}
	}

	lines := emfLines(t, metrics.Bytes())
	if len(lines) != 1 {
		t.Fatalf("%d EMF lines, want one per invocation", len(lines))
	}
	c := emfCounts(t, lines[0])
	wantC := map[string]float64{MetricScored: 8, MetricHighRisk: 4, MetricFeaturesMissing: 2, MetricPoison: 4, MetricFailures: 0, MetricSkipped: 1}
	if fmt.Sprint(c) != fmt.Sprint(wantC) || lines[0]["shape"] != "kinesis" {
		t.Errorf("EMF counts %v, want %v", c, wantC)
	}
}

// Without a dead-letter queue a poison record is handed back, never
// dropped: the response names it and nothing after it is acted on.
func TestKinesisPoisonWithoutDeadLetterQueueIsHandedBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers)
	topic, alertQueue := f.env.CreateTopicQueue(t, false)
	cfg := f.config()
	cfg.AlertTopicARN = topic
	h, metrics := f.newHandler(t, cfg, Options{})
	payload := kinesisEvent("app-events", "shardId-000000000001", [][]byte{
		login("user-leaving"), []byte(`{"user_id":"u","event_type":`), login("user-quiet"),
	})
	resp := invokeBatch(t, devstacktest.Ctx(t), h, payload)
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != seqOf(t, payload, 1) {
		t.Fatalf("batch item failures %+v, want the poison record %s", resp.BatchItemFailures, seqOf(t, payload, 1))
	}
	got := drainAlerts(t, f.env, alertQueue, 1, time.Second)
	if len(got) != 1 || got[0].alert.Entity != "user-leaving" {
		t.Errorf("alerts %+v, want only user-leaving's (the record after the poison is retried, not alerted now)", got)
	}
	c := emfCounts(t, emfLines(t, metrics.Bytes())[0])
	if c[MetricPoison] != 1 || c[MetricFailures] != 2 || c[MetricScored] != 1 {
		t.Errorf("EMF counts %v: want 1 poison, 2 records handed back, 1 scored", c)
	}
}

// An outage of any service the batch needs hands the batch back from the
// first record it kept from completing, before the invocation's deadline;
// once the service is back, Lambda's retry from that record completes.
func TestKinesisOutageHandsBackFromTheFirstFailedRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers)
	env := f.env
	for _, tc := range []struct {
		service string
		records [][]byte
		first   int // the record the outage stops
	}{
		{"dynamodb", [][]byte{[]byte(`{"user_id":"user-loyal","event_type":"purchase"}`), login("user-loyal"), login("user-leaving")}, 1},
		{"sns", [][]byte{login("user-loyal"), login("user-borderline"), login("user-leaving"), login("user-quiet")}, 2},
		{"sqs", [][]byte{login("user-leaving"), []byte(`{"user_id":`), login("user-quiet")}, 1},
	} {
		t.Run(tc.service, func(t *testing.T) {
			t.Parallel()
			ctx := devstacktest.Ctx(t)
			topic, alertQueue := env.CreateTopicQueue(t, false)
			cfg := f.config()
			cfg.AlertTopicARN, cfg.DeadLetterQueueURL = topic, env.CreateQueue(t, false)
			var o Options
			upstream := map[string]string{"dynamodb": env.Endpoints.DynamoDB, "sns": env.Endpoints.SNS, "sqs": env.Endpoints.SQS}[tc.service]
			proxy := env.Proxy(t, upstream)
			via := devstack.Endpoints{DynamoDB: proxy.URL(), SNS: proxy.URL(), SQS: proxy.URL()}.Clients()
			switch tc.service {
			case "dynamodb":
				o.DynamoDB = via.DynamoDB
			case "sns":
				o.SNS = via.SNS
			case "sqs":
				o.SQS = via.SQS
			}
			h, metrics := f.newHandler(t, cfg, o)
			if err := proxy.SetEnabled(ctx, false); err != nil {
				t.Fatal(err)
			}
			payload := kinesisEvent("app-events", "shardId-000000000002", tc.records)
			deadline := time.Now().Add(6 * time.Second)
			ictx, cancel := context.WithDeadline(ctx, deadline)
			resp := invokeBatch(t, ictx, h, payload)
			cancel()
			if time.Now().After(deadline) {
				t.Errorf("answered after the invocation's deadline")
			}
			want := seqOf(t, payload, tc.first)
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != want {
				t.Fatalf("batch item failures %+v, want exactly the first failed record %s", resp.BatchItemFailures, want)
			}
			if c := emfCounts(t, emfLines(t, metrics.Bytes())[0]); c[MetricFailures] != float64(len(tc.records)-tc.first) {
				t.Errorf("EMF counts %v: want %d records handed back", c, len(tc.records)-tc.first)
			}

			// Lambda retries from the reported record, once the service is back.
			if err := proxy.SetEnabled(ctx, true); err != nil {
				t.Fatal(err)
			}
			retry := kinesisEvent("app-events", "shardId-000000000002", tc.records)
			var ev events.KinesisEvent
			if err := json.Unmarshal(retry, &ev); err != nil {
				t.Fatal(err)
			}
			ev.Records = ev.Records[tc.first:]
			retry, _ = json.Marshal(ev)
			if resp := invokeBatch(t, ctx, h, retry); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("retry after the outage: failures %+v", resp.BatchItemFailures)
			}
			var alerted []string
			for _, r := range drainAlerts(t, env, alertQueue, 1, time.Second) {
				alerted = append(alerted, r.alert.Entity)
			}
			slices.Sort(alerted)
			wantAlerts := map[string]string{"dynamodb": "[user-leaving]", "sns": "[user-leaving user-quiet]", "sqs": "[user-leaving user-quiet]"}[tc.service]
			if fmt.Sprint(alerted) != wantAlerts {
				t.Errorf("alerts over both invocations: %v, want %s", alerted, wantAlerts)
			}
		})
	}
}

// User ids are personal data: at the default level (info) the function
// logs none, not for a high-risk login (which is logged), nor a poison
// record, nor an item it cannot read. They appear at debug only.
func TestInfoLogsCarryNoUserIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testUsers)
	env := f.env
	topic, _ := env.CreateTopicQueue(t, false)
	cfg := f.config()
	cfg.AlertTopicARN, cfg.DeadLetterQueueURL = topic, env.CreateQueue(t, false)
	_, err := f.env.DynamoDB.PutItem(devstacktest.Ctx(t), &dynamodb.PutItemInput{TableName: aws.String(f.table), Item: map[string]ddbtypes.AttributeValue{
		"entity":      &ddbtypes.AttributeValueMemberS{Value: "user-damaged-7"},
		"feature_set": &ddbtypes.AttributeValueMemberS{Value: DefaultFeatureSet},
		"window_end":  &ddbtypes.AttributeValueMemberN{Value: fmt.Sprint(day.Add(24 * time.Hour).UnixMilli())},
		"features":    &ddbtypes.AttributeValueMemberS{Value: "not a map"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var logs lockedBuffer
		h, _ := f.newHandler(t, cfg, Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level}))})
		data := [][]byte{
			login("user-leaving"), // high risk: logged and alerted
			[]byte(`{"user_id":"user-secret-42","event_type":"login"`), // poison
			login("user-damaged-7"),
		}
		resp := invokeBatch(t, devstacktest.Ctx(t), h, kinesisEvent("app-events", "shardId-000000000003", data))
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("batch item failures %+v", resp.BatchItemFailures)
		}
		logs.mu.Lock()
		out := logs.b.String()
		logs.mu.Unlock()
		for _, want := range []string{"high-risk login", "poison record", "feature table item unreadable"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: no %q line in the logs:\n%s", level, want, out)
			}
		}
		for _, id := range []string{"user-leaving", "user-secret-42", "user-damaged-7"} {
			if got := strings.Contains(out, id); got != (level == slog.LevelDebug && id != "user-secret-42") {
				t.Errorf("%v: logs contain %s: %v\n%s", level, id, got, out)
			}
		}
	}
}
