package sinks

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
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// driftT0 is the start of the drift scripts' first one-minute period.
var driftT0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func driftRule() AlertRule {
	return AlertRule{Name: "sensor-drift", Drift: "machine_5m", Levels: []AlertLevel{{"warning", 0}},
		FireAfter: 2, ClearAfter: 2, Cooldown: 10 * time.Minute}
}

// driftFeat is a scripted feature: its verdict per period ('D' drifted,
// '.' not) and its distance in either case.
type driftFeat struct {
	name, method, script string
	drifted, calm        float64
}

// The script, one period a minute: temperature and humidity drift from 0
// (fire together at 1), vibration from 2 (fires at 3, while the rule is
// firing for the others), temperature and humidity calm from 4 (resolve
// together at 5), vibration from 6 (resolves at 7); temperature drifts at
// 8-9 within its cooldown (quiet, and so is its clearing at 10-11) and
// again at 12-13, past it (fires at 13). machine_type never drifts.
var driftScript = []driftFeat{
	{"temperature_mean", "Simple", "DDDD....DD..DD", 0.31, 0.05},
	{"humidity_mean", "Robust", "DDDD..........", 0.2, 0.04},
	{"vibration_mean", "Simple", "..DDDD........", 0.25, 0.06},
	{"machine_type", "LInfinity", "..............", 0.5, 0.01},
}

func driftPeriod(p int) (start, end time.Time) {
	return driftT0.Add(time.Duration(p) * time.Minute), driftT0.Add(time.Duration(p+1) * time.Minute)
}

func driftViolations(p int) string {
	return fmt.Sprintf("s3://lake/monitoring/factory/machine_5m/2026/11/24/10/%02d/constraint_violations.json", p)
}

// driftReport is period p of the script.
func driftReport(p int) DriftReport {
	start, end := driftPeriod(p)
	r := DriftReport{Pipeline: "factory", Window: "machine_5m", Model: "xgb-7", PeriodStart: start, PeriodEnd: end, Violations: driftViolations(p)}
	for _, f := range driftScript {
		v := DriftFeature{Feature: f.name, Distance: f.calm, Threshold: 0.1, Method: f.method, Drifted: f.script[p] == 'D'}
		if v.Drifted {
			v.Distance = f.drifted
		}
		r.Features = append(r.Features, v)
	}
	return r
}

// feat is the verdict of a scripted feature in period p.
func feat(name string, p int) DriftFeature {
	r := driftReport(p)
	i := slices.IndexFunc(r.Features, func(f DriftFeature) bool { return f.Feature == name })
	return r.Features[i]
}

type wantDrift struct {
	state   string
	period  int
	drift   []DriftFeature
	subject string
}

var driftWant = []wantDrift{
	{StateFiring, 1, []DriftFeature{feat("temperature_mean", 1), feat("humidity_mean", 1)},
		"[WARNING] sensor-drift firing: machine_5m temperature_mean 0.31 > 0.10 (+1 more)"},
	{StateFiring, 3, []DriftFeature{feat("vibration_mean", 3)},
		"[WARNING] sensor-drift firing: machine_5m vibration_mean 0.25 > 0.10"},
	{StateResolved, 5, []DriftFeature{feat("temperature_mean", 5), feat("humidity_mean", 5)},
		"[WARNING] sensor-drift resolved: machine_5m temperature_mean 0.05 <= 0.10 (+1 more)"},
	{StateResolved, 7, []DriftFeature{feat("vibration_mean", 7)},
		"[WARNING] sensor-drift resolved: machine_5m vibration_mean 0.06 <= 0.10"},
	{StateFiring, 13, []DriftFeature{feat("temperature_mean", 13)},
		"[WARNING] sensor-drift firing: machine_5m temperature_mean 0.31 > 0.10"},
}

func checkDriftAlerts(t *testing.T, got []received) {
	t.Helper()
	slices.SortFunc(got, func(a, b received) int { return a.alert.PeriodEnd.Compare(b.alert.PeriodEnd) })
	if len(got) != len(driftWant) {
		for _, g := range got {
			t.Logf("got %s at %v: %s", g.alert.State, g.alert.PeriodEnd, g.subj)
		}
		t.Fatalf("received %d alerts, want %d", len(got), len(driftWant))
	}
	for i, w := range driftWant {
		g := got[i].alert
		start, end := driftPeriod(w.period)
		if g.Rule != "sensor-drift" || g.State != w.state || g.Severity != "warning" || g.Model != "xgb-7" ||
			g.Pipeline != "factory" || g.Window != "machine_5m" || !g.PeriodStart.Equal(start) || !g.PeriodEnd.Equal(end) ||
			g.Violations != driftViolations(w.period) || g.Entity != "" || g.Stream != "" {
			t.Errorf("alert %d = %+v, want %s of period %d", i, g, w.state, w.period)
		}
		if !slices.Equal(g.Drift, w.drift) {
			t.Errorf("alert %d (%s, period %d): drift %+v, want %+v", i, w.state, w.period, g.Drift, w.drift)
		}
		if got[i].subj != w.subject || g.Subject != w.subject {
			t.Errorf("alert %d: subject %q (body %q), want %q", i, got[i].subj, g.Subject, w.subject)
		}
		wantAttrs := map[string]string{"severity": "warning", "state": w.state, "rule": "sensor-drift", "model": "xgb-7", "pipeline": "factory", "window": "machine_5m"}
		if len(got[i].attrs) != len(wantAttrs) {
			t.Errorf("alert %d attributes %v, want %v", i, got[i].attrs, wantAttrs)
		}
		for k, v := range wantAttrs {
			if got[i].attrs[k] != v {
				t.Errorf("alert %d attribute %s = %q, want %q", i, k, got[i].attrs[k], v)
			}
		}
	}
}

// sendDrift reports periods [from, to) of the script, each once published.
func sendDrift(t *testing.T, s *Alerts, from, to int) {
	t.Helper()
	for p := from; p < to; p++ {
		if err := s.Drift(devstacktest.Ctx(t), driftReport(p)); err != nil {
			t.Fatalf("period %d: %v", p, err)
		}
	}
}

// TestAlertsDriftHysteresisCooldown: through the real SNS to SQS path, a
// drift rule fires after fire_after periods naming only the drifted
// features, reports a second feature firing while the rule fires for
// others, resolves after clear_after periods naming the cleared ones, and
// stays quiet within a feature's cooldown.
func TestAlertsDriftHysteresisCooldown(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, false)
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{driftRule()}})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	sendDrift(t, s, 0, len(driftScript[0].script))
	checkDriftAlerts(t, drain(t, env, queue, len(driftWant), 2*time.Second))
}

// A failover's new reducer replays the periods with rebuilt state: the
// FIFO topic's deduplication ids (per rule, pipeline/window, period and
// state) publish each drift alert once.
func TestAlertsDriftFIFODeduplicatesReplay(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, true)
	for range 2 {
		s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{driftRule()}})
		if err != nil {
			t.Fatal(err)
		}
		sendDrift(t, s, 0, len(driftScript[0].script))
		if err := s.Close(devstacktest.Ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	checkDriftAlerts(t, drain(t, env, queue, len(driftWant), 3*time.Second))
}

// Score rules ignore drift reports and drift rules ignore scored batches,
// even where the other kind's values would cross their thresholds; a
// report for another window concerns no rule.
func TestAlertsDriftAndScoreRulesJudgeTheirOwn(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, false)
	score := AlertRule{Name: "risk", Levels: []AlertLevel{{"critical", 0.5}}}
	drift := AlertRule{Name: "sensor-drift", Drift: "machine_5m", Levels: []AlertLevel{{"warning", 0.5}}}
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{score, drift}})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	rec := resultRecord(t, 1, []row{{entity: "press-1", ws: driftT0, score: 0.9, model: "xgb-7"}})
	defer rec.Release()
	a := newAcks()
	if err := s.Write(devstacktest.Ctx(t), Batch{Stream: "factory", Shard: "sh", Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 30*time.Second, "b")
	other := driftReport(0)
	other.Window = "line_1h"
	for _, r := range []DriftReport{driftReport(0), other} {
		for i := range r.Features {
			r.Features[i].Drifted, r.Features[i].Distance = true, 0.9
		}
		if err := s.Drift(devstacktest.Ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range drain(t, env, queue, 2, 2*time.Second) {
		got = append(got, fmt.Sprintf("%s %s %s/%s %s", r.alert.Rule, r.alert.Severity, r.alert.Entity, r.alert.Window, r.alert.State))
	}
	slices.Sort(got)
	want := []string{"risk critical press-1/ firing", "sensor-drift warning /machine_5m firing"}
	if !slices.Equal(got, want) {
		t.Errorf("alerts %q, want %q", got, want)
	}
}

// fakeSNS records what the sink publishes, for the rules' unit tests; it
// fails a call whose context is done, as the SDK does.
type fakeSNS struct {
	mu      sync.Mutex
	entries []snstypes.PublishBatchRequestEntry
}

var _ AlertsAPI = (*fakeSNS)(nil)

func (f *fakeSNS) PublishBatch(ctx context.Context, in *sns.PublishBatchInput, _ ...func(*sns.Options)) (*sns.PublishBatchOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, in.PublishBatchRequestEntries...)
	return &sns.PublishBatchOutput{}, nil
}

// take returns the alerts published since the last take.
func (f *fakeSNS) take(t *testing.T) []Alert {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Alert
	for _, e := range f.entries {
		var a Alert
		if err := json.Unmarshal([]byte(aws.ToString(e.Message)), &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	f.entries = nil
	return out
}

func newFakeAlerts(t *testing.T, o AlertOptions) (*Alerts, *fakeSNS) {
	t.Helper()
	f := &fakeSNS{}
	o.Client, o.TopicARN = f, "arn:aws:sns:us-east-1:000000000000:alerts"
	s, err := NewAlerts(o)
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	return s, f
}

// features lists an alert's drift features by name.
func features(as []Alert) [][]string {
	var out [][]string
	for _, a := range as {
		var names []string
		for _, f := range a.Drift {
			names = append(names, f.Feature)
		}
		out = append(out, names)
	}
	return out
}

// oneFeature is a report of period p with one feature's verdict.
func oneFeature(p int, name string, drifted bool) DriftReport {
	start, end := driftPeriod(p)
	return DriftReport{Pipeline: "factory", Window: "machine_5m", PeriodStart: start, PeriodEnd: end,
		Features: []DriftFeature{{Feature: name, Distance: 0.3, Threshold: 0.1, Method: "Simple", Drifted: drifted}}}
}

// A report that could not be published is not remembered, so sending it
// again alerts as the first attempt would have; a report for a period
// already judged (a duplicate) counts nothing, so it cannot complete
// fire_after on its own.
func TestAlertsDriftRetryAndDuplicate(t *testing.T) {
	t.Parallel()
	r := driftRule()
	s, f := newFakeAlerts(t, AlertOptions{Rules: []AlertRule{r}})
	ctx := context.Background()
	dead, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Drift(ctx, oneFeature(0, "temp", true)); err != nil {
		t.Fatal(err)
	}
	if err := s.Drift(dead, oneFeature(1, "temp", true)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drift with a cancelled context = %v", err)
	}
	if err := s.Drift(ctx, oneFeature(1, "temp", true)); err != nil {
		t.Fatal(err)
	}
	if got := features(f.take(t)); !slices.EqualFunc(got, [][]string{{"temp"}}, slices.Equal) {
		t.Fatalf("after a failed and a retried period 1: alerts about %v, want one about temp", got)
	}
	for _, p := range []int{2, 2, 1} {
		if err := s.Drift(ctx, oneFeature(p, "vib", true)); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.take(t); len(got) != 0 {
		t.Fatalf("vib drifted in one period, reported three times: alerts %+v", got)
	}
	if err := s.Drift(ctx, oneFeature(3, "vib", true)); err != nil {
		t.Fatal(err)
	}
	if got := features(f.take(t)); !slices.EqualFunc(got, [][]string{{"vib"}}, slices.Equal) {
		t.Fatalf("vib drifted in periods 2 and 3: alerts about %v, want one about vib", got)
	}
}

// MaxEntities bounds drift state too: a feature forgotten for another
// starts its count again.
func TestAlertsDriftStateEviction(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{1, 2} {
		s, f := newFakeAlerts(t, AlertOptions{Rules: []AlertRule{driftRule()}, MaxEntities: limit})
		for p, name := range []string{"temp", "vib", "temp"} {
			if err := s.Drift(context.Background(), oneFeature(p, name, true)); err != nil {
				t.Fatal(err)
			}
		}
		// temp drifted in its second judged period: it fires unless it was
		// forgotten when vib came.
		if got, want := len(f.take(t)), limit-1; got != want {
			t.Errorf("MaxEntities %d: %d alerts, want %d", limit, got, want)
		}
	}
}

// A drift rule has its lowest level's severity whatever the thresholds,
// features without a distance are null in the message and listed last,
// and a long feature name is cut so the subject keeps its numbers within
// SNS's 100 characters.
func TestAlertsDriftMessage(t *testing.T) {
	t.Parallel()
	r := driftRule()
	r.FireAfter, r.ClearAfter = 1, 1
	r.Levels = []AlertLevel{{"critical", 0.9}, {"info", -1}, {"warning", 0.5}}
	s, f := newFakeAlerts(t, AlertOptions{Rules: []AlertRule{r}})
	long := strings.Repeat("sensor_", 20) + "mean"
	rep := DriftReport{Pipeline: "factory", Window: "machine_5m", PeriodStart: driftT0, PeriodEnd: driftT0.Add(time.Hour),
		Features: []DriftFeature{
			{Feature: "gone", Distance: math.NaN(), Threshold: 0.1, Method: "Simple", Drifted: true},
			{Feature: long, Distance: 0.004, Threshold: 0.002, Method: "ChiSquared", Drifted: true},
			{Feature: "b", Distance: 0.004, Threshold: 0.1, Method: "Simple", Drifted: true},
			{Feature: "calm", Distance: 0.01, Threshold: 0.1, Method: "Simple"},
		}}
	if err := s.Drift(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	body := aws.ToString(f.entries[0].Message)
	subject := aws.ToString(f.entries[0].Subject)
	f.mu.Unlock()
	got := f.take(t)
	if len(got) != 1 || got[0].Severity != "info" {
		t.Fatalf("alerts %+v, want one of severity info", got)
	}
	if names := features(got)[0]; !slices.Equal(names, []string{"b", long, "gone"}) {
		t.Errorf("drift features %v, want b, the long one, gone", names)
	}
	if !strings.Contains(body, `{"feature":"gone","distance":null,"threshold":0.1,"method":"Simple","drifted":true}`) {
		t.Errorf("message %s", body)
	}
	if g := got[0].Drift[2]; !math.IsNaN(g.Distance) || g.Threshold != 0.1 {
		t.Errorf("read back %+v, want a NaN distance", g)
	}
	wantEnd := " 0.004 > 0.10 (+2 more)"
	if len(subject) > 100 || !strings.HasPrefix(subject, "[INFO] sensor-drift firing: machine_5m b") || !strings.HasSuffix(subject, wantEnd) {
		t.Errorf("subject %q (%d characters)", subject, len(subject))
	}
	rep.Features = rep.Features[1:2]
	rep.PeriodStart, rep.PeriodEnd = rep.PeriodEnd, rep.PeriodEnd.Add(time.Hour)
	rep.Features[0].Drifted = false
	if err := s.Drift(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	got = f.take(t)
	if len(got) != 1 || len(got[0].Subject) != 100 || !strings.HasSuffix(got[0].Subject, "... 0.004 <= 0.002") || got[0].Severity != "info" {
		t.Errorf("resolved subject %q (%d characters), alerts %d", got[0].Subject, len(got[0].Subject), len(got))
	}
}

// Reports the rules cannot judge are refused with the field named, and a
// rule cannot judge both drift and a score.
func TestAlertsDriftRefusesBadInput(t *testing.T) {
	t.Parallel()
	s, f := newFakeAlerts(t, AlertOptions{Rules: []AlertRule{driftRule()}})
	good := oneFeature(0, "temp", true)
	for name, c := range map[string]struct {
		mod  func(*DriftReport)
		want string
	}{
		"no window":     {func(r *DriftReport) { r.Window = "" }, "window is required"},
		"no period end": {func(r *DriftReport) { r.PeriodEnd = time.Time{} }, "period end is required"},
		"reversed":      {func(r *DriftReport) { r.PeriodStart = r.PeriodEnd.Add(time.Minute) }, "period starts after it ends"},
		"unnamed":       {func(r *DriftReport) { r.Features[0].Feature = "" }, "features[0]: feature name is required"},
		"listed twice":  {func(r *DriftReport) { r.Features = append(r.Features, r.Features[0]) }, `features[1]: feature "temp" is listed twice`},
	} {
		r := good
		r.Features = slices.Clone(good.Features)
		c.mod(&r)
		if err := s.Drift(context.Background(), r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Drift = %v, want an error containing %q", name, err, c.want)
		}
	}
	if got := f.take(t); len(got) != 0 {
		t.Errorf("refused reports published %+v", got)
	}
	r := driftRule()
	r.Score = "risk"
	if _, err := NewAlerts(AlertOptions{Client: f, TopicARN: "arn:aws:sns:us-east-1:000000000000:a", Rules: []AlertRule{r}}); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("NewAlerts with a rule of drift and score = %v", err)
	}
}

// A drift alert's FIFO group is its pipeline/window, so one window's
// alerts keep their order; its deduplication id is per rule, window,
// period and state, so two periods' alerts never collapse into one.
func TestAlertsDriftFIFOIDs(t *testing.T) {
	t.Parallel()
	h := &alertHandler{fifo: true}
	rep := driftReport(1)
	a := driftAlert(&AlertRule{Name: "sensor-drift", Levels: []AlertLevel{{"warning", 0}}}, &rep, StateFiring, []DriftFeature{feat("temperature_mean", 1)})
	e, err := h.entry(0, &a)
	if err != nil {
		t.Fatal(err)
	}
	if g := aws.ToString(e.MessageGroupId); g != "factory/machine_5m" {
		t.Errorf("group id %q, want factory/machine_5m", g)
	}
	ids := map[string]string{}
	for name, mod := range map[string]func(*Alert){
		"same":     func(*Alert) {},
		"period":   func(a *Alert) { a.PeriodStart, a.PeriodEnd = driftPeriod(2) },
		"state":    func(a *Alert) { a.State = StateResolved },
		"window":   func(a *Alert) { a.Window = "line_1h" },
		"pipeline": func(a *Alert) { a.Pipeline = "plant-2" },
		"rule":     func(a *Alert) { a.Rule = "other" },
	} {
		b := a
		mod(&b)
		ids[name] = b.dedupID()
	}
	if ids["same"] != aws.ToString(e.MessageDeduplicationId) {
		t.Errorf("dedup id %s, want %s", aws.ToString(e.MessageDeduplicationId), ids["same"])
	}
	seen := map[string]string{}
	for name, id := range ids {
		if o, dup := seen[id]; dup {
			t.Errorf("alerts differing by %s and by %s share a deduplication id", name, o)
		}
		seen[id] = name
	}
}
