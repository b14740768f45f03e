package sinks

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/internal/snsmsg"
)

// received is an alert as a subscriber's queue sees it.
type received struct {
	alert Alert
	attrs map[string]string
	subj  string
}

// drain reads the queue until want messages arrived and then quiet
// seconds pass without more (so extra messages are caught too).
func drain(t *testing.T, env *devstacktest.Env, queue string, want int, quiet time.Duration) []received {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	var out []received
	deadline := time.Now().Add(45 * time.Second)
	lastNew := time.Now()
	for time.Now().Before(deadline) {
		if len(out) >= want && time.Since(lastNew) > quiet {
			break
		}
		res, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			// Raw delivery is off: the body is the SNS envelope.
			n, err := snsmsg.Decode(aws.ToString(m.Body))
			if err != nil {
				t.Fatal(err)
			}
			r := received{subj: n.Subject, attrs: n.Attributes}
			if err := json.Unmarshal([]byte(n.Message), &r.alert); err != nil {
				t.Fatalf("alert body: %v: %s", err, n.Message)
			}
			out = append(out, r)
			lastNew = time.Now()
			if _, err := env.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// alertScript is a score sequence for one entity, one window a minute.
func alertScript(t0 time.Time, entity string, scores []float64) []row {
	var rows []row
	for i, s := range scores {
		rows = append(rows, row{entity: entity, ws: t0.Add(time.Duration(i) * time.Minute), score: s, model: "xgb-7", feats: []float64{float64(i)}})
	}
	return rows
}

func alertRule() AlertRule {
	return AlertRule{Name: "failure-risk", Stream: "factory", Levels: []AlertLevel{{"critical", 0.9}, {"warning", 0.7}},
		FireAfter: 2, ClearAfter: 2, Cooldown: 10 * time.Minute}
}

// The script: minutes 0-1 reach warning twice (fire at 1), 2 escalates to
// critical, 3-4 fall below twice (resolve at 4), 5-6 fire again within the
// cooldown (suppressed, and so is its clearing at 7-8), 14-15 fire after
// the cooldown (fire at 15). press-2 never crosses.
var (
	scriptP1 = []float64{0.8, 0.85, 0.95, 0.5, 0.4, 0.8, 0.8, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.75, 0.8}
	scriptP2 = []float64{0.1, 0.69, 0.2, 0.1, 0.69, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}
)

type wantAlert struct {
	state, severity string
	minute          int
}

var scriptWant = []wantAlert{{StateFiring, "warning", 1}, {StateFiring, "critical", 2}, {StateResolved, "warning", 4}, {StateFiring, "warning", 15}}

func checkAlerts(t *testing.T, got []received, t0 time.Time) {
	t.Helper()
	slices.SortFunc(got, func(a, b received) int { return a.alert.WindowStart.Compare(b.alert.WindowStart) })
	if len(got) != len(scriptWant) {
		for _, g := range got {
			t.Logf("got %s %s %v %s", g.alert.State, g.alert.Severity, g.alert.WindowStart, g.alert.Entity)
		}
		t.Fatalf("received %d alerts, want %d", len(got), len(scriptWant))
	}
	for i, w := range scriptWant {
		g := got[i]
		ws := t0.Add(time.Duration(w.minute) * time.Minute)
		if g.alert.State != w.state || g.alert.Severity != w.severity || !g.alert.WindowStart.Equal(ws) || g.alert.Entity != "press-1" {
			t.Errorf("alert %d = %s/%s %s at %v, want %s/%s press-1 at %v", i, g.alert.State, g.alert.Severity, g.alert.Entity, g.alert.WindowStart, w.state, w.severity, ws)
		}
		wantAttrs := map[string]string{"severity": w.severity, "stream": "factory", "entity": "press-1", "model": "xgb-7", "state": w.state, "rule": "failure-risk"}
		for k, v := range wantAttrs {
			if g.attrs[k] != v {
				t.Errorf("alert %d attribute %s = %q, want %q", i, k, g.attrs[k], v)
			}
		}
		if g.subj == "" || g.alert.ResultID != ResultID("factory", "press-1", ws, ws.Add(time.Minute), "xgb-7") {
			t.Errorf("alert %d: subject %q result_id %s", i, g.subj, g.alert.ResultID)
		}
		if g.alert.Features["f00"] != float64(w.minute) {
			t.Errorf("alert %d: features %v, want f00=%d", i, g.alert.Features, w.minute)
		}
	}
}

func writeScript(t *testing.T, s Sink, a *acks, name string, t0 time.Time) {
	t.Helper()
	rows := append(alertScript(t0, "press-1", scriptP1), alertScript(t0, "press-2", scriptP2)...)
	// Two batches, split mid-script: rule state carries across batches.
	for i, part := range [][]row{rows[:7], rows[7:16], rows[16:]} {
		rec := resultRecord(t, 2, part)
		if err := s.Write(devstacktest.Ctx(t), Batch{Stream: "factory", Shard: "sh", Range: Range{First: pos(i * 10), Last: pos(i*10 + 9)}, Rec: rec, Ack: a.fn(fmt.Sprint(name, i))}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
}

func TestAlertsHysteresisCooldownAttributes(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, false)
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{alertRule()}})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	writeScript(t, s, a, "b", t0)
	a.wait(t, 30*time.Second, "b0", "b1", "b2")
	checkAlerts(t, drain(t, env, queue, len(scriptWant), 2*time.Second), t0)
}

func TestAlertsFIFODeduplicatesReplay(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, true)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	// The original run and, after a failover, a new owner replaying the
	// same windows with rebuilt state.
	for _, run := range []string{"first", "replay"} {
		s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{alertRule()}})
		if err != nil {
			t.Fatal(err)
		}
		writeScript(t, s, a, run, t0)
		a.wait(t, 30*time.Second, run+"0", run+"1", run+"2")
		if err := s.Close(devstacktest.Ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	checkAlerts(t, drain(t, env, queue, len(scriptWant), 3*time.Second), t0)
}

func TestAlertsSNSOutage(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	topic, queue := env.CreateTopicQueue(t, false)
	proxy := env.Proxy(t, env.Endpoints.SNS)
	client := devstack.Endpoints{SNS: proxy.URL()}.Clients().SNS
	m, reg := newMetrics(t)
	s, err := NewAlerts(AlertOptions{Client: client, TopicARN: topic, Rules: []AlertRule{alertRule()}, Metrics: m,
		Backoff: Backoff{Base: 50 * time.Millisecond, Max: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	writeScript(t, s, a, "b", t0)
	time.Sleep(2 * time.Second)
	for i := range 3 {
		if err, ok := a.get(fmt.Sprint("b", i)); ok {
			t.Fatalf("batch %d acked (%v) while SNS was unreachable", i, err)
		}
	}
	if r := counter(t, reg, "streamscore_sink_retries_total", "alerts"); r == 0 {
		t.Fatal("no retries counted during the outage")
	}
	if err := proxy.SetEnabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 60*time.Second, "b0", "b1", "b2")
	checkAlerts(t, drain(t, env, queue, len(scriptWant), 2*time.Second), t0)
}

func TestAlertsNotify(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, false)
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	if err := s.Notify(devstacktest.Ctx(t), Alert{Rule: "breaker", Severity: "warning", Model: "sagemaker-xgb", Message: "circuit breaker open: falling back to the embedded model"}); err != nil {
		t.Fatal(err)
	}
	got := drain(t, env, queue, 1, time.Second)
	if len(got) != 1 || got[0].alert.Rule != "breaker" || got[0].attrs["severity"] != "warning" || got[0].attrs["model"] != "sagemaker-xgb" || got[0].subj != "[WARNING] breaker" {
		t.Fatalf("received %+v", got)
	}
}

// linearWeights is a known linear model over resultRecord's features; f04
// has no weight, so it never contributes.
var linearWeights = map[string]float64{"f00": 0.5, "f01": -2, "f02": 0.01, "f03": 3, "f04": 0, "f05": -0.25, "f06": 1}

// linearExplain is what the pipeline gives the sink for a linear model:
// weight times the row's value, read from the batch.
func linearExplain(rec arrow.RecordBatch, i int) []FeatureContribution {
	var out []FeatureContribution
	for j, f := range rec.Schema().Fields() {
		w, ok := linearWeights[f.Name]
		if !ok {
			continue
		}
		x := rec.Column(j).(*array.Float64).Value(i)
		out = append(out, FeatureContribution{Feature: f.Name, Value: x, Contribution: w * x})
	}
	return out
}

// TestAlertsTopFeatures: a firing alert carries the five contributions of
// the alerting window largest in magnitude, largest first, through the real
// SNS to SQS path; resolutions carry none, and the sink asks for
// contributions only for the alerts it sends.
func TestAlertsTopFeatures(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, false)
	var mu sync.Mutex
	var calls []string
	explain := func(rec arrow.RecordBatch, i int, model, score string) []FeatureContribution {
		mu.Lock()
		calls = append(calls, fmt.Sprint(model, "/", score))
		mu.Unlock()
		return linearExplain(rec, i)
	}
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{alertRule()}, Explain: explain})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	rows := append(alertScript(t0, "press-1", scriptP1), alertScript(t0, "press-2", scriptP2)...)
	for i, part := range [][]row{rows[:7], rows[7:16], rows[16:]} {
		rec := resultRecord(t, 7, part)
		if err := s.Write(devstacktest.Ctx(t), Batch{Stream: "factory", Shard: "sh", Range: Range{First: pos(i * 10), Last: pos(i*10 + 9)}, Rec: rec, Ack: a.fn(fmt.Sprint("b", i))}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	a.wait(t, 30*time.Second, "b0", "b1", "b2")
	got := drain(t, env, queue, len(scriptWant), 2*time.Second)
	checkAlerts(t, got, t0)
	firing := 0
	for _, g := range got {
		al := g.alert
		if al.State == StateResolved {
			if al.TopFeatures != nil {
				t.Errorf("resolved alert carries top_features %+v", al.TopFeatures)
			}
			continue
		}
		firing++
		// The window's values are in the alert's features map: the top
		// features must be those values' contributions, largest first.
		var want []FeatureContribution
		for name, w := range linearWeights {
			if x := al.Features[name]; w*x != 0 {
				want = append(want, FeatureContribution{Feature: name, Value: x, Contribution: w * x})
			}
		}
		slices.SortFunc(want, func(a, b FeatureContribution) int {
			return cmp.Compare(math.Abs(b.Contribution), math.Abs(a.Contribution))
		})
		want = want[:5]
		if !slices.Equal(al.TopFeatures, want) {
			t.Errorf("alert at %v: top_features %+v, want %+v", al.WindowStart, al.TopFeatures, want)
		}
	}
	// The first firing (minute 1, second row of the first batch): f00 = 1,
	// f0j = 100 + j, so f03 3*103, f01 -2*101, f06 106, f05 -0.25*105,
	// f02 0.01*102; f00's 0.5 is sixth and f04 has no weight.
	slices.SortFunc(got, func(a, b received) int { return a.alert.WindowStart.Compare(b.alert.WindowStart) })
	first := got[0].alert.TopFeatures
	names := make([]string, len(first))
	for i, c := range first {
		names[i] = c.Feature
	}
	if !slices.Equal(names, []string{"f03", "f01", "f06", "f05", "f02"}) || first[0].Contribution != 309 || first[1].Value != 101 {
		t.Errorf("first alert's top_features = %+v", first)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != firing || firing != 3 {
		t.Errorf("Explain called %d times (%v) for %d firing alerts, want 3", len(calls), calls, firing)
	}
	for _, c := range calls {
		if c != "xgb-7/score" {
			t.Errorf("Explain asked for %s, want xgb-7/score", c)
		}
	}
}

// A missing input is null in the message and NaN again when read back;
// zero and non-finite contributions are left out, ties go by name.
func TestAlertTopFeaturesJSON(t *testing.T) {
	in := []FeatureContribution{
		{"temp", 71.5, 0.25}, {"vib", math.NaN(), -1.5}, {"rpm", 1500, 0}, {"hum", 0.4, math.NaN()},
		{"load", 2, -0.25}, {"volt", 230, math.Inf(1)}, {"a", 1, 0.01}, {"b", 1, 0.02}, {"c", 1, -0.03},
	}
	top := TopFeatures(in, 5)
	names := make([]string, len(top))
	for i, c := range top {
		names[i] = c.Feature
	}
	if !slices.Equal(names, []string{"vib", "load", "temp", "c", "b"}) {
		t.Fatalf("top features %v", names)
	}
	if in[0].Feature != "temp" || in[1].Feature != "vib" {
		t.Fatal("TopFeatures reordered its input")
	}
	body, err := json.Marshal(Alert{Rule: "r", TopFeatures: top[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"top_features":[{"feature":"vib","value":null,"contribution":-1.5},{"feature":"load","value":2,"contribution":-0.25}]`) {
		t.Fatalf("message %s", body)
	}
	var back Alert
	if err := json.Unmarshal(body, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.TopFeatures) != 2 || !math.IsNaN(back.TopFeatures[0].Value) || back.TopFeatures[1] != top[1] {
		t.Fatalf("read back %+v", back.TopFeatures)
	}
	if TopFeatures(nil, 5) != nil || TopFeatures([]FeatureContribution{{"x", 1, 0}}, 5) != nil {
		t.Fatal("no contributions should leave top_features out")
	}
}

// An alert SNS refuses on its own (here: over SNS's 256 KiB message limit,
// because its entity is 300 KB) is dead-lettered with SNS's reason; the
// batch's other alerts are published and the batch is acked nil.
func TestAlertsRefusedAlertIsDeadLettered(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, false)
	dlq, bucket := env.CreateQueue(t, false), env.CreateBucket(t)
	m, reg := newMetrics(t)
	dl, err := NewDeadLetter(DeadLetterOptions{SQS: env.SQS, QueueURL: dlq, S3: env.S3, Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	rule := AlertRule{Name: "risk", Levels: []AlertLevel{{"warning", 0.5}}}
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{rule}, DeadLetters: dl, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	huge := strings.Repeat("u", 300_000)
	rec := resultRecord(t, 1, []row{
		{entity: "press-1", ws: t0, score: 0.9, model: "m"},
		{entity: huge, ws: t0, score: 0.9, model: "m"},
		{entity: "press-2", ws: t0, score: 0.8, model: "m"},
	})
	defer rec.Release()
	a := newAcks()
	if err := s.Write(devstacktest.Ctx(t), Batch{Stream: "factory", Shard: "sh", Range: Range{First: pos(1), Last: pos(3)}, Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 60*time.Second, "b")
	var entities []string
	for _, r := range drain(t, env, queue, 2, 2*time.Second) {
		entities = append(entities, r.alert.Entity)
	}
	slices.Sort(entities)
	if !slices.Equal(entities, []string{"press-1", "press-2"}) {
		t.Errorf("published alerts for %.30q, want press-1 and press-2", entities)
	}
	d := receiveDeadLetters(t, env, dlq, 1)[0]
	if d.attrs["reason"] != ReasonRefused || !strings.Contains(d.attrs["detail"], "alerts: ") || !strings.Contains(d.attrs["detail"], "InvalidParameter") ||
		d.attrs["result_id"] != ResultID("factory", huge, t0, t0.Add(time.Minute), "m") || d.attrs["payload"] != "s3" {
		t.Errorf("dead letter attributes %v", d.attrs)
	}
	if n := counter(t, reg, "streamscore_sink_refused_rows_total", "alerts"); n != 1 {
		t.Errorf("refused alerts counted %v, want 1", n)
	}
}

// A FIFO topic's group id is the entity when SNS accepts it and a stable
// hash otherwise, so ids with spaces, non-ASCII or over 128 characters are
// published (and always to the same group) instead of refused.
func TestAlertsFIFOGroupIDs(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, true)
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{{Name: "risk", Levels: []AlertLevel{{"warning", 0.5}}}}})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ids := []string{"press-1", "user with spaces", "機械-7", strings.Repeat("x", 129), "tab\there"}
	var rows []row
	for _, e := range ids {
		rows = append(rows, row{entity: e, ws: t0, score: 0.9, model: "m"})
	}
	rec := resultRecord(t, 1, rows)
	defer rec.Release()
	a := newAcks()
	if err := s.Write(devstacktest.Ctx(t), Batch{Stream: "factory", Shard: "sh", Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 60*time.Second, "b")
	var got []string
	for _, r := range drain(t, env, queue, len(ids), 2*time.Second) {
		got = append(got, r.alert.Entity)
	}
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("alerts for %q, want %q", got, want)
	}
	for e, g := range map[string]string{"press-1": "press-1", "a!~": "a!~", "user with spaces": "sha256-", strings.Repeat("x", 129): "sha256-", "": "sha256-"} {
		if got := GroupID(e); !strings.HasPrefix(got, g) || (g == "sha256-" && len(got) != 39) {
			t.Errorf("GroupID(%.20q) = %q, want %q…", e, got, g)
		}
	}
}

// A score alert's message and attributes are what they were before drift
// alerts: none of the drift fields, no zero period times, and the FIFO
// group and deduplication id of its entity and window.
func TestAlertScoreMessageHasNoDriftFields(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := Alert{Rule: "failure-risk", State: StateFiring, Severity: "warning", Stream: "factory", Entity: "press-1", Model: "xgb-7",
		Score: 0.8, Threshold: 0.7, WindowStart: t0, WindowEnd: t0.Add(time.Minute), ResultID: "r", Features: map[string]float64{"f00": 1}, Subject: "s"}
	h := &alertHandler{fifo: true}
	e, err := h.entry(0, &a)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(aws.ToString(e.Message)), &fields); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(fields))
	want := []string{"entity", "features", "model", "result_id", "rule", "score", "severity", "state", "stream", "subject", "threshold", "window_end", "window_start"}
	if !slices.Equal(keys, want) {
		t.Errorf("message fields %v, want %v", keys, want)
	}
	attrs := slices.Sorted(maps.Keys(e.MessageAttributes))
	if !slices.Equal(attrs, []string{"entity", "model", "rule", "severity", "state", "stream"}) {
		t.Errorf("attributes %v", attrs)
	}
	if g := aws.ToString(e.MessageGroupId); g != "press-1" {
		t.Errorf("group id %q, want the entity", g)
	}
	// SHA-256 of rule, stream, entity, window start and end (ns), state and
	// severity joined by U+001F: a replay across an upgrade is deduplicated.
	if id := aws.ToString(e.MessageDeduplicationId); id != "f083a186da78b0ab8374a51486645fe277471f52542e03149409c0f8379ca0d4" {
		t.Errorf("deduplication id %s changed", id)
	}
}
