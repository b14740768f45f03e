package scorer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

// DefaultMaxRowsPerRequest is how many rows one InvokeEndpoint call carries
// at most unless configured: one slow call holds few rows back, and a
// request of wide rows stays far under the payload limit (which bounds
// every request by its encoded size as well).
const DefaultMaxRowsPerRequest = 500

// Cold-start defaults (see RemoteConfig.ColdStartTimeout).
const (
	// DefaultColdStartTimeout bounds the first call to a serverless
	// endpoint or a multi-model endpoint's model after it was idle.
	// SageMaker gives a serverless container 3 minutes to download its
	// model and answer /ping and 60 s to answer an invocation, and reports
	// the cold start as ModelSetupTime/OverheadLatency, without promising
	// a figure; a small tree model starts in seconds. 30 s covers that
	// with room for a model download, and stays under SageMaker's own 60 s
	// invocation bound, past which the call fails anyway.
	DefaultColdStartTimeout = 30 * time.Second
	// DefaultColdAfterIdle is how long without an answer makes a target
	// cold again. SageMaker does not say how long an idle serverless
	// endpoint stays warm; erring short only gives a warm endpoint's
	// first call a longer timeout.
	DefaultColdAfterIdle = time.Minute
)

// BreakerConfig tunes the circuit breaker around the endpoint (one per
// target model). Zero fields take the defaults shown.
type BreakerConfig struct {
	// ConsecutiveFailures trips the breaker (default 5).
	ConsecutiveFailures uint32
	// FailureRatio trips the breaker once at least MinRequests calls were
	// made in the current Interval (defaults 0.5 and 20).
	FailureRatio float64
	MinRequests  uint32
	// ConsecutiveTimeouts trips the breaker on calls that exceeded the
	// per-call timeout (default 3): a slow endpoint stalls the stream as
	// surely as a dead one.
	ConsecutiveTimeouts uint32
	// Interval is the rolling window of the counts while closed (default 60 s).
	Interval time.Duration
	// OpenFor is how long the breaker stays open before letting probes
	// through (default 10 s).
	OpenFor time.Duration
	// HalfOpenProbes is how many calls a half-open breaker lets through;
	// that many successes close it (default 1).
	HalfOpenProbes uint32
}

// RemoteConfig configures a SageMaker endpoint scorer.
type RemoteConfig struct {
	// Endpoint is the endpoint name. Required.
	Endpoint string
	// Features are the columns sent, in the order the endpoint's model
	// takes them. Required.
	Features []string
	// Outputs is the number of scores per row the endpoint returns
	// (default 1; the class count for multi:softprob).
	Outputs int
	// ContentType is the request body's type: text/csv (default),
	// application/json or application/jsonlines (the remotespec.Content*
	// constants). Accept is the response's (default the request's). A
	// missing value is an empty CSV cell or JSON null; a row holding ±Inf
	// cannot be sent as JSON and is left unscored.
	ContentType, Accept string
	// Instance is a JSON instance's shape: remotespec.InstanceArray
	// (default), InstanceFeatures (Linear Learner) or InstanceNamed.
	Instance string
	// ScorePath finds each row's score(s) in a JSON or JSON lines response
	// (see remotespec.ScorePath; default predictions.*.score for JSON,
	// score for JSON lines).
	ScorePath string
	// TargetVariant and CustomAttributes are passed through to every call,
	// and so are InferenceComponent (InferenceComponentName) and
	// TargetContainerHostname (a multi-container endpoint's direct
	// invocation).
	TargetVariant, CustomAttributes string
	InferenceComponent              string
	TargetContainerHostname         string
	// TargetModel is the model every call targets on a multi-model
	// endpoint. TargetModelFrom instead picks each row's model from the
	// value of a column (the entity or a feature): the value, or with
	// TargetModelDelimiter its TargetModelSegment-th part (from 0), is
	// looked up in TargetModels, else put in TargetModelTemplate in place
	// of {column} (e.g. "model-{machine_type}.tar.gz"). Rows whose value
	// is null or maps to no model are unscored. Rows are grouped per model
	// into requests, and each model has its own breaker (at most
	// MaxTargets of them, default DefaultMaxTargets; see targets).
	TargetModel          string
	TargetModelFrom      string
	TargetModelDelimiter string
	TargetModelSegment   int
	TargetModels         map[string]string
	TargetModelTemplate  string
	MaxTargets           int
	// Serverless marks a serverless endpoint: the payload limit is
	// remotespec.ServerlessMaxPayloadBytes (4 MB), and the cold-start
	// allowance is on.
	Serverless bool
	// ColdStartTimeout bounds a call to a target that is cold: one that
	// never answered, or not for ColdAfterIdle (default
	// DefaultColdAfterIdle), until a cold call times out even so. It also
	// bounds how long a target may answer ModelNotReadyException (a
	// serverless endpoint provisioning, a multi-model endpoint loading the
	// model) before that counts against its breaker; until then those
	// answers are retried with backoff past MaxAttempts. Default
	// DefaultColdStartTimeout for serverless endpoints and target models,
	// off (the normal Timeout) otherwise; negative turns it off.
	ColdStartTimeout time.Duration
	ColdAfterIdle    time.Duration
	// MaxPayloadBytes bounds one request body by its encoded size
	// (default and maximum MaxPayloadBytes, or 4 MB when Serverless);
	// MaxRowsPerRequest bounds its rows (default DefaultMaxRowsPerRequest).
	MaxPayloadBytes   int
	MaxRowsPerRequest int
	// Concurrency bounds in-flight calls across all batches (default 4).
	Concurrency int
	// Timeout bounds one call (default 2 s).
	Timeout time.Duration
	// MaxAttempts per request, counting the first (default 3); retries
	// happen on throttling, 5xx, timeouts and connection errors, with
	// full-jitter exponential backoff from BackoffBase up to BackoffMax
	// (defaults 50 ms and 1 s).
	MaxAttempts             int
	BackoffBase, BackoffMax time.Duration
	Breaker                 BreakerConfig
	// Fallback scores rows the endpoint could not (breaker open, retries
	// exhausted); they are marked SourceFallback. Without a fallback those
	// rows come back SourceNone for the dead-letter sink.
	Fallback Scorer
	// OnBreakerChange is called (synchronously, keep it quick) on every
	// breaker state change.
	OnBreakerChange func(BreakerEvent)
	Logger          *slog.Logger
	Metrics         *Metrics
}

// check refuses a configuration that cannot work, saying which field.
func (cfg *RemoteConfig) check() error {
	if cfg.Endpoint == "" {
		return errors.New("endpoint name is required")
	}
	if len(cfg.Features) == 0 {
		return errors.New("the endpoint's feature order (features) is required")
	}
	var err error
	if cfg.ContentType, err = remotespec.ParseContentType(cfg.ContentType); err != nil {
		return fmt.Errorf("content type: %w", err)
	}
	if cfg.Accept == "" {
		cfg.Accept = cfg.ContentType
	}
	if cfg.Accept, err = remotespec.ParseContentType(cfg.Accept); err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	if cfg.Instance, err = remotespec.ParseInstance(cfg.Instance); err != nil {
		return err
	}
	if _, err := remotespec.ParseScorePath(cfg.ScorePath, cfg.Accept); err != nil {
		return err
	}
	if cfg.Outputs <= 0 {
		cfg.Outputs = 1
	}
	if cfg.Fallback != nil && cfg.Fallback.Outputs() != cfg.Outputs {
		return fmt.Errorf("fallback has %d outputs, endpoint %d", cfg.Fallback.Outputs(), cfg.Outputs)
	}
	if cfg.InferenceComponent != "" {
		if err := remotespec.CheckInferenceComponent(cfg.InferenceComponent); err != nil {
			return err
		}
	}
	if cfg.TargetContainerHostname != "" {
		if err := remotespec.CheckTargetContainerHostname(cfg.TargetContainerHostname); err != nil {
			return err
		}
	}
	return cfg.checkTargets()
}

func (cfg *RemoteConfig) checkTargets() error {
	if cfg.TargetModel != "" {
		if cfg.TargetModelFrom != "" {
			return errors.New("target model: give a fixed target model or target_model_from, not both")
		}
		return remotespec.CheckTargetModel(cfg.TargetModel)
	}
	if cfg.TargetModelFrom == "" {
		if len(cfg.TargetModels) > 0 || cfg.TargetModelTemplate != "" || cfg.TargetModelDelimiter != "" {
			return errors.New("target models: target_models, the template and the delimiter need target_model_from, the column that picks the model")
		}
		return nil
	}
	if len(cfg.TargetModels) == 0 && cfg.TargetModelTemplate == "" {
		return fmt.Errorf("target_model_from %q: give target_models, target_model_template or both", cfg.TargetModelFrom)
	}
	if cfg.TargetModelSegment < 0 || (cfg.TargetModelSegment > 0 && cfg.TargetModelDelimiter == "") {
		return fmt.Errorf("target model segment %d: a segment (from 0) needs a delimiter", cfg.TargetModelSegment)
	}
	for k, m := range cfg.TargetModels {
		if err := remotespec.CheckTargetModel(m); err != nil {
			return fmt.Errorf("target_models[%q]: %w", k, err)
		}
	}
	if cfg.TargetModelTemplate != "" {
		return remotespec.CheckTargetModelTemplate(cfg.TargetModelTemplate, cfg.TargetModelFrom)
	}
	return nil
}

// defaults fills every zero field with its default, here and only here.
func (cfg *RemoteConfig) defaults() {
	limit := MaxPayloadBytes
	if cfg.Serverless {
		limit = remotespec.ServerlessMaxPayloadBytes
	}
	if cfg.MaxPayloadBytes <= 0 || cfg.MaxPayloadBytes > limit {
		cfg.MaxPayloadBytes = limit
	}
	if cfg.MaxRowsPerRequest <= 0 {
		cfg.MaxRowsPerRequest = DefaultMaxRowsPerRequest
	}
	if cfg.MaxTargets <= 0 {
		cfg.MaxTargets = DefaultMaxTargets
	}
	if cfg.ColdStartTimeout == 0 && (cfg.Serverless || cfg.TargetModel != "" || cfg.TargetModelFrom != "") {
		cfg.ColdStartTimeout = DefaultColdStartTimeout
	}
	if cfg.ColdAfterIdle <= 0 {
		cfg.ColdAfterIdle = DefaultColdAfterIdle
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 50 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = time.Second
	}
	b := &cfg.Breaker
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = 5
	}
	if b.FailureRatio <= 0 {
		b.FailureRatio = 0.5
	}
	if b.MinRequests == 0 {
		b.MinRequests = 20
	}
	if b.ConsecutiveTimeouts == 0 {
		b.ConsecutiveTimeouts = 3
	}
	if b.Interval <= 0 {
		b.Interval = time.Minute
	}
	if b.OpenFor <= 0 {
		b.OpenFor = 10 * time.Second
	}
	if b.HalfOpenProbes == 0 {
		b.HalfOpenProbes = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}
