package coordstate

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// TestEnsureCreatesJavaTables: three workers racing to create the
// three-table layout all succeed, and the tables have Java's keys and
// billing mode.
func TestEnsureCreatesJavaTables(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	app := env.Name("ensure")
	l := ThreeTables(app, app)
	deleteTableAtEnd(t, env, l.CoordinatorTable)
	deleteTableAtEnd(t, env, l.MetricsTable)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = l.Ensure(ctx, env.DynamoDB) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for table, key := range map[string]string{l.CoordinatorTable: "key", l.MetricsTable: "wid"} {
		out, err := env.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatal(err)
		}
		d := out.Table
		if len(d.KeySchema) != 1 || aws.ToString(d.KeySchema[0].AttributeName) != key || d.KeySchema[0].KeyType != types.KeyTypeHash ||
			d.BillingModeSummary == nil || d.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
			t.Errorf("%s: key schema %+v billing %+v, want %s HASH, PAY_PER_REQUEST", table, d.KeySchema, d.BillingModeSummary, key)
		}
	}
	if err := SingleTable("x").Ensure(ctx, env.DynamoDB); err != nil {
		t.Errorf("single table Ensure: %v", err)
	}
}

// TestMetricsRoundTrip: Put then List returns what was put, in both
// layouts; the raw items have Java's attribute names and types (3.0–3.4
// shape in the three tables, 3.5 shape in the lease table); a second Put
// overwrites.
func TestMetricsRoundTrip(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	for name, l := range layouts(t, env) {
		t.Run(name, func(t *testing.T) {
			m := NewMetrics(env.DynamoDB, l)
			now := time.Unix(time.Now().Unix(), 0)
			cpu := WorkerMetricStats{WorkerID: "w-cpu", LastUpdate: now,
				Stats:          map[string][]float64{MetricCPU: {0.000001, 12.345678, 99.5, FailedMetricValue, 1e-7, 3e21}},
				OperatingRange: map[string][]float64{MetricCPU: {DefaultMaxUtilization}}}
			plain := WorkerMetricStats{WorkerID: "w-default", LastUpdate: now}
			for _, s := range []WorkerMetricStats{cpu, plain} {
				if err := m.Put(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			if l.Single { // a lease next to them must not be listed
				putRaw(t, env, l.LeaseTable, mustItem(t, fxLeaseHeld))
			}
			list, err := m.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := byWorker(list)
			if len(list) != 2 {
				t.Fatalf("List = %+v", list)
			}
			g := got["w-cpu"]
			if !g.LastUpdate.Equal(now) || !slices.Equal(g.Stats[MetricCPU], cpu.Stats[MetricCPU]) || !slices.Equal(g.OperatingRange[MetricCPU], []float64{100}) {
				t.Errorf("w-cpu read back as %+v, want %+v", g, cpu)
			}
			if g.Failing() || !g.Valid() { // its last value is not -1
				t.Errorf("w-cpu: failing %v valid %v", g.Failing(), g.Valid())
			}
			if d := got["w-default"]; !d.DefaultMetric() || !d.Valid() || !d.Active(time.Now()) {
				t.Errorf("w-default read back as %+v: default %v valid %v", d, d.DefaultMetric(), d.Valid())
			}

			table, keyAttr := l.metricsTable()
			raw := getRaw(t, env, table, keyAttr, "w-default")
			want := []string{keyAttr, "lut", "opr", "sts"}
			if l.Single {
				want = append(want, "entityType", "slu", "sup")
			}
			slices.Sort(want)
			if names := slices.Sorted(maps.Keys(raw)); !slices.Equal(names, want) {
				t.Errorf("raw item attributes %v, want %v", names, want)
			}
			if sts, ok := raw["sts"].(*types.AttributeValueMemberM); !ok || len(sts.Value) != 0 {
				t.Errorf("default metric sts = %#v, want an empty M", raw["sts"])
			}
			if lut, ok := raw["lut"].(*types.AttributeValueMemberN); !ok || lut.Value != itoa(now.Unix()) {
				t.Errorf("lut = %#v, want N epoch seconds %d", raw["lut"], now.Unix())
			}
			if l.Single {
				if et := raw["entityType"].(*types.AttributeValueMemberS).Value; et != EntityWorkerMetrics {
					t.Errorf("entityType %q", et)
				}
				if sup := raw["sup"].(*types.AttributeValueMemberN).Value; sup != "1" {
					t.Errorf("sup %q", sup)
				}
			}

			cpu.Stats = map[string][]float64{MetricCPU: {50}}
			if err := m.Put(ctx, cpu); err != nil {
				t.Fatal(err)
			}
			list, err = m.List(ctx)
			if err != nil || !slices.Equal(byWorker(list)["w-cpu"].Stats[MetricCPU], []float64{50}) {
				t.Errorf("after the second Put: %+v, %v", list, err)
			}
		})
	}
}

func itoa(v int64) string { return nInt(v).Value }

// TestMetricsPutRefusesWhatJavaRefuses: stale lut, metric without values,
// and values Java could not read.
func TestMetricsPutRefusesWhatJavaRefuses(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	m := NewMetrics(env.DynamoDB, layouts(t, env)["single"])
	now := time.Now()
	for name, s := range map[string]WorkerMetricStats{
		"stale":        {WorkerID: "w", LastUpdate: now.Add(-DefaultMetricsExpiry)},
		"no lut":       {WorkerID: "w"},
		"no id":        {LastUpdate: now},
		"empty list":   {WorkerID: "w", LastUpdate: now, Stats: map[string][]float64{"C": {}}},
		"NaN":          {WorkerID: "w", LastUpdate: now, Stats: map[string][]float64{"C": {math.NaN()}}},
		"opr 99.5":     {WorkerID: "w", LastUpdate: now, Stats: map[string][]float64{"C": {1}}, OperatingRange: map[string][]float64{"C": {99.5}}},
		"out of range": {WorkerID: "w", LastUpdate: now, Stats: map[string][]float64{"C": {1e200}}},
	} {
		if err := m.Put(ctx, s); err == nil {
			t.Errorf("%s: Put accepted %+v", name, s)
		}
	}
	if list, err := m.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("refused Puts wrote %+v, %v", list, err)
	}
}

// TestMetricsListReportsBadItems: an item Java could not read is named in
// the error (table, key, attribute) and the good items still come back.
func TestMetricsListReportsBadItems(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["three"]
	putRaw(t, env, l.MetricsTable, mustItem(t, fxMetrics30))
	putRaw(t, env, l.MetricsTable, mustItem(t, `{"wid":{"S":"worker-bad"},"lut":{"N":"1767225600"},"sts":{"M":{"C":{"L":[{"N":"1"},{"S":"x"}]}}}}`))
	list, err := NewMetrics(env.DynamoDB, l).List(ctx)
	var de *DecodeError
	if !errors.As(err, &de) || de.Table != l.MetricsTable || de.Key != "worker-bad" || de.Attr != `sts["C"][1]` {
		t.Fatalf("err = %v, want a DecodeError naming %s, worker-bad, sts[\"C\"][1]", err, l.MetricsTable)
	}
	if !strings.Contains(err.Error(), "worker-bad") || len(list) != 1 || list[0].WorkerID != "worker-a" {
		t.Errorf("List = %+v, %v; want worker-a and the error", list, err)
	}
}

// TestMetricsDeleteStale: the delete only happens while lut is the one the
// leader read, as Java's condition makes it.
func TestMetricsDeleteStale(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	for name, l := range layouts(t, env) {
		t.Run(name, func(t *testing.T) {
			m := NewMetrics(env.DynamoDB, l)
			now := time.Unix(time.Now().Unix(), 0)
			s := WorkerMetricStats{WorkerID: "w", LastUpdate: now}
			if err := m.Put(ctx, s); err != nil {
				t.Fatal(err)
			}
			table, keyAttr := l.metricsTable()
			if err := m.DeleteStale(ctx, WorkerMetricStats{WorkerID: "w", LastUpdate: now.Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if len(getRaw(t, env, table, keyAttr, "w")) == 0 {
				t.Fatal("deleted although lut changed since it was read")
			}
			if err := m.DeleteStale(ctx, s); err != nil {
				t.Fatal(err)
			}
			if item := getRaw(t, env, table, keyAttr, "w"); len(item) != 0 {
				t.Fatalf("still there: %v", item)
			}
			if err := m.DeleteStale(ctx, s); err != nil { // absent: attribute_exists fails quietly
				t.Fatal(err)
			}
		})
	}
}

// TestWorkerMetricStatsRules mirrors WorkerMetricStats' Java predicates.
func TestWorkerMetricStatsRules(t *testing.T) {
	now := time.Unix(1767225600, 0)
	r := map[string][]float64{"C": {100}}
	for _, c := range []struct {
		name                          string
		s                             WorkerMetricStats
		active, valid, failing, deflt bool
	}{
		{"fresh cpu", WorkerMetricStats{LastUpdate: now, Stats: map[string][]float64{"C": {-1, 5}}, OperatingRange: r}, true, true, false, false},
		{"failing", WorkerMetricStats{LastUpdate: now, Stats: map[string][]float64{"C": {5, -1}}, OperatingRange: r}, true, true, true, false},
		{"60 s old", WorkerMetricStats{LastUpdate: now.Add(-60 * time.Second), Stats: map[string][]float64{}}, true, true, false, true},
		{"61 s old", WorkerMetricStats{LastUpdate: now.Add(-61 * time.Second)}, false, true, false, true},
		{"no lut", WorkerMetricStats{}, false, false, false, true},
		{"sts without opr", WorkerMetricStats{LastUpdate: now, Stats: map[string][]float64{"C": {1}}, OperatingRange: map[string][]float64{}}, true, false, false, false},
		{"opr max 0", WorkerMetricStats{LastUpdate: now, Stats: map[string][]float64{"C": {1}}, OperatingRange: map[string][]float64{"C": {0}}}, true, false, false, false},
		{"opr only", WorkerMetricStats{LastUpdate: now, OperatingRange: r}, true, false, false, false},
		{"THROUGHPUT key", WorkerMetricStats{LastUpdate: now, Stats: map[string][]float64{"THROUGHPUT": {-1}}}, true, true, false, true},
		{"T key is not default", WorkerMetricStats{LastUpdate: now, Stats: map[string][]float64{"T": {1}}}, true, false, false, false},
	} {
		if a, v, f, d := c.s.Active(now), c.s.Valid(), c.s.Failing(), c.s.DefaultMetric(); a != c.active || v != c.valid || f != c.failing || d != c.deflt {
			t.Errorf("%s: active %v valid %v failing %v default %v; want %v %v %v %v", c.name, a, v, f, d, c.active, c.valid, c.failing, c.deflt)
		}
	}
	if (WorkerMetricStats{LastUpdate: now}).Stale(now.Add(DefaultStaleMetricsCleanup)) || !(WorkerMetricStats{LastUpdate: now}).Stale(now.Add(DefaultStaleMetricsCleanup+time.Second)) {
		t.Error("Stale does not switch at DefaultStaleMetricsCleanup")
	}
}

// TestMetricsFromItemStrict: each shape Java's mapper would reject is a
// DecodeError naming the attribute; DynamoDB's number spellings are read.
func TestMetricsFromItemStrict(t *testing.T) {
	three := ThreeTables("app", "app")
	for js, attr := range map[string]string{
		`{"lut":{"N":"1"}}`:                                         "wid",
		`{"wid":{"N":"1"}}`:                                         "wid",
		`{"wid":{"S":"w"},"lut":{"S":"1"}}`:                         "lut",
		`{"wid":{"S":"w"},"lut":{"N":"1.5"}}`:                       "lut",
		`{"wid":{"S":"w"},"lut":{"N":"0x10"}}`:                      "lut",
		`{"wid":{"S":"w"},"sts":{"L":[]}}`:                          "sts",
		`{"wid":{"S":"w"},"sts":{"M":{"C":{"NS":["1"]}}}}`:          `sts["C"]`,
		`{"wid":{"S":"w"},"sts":{"M":{"C":{"L":[{"NULL":true}]}}}}`: `sts["C"][0]`,
		`{"wid":{"S":"w"},"sts":{"M":{"C":{"L":[{"N":"NaN"}]}}}}`:   `sts["C"][0]`,
		`{"wid":{"S":"w"},"opr":{"M":{"C":{"L":[{"N":"100.5"}]}}}}`: `opr["C"][0]`,
		`{"wid":{"S":"w"},"sup":{"N":"4294967296"}}`:                "sup",
		`{"wid":{"S":"w"},"slu":{"BOOL":true}}`:                     "slu",
		`{"wid":{"S":"w"},"properties":{"M":{"a":{"N":"1"}}}}`:      `properties["a"]`,
		`{"wid":{"S":"w"},"entityType":{"N":"1"}}`:                  "entityType",
	} {
		_, err := MetricsFromItem(three, mustItem(t, js))
		var de *DecodeError
		if !errors.As(err, &de) || de.Attr != attr || de.Table != three.MetricsTable {
			t.Errorf("%s: err = %v, want a DecodeError on %s", js, err, attr)
		}
	}
	s, err := MetricsFromItem(three, mustItem(t, `{"wid":{"S":"w"},"lut":{"N":"1767225600.0"},"sts":{"M":{"C":{"L":[{"N":"-1"},{"N":"1.5E1"},{"N":".5"}]}}},"opr":{"M":{"C":{"L":[{"N":"1E2"}]}}},"unknown":{"BOOL":true}}`))
	if err != nil || !s.LastUpdate.Equal(time.Unix(1767225600, 0)) || !slices.Equal(s.Stats["C"], []float64{-1, 15, 0.5}) || s.OperatingRange["C"][0] != 100 {
		t.Errorf("canonical numbers: %+v, %v", s, err)
	}
	if _, err := MetricsFromItem(SingleTable("t"), mustItem(t, `{"leaseKey":{"S":"w"},"entityType":{"S":"LEASE"}}`)); err == nil {
		t.Error("a lease decoded as worker metrics")
	}
}
