package retrain

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/promotion"
)

// envelope wraps a detail as EventBridge delivers it to a rule's target.
func envelope(t testing.TB, d Detail) any {
	t.Helper()
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	ev := map[string]any{"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": d.DetailType(),
		"source": Source, "account": "123456789012", "time": "2026-11-30T03:00:41Z", "region": "eu-west-1",
		"resources": []string{}, "detail": json.RawMessage(body)}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := decodeJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// sampleDetails are one event of each kind, made as the code makes them.
func sampleDetails(t testing.TB) map[string]Detail {
	t.Helper()
	tr, err := NewTrigger(Config{Pipeline: "factory", ResultsPrefix: "s3://bkt/results/factory/", GroundTruthPrefix: "s3://bkt/labels/factory/"})
	if err != nil {
		t.Fatal(err)
	}
	var dd, qd Decision
	for h := 1; h <= 3; h++ {
		v := drift("machine_5m", h, true)
		v.Scorers = []ScorerModel{{Scorer: "failure", ModelVersion: "\"9b2cf535f27731c974343645a3985328\""}}
		if dd, err = tr.Drift(v); err != nil {
			t.Fatal(err)
		}
	}
	qv := quality("failure", "sha256:2da5e2a8df7d5dfc", 3, true)
	qv.Metrics = append(qv.Metrics, Metric{Name: "auc", Value: 0.5, Threshold: 0.5, Comparison: "LessThanThreshold"}, // not violated
		Metric{Name: "recall", Value: 0.41, Threshold: 0.7, Comparison: "LessThanThreshold", Violated: true})
	qv.Violations = "s3://bkt/monitoring/factory/quality/failure/2026/11/30/02/constraint_violations.json"
	// A trigger of its own: the drift request above asked for scorer
	// failure, and this one would cool down.
	tq, err := NewTrigger(tr.Config())
	if err != nil {
		t.Fatal(err)
	}
	if qd, err = tq.Quality(qv); err != nil {
		t.Fatal(err)
	}
	v1 := promotion.Model{Key: "failure_v1", Path: "s3://models/failure/v1/model.tar.gz"}
	v2 := promotion.Model{Key: "failure_v2", Path: "s3://models/failure/v2/model.tar.gz", Version: "sha256:2da5e2a8df7d5dfc",
		SHA256: "2da5e2a8df7d5dfc2da5e2a8df7d5dfc2da5e2a8df7d5dfc2da5e2a8df7d5dfc"}
	cur := promotion.Decision{Pipeline: "factory", Scorer: "failure", Entry: promotion.Entry{Champion: v1}}
	promoted, err := promotion.Next(cur, promotion.ActionPromote, v2, "challenger v2 auc 0.91 beats champion v1 0.87 by 0.04", "factory-worker-1")
	if err != nil {
		t.Fatal(err)
	}
	promoted.At = time.Date(2026, 12, 3, 7, 20, 41, 0, time.FixedZone("CET", 3600))
	cur.Entry = promoted
	rolled, err := promotion.Next(cur, promotion.ActionRollback, promotion.Model{}, "false alarms doubled", "oncall@ops-1")
	if err != nil {
		t.Fatal(err)
	}
	rolled.At = promoted.At.Add(24 * time.Second)
	return map[string]Detail{
		"drift":    dd.Requests[0],
		"quality":  qd.Requests[0],
		"promote":  NewModelDecision(promotion.Decision{Pipeline: "factory", Scorer: "failure", Entry: promoted}),
		"rollback": NewModelDecision(promotion.Decision{Pipeline: "factory", Scorer: "failure", Entry: rolled}),
	}
}

func TestEventsMatchTheSchema(t *testing.T) {
	s := loadSchema(t)
	details := sampleDetails(t)
	for name, d := range details {
		if errs := s.validate("", envelope(t, d)); len(errs) > 0 {
			t.Errorf("%s (%s): %s", name, d.DetailType(), strings.Join(errs, "\n"))
		}
	}
	if got := []string{details["drift"].DetailType(), details["promote"].DetailType(), details["rollback"].DetailType()}; !slices.Equal(got,
		[]string{DetailTypeRetrainingRequested, DetailTypeModelPromoted, DetailTypeModelRolledBack}) {
		t.Errorf("detail types %q", got)
	}
	if q := details["quality"].(*RetrainingRequested); len(q.Metrics) != 2 || q.Metrics[1].Name != "recall" || q.Scorer != "failure" {
		t.Errorf("quality evidence: %+v", q)
	}
	if NewModelDecision(promotion.Decision{}) != nil {
		t.Error("generation 0 is no decision and no event")
	}
}

// TestSchemaRefusesBrokenEvents changes one thing at a time in a valid
// event; each must be refused, so the schema says what consumers rely on.
func TestSchemaRefusesBrokenEvents(t *testing.T) {
	s := loadSchema(t)
	details := sampleDetails(t)
	for _, c := range []struct {
		name, event string
		mutate      func(ev, detail map[string]any)
	}{
		{"another source", "drift", func(ev, _ map[string]any) { ev["source"] = "aws.sagemaker" }},
		{"an undocumented detail type", "drift", func(ev, _ map[string]any) { ev["detail-type"] = "Retraining Wanted" }},
		{"a detail of another type", "promote", func(ev, _ map[string]any) { ev["detail-type"] = DetailTypeRetrainingRequested }},
		{"another schema version", "drift", func(_, d map[string]any) { d["schema_version"] = json.Number("2") }},
		{"no request id", "drift", func(_, d map[string]any) { delete(d, "request_id") }},
		{"an undocumented field", "quality", func(_, d map[string]any) { d["severity"] = "high" }},
		{"an unknown reason", "drift", func(_, d map[string]any) { d["reason"] = "schedule" }},
		{"drift without its window", "drift", func(_, d map[string]any) { delete(d, "window") }},
		{"no scorer to retrain", "drift", func(_, d map[string]any) { delete(d, "scorer") }},
		{"quality without its model version", "quality", func(_, d map[string]any) { delete(d, "model_version") }},
		{"a distance as text", "drift", func(_, d map[string]any) { d["features"].([]any)[0].(map[string]any)["distance"] = "0.4" }},
		{"a violations file outside S3", "drift", func(_, d map[string]any) { d["periods"].([]any)[0].(map[string]any)["violations"] = "/tmp/v.json" }},
		{"no periods", "quality", func(_, d map[string]any) { d["periods"] = []any{} }},
		{"a time without its zone", "drift", func(_, d map[string]any) { d["at"] = "2026-11-30T03:00:00" }},
		{"a rollback with nothing restored", "rollback", func(_, d map[string]any) { delete(d, "previous") }},
		{"a promotion that says rollback", "promote", func(_, d map[string]any) { d["action"] = "rollback" }},
	} {
		ev := envelope(t, details[c.event]).(map[string]any)
		c.mutate(ev, ev["detail"].(map[string]any))
		if errs := s.validate("", ev); len(errs) == 0 {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestSchemaCoversTheTypes: every field the Go types marshal is in the
// schema, and the schema has no field they lack.
func TestSchemaCoversTheTypes(t *testing.T) {
	s := loadSchema(t)
	defs := s.root["$defs"].(map[string]any)
	rr := defs["RetrainingRequested"].(map[string]any)["properties"].(map[string]any)
	sub := func(name string) map[string]any {
		p := rr[name].(map[string]any)
		if items, ok := p["items"].(map[string]any); ok {
			p = items
		}
		return p["properties"].(map[string]any)
	}
	for _, c := range []struct {
		typ   any
		props map[string]any
	}{
		{RetrainingRequested{}, rr},
		{Rule{}, sub("rule")},
		{Period{}, sub("periods")},
		{FeatureEvidence{}, sub("features")},
		{MetricEvidence{}, sub("metrics")},
		{Data{}, sub("data")},
		{ModelDecision{}, defs["ModelDecision"].(map[string]any)["properties"].(map[string]any)},
		{ModelRef{}, defs["ModelRef"].(map[string]any)["properties"].(map[string]any)},
	} {
		typ := reflect.TypeOf(c.typ)
		fields := jsonFields(typ)
		var inSchema []string
		for p := range c.props {
			inSchema = append(inSchema, p)
		}
		sort.Strings(inSchema)
		if !slices.Equal(fields, inSchema) {
			t.Errorf("%s marshals %v; the schema has %v", typ.Name(), fields, inSchema)
		}
	}
}

func jsonFields(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// flywheelSection returns docs/flywheel.md's "Retraining trigger" section.
func flywheelSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/flywheel.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Retraining trigger\n")
	if !ok {
		t.Fatal("docs/flywheel.md has no \"## Retraining trigger\" section")
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	return sec
}

// TestDocsDescribeTheEvents: the docs' field table names every field of
// the schema, the defaults the docs state are the code's, and the example
// event the docs show is valid.
func TestDocsDescribeTheEvents(t *testing.T) {
	sec := flywheelSection(t)
	s := loadSchema(t)
	var missing []string
	var walk func(prefix string, props map[string]any)
	walk = func(prefix string, props map[string]any) {
		for name, p := range props {
			path := prefix + name
			if !strings.Contains(sec, "`"+path+"`") {
				missing = append(missing, path)
			}
			pm := p.(map[string]any)
			if items, ok := pm["items"].(map[string]any); ok {
				pm = items
			}
			if sub, ok := pm["properties"].(map[string]any); ok {
				walk(path+".", sub)
			}
		}
	}
	defs := s.root["$defs"].(map[string]any)
	walk("", defs["RetrainingRequested"].(map[string]any)["properties"].(map[string]any))
	walk("", defs["ModelDecision"].(map[string]any)["properties"].(map[string]any))
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/flywheel.md's Retraining trigger section does not name these detail fields (as `field`): %v", missing)
	}
	for _, want := range []string{DetailTypeRetrainingRequested, DetailTypeModelPromoted, DetailTypeModelRolledBack, schemaFile,
		"| `drift_periods` | " + itoa(DefaultDriftPeriods), "| `quality_periods` | " + itoa(DefaultQualityPeriods),
		"| `cooldown` | 24h", "| `data_lookback` | 168h", "| `event_bus` | `" + DefaultEventBus + "`"} {
		if !strings.Contains(sec, want) {
			t.Errorf("docs/flywheel.md's Retraining trigger section does not say %q", want)
		}
	}
	if DefaultCooldown != 24*time.Hour || DefaultDataLookback != 168*time.Hour {
		t.Error("the docs' cooldown and data_lookback defaults are stale")
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(sec, -1)
	if len(blocks) == 0 {
		t.Fatal("the section shows no example event (a ```json block)")
	}
	for i, b := range blocks {
		doc, err := decodeJSON([]byte(b[1]))
		if err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
		if errs := s.validate("", doc); len(errs) > 0 {
			t.Errorf("example %d is not a valid event: %s", i, strings.Join(errs, "\n"))
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
