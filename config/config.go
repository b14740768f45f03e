// Package config reads streamscore's pipeline configuration: one YAML file
// naming the streams and their event schemas, the windows and features
// computed over them, the models that score them, the sinks results go to,
// the alert rules, and the consumer's settings.
//
// Decoding is strict. An unknown key, a value of the wrong type, a bad
// duration or a reference to something the file does not define is an error
// that names the file, the line and the key, e.g.
//
//	examples/factory.yaml:31: windows[0].size: invalid duration "5x" (use a number with a unit: 500ms, 30s, 5m, 1h)
//
// All problems found are reported at once, in file order.
//
// This package judges syntax and references only. What a schema, window or
// feature means is the windowing package's to judge: Schema.Spec and
// Window.Spec are the one conversion onto its types (the pipeline builds
// its windows with them too), and windowing's SpecErrors are reported at
// the line of the key they name. Defaults that a package applies to a zero
// value are left zero here (see defaults.go).
package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole pipeline.
type Config struct {
	// Pipeline names the pipeline; it is a metrics dimension and the
	// default application (lease table) name.
	Pipeline string             `yaml:"pipeline"`
	Consumer Consumer           `yaml:"consumer"`
	Streams  []Stream           `yaml:"streams"`
	Schemas  map[string]*Schema `yaml:"schemas"`
	Windows  []Window           `yaml:"windows"`
	Models   map[string]*Model  `yaml:"models"`
	Scorers  []Scorer           `yaml:"scorers"`
	Sinks    Sinks              `yaml:"sinks"`
	Alerts   Alerts             `yaml:"alerts"`
	Monitor  Monitor            `yaml:"monitor"`
	Labels   *Labels            `yaml:"labels"`
	Ops      Ops                `yaml:"ops"`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
}

// Consumer configures the Kinesis consumer: leases, retrieval, start position.
type Consumer struct {
	// Application names the KCL application; the lease table is named after
	// it unless LeaseTable says otherwise. Default: the pipeline name.
	Application string `yaml:"application"`
	// LeaseTable is left empty when omitted: the consumer names the table
	// after the application.
	LeaseTable string `yaml:"lease_table"`
	// WorkerID identifies this worker in the lease table. Default: host name
	// plus a random suffix.
	WorkerID string `yaml:"worker_id"`
	// FailoverTime is how long a lease's counter must stay unchanged before
	// another worker may take it. Zero takes the consumer's default, 10s as
	// in the Java KCL.
	FailoverTime Duration `yaml:"failover_time"`
	// MaxLeasesPerWorker caps the shards one worker holds; 0 means no cap.
	MaxLeasesPerWorker int `yaml:"max_leases_per_worker"`
	// ClientVersion is how the workers share leases, in Java KCL's terms:
	// "2x" (also when omitted: every worker takes and steals until each
	// holds its count of leases), "3x" (a leader assigns leases by the
	// workers' CPU and the leases' throughput and moves them with graceful
	// hand-offs; the tables Java KCL 3.x uses) or "2x-compatible" (the
	// migration from the first to the second, with a way back).
	// docs/consumer.md.
	ClientVersion string `yaml:"client_version"`
	// LeaseAssignment, with client_version 3x or 2x-compatible:
	// "worker_utilization_aware" (also when omitted) or "lease_count_based".
	LeaseAssignment string `yaml:"lease_assignment"`
	// HandoffTimeout bounds a graceful hand-off: a shard that has not
	// checkpointed by then is passed on from its last checkpoint. Zero
	// takes the consumer's default, 30s as in Java KCL.
	HandoffTimeout Duration `yaml:"handoff_timeout"`
	// ReportCPU, with client_version 3x or 2x-compatible: false reports no
	// CPU, and the leader balances this worker on its share of the
	// throughput. Omitted: true.
	ReportCPU *bool `yaml:"report_cpu"`
	// Retrieval is "polling" (GetRecords, also when omitted) or "fanout"
	// (SubscribeToShard).
	Retrieval string `yaml:"retrieval"`
	// ConsumerName names the enhanced fan-out consumer. Empty: the consumer
	// names it after the application.
	ConsumerName string `yaml:"consumer_name"`
	// MaxRecords per GetRecords call (at most 10000). Zero takes the
	// consumer's default, 10000.
	MaxRecords int `yaml:"max_records"`
	// IdleInterval is the pause between polls when a shard is caught up.
	// Zero takes the consumer's default, 200ms; polling faster than every
	// 200 ms draws throttling.
	IdleInterval Duration `yaml:"idle_interval"`
	// StartPosition for shards with no checkpoint: TRIM_HORIZON, LATEST or
	// AT_TIMESTAMP (with StartTimestamp). Default TRIM_HORIZON.
	StartPosition  string    `yaml:"start_position"`
	StartTimestamp time.Time `yaml:"start_timestamp"`
}

// Stream is a Kinesis stream the pipeline consumes.
type Stream struct {
	Name string `yaml:"name"`
	// Schema names an entry of schemas: how its records decode.
	Schema string `yaml:"schema"`
	// Shards is the shard count `streamscore dev up` provisions locally; it
	// has no effect on real streams.
	Shards int `yaml:"shards"`
	// MaxFutureSkew bounds how far an event time may lie ahead of the time
	// Kinesis accepted its record; records beyond it are dead-lettered
	// (reason event-time) and never move a watermark. Zero means the
	// default (windowing.DefaultMaxFutureSkew, 5m); a producer that stamps
	// events ahead on purpose sets a larger value.
	MaxFutureSkew Duration `yaml:"max_future_skew"`
	// MaxPastAge bounds how far an event time may lie behind its record's
	// arrival; zero (the default) is no bound, which replays of history
	// need.
	MaxPastAge Duration `yaml:"max_past_age"`
}

// Schema describes the JSON events of a stream. Schema.Spec maps it onto
// windowing.Schema, whose Validate holds the rules.
type Schema struct {
	// Entity is the key field windows are grouped by (machine_id, user_id).
	Entity string `yaml:"entity"`
	// Time is the event-time field; TimeFormat is rfc3339 (when omitted,
	// applied by Spec), epoch_s or epoch_ms.
	Time       string  `yaml:"time"`
	TimeFormat string  `yaml:"time_format"`
	Fields     []Field `yaml:"fields"`
}

// Field is one typed field of an event.
type Field struct {
	Name string `yaml:"name"`
	// Type is string, float64, int64, bool or timestamp.
	Type string `yaml:"type"`
}

// Window is a set of features computed over event-time windows of a stream.
// Window.Spec maps it onto windowing.WindowSpec, whose Validate holds the
// rules (docs/windowing.md); config checks only that its stream exists.
type Window struct {
	Name   string `yaml:"name"`
	Stream string `yaml:"stream"`
	// Kind is tumbling, hopping or session.
	Kind string   `yaml:"kind"`
	Size Duration `yaml:"size"`
	// Slide is the hop of a hopping window.
	Slide Duration `yaml:"slide"`
	// Gap closes a session window after this much event-time silence.
	Gap Duration `yaml:"gap"`
	// OutOfOrderness is how far behind the newest event the watermark trails.
	OutOfOrderness Duration `yaml:"out_of_orderness"`
	// IdleTimeout advances an idle shard's watermark on processing time so
	// its windows still fire. Zero: the window size (or gap), applied by
	// Spec.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// AllowedLateness keeps closed windows updatable for this long; a late
	// event within it re-emits its window, flagged as an update.
	AllowedLateness Duration `yaml:"allowed_lateness"`
	// Late says what happens to events later than that: dead_letter
	// (when omitted, applied by Spec) or ignore (counted, then dropped).
	Late string `yaml:"late"`
	// MaxKeys bounds the entities held in memory. Zero takes
	// windowing.DefaultMaxKeys (100000).
	MaxKeys int `yaml:"max_keys"`
	// MaxStateBytes bounds the memory this window's state takes on each
	// shard (keys, panes, sketches, counted truly); beyond it the least
	// recently updated keys are evicted, their open windows emitted early
	// and flagged partial. Zero means windowing.DefaultMaxStateBytes
	// (128 MiB): 8 window-shards fit a 2 GiB task.
	MaxStateBytes int64     `yaml:"max_state_bytes"`
	Features      []Feature `yaml:"features"`
}

// Feature is one aggregate of a window, named as the model's feature.
type Feature struct {
	Name string `yaml:"name"`
	// Agg is one of windowing.Aggregates().
	Agg   string `yaml:"agg"`
	Field string `yaml:"field"`
	// Equals is count_if's predicate value.
	Equals string `yaml:"equals"`
	// Quantile is the quantile aggregate's q in (0, 1].
	Quantile float64 `yaml:"quantile"`
}

// Model is a model file the scorers use.
type Model struct {
	// Format is xgboost (JSON, UBJSON, the legacy binary format or a
	// SageMaker model.tar.gz), lightgbm (a text model) or linear. Empty
	// detects it; set, a file of another kind is refused.
	Format string `yaml:"format"`
	// Path is a local file or an s3:// URI.
	Path string `yaml:"path"`
	// ReloadInterval is how often the file (or S3 ETag) is checked for a new
	// version. 0 disables hot reload.
	ReloadInterval Duration `yaml:"reload_interval"`
	// SHA256 pins the model's content: the hex SHA-256 of the file's bytes
	// (a model.tar.gz as stored). Start-up and hot reload refuse any other
	// content; a refused reload keeps the running model and is counted.
	SHA256 string `yaml:"sha256"`
	// VersionID pins the S3 object version read (s3:// paths in a versioned
	// bucket). Nothing can change under the pin, so hot reload is off until
	// the pin itself changes.
	VersionID string `yaml:"version_id"`
	// Limits bound what loading the model may cost; zero fields take the
	// scorer's defaults (docs/scorer.md).
	Limits ModelLimits `yaml:"limits"`
}

// ModelLimits bound a model's file and heap. It has scorer.ModelLimits'
// fields, in its order, so scorer.ModelLimits(m.Limits) converts it.
type ModelLimits struct {
	MaxFileBytes      int64 `yaml:"max_file_bytes"`
	MaxTrees          int   `yaml:"max_trees"`
	MaxNodes          int   `yaml:"max_nodes"`
	MaxDepth          int   `yaml:"max_depth"`
	MaxHeapBytes      int64 `yaml:"max_heap_bytes"`
	MaxTarMembers     int   `yaml:"max_tar_members"`
	MaxTarBytes       int64 `yaml:"max_tar_bytes"`
	MaxTarMemberBytes int64 `yaml:"max_tar_member_bytes"`
	MaxFeatures       int   `yaml:"max_features"`
}

// Scorer scores one window's feature batches with a model.
type Scorer struct {
	Name   string `yaml:"name"`
	Window string `yaml:"window"`
	// Model is the embedded champion model (a key of models). With an
	// Endpoint, it is not used unless named as the fallback as well.
	Model string `yaml:"model"`
	// Endpoint scores remotely on a SageMaker endpoint.
	Endpoint *Endpoint `yaml:"endpoint"`
	// Challenger is a model that scores the same rows in shadow.
	Challenger string `yaml:"challenger"`
	// CanaryPercent routes this share of entities (by hash) to the
	// challenger as the acting model.
	CanaryPercent float64 `yaml:"canary_percent"`
	// Promotion is when the challenger replaces the champion.
	Promotion *Promotion `yaml:"promotion"`
}

// Endpoint is a SageMaker endpoint (real-time, serverless or multi-model)
// behind a circuit breaker. Every zero value takes the scorer's default
// (scorer.RemoteConfig, docs/scorer.md); none is restated here.
type Endpoint struct {
	Name             string `yaml:"name"`
	Variant          string `yaml:"variant"`
	CustomAttributes string `yaml:"custom_attributes"`
	// ContentType is the request's: text/csv (the default), application/json
	// or application/jsonlines; Accept the response's (default: the
	// request's).
	ContentType string `yaml:"content_type"`
	Accept      string `yaml:"accept"`
	// Instance is a JSON instance's shape: array ([v, ...], the default),
	// features ({"features": [...]}, Linear Learner) or named ({"f": v}).
	Instance string `yaml:"json_instance"`
	// ScorePath finds each row's score(s) in a JSON or JSON lines response,
	// e.g. predictions.*.probability (see remotespec.ScorePath).
	ScorePath string `yaml:"score_path"`
	// InferenceComponent and TargetContainerHostname are passed through.
	InferenceComponent      string `yaml:"inference_component"`
	TargetContainerHostname string `yaml:"target_container_hostname"`
	// TargetModel is the model every request targets on a multi-model
	// endpoint; TargetModelFrom instead names the column (the window's
	// entity or one of its features) whose value picks each row's model.
	TargetModel     string `yaml:"target_model"`
	TargetModelFrom string `yaml:"target_model_from"`
	// TargetModelDelimiter and TargetModelSegment take one part of the
	// value (from 0) instead of the whole.
	TargetModelDelimiter string `yaml:"target_model_delimiter"`
	TargetModelSegment   int    `yaml:"target_model_segment"`
	// TargetModels maps values to models; TargetModelTemplate names the
	// model of any other value, e.g. "model-{machine_type}.tar.gz".
	TargetModels        map[string]string `yaml:"target_models"`
	TargetModelTemplate string            `yaml:"target_model_template"`
	// MaxTargets bounds the per-model breakers kept.
	MaxTargets int `yaml:"max_targets"`
	// Serverless marks a serverless endpoint (4 MB payloads, cold starts).
	Serverless bool `yaml:"serverless"`
	// ColdStartTimeout bounds the first call after ColdAfterIdle without an
	// answer, and how long a model may be not ready without tripping the
	// breaker; set it to the timeout for no allowance.
	ColdStartTimeout Duration `yaml:"cold_start_timeout"`
	ColdAfterIdle    Duration `yaml:"cold_after_idle"`
	// Timeout bounds one request; Concurrency the requests in flight.
	Timeout Duration `yaml:"timeout"`
	// MaxRowsPerRequest and MaxPayloadBytes bound one request's rows and
	// encoded bytes.
	MaxRowsPerRequest int `yaml:"max_rows_per_request"`
	MaxPayloadBytes   int `yaml:"max_payload_bytes"`
	Concurrency       int `yaml:"concurrency"`
	// Fallback names the model (a key of models) that scores rows while the
	// breaker is open. Without one, such rows go to the dead-letter sink.
	Fallback string `yaml:"fallback"`
}

// Sinks are where results go. A sink left out is off.
type Sinks struct {
	S3           *S3Sink           `yaml:"s3"`
	CloudWatch   *CloudWatchSink   `yaml:"cloudwatch"`
	FeatureTable *FeatureTableSink `yaml:"feature_table"`
	DeadLetter   *DeadLetterSink   `yaml:"dead_letter"`
}

// S3Sink writes Parquet files.
type S3Sink struct {
	Bucket string `yaml:"bucket"`
	Prefix string `yaml:"prefix"`
	// RollMiB rolls a file at this size. Zero takes the sink's default,
	// 128.
	RollMiB int `yaml:"roll_mib"`
	// RollAge rolls a file at this age. Zero takes the sink's default, 60s.
	RollAge Duration `yaml:"roll_age"`
	// ZstdLevel is the zstd level, 1 to 22. Zero takes the sink's default,
	// 1, the fastest: window features barely compress better at higher
	// levels.
	ZstdLevel int `yaml:"zstd_level"`
	// FloatEncoding encodes double and float columns: "byte_stream_split"
	// (the sink's default when empty; smaller and faster) or "plain" for
	// readers that predate BYTE_STREAM_SPLIT.
	FloatEncoding string `yaml:"float_encoding"`
	// FeatureStats also writes min/max statistics for feature columns.
	FeatureStats bool `yaml:"feature_stats"`
}

// CloudWatchSink publishes metrics.
type CloudWatchSink struct {
	Namespace string `yaml:"namespace"`
	// EMF writes Embedded Metric Format lines to "stdout", a file path, or
	// nowhere when empty.
	EMF string `yaml:"emf"`
	// PutMetricData calls the API (aggregated client-side) when true.
	PutMetricData bool `yaml:"put_metric_data"`
	// FlushInterval is how often metrics are published. Zero takes the
	// sink's default, 60s.
	FlushInterval Duration `yaml:"flush_interval"`
	// ServerTimestamps leaves the timestamp out of PutMetricData so the
	// server stamps arrival time. Real CloudWatch does not need it; the
	// local CloudWatch server (kumo) cannot read the SDK's timestamps.
	ServerTimestamps bool `yaml:"server_timestamps"`
}

// FeatureTableSink keeps the latest features and score per entity.
type FeatureTableSink struct {
	Table string `yaml:"table"`
	// TTL expires an entity's item. Zero takes the sink's default, 7 days.
	TTL Duration `yaml:"ttl"`
}

// DeadLetterSink receives poison records.
type DeadLetterSink struct {
	Queue string `yaml:"queue"`
	// Bucket holds records too large for an SQS message (base64 over
	// 200 KiB, under SQS's 256 KiB message limit). Kinesis records can be
	// 1 MiB (10 MiB on request), so any stream can carry one.
	Bucket string `yaml:"bucket"`
	// LargeRecords says what happens to a dead letter too large for a
	// message: "bucket" (stored whole in Bucket, which it requires) or
	// "truncate" (sent cut to fit, with its original size and where to
	// re-read it from the stream while retention lasts). When empty, the
	// sink stores them in Bucket if set and truncates them otherwise.
	// Never a failure: a record
	// the dead-letter sink could not take would stop its shard for good.
	LargeRecords string `yaml:"large_records"`
}

// Alerts publishes alerts to an SNS topic.
type Alerts struct {
	// Topic is a topic name or ARN. FIFO topics end in ".fifo".
	Topic string `yaml:"topic"`
	Rules []Rule `yaml:"rules"`
	// Review sends score alerts to human review; nil: none (review.go).
	Review *Review `yaml:"review"`
}

// Rule turns scores, or the monitor's drift verdicts, into alerts.
type Rule struct {
	Name string `yaml:"name"`
	// Scorer makes a score rule: it judges that scorer's scores against
	// Threshold.
	Scorer    string  `yaml:"scorer"`
	Threshold float64 `yaml:"threshold"`
	// Drift makes a drift rule instead: it judges the monitor's verdict on
	// each feature of this monitored window, period after period (the
	// baseline's threshold and method decide what drifted).
	Drift string `yaml:"drift"`
	// Quality makes a model-quality rule: it judges each period's
	// model-quality verdict of this scorer (a monitor.quality entry), and
	// fires while a metric violates its constraint.
	Quality string `yaml:"quality"`
	// Severity is info, warning or critical.
	Severity string `yaml:"severity"`
	// FireAfter consecutive windows at or above the threshold raise the
	// alert; ClearAfter below clear it. Zero takes the sink's 1 and 1.
	FireAfter  int `yaml:"fire_after"`
	ClearAfter int `yaml:"clear_after"`
	// Cooldown is the least time between two alerts for one entity.
	Cooldown Duration `yaml:"cooldown"`
}

// Monitor compares each monitored window's features and scores, period by
// period, with a baseline in SageMaker Model Monitor's formats
// (docs/monitor.md).
type Monitor struct {
	// Period is the event time one set of statistics covers. Zero takes
	// the pipeline's default, 1h.
	Period Duration `yaml:"period"`
	// Prefix is where, in sinks.s3.bucket, the statistics, violations and
	// each worker's partial statistics go. Empty takes "monitoring/".
	Prefix string `yaml:"prefix"`
	// Settle is how long after a period's end (plus the window's lateness)
	// the fleet's partial statistics are merged and judged, so that every
	// worker has written its own. Zero takes the pipeline's default, 1m.
	Settle Duration `yaml:"settle"`
	// Windows are the monitored windows.
	Windows []MonitoredWindow `yaml:"windows"`
	// Quality are the scorers whose predictions are judged against the
	// ground truth of labels, period by period (docs/quality.md).
	Quality []QualityMonitor `yaml:"quality"`
	// Retrain asks for retraining, through EventBridge, on sustained drift
	// or a model-quality violation (docs/flywheel.md). Nil: never.
	Retrain *Retrain `yaml:"retrain"`
}

// MonitoredWindow is one window whose results the monitor watches.
type MonitoredWindow struct {
	Window string `yaml:"window"`
	// Scorer names whose results (features and scores) are profiled;
	// empty takes the window's only scorer.
	Scorer string `yaml:"scorer"`
	// Baseline is a directory or s3:// prefix holding statistics.json and
	// constraints.json, as `streamscore monitor baseline` or Model
	// Monitor's baselining job writes them.
	Baseline string `yaml:"baseline"`
}

// Ops configures the operations HTTP server and logging.
type Ops struct {
	// Listen is the address of /metrics, /healthz and /readyz.
	// Default 127.0.0.1:9464.
	Listen string `yaml:"listen"`
	// LogFormat is json (default) or text; LogLevel debug, info, warn, error.
	LogFormat string `yaml:"log_format"`
	LogLevel  string `yaml:"log_level"`
	// StatusInterval is how often a one-line progress log is written.
	StatusInterval Duration `yaml:"status_interval"`
}

// Duration is a time.Duration written as "500ms", "30s", "5m" or "1h".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string and says what is wrong with a
// bad one.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	// A *yaml.TypeError lets the decoder carry on and report every bad
	// value in the file, not just the first.
	bad := func(msg string) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
	}
	if n.Kind != yaml.ScalarNode {
		return bad("expected a duration such as 30s or 5m")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return bad(fmt.Sprintf("invalid duration %q (use a number with a unit: 500ms, 30s, 5m, 1h)", n.Value))
	}
	if v < 0 {
		return bad(fmt.Sprintf("negative duration %q", n.Value))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in Go's notation.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
