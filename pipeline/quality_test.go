package pipeline_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/sinks"
)

// The quality test's fleet: machines 0-9 vibrate at 0.9 g (the champion
// scores them about 1), 10-19 at 0.3 g (about 0). Of the first ten, 0-7
// fail just after period A, 8 and 9 do not; of the healthy ones, machine
// 10 fails all the same. Judged by entity within a 30 s horizon, every
// window of period A of a failing machine is a positive:
//
//	TP = 8 machines x 10 windows, FP = 2 x 10, FN = 1 x 10, TN = 9 x 10
//
// so precision 0.8, recall 80/90, accuracy 0.85. The challenger (logistic
// of 20 x vibration, no intercept) scores every machine above 0.5:
// precision 0.45 and recall 1 on the same 200 rows.
const (
	qualMachines = 20
	qualPeriod   = 10 * time.Second
)

func failsAfterA(m int) bool { return m < 8 || m == 10 }

// TestQualityJudgesTheStreamAgainstItsLabels: labels on a Kinesis stream
// reach S3 as ground truth, a real worker judges the period's champion
// and challenger predictions against them by entity and horizon, writes
// Model Monitor's model-quality statistics.json and constraint_violations
// .json per model version (and the champion on the challenger's rows),
// sets the Prometheus gauges, and the precision constraint's violation
// fires the model-quality alert.
func TestQualityJudgesTheStreamAgainstItsLabels(t *testing.T) {
	env := devstacktest.New(t)
	bus := env.CreateEventBus(t)
	requests := env.CreateEventRule(t, bus, `{"source":["streamscore"],"detail-type":["Retraining Requested"]}`)
	f := startQualityFleet(t, "", "    - {name: model-quality, quality: failure, severity: warning, fire_after: 1}\n",
		fmt.Sprintf("  retrain: {quality_periods: 1, event_bus: %s}\n", bus))
	tp, reg, a := f.tp, f.reg, f.a
	ctx := devstacktest.Ctx(t)
	stop := f.stop
	lab := f.labels
	f.sendPeriodA(t)

	var j struct {
		Counts dataset.PeriodCounts `json:"counts"`
		Models []struct {
			Version    string              `json:"model_version"`
			Role       string              `json:"role"`
			Counts     dataset.ModelCounts `json:"counts"`
			Statistics string              `json:"statistics"`
			Champion   string              `json:"champion_statistics"`
			Violated   []string            `json:"violated"`
		} `json:"models"`
	}
	f.judgement(t, &j)
	if j.Counts.Predictions != 200 || j.Counts.Labelled != 200 || j.Counts.EntityLabels != int64(len(lab)) {
		t.Errorf("counts %+v, want 200 predictions all labelled by %d labels", j.Counts, len(lab))
	}
	if len(j.Models) != 2 || j.Models[0].Role != "champion" || j.Models[1].Role != "challenger" {
		t.Fatalf("models %+v, want the champion then the challenger", j.Models)
	}
	stats := func(uri string) *quality.Statistics {
		t.Helper()
		key := strings.TrimPrefix(uri, "s3://"+tp.bucket+"/")
		body, err := dataset.ReadObject(ctx, tp.env.S3, tp.bucket, key)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		st, err := quality.ReadStatistics(strings.NewReader(string(body)), uri)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	champ := stats(j.Models[0].Statistics)
	if cm := champ.Binary.ConfusionMatrix; cm.TruePositives != 80 || cm.FalsePositives != 20 || cm.FalseNegatives != 10 || cm.TrueNegatives != 90 {
		t.Errorf("champion's confusion matrix %+v, want TP 80 FP 20 FN 10 TN 90", cm)
	}
	near("champion precision", champ.Binary.Precision.Value, 0.8)
	near("champion recall", champ.Binary.Recall.Value, 80.0/90)
	near("champion accuracy", champ.Binary.Accuracy.Value, 0.85)
	if v := j.Models[0].Violated; len(v) != 1 || v[0] != "precision" {
		t.Errorf("champion violated %v, want precision alone", v)
	}
	chal := stats(j.Models[1].Statistics)
	near("challenger precision", chal.Binary.Precision.Value, 0.45)
	near("challenger recall", chal.Binary.Recall.Value, 1)
	if same := stats(j.Models[1].Champion); same.Dataset.ItemCount != chal.Dataset.ItemCount || same.Binary.Precision.Value != champ.Binary.Precision.Value {
		t.Errorf("champion on the challenger's rows: %d rows precision %v, want %d rows precision %v",
			same.Dataset.ItemCount, same.Binary.Precision.Value, chal.Dataset.ItemCount, champ.Binary.Precision.Value)
	}
	// The gauges hold the last period judged (later ones are judged too,
	// against the same labels): the one progress.json names.
	waitFor(t, time.Minute, "gauges of the last period judged", func() bool {
		body, err := dataset.ReadObject(ctx, tp.env.S3, tp.bucket, "monitoring/model-quality/test/failure/progress.json")
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Judged time.Time }
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		last := stats(fmt.Sprintf("s3://%s/monitoring/model-quality/test/failure/%s/champion/%s/statistics.json",
			tp.bucket, p.Judged.Format("2006/01/02/15/04/05"), versionDir(j.Models[0].Version)))
		g := gaugeWith(t, reg, "streamscore_quality_metric", map[string]string{"scorer": "failure", "role": "champion", "metric": "precision"})
		return g == last.Binary.Precision.Value
	})

	// Period A's precision violates its constraint: the alert says so.
	// The queue also has the score rule's alerts, and later periods'.
	var fired *sinks.Alert
	waitFor(t, 2*time.Minute, "model-quality alert of period A", func() bool {
		for _, al := range receiveAlerts(t, tp.env, tp.alertURL, time.Now().Add(5*time.Second)) {
			if al.Rule == "model-quality" && al.PeriodStart.Equal(a) {
				fired = &al
			}
		}
		return fired != nil
	})
	if fired.State != sinks.StateFiring || fired.Scorer != "failure" || fired.Model != j.Models[0].Version ||
		len(fired.Quality) != 1 || fired.Quality[0].Metric != "precision" || fired.Quality[0].Value != champ.Binary.Precision.Value {
		t.Errorf("period A's alert %+v, want precision firing alone (recall is within its constraint)", fired)
	}
	// The violation asked for retraining once (the trigger's cooldown then
	// holds later periods' violations back), through EventBridge.
	var req struct {
		DetailType string `json:"detail-type"`
		Detail     struct {
			Reason  string `json:"reason"`
			Scorer  string `json:"scorer"`
			Periods []struct {
				Start time.Time `json:"start"`
			} `json:"periods"`
			Metrics []struct {
				Name string `json:"name"`
			} `json:"metrics"`
		} `json:"detail"`
	}
	waitFor(t, time.Minute, "a retraining request", func() bool {
		res, err := env.EventSQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(requests), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			return false
		}
		if body := aws.ToString(res.Messages[0].Body); json.Unmarshal([]byte(body), &req) != nil {
			t.Fatalf("event %s is not JSON", body)
		}
		return true
	})
	if d := req.Detail; req.DetailType != "Retraining Requested" || d.Reason != "quality" || d.Scorer != "failure" ||
		len(d.Periods) != 1 || !d.Periods[0].Start.Equal(a) || len(d.Metrics) == 0 || d.Metrics[0].Name != "precision" {
		t.Errorf("retraining request %+v, want one for period A's precision", req)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// qualityFleet is the quality tests' pipeline on one worker: the scorer
// failure with the challenger in shadow, labels on their own stream,
// 10-second periods, a 30 s horizon; period A starts three minutes ago.
type qualityFleet struct {
	tp       *testPipeline
	reg      *prometheus.Registry
	a        time.Time
	labelsTo string
	labels   []ktypes.PutRecordsRequestEntry
	stop     func() error
}

// startQualityFleet starts the worker with promotion (a scorer's
// promotion section, flow style, or "") and extra alert rules, and sends
// the labels, waiting until they are in S3.
func startQualityFleet(t *testing.T, promotion, rules, monitorExtra string, edits ...[2]string) *qualityFleet {
	return startQualityFleetWith(t, promotion, rules, monitorExtra, "", edits...)
}

// startQualityFleetWith is startQualityFleet with the challenger's model
// entry given ("" takes a linear model in a local file).
func startQualityFleetWith(t *testing.T, promotion, rules, monitorExtra, challengerModel string, edits ...[2]string) *qualityFleet {
	t.Helper()
	tp := newTestPipeline(t)
	labels := tp.env.CreateStream(t, 1)
	challenger := filepath.Join(t.TempDir(), "challenger.json")
	if err := os.WriteFile(challenger, []byte(`{"streamscore_linear":1,"link":"logistic","intercept":0,
		"features":[{"name":"vibration_mean","weight":20}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cons := t.TempDir()
	if err := os.WriteFile(filepath.Join(cons, "constraints.json"), []byte(`{"version": 0.0,
  "binary_classification_constraints": {
    "precision": {"threshold": 0.9, "comparison_operator": "LessThanThreshold"},
    "recall": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if challengerModel == "" {
		challengerModel = fmt.Sprintf("  challenger:\n    format: linear\n    path: %s\n", challenger)
	}
	scorerLine := "{name: failure, window: w1s, model: vib, challenger: challenger}"
	if promotion != "" {
		scorerLine = "{name: failure, window: w1s, model: vib, challenger: challenger, promotion: " + promotion + "}"
	}
	src := tp.yaml
	for _, r := range append([][2]string{
		{"streams:\n", fmt.Sprintf("streams:\n  - {name: %s, schema: label, shards: 1}\n", labels)},
		{"schemas:\n", "schemas:\n  label:\n    entity: machine_id\n    time: ts\n    fields:\n      - {name: failed, type: bool}\n"},
		{"  vib:\n", challengerModel + "  vib:\n"},
		{"{name: failure, window: w1s, model: vib}", scorerLine},
		{"alerts:\n  topic:", fmt.Sprintf(`labels: {stream: %s, label: failed, delay: 2s}
monitor:
  period: 10s
  settle: 2s
%s  quality:
    - {scorer: failure, threshold: 0.5, horizon: 30s, constraints: %s}
alerts:
  topic:`, labels, monitorExtra, cons)},
		{"    - {name: hot,", rules + "    - {name: hot,"},
	}, edits...) {
		if !strings.Contains(src, r[0]) {
			t.Fatalf("test config has no %q", r[0])
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	cfg, err := config.Parse([]byte(src), "quality.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	f := &qualityFleet{tp: tp, reg: prometheus.NewRegistry(), a: time.Now().UTC().Add(-3 * time.Minute).Truncate(qualPeriod), labelsTo: labels}
	tp.registerer = f.reg
	// The labels go first and are in S3 before any reading is sent: the
	// period is long past, so it is due as soon as its results are in.
	f.stop, _ = tp.startPipeline(t, "worker-q")
	for m := range qualMachines {
		if failsAfterA(m) {
			id := fmt.Sprintf("mill-%03d", m)
			f.labels = append(f.labels, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(id),
				Data: fmt.Appendf(nil, `{"machine_id":%q,"ts":%q,"failed":true}`, id, f.a.Add(qualPeriod+time.Second).Format(time.RFC3339Nano))})
		}
	}
	f.put(t, labels, f.labels)
	gtPrefix := sinks.GroundTruthPrefix("test", "")
	waitFor(t, 2*time.Minute, "the labels in S3", func() bool {
		return countLines(t, tp, gtPrefix) == len(f.labels)
	})
	return f
}

// judgement waits for period A's judgement.json and decodes it into j.
func (f *qualityFleet) judgement(t *testing.T, j any) {
	t.Helper()
	key := "monitoring/model-quality/test/failure/" + f.a.Format("2006/01/02/15/04/05") + "/judgement.json"
	waitFor(t, 5*time.Minute, "period A's judgement", func() bool {
		body, err := dataset.ReadObject(devstacktest.Ctx(t), f.tp.env.S3, f.tp.bucket, key)
		if dataset.Absent(err) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, j); err != nil {
			t.Fatalf("%s: %v\n%s", key, err, body)
		}
		return true
	})
}

// sendPeriodA sends the readings of period A and 15 s after it, every
// 100 ms: A's windows are the first.
func (f *qualityFleet) sendPeriodA(t *testing.T) {
	t.Helper()
	f.sendReadings(t, f.a, 250)
}

func (f *qualityFleet) sendReadings(t *testing.T, from time.Time, steps int) {
	t.Helper()
	var batch []ktypes.PutRecordsRequestEntry
	for step := range steps {
		ts := from.Add(time.Duration(step) * 100 * time.Millisecond)
		for m := range qualMachines {
			id := fmt.Sprintf("mill-%03d", m)
			vib := 0.3
			if m < 10 {
				vib = 0.9
			}
			batch = append(batch, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(id), Data: []byte(reading(id, ts, vib))})
		}
	}
	f.put(t, f.tp.stream, batch)
}

func (f *qualityFleet) put(t *testing.T, stream string, entries []ktypes.PutRecordsRequestEntry) {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	for len(entries) > 0 {
		n := min(len(entries), 500)
		out, err := f.tp.env.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries[:n]})
		if err != nil {
			t.Fatal(err)
		}
		var retry []ktypes.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				retry = append(retry, entries[i])
			}
		}
		entries = append(retry, entries[n:]...)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// versionDir is a model version as the monitor's directories name it.
func versionDir(v string) string { return strings.NewReplacer(":", "_", "/", "_").Replace(v) }

// countLines counts the lines of every object under prefix.
func countLines(t *testing.T, tp *testPipeline, prefix string) int {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	out, err := tp.env.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(tp.bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range out.Contents {
		body, err := dataset.ReadObject(ctx, tp.env.S3, tp.bucket, aws.ToString(o.Key))
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(body), "\n")
	}
	return n
}

// TestPromotionOnEvidence: with an automatic promotion policy (recall by
// at least 0.05, precision at least 0.4, 100 labelled rows), the reducer
// judges period A's challenger better on the same rows and writes the
// decision once; the worker follows it without a restart (its next
// windows carry the challenger's version in the feature table), the
// promotion is alerted, and a rollback brings the configured champion
// back the same way.
func TestPromotionOnEvidence(t *testing.T) {
	env := devstacktest.New(t)
	bus := env.CreateEventBus(t)
	decisions := env.CreateEventRule(t, bus, `{"source":["streamscore"],"detail-type":["Model Promoted"]}`)
	table := env.Name("promotions")
	if err := dynamo.EnsureTable(devstacktest.Ctx(t), env.DynamoDB, table); err != nil {
		t.Fatal(err)
	}
	f := startQualityFleet(t, fmt.Sprintf("{metric: recall, margin: 0.05, min_labelled: 100, guardrails: [{metric: precision, min: 0.4}], auto: true, table: %s}", table), "",
		fmt.Sprintf("  retrain: {event_bus: %s}\n", bus))
	tp, ctx := f.tp, devstacktest.Ctx(t)
	f.sendPeriodA(t)

	var j struct {
		Models []struct {
			Version string `json:"model_version"`
			Role    string `json:"role"`
		} `json:"models"`
		Promotion []struct {
			Outcome string `json:"outcome"`
			Reason  string `json:"reason"`
		} `json:"promotion"`
	}
	f.judgement(t, &j)
	if len(j.Promotion) != 1 || j.Promotion[0].Outcome != "promote" || len(j.Models) != 2 {
		t.Fatalf("period A's judgement %+v, want the challenger promoted", j)
	}
	champion, challenger := j.Models[0].Version, j.Models[1].Version
	store, err := dynamo.NewStore(tp.env.DynamoDB, dynamo.Config{Table: table, Pipeline: "test", Scorer: "failure",
		Configured: promotion.Model{Key: "vib"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := store.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 1 || d.Champion.Key != "challenger" || d.Champion.Version != challenger || !strings.Contains(d.Reason, "recall") {
		t.Fatalf("decision %+v, want generation 1 making the challenger (%s) champion on recall", d.Entry, challenger)
	}
	// It names a kept copy, which the next trained challenger cannot change.
	if !strings.Contains(d.Champion.Path, string(filepath.Separator)+"promoted"+string(filepath.Separator)) {
		t.Errorf("decided champion at %s, want a kept copy under promoted/", d.Champion.Path)
	} else if b, err := os.ReadFile(d.Champion.Path); err != nil || !strings.Contains(string(b), `"intercept":0`) {
		t.Errorf("kept copy %s: %q, %v", d.Champion.Path, b, err)
	}

	// The worker scores with the decided champion from its next windows.
	servedBy := func(want string, from time.Time) {
		t.Helper()
		waitFor(t, 2*time.Minute, "windows scored by "+want, func() bool {
			f.sendReadings(t, from, 10)
			from = from.Add(time.Second)
			item, err := tp.env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tp.table), ConsistentRead: aws.Bool(true),
				Key: map[string]ddbtypes.AttributeValue{
					sinks.FeatureAttrEntity: &ddbtypes.AttributeValueMemberS{Value: "mill-015"},
					sinks.FeatureAttrSet:    &ddbtypes.AttributeValueMemberS{Value: sinks.FeatureSet("test", "w1s")},
				}})
			if err != nil {
				t.Fatal(err)
			}
			v, _ := item.Item[sinks.ColModelVersion].(*ddbtypes.AttributeValueMemberS)
			return v != nil && v.Value == want
		})
	}
	servedBy(challenger, f.a.Add(30*time.Second))

	var promoted bool
	waitFor(t, 2*time.Minute, "model-promoted alert", func() bool {
		for _, al := range receiveAlerts(t, tp.env, tp.alertURL, time.Now().Add(5*time.Second)) {
			promoted = promoted || al.Rule == "model-promoted" && al.Scorer == "failure" && al.Model == "challenger"
		}
		return promoted
	})

	// The decision is announced on EventBridge too.
	var ev struct {
		Detail struct {
			Generation int64 `json:"generation"`
			Champion   struct {
				Key string `json:"key"`
			} `json:"champion"`
		} `json:"detail"`
	}
	waitFor(t, time.Minute, "a Model Promoted event", func() bool {
		res, err := env.EventSQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(decisions), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Messages) > 0 && json.Unmarshal([]byte(aws.ToString(res.Messages[0].Body)), &ev) == nil
	})
	if ev.Detail.Generation != 1 || ev.Detail.Champion.Key != "challenger" {
		t.Errorf("Model Promoted event %+v, want generation 1 of the challenger", ev)
	}

	if _, err := store.Rollback(ctx, 1, "test: back to the configured model", "tester"); err != nil {
		t.Fatal(err)
	}
	servedBy(champion, f.a.Add(time.Minute))
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
}
