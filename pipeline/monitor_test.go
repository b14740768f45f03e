package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/loadtest"
	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/sinks"
)

// The monitor's test fleet: machines whose vibration readings, ten a
// second, are 0.3 g plus noise; the baseline is the distribution of their
// one-second windows. Period B shifts every machine's vibration by
// driftShift: the window mean moves by many of its standard deviations.
const (
	monMachines = 50
	vibBase     = 0.3
	vibNoise    = 0.05
	driftShift  = 0.08
)

// vibReading is one reading's vibration, seeded by machine and time so the
// stream and the baseline draw from the same process.
func vibReading(r *rand.Rand, shifted bool) float64 {
	v := vibBase + vibNoise*r.NormFloat64()
	if shifted {
		v += driftShift
	}
	return v
}

// writeMonitorBaseline writes statistics.json and constraints.json of
// windows drawn from the unshifted process, in the layout of the test
// pipeline's results (vibration_mean, readings, score).
func writeMonitorBaseline(t *testing.T, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	p := monitor.NewProfile([]monitor.Column{
		{Name: "vibration_mean", Kind: monitor.Fractional},
		{Name: "readings", Kind: monitor.Integral},
		{Name: "score", Kind: monitor.Fractional},
	}, monitor.Options{})
	const rows = 20000
	for range rows {
		sum := 0.0
		for range 10 {
			sum += vibReading(r, false)
		}
		mean := sum / 10
		p.ObserveFloat(0, mean)
		p.ObserveInt(1, 10)
		p.ObserveFloat(2, 1/(1+math.Exp(-(-12+20*mean))))
	}
	p.AddRows(rows)
	st := p.Statistics()
	var sb, cb bytes.Buffer
	if err := st.WriteJSON(&sb); err != nil {
		t.Fatal(err)
	}
	if err := monitor.Suggest(st).WriteJSON(&cb); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"statistics.json": sb.Bytes(), "constraints.json": cb.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMonitorFindsDriftInTheStream: two workers of a pipeline monitoring
// its window against a baseline; the stream is judged as a whole, from
// both workers' parts, each 10-second period of event time; the
// unshifted period has no drift violation, the shifted one has one for the
// vibration and the score, not for the reading count; the verdicts are in
// S3 in Model Monitor's layout and formats, the drift alert reaches the
// subscribed queue naming the drifted features only, the metrics reach
// CloudWatch under Model Monitor's names and Prometheus.
func TestMonitorFindsDriftInTheStream(t *testing.T) {
	// Not parallel: two workers and 13,000 records beside the package's
	// parallel tests starved TestEndToEnd past its wait on a loaded CI run.
	tp := newTestPipeline(t)
	base := t.TempDir()
	writeMonitorBaseline(t, base)
	ns := tp.env.Name("streamscore-monitor")
	src := strings.Replace(tp.yaml, "alerts:\n  topic:", fmt.Sprintf(`  cloudwatch: {namespace: %s, put_metric_data: true, flush_interval: 1s, server_timestamps: true}
monitor:
  period: 10s
  settle: 2s
  windows:
    - {window: w1s, baseline: %s}
alerts:
  topic:`, ns, base), 1)
	src = strings.Replace(src, "    - {name: hot,", "    - {name: vib-drift, drift: w1s, severity: warning, fire_after: 1, clear_after: 1}\n    - {name: hot,", 1)
	src = monitorTestTiming(src)
	// A lease that changes hands all the same replays from the checkpoint
	// (rows counted twice, documented) and may move the reducer: counted
	// here, so the exact checks below apply when none did.
	losses := leaseLosses{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), new(atomic.Int32)}
	tp.logs = slog.New(losses)
	cfg, err := config.Parse([]byte(src), "monitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	// Two workers, a shard each: each profiles its shard's windows and
	// writes its part; the one holding the shard that starts at hash key 0
	// merges both and judges the whole stream.
	var regs []*prometheus.Registry
	var stops []func() error
	var workers []interface{ HeldLeases() []string }
	for _, w := range []string{"worker-m1", "worker-m2"} {
		reg := prometheus.NewRegistry()
		tp.registerer = reg
		stop, p := tp.startPipeline(t, w)
		regs, stops, workers = append(regs, reg), append(stops, stop), append(workers, p)
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(workers[0].HeldLeases()) != 1 || len(workers[1].HeldLeases()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("leases not balanced one each after 90 s: %v and %v", workers[0].HeldLeases(), workers[1].HeldLeases())
		}
		time.Sleep(200 * time.Millisecond)
	}
	losses.n.Store(0) // the balancing's own steal is not one

	// Periods A (unshifted) and B (shifted) of 10 s, and 6 s of C to move
	// the event time past B's end, its lateness and the settle time.
	period := 10 * time.Second
	a := time.Now().UTC().Add(-3 * time.Minute).Truncate(period)
	b := a.Add(period)
	putMonitorReadings(t, tp, a, 0, 260, b)

	// A fresh context for the checks: publishing may take a while on a
	// loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dir := func(start time.Time) string {
		return "monitoring/test/w1s/" + start.Format("2006/01/02/15/04/05") + "/"
	}
	violations := func(start time.Time) *monitor.Violations {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute) // -race, two workers, a loaded 2-core CI machine
		for {
			key := dir(start) + "constraint_violations.json"
			out, err := tp.env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(tp.bucket), Key: aws.String(key)})
			if err == nil {
				v, err := monitor.ReadViolations(out.Body, key)
				out.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 5 minutes: %v; dead letters: %v", key, err, deadLetterReasons(t, tp))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	drifted := func(v *monitor.Violations) []string {
		var out []string
		for _, x := range v.Violations {
			if x.ConstraintCheckType == monitor.BaselineDriftCheck {
				out = append(out, x.FeatureName)
			}
		}
		slices.Sort(out)
		return out
	}
	if got := drifted(violations(a)); len(got) != 0 {
		t.Errorf("period A (unshifted) drifted on %v, want none", got)
	}
	if got := drifted(violations(b)); !slices.Equal(got, []string{"score", "vibration_mean"}) {
		t.Errorf("period B (shifted) drifted on %v, want score and vibration_mean", got)
	}
	// The fleet's statistics of the period sit next to the verdict, in
	// Model Monitor's format, with every kept row counted: 50 machines by
	// ten one-second windows.
	out, err := tp.env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(tp.bucket), Key: aws.String(dir(b) + "statistics.json")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := monitor.ReadStatistics(out.Body, "statistics.json")
	out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	partsDir := "monitoring/test/w1s/parts/" + b.Format("2006/01/02/15/04/05") + "/"
	parts, err := tp.env.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(tp.bucket), Prefix: aws.String(partsDir)})
	if err != nil {
		t.Fatal(err)
	}
	writers := map[string]bool{}
	for _, o := range parts.Contents {
		name := strings.TrimPrefix(aws.ToString(o.Key), partsDir)
		writers[name[:len("worker-m1")]] = true
	}
	moved := losses.n.Load() > 0
	if moved {
		t.Logf("a lease changed hands during the test: rows may be counted twice")
	}
	if st.Dataset.ItemCount < monMachines*10 || !moved && st.Dataset.ItemCount != monMachines*10 || len(writers) != 2 {
		for _, o := range parts.Contents {
			out, err := tp.env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(tp.bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			ps, err := monitor.ReadStatistics(out.Body, aws.ToString(o.Key))
			out.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("part %s: %v rows, written %v", aws.ToString(o.Key), ps.Dataset.ItemCount, o.LastModified)
		}
		t.Errorf("period B: item_count %v from parts of %v, want %d rows from both workers", st.Dataset.ItemCount, writers, monMachines*10)
	}

	// The drift alert names what drifted, and only that.
	var fired []sinks.DriftFeature
	for _, al := range receiveAlerts(t, tp.env, tp.alertURL, time.Now().Add(30*time.Second)) {
		if al.Rule == "vib-drift" && al.State == sinks.StateFiring {
			fired = append(fired, al.Drift...)
		}
	}
	var names []string
	for _, f := range fired {
		names = append(names, f.Feature)
		if f.Distance <= f.Threshold {
			t.Errorf("alert names %s at distance %v, not above its threshold %v", f.Feature, f.Distance, f.Threshold)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"score", "vibration_mean"}) {
		t.Errorf("drift alerts name %v, want score and vibration_mean", names)
	}

	// Prometheus (the reducer's) and CloudWatch carry the verdict.
	reducers := 0
	for _, reg := range regs {
		got := labelledGauge(t, reg, "streamscore_monitor_feature_drifted", "feature", "vibration_mean")
		if math.IsNaN(got) {
			continue
		}
		reducers++
		if got != 1 && !moved {
			t.Errorf("streamscore_monitor_feature_drifted{feature=vibration_mean} = %v, want 1 (period B)", got)
		}
		if got := labelledGauge(t, reg, "streamscore_monitor_feature_drifted", "feature", "readings"); got != 0 {
			t.Errorf("streamscore_monitor_feature_drifted{feature=readings} = %v, want 0", got)
		}
	}
	if reducers != 1 && !moved || reducers == 0 {
		t.Errorf("%d workers judged periods, want exactly one (the first shard's)", reducers)
	}
	for _, stop := range stops {
		if err := stop(); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
	}
	res, err := tp.env.CloudWatch.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String(ns),
		MetricName: aws.String("feature_baseline_drift_vibration_mean")})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range res.Metrics {
		if hasDim(m.Dimensions, "pipeline", "test") && hasDim(m.Dimensions, "window", "w1s") {
			found = true
		}
	}
	if !found {
		t.Errorf("CloudWatch has no feature_baseline_drift_vibration_mean with pipeline and window dimensions: %+v", res.Metrics)
	}
}

// monitorTestTiming adapts the test pipeline's timing to a monitor test
// on a loaded machine.
//   - Renewals late by seconds under -race would let one worker take the
//     other's lease; the tests are of the monitor.
//   - The readings are three minutes old and put 500 at a time. On a
//     loaded 2-core machine one put took 4 to 17 s; with the windows' 3 s
//     idle timeout the shard's watermark moved on processing time, and the
//     readings of the next puts were dead-lettered as late (7,930 of
//     13,000 in one run): rows missing from periods, and results that
//     stopped short of a period's due point. The producer's pauses are not
//     what the tests are about, so idle time never closes a window here.
func monitorTestTiming(src string) string {
	src = strings.Replace(src, "failover_time: 3s", "failover_time: 10s", 1)
	return strings.Replace(src, "idle_timeout: 3s", "idle_timeout: 10m", 1)
}

// putMonitorReadings puts steps readings of every machine, 100 ms apart,
// the first at from + first steps; those at or after shift are shifted.
func putMonitorReadings(t *testing.T, tp *testPipeline, from time.Time, first, steps int, shift time.Time) {
	t.Helper()
	// Generous: one put of 500 took 17 s on a loaded machine, and the
	// 13,000 readings of TestMonitorFindsDriftInTheStream over 2 minutes
	// with the load average at 9.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var batch []ktypes.PutRecordsRequestEntry
	flush := func() {
		for len(batch) > 0 {
			n := min(len(batch), 500)
			out, err := tp.env.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(tp.stream), Records: batch[:n]})
			if err != nil {
				t.Fatal(err)
			}
			var retry []ktypes.PutRecordsRequestEntry
			for i, r := range out.Records {
				if r.ErrorCode != nil {
					retry = append(retry, batch[i])
				}
			}
			batch = append(retry, batch[n:]...)
		}
	}
	for step := first; step < first+steps; step++ {
		ts := from.Add(time.Duration(step) * 100 * time.Millisecond)
		shifted := !ts.Before(shift)
		for m := range monMachines {
			r := rand.New(rand.NewPCG(uint64(m), uint64(step)))
			id := fmt.Sprintf("mill-%03d", m)
			batch = append(batch, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(id),
				Data: []byte(reading(id, ts, vibReading(r, shifted)))})
		}
		if len(batch) >= 500 {
			flush()
		}
	}
	flush()
}

// deadLetterReasons counts the dead letters by reason and shard, to say
// why rows are missing when a verdict does not come.
func deadLetterReasons(t *testing.T, tp *testPipeline) map[string]int {
	t.Helper()
	letters, err := loadtest.DrainDeadLetters(context.Background(), tp.env.SQS, tp.dlqURL)
	count := map[string]int{}
	if err != nil {
		count[err.Error()]++
	}
	for _, l := range letters {
		count[l.Reason+" "+l.Shard]++
	}
	return count
}

// leaseLosses counts the workers' "lease lost" warnings, through every
// logger derived from it.
type leaseLosses struct {
	slog.Handler
	n *atomic.Int32
}

func (h leaseLosses) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "lease lost" {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h leaseLosses) WithAttrs(as []slog.Attr) slog.Handler {
	return leaseLosses{h.Handler.WithAttrs(as), h.n}
}

func (h leaseLosses) WithGroup(g string) slog.Handler {
	return leaseLosses{h.Handler.WithGroup(g), h.n}
}

func hasDim(ds []cwtypes.Dimension, name, value string) bool {
	for _, d := range ds {
		if aws.ToString(d.Name) == name && aws.ToString(d.Value) == value {
			return true
		}
	}
	return false
}

// labelledGauge returns the value of the gauge series whose label has the
// value, or NaN when there is none.
func labelledGauge(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	return gaugeWith(t, reg, name, map[string]string{label: value})
}

// gaugeWith returns the value of the gauge series with every label given
// (others any), or NaN when there is none.
func gaugeWith(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue series
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return math.NaN()
}

// A monitor whose baseline cannot be read stops the pipeline at build
// time, naming the file: it would have nothing to judge against.
func TestMonitorBadBaselineStopsTheBuild(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "statistics.json"), []byte(`{"version": 0, "dataset": {"item_count": 1}, "features": [{"name": ""}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(tp.yaml, "alerts:\n  topic:", fmt.Sprintf("monitor:\n  windows:\n    - {window: w1s, baseline: %s}\nalerts:\n  topic:", dir), 1)
	cfg, err := config.Parse([]byte(src), "monitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := tp.env.Clients
	_, err = pipeline.New(devstacktest.Ctx(t), cfg, pipeline.Clients{Kinesis: c.Kinesis, DynamoDB: c.DynamoDB, S3: c.S3, SNS: c.SNS, SQS: c.SQS},
		pipeline.Options{WorkerID: "w", SpoolDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "statistics.json")) || !strings.Contains(err.Error(), "w1s") {
		t.Fatalf("New with a broken baseline: %v, want an error naming the window and the file", err)
	}
}
