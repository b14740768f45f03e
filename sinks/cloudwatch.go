package sinks

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Metric names the CloudWatch sink computes from the batches it is given.
// Other metrics reach it through Count and Observe, named by their sender
// (the pipeline's observer).
const (
	MetricWindowsScored = "WindowsScored"
	MetricScore         = "Score"
	// MetricFallback is 1 per window scored by the fallback model and 0
	// otherwise, so its Average is the fallback rate.
	MetricFallback = "Fallback"
	// MetricLatency is now minus the window's event_time (or window_end).
	MetricLatency = "EndToEndLatency"
)

// CloudWatch API limits the sink respects.
const (
	cwMaxDatums       = 1000
	cwMaxValues       = 150
	cwMaxRequestBytes = 900 << 10 // under the 1 MB request limit, with room for encoding overhead
	emfMaxValues      = 100
)

// CloudWatchAPI is the part of the CloudWatch client the sink uses.
type CloudWatchAPI interface {
	PutMetricData(context.Context, *cloudwatch.PutMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// DefaultNamespace is the CloudWatch namespace of streamscore's metrics
// (the pipeline's and the login Lambda's) unless configured.
const DefaultNamespace = "Streamscore"

// CloudWatchOptions configure the metrics sink. At least one of Client and
// EMF must be set.
type CloudWatchOptions struct {
	// Client publishes with PutMetricData; nil publishes EMF only.
	Client CloudWatchAPI
	// EMF receives Embedded Metric Format JSON lines (stdout under Lambda,
	// a file the CloudWatch agent tails); nil writes none.
	EMF io.Writer
	// Namespace of every metric; default DefaultNamespace.
	Namespace string
	// Pipeline is the value of the "pipeline" dimension; default "streamscore".
	Pipeline string
	// Interval is the aggregation and flush period; default 60 s.
	Interval time.Duration
	// ServerTimestamps leaves Timestamp out of PutMetricData so the server
	// stamps arrival time. Real CloudWatch does not need it; the local kumo
	// server cannot decode a CBOR-encoded Timestamp and needs it.
	ServerTimestamps bool
	// Queue is how many batches Write buffers before it blocks; default 16.
	Queue int
	// Backoff is the retry schedule.
	Backoff Backoff
	// Metrics receives the sink's own metrics (label sink="cloudwatch").
	Metrics *Metrics
	// Logger receives retry warnings; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// CloudWatch aggregates metrics client-side and publishes them every
// Interval: counters as statistic sets, distributions as values and counts
// (so CloudWatch can compute percentiles), at most 1,000 datums and 150
// values per datum per call; and, if EMF is set, the same aggregates as EMF
// lines. A batch is acked once the interval holding it has been published.
type CloudWatch struct {
	*runner
	h *cwHandler
}

// NewCloudWatch starts a metrics sink.
func NewCloudWatch(o CloudWatchOptions) (*CloudWatch, error) {
	if o.Client == nil && o.EMF == nil {
		return nil, errors.New("sinks: CloudWatchOptions needs a Client, an EMF writer or both")
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Pipeline == "" {
		o.Pipeline = "streamscore"
	}
	o.Pipeline = dimValue(o.Pipeline)
	if o.Interval <= 0 {
		o.Interval = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := o.Metrics.forSink("cloudwatch")
	h := &cwHandler{o: o, m: m, r: newRetrier("cloudwatch", o.Backoff, m, o.Logger),
		agg: newAggregate(o.Now())}
	return &CloudWatch{runner: newRunner("cloudwatch", h, m, h.r.h, o.Queue, o.Interval), h: h}, nil
}

// Dimensions of a metric besides the pipeline. Empty values are left out.
type Dimensions struct {
	Stream string
	Model  string
	// Window is a monitored window (the monitor's data-quality metrics).
	Window string
	// Scorer is a quality-monitored scorer (the model-quality metrics).
	Scorer string
}

// Count adds n to a counter metric (unit Count) for the current interval.
// Safe for concurrent use.
func (c *CloudWatch) Count(name string, d Dimensions, n float64) {
	c.h.mu.Lock()
	c.h.agg.add(d.key(name, cwtypes.StandardUnitCount), n, false)
	c.h.mu.Unlock()
}

// StatSet is a summary of values published as one CloudWatch statistic
// set: SampleCount, Sum, Minimum and Maximum all read true, as they do for
// Model Monitor's feature_data_<feature> metrics.
type StatSet struct {
	Count, Sum, Min, Max float64
}

// Summary adds a summary of values to a metric for the current interval;
// a gauge read once (a drift distance) is StatSet{1, v, v, v}. Safe for
// concurrent use.
func (c *CloudWatch) Summary(name string, unit cwtypes.StandardUnit, d Dimensions, s StatSet) {
	c.h.mu.Lock()
	c.h.agg.addSet(d.key(name, unit), s)
	c.h.mu.Unlock()
}

func (d Dimensions) key(name string, unit cwtypes.StandardUnit) aggKey {
	return aggKey{name: name, stream: dimValue(d.Stream), model: dimValue(d.Model), window: dimValue(d.Window), scorer: dimValue(d.Scorer), unit: unit}
}

// Observe records one value of a distribution metric (a gauge, a latency)
// for the current interval. Safe for concurrent use.
func (c *CloudWatch) Observe(name string, unit cwtypes.StandardUnit, d Dimensions, v float64) {
	c.h.mu.Lock()
	c.h.agg.add(d.key(name, unit), v, true)
	c.h.mu.Unlock()
}

// dimValue returns v if CloudWatch accepts it as a dimension value (1 to
// 1,024 printable ASCII characters, not all spaces), otherwise "sha256-"
// and 32 hex digits of its hash: one refused value would make CloudWatch
// refuse the whole PutMetricData call, for every metric of the interval.
// Empty stays empty (the dimension is left out). Entity ids are never
// dimensions: their number is unbounded and they may be personal data.
func dimValue(v string) string {
	if v == "" {
		return v
	}
	ok, blank := len(v) <= 1024, true
	for i := 0; ok && i < len(v); i++ {
		ok = v[i] >= 0x20 && v[i] <= 0x7e
		blank = blank && v[i] == ' '
	}
	if ok && !blank {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256-" + hex.EncodeToString(sum[:16])
}

type aggKey struct {
	name, stream, model, window, scorer string
	unit                                cwtypes.StandardUnit
}

// series is one metric's aggregate over an interval.
type series struct {
	dist                 bool
	sum, count, min, max float64
	values               map[float64]float64 // quantized value -> count
}

type aggregate struct {
	start  time.Time
	series map[aggKey]*series
}

func newAggregate(start time.Time) *aggregate {
	return &aggregate{start: start, series: map[aggKey]*series{}}
}

func (a *aggregate) add(k aggKey, v float64, dist bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	s := a.series[k]
	if s == nil {
		s = &series{dist: dist, min: v, max: v}
		if dist {
			s.values = map[float64]float64{}
		}
		a.series[k] = s
	}
	s.sum += v
	s.count++
	s.min = min(s.min, v)
	s.max = max(s.max, v)
	if s.dist {
		s.values[quantize(v)]++
	}
}

// addSet folds a summary into a counter-like series.
func (a *aggregate) addSet(k aggKey, in StatSet) {
	if in.Count <= 0 || math.IsNaN(in.Sum) || math.IsInf(in.Sum, 0) || math.IsNaN(in.Min) || math.IsNaN(in.Max) {
		return
	}
	s := a.series[k]
	if s == nil {
		s = &series{min: in.Min, max: in.Max}
		a.series[k] = s
	}
	s.sum += in.Sum
	s.count += in.Count
	s.min = min(s.min, in.Min)
	s.max = max(s.max, in.Max)
}

// quantize rounds to 3 significant digits (at most 0.5% relative error)
// so a distribution has few distinct values to send. Going through the
// decimal text keeps 0.7 as 0.7 rather than 0.7000000000000001.
func quantize(v float64) float64 {
	var buf [32]byte
	q, err := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], v, 'g', 3, 64)), 64)
	if err != nil {
		return v
	}
	return q
}

type cwHandler struct {
	o CloudWatchOptions
	m *sinkMetrics
	r *retrier

	mu      sync.Mutex
	agg     *aggregate
	pending []Batch // acked when the interval holding them is published
}

func (h *cwHandler) handle(ctx context.Context, b Batch) {
	v, err := newView(b.Rec)
	if err != nil {
		b.Ack(&PermanentError{Sink: "cloudwatch", Err: err})
		return
	}
	now := h.o.Now()
	h.mu.Lock()
	for i := range v.n {
		d := aggKey{stream: dimValue(b.Stream), model: dimValue(v.modelVersion(i))}
		if !v.isUpdate(i) {
			h.agg.add(aggKey{name: MetricWindowsScored, stream: d.stream, model: d.model, unit: cwtypes.StandardUnitCount}, 1, false)
		}
		for _, sc := range v.scores {
			if x, ok := sc.value(i); ok {
				name := MetricScore
				if sc.name != ColScore {
					name += sc.name[len(ColScore):]
				}
				h.agg.add(aggKey{name: name, stream: d.stream, model: d.model, unit: cwtypes.StandardUnitNone}, x, true)
			}
		}
		fb := 0.0
		if v.isFallback(i) {
			fb = 1
		}
		h.agg.add(aggKey{name: MetricFallback, stream: d.stream, model: d.model, unit: cwtypes.StandardUnitNone}, fb, true)
		at := v.we.nanos(i)
		if v.event.ok() && v.event.a.IsValid(i) {
			at = v.event.nanos(i)
		}
		h.agg.add(aggKey{name: MetricLatency, stream: d.stream, model: d.model, unit: cwtypes.StandardUnitMilliseconds}, float64(now.UnixNano()-at)/1e6, true)
	}
	h.pending = append(h.pending, b)
	h.mu.Unlock()
}

func (h *cwHandler) tick(ctx context.Context, now time.Time) { h.publish(ctx) }

// flush publishes the current interval, for one shard as for all: the
// aggregates sum every shard's rows into series keyed by stream and model,
// so a shard's part cannot be published alone. Keeping per-shard
// aggregates would multiply the datums (and their cost) by the shards for
// the sake of hand-overs, which are rare; publishing an interval early only
// splits one period's statistic set in two, which CloudWatch sums again.
func (h *cwHandler) flush(ctx context.Context, _ *shardKey) <-chan struct{} {
	h.publish(ctx)
	return closedChan()
}

// publish sends the current interval and acks the batches it holds.
func (h *cwHandler) publish(ctx context.Context) {
	h.mu.Lock()
	agg, batches := h.agg, h.pending
	h.agg, h.pending = newAggregate(h.o.Now()), nil
	h.mu.Unlock()
	if len(agg.series) == 0 {
		for _, b := range batches {
			b.Ack(nil)
		}
		return
	}
	start := time.Now()
	var err error
	if h.o.EMF != nil {
		err = writeEMF(h.o.EMF, h.o.Namespace, h.o.Pipeline, agg)
		if err != nil {
			err = &PermanentError{Sink: "cloudwatch", Err: err}
		}
	}
	if err == nil && h.o.Client != nil {
		ts := agg.start
		if h.o.ServerTimestamps {
			ts = time.Time{}
		}
		for _, call := range datums(agg, h.o.Pipeline, ts) {
			err = h.r.do(ctx, "PutMetricData", func(ctx context.Context) error {
				_, err := h.o.Client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(h.o.Namespace), MetricData: call})
				return err
			})
			if err != nil && IsPermanent(err) {
				// CloudWatch refused these aggregates themselves (the
				// sink's own limits should prevent it). They are
				// metrics, not results: holding every shard's
				// checkpoint for them would trade data for a chart.
				h.o.Logger.Error("CloudWatch refused an interval's metrics; they are dropped, the batches are acked", "datums", len(call), "err", err)
				err = nil
				continue
			}
			if err != nil {
				break
			}
			h.m.flushes.Inc()
			h.m.rows.Add(float64(len(call)))
		}
	}
	h.m.latency.Observe(time.Since(start).Seconds())
	for _, b := range batches {
		b.Ack(err)
	}
}

func sortedKeys(agg *aggregate) []aggKey {
	keys := make([]aggKey, 0, len(agg.series))
	for k := range agg.series {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b aggKey) int {
		for _, c := range [][2]string{{a.stream, b.stream}, {a.model, b.model}, {a.window, b.window}, {a.scorer, b.scorer}, {a.name, b.name}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	return keys
}

func dims(pipeline string, k aggKey) []cwtypes.Dimension {
	d := []cwtypes.Dimension{{Name: aws.String("pipeline"), Value: aws.String(pipeline)}}
	if k.stream != "" {
		d = append(d, cwtypes.Dimension{Name: aws.String("stream"), Value: aws.String(k.stream)})
	}
	if k.model != "" {
		d = append(d, cwtypes.Dimension{Name: aws.String("model"), Value: aws.String(k.model)})
	}
	if k.window != "" {
		d = append(d, cwtypes.Dimension{Name: aws.String("window"), Value: aws.String(k.window)})
	}
	if k.scorer != "" {
		d = append(d, cwtypes.Dimension{Name: aws.String("scorer"), Value: aws.String(k.scorer)})
	}
	return d
}

// datums turns an interval into PutMetricData calls: a statistic set per
// counter, values and counts per distribution (split into datums of at most
// 150 values), at most 1,000 datums and about 900 KiB per call. A zero ts
// leaves Timestamp out.
func datums(agg *aggregate, pipeline string, ts time.Time) [][]cwtypes.MetricDatum {
	var calls [][]cwtypes.MetricDatum
	var cur []cwtypes.MetricDatum
	size := 0
	push := func(d cwtypes.MetricDatum, n int) {
		if len(cur) == cwMaxDatums || size+n > cwMaxRequestBytes {
			calls = append(calls, cur)
			cur, size = nil, 0
		}
		cur = append(cur, d)
		size += n
	}
	for _, k := range sortedKeys(agg) {
		s := agg.series[k]
		base := cwtypes.MetricDatum{MetricName: aws.String(k.name), Dimensions: dims(pipeline, k), Unit: k.unit}
		if !ts.IsZero() {
			base.Timestamp = aws.Time(ts)
		}
		if !s.dist {
			d := base
			d.StatisticValues = &cwtypes.StatisticSet{Sum: aws.Float64(s.sum), SampleCount: aws.Float64(s.count), Minimum: aws.Float64(s.min), Maximum: aws.Float64(s.max)}
			push(d, 256)
			continue
		}
		vals := make([]float64, 0, len(s.values))
		for v := range s.values {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		for len(vals) > 0 {
			n := min(cwMaxValues, len(vals))
			d := base
			d.Values = vals[:n:n]
			d.Counts = make([]float64, n)
			for i, v := range d.Values {
				d.Counts[i] = s.values[v]
			}
			push(d, 256+20*n)
			vals = vals[n:]
		}
	}
	if len(cur) > 0 {
		calls = append(calls, cur)
	}
	return calls
}

// writeEMF writes one EMF line per (stream, model) with every metric of
// the interval. Counters carry their sum. Distributions carry all their
// values when they hold at most 100 samples; beyond that, 100 values at
// evenly spaced ranks (the 0.5th, 1.5th, ... percentiles), which keeps
// percentiles and the average close while SampleCount reads 100 (the exact
// count is in WindowsScored).
func writeEMF(w io.Writer, namespace, pipeline string, agg *aggregate) error {
	type group struct{ stream, model, window, scorer string }
	groups := map[group][]aggKey{}
	var order []group
	for _, k := range sortedKeys(agg) {
		g := group{k.stream, k.model, k.window, k.scorer}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], k)
	}
	bw := bufio.NewWriter(w)
	for _, g := range order {
		dimNames := []string{"pipeline"}
		line := map[string]any{"pipeline": pipeline}
		if g.stream != "" {
			dimNames = append(dimNames, "stream")
			line["stream"] = g.stream
		}
		if g.model != "" {
			dimNames = append(dimNames, "model")
			line["model"] = g.model
		}
		if g.window != "" {
			dimNames = append(dimNames, "window")
			line["window"] = g.window
		}
		if g.scorer != "" {
			dimNames = append(dimNames, "scorer")
			line["scorer"] = g.scorer
		}
		var metrics []map[string]string
		for _, k := range groups[g] {
			s := agg.series[k]
			metrics = append(metrics, map[string]string{"Name": k.name, "Unit": string(k.unit)})
			if !s.dist {
				line[k.name] = s.sum
				continue
			}
			line[k.name] = emfValues(s)
		}
		line["_aws"] = map[string]any{
			"Timestamp": agg.start.UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace": namespace, "Dimensions": [][]string{dimNames}, "Metrics": metrics,
			}},
		}
		b, err := json.Marshal(line)
		if err != nil {
			return err
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

func emfValues(s *series) []float64 {
	vals := make([]float64, 0, len(s.values))
	for v := range s.values {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	out := make([]float64, 0, min(emfMaxValues, int(s.count)))
	if s.count <= emfMaxValues {
		for _, v := range vals {
			for range int(s.values[v]) {
				out = append(out, v)
			}
		}
		return out
	}
	var cum float64
	i := 0
	for j := range emfMaxValues {
		rank := (float64(j) + 0.5) / emfMaxValues * s.count
		for i < len(vals)-1 && cum+s.values[vals[i]] < rank {
			cum += s.values[vals[i]]
			i++
		}
		out = append(out, vals[i])
	}
	return out
}
