package pipeline

import (
	"time"

	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// Observer hears what a pipeline does, once per batch or event (never per
// record), and exports it: the Prometheus observer always, the CloudWatch
// one when the config has a CloudWatch sink. A new count is added here once
// and reaches every export, instead of being counted at each call site
// once per backend. Methods are called from the shards' goroutines
// concurrently.
type Observer interface {
	// BatchRead counts a batch read from a shard (replayed tails are not
	// counted: their parent counted them).
	BatchRead(stream, shard string, records int, millisBehind int64)
	// Replayed counts records of closed parents replayed into a child.
	Replayed(stream string, records int)
	// DeadLettered counts records sent to the dead-letter queue.
	DeadLettered(stream, reason string, n int)
	// Late counts events beyond a window's allowed lateness.
	Late(stream, window string, n int)
	// Emitted counts feature rows a window emitted and scored.
	Emitted(stream, window string, rows int)
	// Checkpointed notes that a shard's low-water mark advanced.
	Checkpointed(stream, shard string)
	// Stage times one stage of a batch.
	Stage(s Stage, d time.Duration)
	// WindowStats reports a window operator's counters and state after a
	// batch: prev is what it reported last time (zero for a new shard
	// run), cur what it holds now.
	WindowStats(stream, shard, window string, prev, cur windowing.Stats)
	// ShardReleased says a shard's chain ended here: per-shard series go.
	ShardReleased(stream, shard string)
	// BreakerChanged counts a circuit breaker's change of state.
	BreakerChanged(stream, endpoint string)
	// ModelRejected counts a hot reload the scorer refused.
	ModelRejected(stream, model string)
	// LabelsWritten counts labels of the labels stream the ground-truth
	// sink made durable in S3 (called from the sink's goroutines).
	LabelsWritten(stream string, n int)
	// MonitorRows counts result rows the drift monitor profiled.
	MonitorRows(window string, rows int)
	// MonitorPart counts a period's statistics this worker wrote to S3.
	MonitorPart(window string)
	// MonitorFailed counts a monitor step that failed: "part" (a part not
	// written), "judge" (a period not judged), "bad_part" (a part skipped
	// in a merge), "queue_full" (an S3 job dropped).
	MonitorFailed(window, what string)
	// MonitorJudged reports a period's fleet-wide statistics and their
	// verdict against the baseline.
	MonitorJudged(window string, cur *monitor.Statistics, r *monitor.Report)
	// QualityJudged reports a model version's model-quality statistics of
	// a period (role champion or challenger) and, with constraints, their
	// verdict (nil without).
	QualityJudged(scorer, version, role string, st *quality.Statistics, r *quality.Report)
	// QualityFailed counts a quality monitor step that failed.
	QualityFailed(scorer, step string)
}

// Stage is a timed part of a batch's handling.
type Stage int

// The stages of a batch.
const (
	StageDecode   Stage = iota // decode the records
	StageWindow                // one window operator's work
	StageScore                 // score one emission of windows
	StageSinkWait              // wait for room in the sinks (back-pressure)
	StageBatch                 // the whole batch
	numStages
)

// observers sends every event to each of its observers.
type observers []Observer

var _ Observer = observers(nil)

func (all observers) BatchRead(stream, shard string, records int, behind int64) {
	for _, o := range all {
		o.BatchRead(stream, shard, records, behind)
	}
}

func (all observers) Replayed(stream string, records int) {
	for _, o := range all {
		o.Replayed(stream, records)
	}
}

func (all observers) DeadLettered(stream, reason string, n int) {
	for _, o := range all {
		o.DeadLettered(stream, reason, n)
	}
}

func (all observers) Late(stream, window string, n int) {
	for _, o := range all {
		o.Late(stream, window, n)
	}
}

func (all observers) Emitted(stream, window string, rows int) {
	for _, o := range all {
		o.Emitted(stream, window, rows)
	}
}

func (all observers) Checkpointed(stream, shard string) {
	for _, o := range all {
		o.Checkpointed(stream, shard)
	}
}

func (all observers) Stage(s Stage, d time.Duration) {
	for _, o := range all {
		o.Stage(s, d)
	}
}

func (all observers) WindowStats(stream, shard, window string, prev, cur windowing.Stats) {
	for _, o := range all {
		o.WindowStats(stream, shard, window, prev, cur)
	}
}

func (all observers) ShardReleased(stream, shard string) {
	for _, o := range all {
		o.ShardReleased(stream, shard)
	}
}

func (all observers) BreakerChanged(stream, endpoint string) {
	for _, o := range all {
		o.BreakerChanged(stream, endpoint)
	}
}

func (all observers) ModelRejected(stream, model string) {
	for _, o := range all {
		o.ModelRejected(stream, model)
	}
}

func (all observers) LabelsWritten(stream string, n int) {
	for _, o := range all {
		o.LabelsWritten(stream, n)
	}
}

// LabelsWritten needs no series of its own in Prometheus: the sink's
// streamscore_sink_rows_total{sink="groundtruth"} counts the same labels
// at the same moment.
func (m *promObserver) LabelsWritten(string, int) {}

// The CloudWatch metrics the pipeline's observer sends (the sink adds those
// it computes from result batches: sinks.MetricWindowsScored and others).
const (
	MetricEventsIn             = "EventsIn"
	MetricIteratorAge          = "IteratorAge"
	MetricDeadLetters          = "DeadLetters"
	MetricLateEvents           = "LateEvents"
	MetricEvictedKeys          = "EvictedKeys"
	MetricBreakerStateChanges  = "BreakerStateChanges"
	MetricModelReloadsRejected = "ModelReloadsRejected"
	// MetricLabelsWritten counts labels made durable as ground truth.
	MetricLabelsWritten = "LabelsWritten"
)

// counter is the part of the CloudWatch sink the observer uses.
type counter interface {
	Count(name string, d sinks.Dimensions, n float64)
	Observe(name string, unit cwtypes.StandardUnit, d sinks.Dimensions, v float64)
}

var _ counter = (*sinks.CloudWatch)(nil)

// cloudWatchObserver exports the pipeline's operational counts as
// CloudWatch metrics, aggregated per interval by the CloudWatch sink.
// Timings and per-shard state stay in Prometheus: per-shard dimensions
// would be a metric per shard, each billed.
type cloudWatchObserver struct{ cw counter }

var _ Observer = cloudWatchObserver{}

func (o cloudWatchObserver) BatchRead(stream, _ string, records int, behind int64) {
	if records == 0 {
		return
	}
	d := sinks.Dimensions{Stream: stream}
	o.cw.Count(MetricEventsIn, d, float64(records))
	o.cw.Observe(MetricIteratorAge, cwtypes.StandardUnitMilliseconds, d, float64(behind))
}

func (o cloudWatchObserver) Replayed(string, int) {}

func (o cloudWatchObserver) DeadLettered(stream, _ string, n int) {
	o.cw.Count(MetricDeadLetters, sinks.Dimensions{Stream: stream}, float64(n))
}

func (o cloudWatchObserver) Late(stream, _ string, n int) {
	o.cw.Count(MetricLateEvents, sinks.Dimensions{Stream: stream}, float64(n))
}

func (o cloudWatchObserver) Emitted(string, string, int)  {}
func (o cloudWatchObserver) Checkpointed(string, string)  {}
func (o cloudWatchObserver) Stage(Stage, time.Duration)   {}
func (o cloudWatchObserver) ShardReleased(string, string) {}
func (o cloudWatchObserver) BreakerChanged(stream, ep string) {
	o.count(MetricBreakerStateChanges, stream, ep)
}
func (o cloudWatchObserver) ModelRejected(stream, m string) {
	o.count(MetricModelReloadsRejected, stream, m)
}

func (o cloudWatchObserver) LabelsWritten(stream string, n int) {
	o.cw.Count(MetricLabelsWritten, sinks.Dimensions{Stream: stream}, float64(n))
}

func (o cloudWatchObserver) count(name, stream, model string) {
	o.cw.Count(name, sinks.Dimensions{Stream: stream, Model: model}, 1)
}

// WindowStats sends the evictions: a key evicted for memory means rows
// flagged partial, which operators want to be alarmed on.
func (o cloudWatchObserver) WindowStats(stream, _, _ string, prev, cur windowing.Stats) {
	if cur.EvictedKeys > prev.EvictedKeys {
		o.cw.Count(MetricEvictedKeys, sinks.Dimensions{Stream: stream}, float64(cur.EvictedKeys-prev.EvictedKeys))
	}
}
