package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// S3API is the part of the S3 client the function uses: reading an s3://
// model at cold start, and writing dead letters too large for SQS
// (*s3.Client satisfies it).
type S3API interface {
	scorer.ObjectGetter
	sinks.DeadLetterS3
}

// Options are the function's collaborators. A client the configuration does
// not need may be nil.
type Options struct {
	// DynamoDB reads the feature table. Required.
	DynamoDB FeatureReader
	// SNS publishes alerts; required with Config.AlertTopicARN.
	SNS sinks.AlertsAPI
	// SQS receives dead letters; required with Config.DeadLetterQueueURL.
	SQS sinks.DeadLetterSQS
	// S3 loads an s3:// model and holds large dead letters; required for
	// either.
	S3 S3API
	// Logger receives the function's logs; default slog.Default().
	Logger *slog.Logger
	// Metrics receives one Embedded Metric Format line per invocation;
	// default os.Stdout, where Lambda's log capture turns it into metrics.
	Metrics io.Writer
	// Now is the clock that ages features; default time.Now.
	Now func() time.Time
	// Backoff is the retry schedule of alerts and dead letters.
	Backoff sinks.Backoff
}

// Handler scores login events. Build it once per execution environment
// (cold start) with New; Invoke is safe for concurrent use, as Lambda's
// multi-concurrency environments need.
type Handler struct {
	cfg      Config
	fields   fields
	model    *scorer.Model
	features []string
	// explainErr says why the model cannot give contributions (nil if it can).
	explainErr error
	db         FeatureReader
	// layout is the feature table's item layout, the one sinks.FeatureTable
	// writes, with the configured partition key.
	layout sinks.FeatureLayout
	alerts *sinks.Alerts
	dlq    *sinks.DeadLetter
	log    *slog.Logger
	now    func() time.Time

	emfMu sync.Mutex
	emf   io.Writer
}

// New loads the model and checks the collaborators against cfg. ctx bounds
// the model download.
func New(ctx context.Context, cfg Config, o Options) (*Handler, error) {
	if o.DynamoDB == nil {
		return nil, errors.New("lambda: Options.DynamoDB is required")
	}
	if cfg.AlertTopicARN != "" && o.SNS == nil {
		return nil, fmt.Errorf("lambda: %s is set but Options.SNS is nil", EnvAlertTopic)
	}
	if cfg.DeadLetterQueueURL != "" && o.SQS == nil {
		return nil, fmt.Errorf("lambda: %s is set but Options.SQS is nil", EnvDeadLetterQueue)
	}
	if (strings.HasPrefix(cfg.Model, "s3://") || cfg.DeadLetterBucket != "") && o.S3 == nil {
		return nil, errors.New("lambda: an s3:// model or a dead-letter bucket needs Options.S3")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = os.Stdout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var getter scorer.ObjectGetter
	if o.S3 != nil {
		getter = o.S3
	}
	var pin []scorer.LoadOption
	if cfg.ModelSHA256 != "" {
		pin = append(pin, scorer.WithSHA256(cfg.ModelSHA256))
	}
	m, err := scorer.LoadModel(ctx, cfg.Model, getter, pin...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvModel, err)
	}
	if m.Outputs() != 1 {
		return nil, fmt.Errorf("%s: model %s has %d outputs (%s); a login's risk is one score", EnvModel, cfg.Model, m.Outputs(), m.Info().Objective)
	}
	h := &Handler{
		cfg:    cfg,
		fields: fields{entity: cfg.EntityField, typ: cfg.TypeField, login: cfg.LoginValue},
		model:  m, features: m.Features(), explainErr: m.CheckContributions(),
		db: o.DynamoDB, layout: cfg.Layout(), log: o.Logger, now: o.Now, emf: o.Metrics,
	}
	if h.explainErr != nil {
		h.log.Warn("the model cannot explain its scores: responses and alerts carry no top_features", "model", m.Version(), "err", h.explainErr)
	}
	if cfg.AlertTopicARN != "" {
		h.alerts, err = sinks.NewAlerts(sinks.AlertOptions{Client: o.SNS, TopicARN: cfg.AlertTopicARN, Backoff: o.Backoff, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
	}
	if cfg.DeadLetterQueueURL != "" {
		dl := sinks.DeadLetterOptions{SQS: o.SQS, QueueURL: cfg.DeadLetterQueueURL, Prefix: cfg.DeadLetterPrefix, Backoff: o.Backoff, Logger: o.Logger}
		if cfg.DeadLetterBucket != "" {
			dl.S3, dl.Bucket = o.S3, cfg.DeadLetterBucket
		}
		h.dlq, err = sinks.NewDeadLetter(dl)
		if err != nil {
			return nil, err
		}
	}
	info := m.Info()
	h.log.Info("login scorer ready", "model", info.Version, "model_source", info.Source, "objective", info.Objective,
		"features", len(h.features), "table", cfg.FeatureTable, "alerts", cfg.AlertTopicARN != "", "dead_letters", cfg.DeadLetterQueueURL != "")
	return h, nil
}

// Config returns the configuration the handler runs with.
func (h *Handler) Config() Config { return h.cfg }

// Model returns the loaded model.
func (h *Handler) Model() *scorer.Model { return h.model }

// Close stops the alert publisher. Lambda never calls it (the environment
// is frozen, then discarded); tests and other hosts do.
func (h *Handler) Close(ctx context.Context) error {
	if h.alerts != nil {
		return h.alerts.Close(ctx)
	}
	return nil
}

// UnavailableError is a failure of a service the function depends on
// (DynamoDB, SNS, SQS): the event was fine, and retrying later can succeed.
// A direct invocation gets it back as the function error (errorType
// "UnavailableError").
type UnavailableError struct {
	Err error
}

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// Response answers a direct invocation.
type Response struct {
	Entity string `json:"entity"`
	// Score is the model's output for the login (a probability for a
	// logistic model).
	Score        float64 `json:"score"`
	ModelVersion string  `json:"model_version"`
	Threshold    float64 `json:"threshold"`
	// HighRisk is Score >= Threshold.
	HighRisk bool `json:"high_risk"`
	// FeaturesWindowEnd is the end of the window whose features scored the
	// login; nil when none did (no item, or older than the maximum age).
	FeaturesWindowEnd *time.Time `json:"features_window_end"`
	// FeaturesFound says whether stored features were used; without them
	// every input is missing and the score is the model's prior.
	FeaturesFound bool `json:"features_found"`
	// TopFeatures are the inputs that moved the score most (as in pipeline
	// alerts): at most five, largest contribution by magnitude first.
	TopFeatures []sinks.FeatureContribution `json:"top_features"`
}

// counts are one invocation's metrics.
type counts struct {
	scored, highRisk, featuresMissing, poison, failures, skipped int
}

// deadlineMargin is how long before the invocation's deadline the function
// stops waiting on AWS calls, so it still answers (a Kinesis batch's
// partial failures, a direct caller's error) instead of timing out, which
// would retry a whole batch or leave the caller with "Task timed out".
func deadlineMargin(remaining time.Duration) time.Duration {
	return min(max(remaining/10, 100*time.Millisecond), 2*time.Second)
}

// Invoke handles one invocation: a login event sent directly, or a batch
// from a Kinesis event source mapping (an object with "Records"). It
// implements the aws-lambda-go Handler interface.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	start := time.Now()
	log := h.log
	var requestID string
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		requestID = lc.AwsRequestID
		log = log.With("request_id", requestID)
	}
	work := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(ctx, dl.Add(-deadlineMargin(time.Until(dl))))
		defer cancel()
	}
	var c counts
	shape := "direct"
	out, err := func() ([]byte, error) {
		inv, err := decodeInvocation(payload)
		if err != nil {
			c.poison++
			return nil, err
		}
		if inv.kinesis != nil {
			shape = "kinesis"
			resp := h.batch(work, log, inv.kinesis, &c)
			return json.Marshal(resp)
		}
		resp, err := h.direct(work, log, inv.direct, &c)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}()
	if err != nil {
		log.Warn("invocation failed", "shape", shape, "err", err)
	}
	if werr := h.writeMetrics(shape, requestID, c); werr != nil {
		log.Error("writing the metrics line", "err", werr)
	}
	log.Debug("invocation done", "shape", shape, "seconds", time.Since(start).Seconds())
	return out, err
}

// direct scores one login event and answers with the score.
func (h *Handler) direct(ctx context.Context, log *slog.Logger, obj map[string]json.RawMessage, c *counts) (*Response, error) {
	ev, err := eventFromObject(obj, h.fields)
	if err != nil {
		c.poison++
		return nil, err
	}
	if !ev.login {
		c.skipped++
		return nil, &EventError{Field: h.cfg.TypeField, Reason: fmt.Sprintf("%q is not a login (want %q)", ev.typ, h.cfg.LoginValue), cause: ErrNotLogin}
	}
	item, err := h.getItem(ctx, ev.entity)
	if err != nil {
		c.failures++
		return nil, &UnavailableError{Err: err}
	}
	st := h.storedOrMissing(log, ev.entity, item)
	var s scorer.Scratch
	score, err := h.score1(st.x, &s)
	if err != nil {
		c.failures++
		return nil, err
	}
	c.scored++
	if !st.fresh {
		c.featuresMissing++
	}
	r := &Response{
		Entity: ev.entity, Score: score, ModelVersion: h.model.Version(), Threshold: h.cfg.Threshold,
		HighRisk: score >= h.cfg.Threshold, FeaturesFound: st.fresh, TopFeatures: h.topFeatures(st.x, &s),
	}
	if r.HighRisk {
		c.highRisk++
	}
	if st.fresh {
		we := st.windowEnd
		r.FeaturesWindowEnd = &we
	}
	return r, nil
}

// storedOrMissing decodes an item, treating a damaged one as missing
// features (logged): refusing to score would block a stream's shard on an
// item the pipeline will overwrite with its next window.
func (h *Handler) storedOrMissing(log *slog.Logger, entity string, item map[string]ddbtypes.AttributeValue) stored {
	st, err := h.decodeItem(item, h.now())
	if err != nil {
		log.Warn("feature table item unreadable; scoring with missing features", "table", h.cfg.FeatureTable, "feature_set", h.cfg.FeatureSet, "err", err)
		log.Debug("unreadable item's user", "entity", entity)
		for j := range st.x {
			st.x[j] = math.NaN()
		}
		st.fresh = false
	} else if st.exists && !st.fresh {
		log.Debug("stored features too old; scoring with missing features", "entity", entity, "window_end", st.windowEnd, "max_age", h.cfg.MaxFeatureAge)
	}
	return st
}

// score1 scores one row of features in model order.
func (h *Handler) score1(x []float64, s *scorer.Scratch) (float64, error) {
	cols := make([][]float64, len(x))
	for j := range x {
		cols[j] = x[j : j+1]
	}
	out := []float64{0}
	if err := h.model.Predict(cols, 1, [][]float64{out}, s); err != nil {
		return 0, err
	}
	if math.IsNaN(out[0]) || math.IsInf(out[0], 0) {
		return 0, fmt.Errorf("model %s gave a non-finite score %v", h.model.Version(), out[0])
	}
	return out[0], nil
}

// topFeatures ranks the inputs' contributions to the margin exactly as the
// pipeline's alerts do (sinks.TopFeatures), so an alert from a login reads
// like one from a window. Empty, never nil, when the model cannot explain.
func (h *Handler) topFeatures(x []float64, s *scorer.Scratch) []sinks.FeatureContribution {
	out := []sinks.FeatureContribution{}
	if h.explainErr != nil {
		return out
	}
	cs, err := h.model.Contributions(nil, x, 0, s)
	if err != nil {
		h.log.Warn("no feature contributions", "model", h.model.Version(), "err", err)
		return out
	}
	all := make([]sinks.FeatureContribution, len(h.features))
	for j, name := range h.features {
		all[j] = sinks.FeatureContribution{Feature: name, Value: x[j], Contribution: cs[j]}
	}
	if top := sinks.TopFeatures(all, sinks.MaxTopFeatures); top != nil {
		return top
	}
	return out
}
