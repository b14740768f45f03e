package sinks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/internal/emfspec"
)

// scoredBatches feeds a CloudWatch sink two batches: 3 + 5 windows, one on
// fallback, and returns the scores written.
func scoredBatches(t *testing.T, s Sink, t0 time.Time) []float64 {
	t.Helper()
	a := newAcks()
	var scores []float64
	for bi, n := range []int{3, 5} {
		var rows []row
		for i := range n {
			sc := float64(bi*10+i) / 20
			scores = append(scores, sc)
			rows = append(rows, row{entity: fmt.Sprint("e", i), ws: t0, score: sc, model: "xgb-7", fallback: bi == 1 && i == 0})
		}
		rec := resultRecord(t, 1, rows)
		if err := s.Write(devstacktest.Ctx(t), Batch{Stream: "factory", Shard: "sh", Rec: rec, Ack: a.fn(fmt.Sprint(bi))}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := s.Flush(devstacktest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 30*time.Second, "0", "1")
	return scores
}

func TestCloudWatchAggregatesIntoStatisticSetsAndValues(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 30, 0, time.UTC)
	agg := newAggregate(now)
	for range 3 {
		agg.add(aggKey{name: "EventsIn", stream: "factory", unit: cwtypes.StandardUnitCount}, 500, false)
	}
	// 2,000 distinct latencies, 200 after rounding to 3 significant digits:
	// more than one datum's 150 values.
	for i := range 4000 {
		agg.add(aggKey{name: MetricLatency, stream: "factory", model: "xgb", unit: cwtypes.StandardUnitMilliseconds}, float64(1000+i/2), true)
	}
	// Many series: more than one call's 1,000 datums.
	for i := range 1500 {
		agg.add(aggKey{name: MetricScore, stream: fmt.Sprint("s", i), model: "xgb", unit: cwtypes.StandardUnitNone}, 0.5, true)
	}
	calls := datums(agg, "p", now)
	var latVals, latCounts float64
	total := 0
	for _, call := range calls {
		if len(call) > 1000 {
			t.Fatalf("a call has %d datums, limit 1000", len(call))
		}
		total += len(call)
		for _, d := range call {
			if len(d.Values) > 150 || len(d.Values) != len(d.Counts) {
				t.Fatalf("datum %s has %d values and %d counts", aws.ToString(d.MetricName), len(d.Values), len(d.Counts))
			}
			if !aws.ToTime(d.Timestamp).Equal(now) {
				t.Fatalf("timestamp %v, want %v", d.Timestamp, now)
			}
			switch aws.ToString(d.MetricName) {
			case "EventsIn":
				sv := d.StatisticValues
				if sv == nil || *sv.Sum != 1500 || *sv.SampleCount != 3 || *sv.Minimum != 500 || *sv.Maximum != 500 {
					t.Errorf("EventsIn statistic set = %+v, want sum 1500 of 3 samples", sv)
				}
				if len(d.Dimensions) != 2 {
					t.Errorf("EventsIn dimensions %v, want pipeline and stream only", d.Dimensions)
				}
			case MetricLatency:
				for i, v := range d.Values {
					latVals++
					latCounts += d.Counts[i]
					if v < 1000 || v > 3000 || int(v)%10 != 0 {
						t.Fatalf("latency value %v count %v", v, d.Counts[i])
					}
				}
			}
		}
	}
	if latVals < 199 || latVals > 201 || latCounts != 4000 {
		t.Errorf("latency: %v distinct values with %v samples, want about 200 and 4000", latVals, latCounts)
	}
	if len(calls) < 2 || total != 1+2+1500 {
		t.Errorf("%d calls with %d datums, want >= 2 calls and %d datums", len(calls), total, 1+2+1500)
	}
}

// The monitor's metrics are statistic sets (Model Monitor's
// feature_data_<feature> reads Min, Max, Sum and SampleCount) with a window
// dimension; summaries of one interval add up.
func TestCloudWatchSummaryWithWindowDimension(t *testing.T) {
	var buf lockedBuffer
	now := time.Date(2026, 11, 24, 10, 0, 30, 0, time.UTC)
	s, err := NewCloudWatch(CloudWatchOptions{EMF: &buf, Namespace: "streamscore-test", Pipeline: "p", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	d := Dimensions{Window: "machine_5m"}
	s.Summary("feature_data_vib", cwtypes.StandardUnitNone, d, StatSet{Count: 10, Sum: 25, Min: 1, Max: 4})
	s.Summary("feature_data_vib", cwtypes.StandardUnitNone, d, StatSet{Count: 5, Sum: 5, Min: 0.5, Max: 2})
	s.Summary("feature_data_vib", cwtypes.StandardUnitNone, d, StatSet{Count: 0, Sum: 9, Min: 9, Max: 9}) // nothing present: ignored
	calls := datums(s.h.agg, "p", now)
	if len(calls) != 1 || len(calls[0]) != 1 {
		t.Fatalf("calls %v, want one datum", calls)
	}
	dt := calls[0][0]
	sv := dt.StatisticValues
	if sv == nil || *sv.SampleCount != 15 || *sv.Sum != 30 || *sv.Minimum != 0.5 || *sv.Maximum != 4 {
		t.Errorf("statistic set %+v, want 15 samples, sum 30, min 0.5, max 4", sv)
	}
	if len(dt.Dimensions) != 2 || aws.ToString(dt.Dimensions[1].Name) != "window" || aws.ToString(dt.Dimensions[1].Value) != "machine_5m" {
		t.Errorf("dimensions %v, want pipeline and window", dt.Dimensions)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	buf.mu.Lock()
	line := slices.Clone(buf.b.Bytes())
	buf.mu.Unlock()
	root := validateEMF(t, bytes.TrimSpace(line))
	if root["window"] != "machine_5m" || root["feature_data_vib"] != 30.0 {
		t.Errorf("EMF line %s: want window machine_5m and the sum 30", line)
	}
}

// validateEMF checks a line against the required structure of the
// Embedded Metric Format specification.
func validateEMF(t *testing.T, line []byte) map[string]any {
	t.Helper()
	root, err := emfspec.Check(line)
	if err != nil {
		t.Fatalf("EMF: %v", err)
	}
	return root
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestCloudWatchEMF(t *testing.T) {
	var buf lockedBuffer
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	s, err := NewCloudWatch(CloudWatchOptions{EMF: &buf, Namespace: "streamscore-test", Pipeline: "factory-pipeline", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	s.Count("EventsIn", Dimensions{Stream: "factory"}, 1200)
	for i := range 1000 {
		s.Observe("IteratorAge", cwtypes.StandardUnitMilliseconds, Dimensions{Stream: "factory"}, float64(i))
	}
	scores := scoredBatches(t, s, now.Add(-2*time.Minute))
	buf.mu.Lock()
	out := slices.Clone(buf.b.Bytes())
	buf.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(out))
	lines := 0
	for sc.Scan() {
		lines++
		root := validateEMF(t, sc.Bytes())
		switch root["model"] {
		case "xgb-7":
			if root[MetricWindowsScored] != 8.0 {
				t.Errorf("WindowsScored = %v, want 8", root[MetricWindowsScored])
			}
			var got []float64
			for _, v := range root[MetricScore].([]any) {
				got = append(got, v.(float64))
			}
			want := slices.Clone(scores)
			for i := range want {
				want[i] = quantize(want[i])
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("Score values %v, want %v", got, want)
			}
			var fb float64
			for _, v := range root[MetricFallback].([]any) {
				fb += v.(float64)
			}
			if fb != 1 {
				t.Errorf("Fallback values sum to %v, want 1 (one window of 8)", fb)
			}
			if lat := root[MetricLatency].([]any); lat[0].(float64) != 60000 {
				t.Errorf("latency %v ms, want 60000 (now minus window_end)", lat[0])
			}
		case nil:
			if root["EventsIn"] != 1200.0 {
				t.Errorf("EventsIn = %v, want 1200", root["EventsIn"])
			}
			age := root["IteratorAge"].([]any)
			if len(age) != 100 || age[0].(float64) != 4 || age[99].(float64) != 994 {
				t.Errorf("IteratorAge summary: %d values from %v to %v, want 100 from 4 to 994 (the 5th, 15th, ... of 1000)", len(age), age[0], age[len(age)-1])
			}
		default:
			t.Errorf("unexpected model dimension %v", root["model"])
		}
	}
	if lines != 2 {
		t.Fatalf("%d EMF lines, want 2 (one per dimension set):\n%s", lines, out)
	}
}

// kumo stores a statistic set as one datapoint Sum/SampleCount, ignores
// Counts, and answers GetMetricData with the raw datapoints in range; the
// test asserts what it can show faithfully: every metric lands under the
// namespace and dimensions, a distribution's distinct values arrive, and a
// statistic set arrives as its mean.
func TestCloudWatchPutMetricDataLands(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	ns := env.Name("streamscore-test")
	now := time.Now().UTC()
	s, err := NewCloudWatch(CloudWatchOptions{Client: env.CloudWatch, Namespace: ns, Pipeline: "factory-pipeline", ServerTimestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	s.Count("Alerts", Dimensions{Stream: "factory", Model: "xgb-7"}, 3)
	s.Count("Alerts", Dimensions{Stream: "factory", Model: "xgb-7"}, 1)
	scores := scoredBatches(t, s, now.Add(-time.Minute))

	get := func(name string) []float64 {
		out, err := env.CloudWatch.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(now.Add(-5 * time.Minute)), EndTime: aws.Time(now.Add(5 * time.Minute)),
			MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("q"), MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(ns), MetricName: aws.String(name), Dimensions: []cwtypes.Dimension{
					{Name: aws.String("pipeline"), Value: aws.String("factory-pipeline")},
					{Name: aws.String("stream"), Value: aws.String("factory")},
					{Name: aws.String("model"), Value: aws.String("xgb-7")},
				}},
				Period: aws.Int32(60), Stat: aws.String("Sum")}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(slices.Values(out.MetricDataResults[0].Values))
	}
	want := slices.Clone(scores)
	slices.Sort(want)
	if got := get(MetricScore); !slices.Equal(got, want) {
		t.Errorf("Score values = %v, want the distinct scores %v", got, want)
	}
	if got := get(MetricFallback); !slices.Equal(got, []float64{0, 1}) {
		t.Errorf("Fallback values = %v, want [0 1]", got)
	}
	if got := get(MetricWindowsScored); !slices.Equal(got, []float64{1}) {
		t.Errorf("WindowsScored = %v, want [1] (kumo shows a statistic set as Sum/SampleCount = 8/8)", got)
	}
	if got := get("Alerts"); !slices.Equal(got, []float64{2}) {
		t.Errorf("Alerts = %v, want [2] (kumo shows Sum/SampleCount = 4/2)", got)
	}
}

// A dimension value CloudWatch would refuse (a model version over 1,024
// characters, or with control or non-ASCII characters) would fail the
// whole PutMetricData call for every metric of the interval: it is sent as
// a stable hash instead, in PutMetricData and EMF alike. Entity ids are
// never dimensions.
func TestCloudWatchDimensionValuesCloudWatchAccepts(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	ns := env.Name("streamscore-test")
	var emf bytes.Buffer
	s, err := NewCloudWatch(CloudWatchOptions{Client: env.CloudWatch, EMF: &emf, Namespace: ns, Pipeline: "factory-pipeline", ServerTimestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	model := "model\x00" + strings.Repeat("é", 1000)
	rec := resultRecord(t, 1, []row{{entity: "secret-user-1", ws: time.Now().Add(-time.Minute), score: 0.5, model: model}})
	defer rec.Release()
	a := newAcks()
	if err := s.Write(ctx, Batch{Stream: "factory", Shard: "sh", Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 30*time.Second, "b")
	hashed := dimValue(model)
	if !strings.HasPrefix(hashed, "sha256-") || hashed != dimValue(model) {
		t.Fatalf("dimValue = %q", hashed)
	}
	if !strings.Contains(emf.String(), `"model":"`+hashed+`"`) || strings.Contains(emf.String(), "secret-user-1") {
		t.Errorf("EMF line %s: want model %s and no entity", emf.String(), hashed)
	}
	out, err := env.CloudWatch.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String(ns), MetricName: aws.String(MetricScore)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Metrics) != 1 {
		t.Fatalf("metrics %+v", out.Metrics)
	}
	for _, d := range out.Metrics[0].Dimensions {
		if aws.ToString(d.Name) == "model" && aws.ToString(d.Value) != hashed || aws.ToString(d.Name) == "entity" {
			t.Errorf("dimension %s=%s", aws.ToString(d.Name), aws.ToString(d.Value))
		}
	}
	for v, want := range map[string]string{"xgb-7": "xgb-7", "sha256:abc": "sha256:abc", "   ": "sha256-", strings.Repeat("a", 1025): "sha256-", "": ""} {
		if got := dimValue(v); !strings.HasPrefix(got, want) || (want == "" && got != "") {
			t.Errorf("dimValue(%.20q) = %q, want %q…", v, got, want)
		}
	}
}
