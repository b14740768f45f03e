package scorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/aws/smithy-go"
	"github.com/sony/gobreaker/v2"

	"github.com/streamscore/streamscore/internal/retry"
)

// InvokeAPI is the part of the SageMaker runtime client Remote uses
// (*sagemakerruntime.Client satisfies it).
type InvokeAPI interface {
	InvokeEndpoint(ctx context.Context, in *sagemakerruntime.InvokeEndpointInput, optFns ...func(*sagemakerruntime.Options)) (*sagemakerruntime.InvokeEndpointOutput, error)
}

// BreakerState is a circuit breaker state.
type BreakerState = gobreaker.State

// Breaker states.
const (
	BreakerClosed   = gobreaker.StateClosed
	BreakerHalfOpen = gobreaker.StateHalfOpen
	BreakerOpen     = gobreaker.StateOpen
)

// DefaultMaxRowsPerRequest is how many rows one InvokeEndpoint call carries
// at most unless configured: one slow call holds few rows back, and a
// request of wide rows stays far under the payload limit (which bounds
// every request by its encoded size as well).
const DefaultMaxRowsPerRequest = 500

// ServerlessMaxPayloadBytes is SageMaker's limit on a serverless endpoint's
// request body (4 MB, where a real-time endpoint takes MaxPayloadBytes).
const ServerlessMaxPayloadBytes = 4 * 1024 * 1024

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

// BreakerEvent reports a breaker state change. Remote logs it, exports it as
// the streamscore_scorer_breaker_state metric and hands it to
// RemoteConfig.OnBreakerChange (the pipeline wires that to the alert sink).
type BreakerEvent struct {
	// Endpoint names the breaker: the endpoint, or endpoint@model for a
	// multi-model endpoint's target model, which has a breaker of its own.
	Endpoint string
	// Target is the target model ("" for a single-model endpoint).
	Target   string
	From, To BreakerState
	At       time.Time
	// LastError is the failure that tripped the breaker, if any.
	LastError error
}

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
	// ContentType is the request body's type: ContentCSV (default),
	// ContentJSON or ContentJSONLines. Accept is the response's (default
	// the request's). A missing value is an empty CSV cell or JSON null; a
	// row holding ±Inf cannot be sent as JSON and is left unscored.
	ContentType, Accept string
	// Instance is a JSON instance's shape: InstanceArray (default),
	// InstanceFeatures (Linear Learner) or InstanceNamed.
	Instance string
	// ScorePath finds each row's score(s) in a JSON or JSON lines response
	// (see ScorePath; default DefaultJSONScorePath or
	// DefaultJSONLinesScorePath).
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
	// ServerlessMaxPayloadBytes, and the cold-start allowance is on.
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
	// (default and maximum MaxPayloadBytes, or ServerlessMaxPayloadBytes);
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

// Remote scores batches with a SageMaker endpoint (real-time, serverless or
// multi-model; CSV, JSON or JSON lines), behind a circuit breaker per
// target, so an endpoint outage never stops the stream: rows are then
// scored by the fallback model or handed back unscored.
type Remote struct {
	c       InvokeAPI
	cfg     RemoteConfig
	sem     chan struct{}
	version string
	log     *slog.Logger
	backoff retry.Policy // between the attempts of one request
	enc     *encoder
	dec     decoder
	fixed   *target // the one target without per-row routing
	router  *router // per-row routing, or nil
	targets targets
	pool    sync.Pool // *bytes.Buffer, one per request body
	scratch sync.Pool // *remoteScratch, one per Score
}

type errBox struct{ err error }

// NewRemote returns a Scorer for cfg.Endpoint.
func NewRemote(c InvokeAPI, cfg RemoteConfig) (*Remote, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("remote scorer %s: %w", cfg.Endpoint, err)
	}
	cfg.defaults()
	r := &Remote{c: c, cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), log: cfg.Logger,
		backoff: retry.Policy{Base: cfg.BackoffBase, Cap: cfg.BackoffMax, Jitter: retry.FullJitter}}
	r.enc = newEncoder(cfg.ContentType, cfg.Instance, cfg.Features)
	path, _ := ParseScorePath(cfg.ScorePath, cfg.Accept) // checked above
	r.dec = decoder{accept: cfg.Accept, path: path}
	r.version = "sagemaker:" + cfg.Endpoint
	if cfg.TargetVariant != "" {
		r.version += "/" + cfg.TargetVariant
	}
	if cfg.InferenceComponent != "" {
		r.version += ";component=" + cfg.InferenceComponent
	}
	switch {
	case cfg.TargetModelFrom != "":
		r.version += ";target_model_from=" + cfg.TargetModelFrom
		r.router = &router{column: cfg.TargetModelFrom, delimiter: []byte(cfg.TargetModelDelimiter),
			segment: cfg.TargetModelSegment, models: cfg.TargetModels, cache: map[string]route{}}
		if cfg.TargetModelTemplate != "" {
			r.router.prefix = splitTemplate(cfg.TargetModelTemplate, cfg.TargetModelFrom)
		}
		r.targets = targets{m: map[string]*target{}, max: cfg.MaxTargets}
	case cfg.TargetModel != "":
		r.version += ";target_model=" + cfg.TargetModel
		r.fixed = r.newTarget(cfg.TargetModel)
	default:
		r.fixed = r.newTarget("")
	}
	r.pool.New = func() any { return new(bytes.Buffer) }
	r.scratch.New = func() any { return &remoteScratch{gid: map[string]int32{}} }
	return r, nil
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
	if cfg.ContentType, err = ParseContentType(cfg.ContentType); err != nil {
		return fmt.Errorf("content type: %w", err)
	}
	if cfg.Accept == "" {
		cfg.Accept = cfg.ContentType
	}
	if cfg.Accept, err = ParseContentType(cfg.Accept); err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	if cfg.Instance, err = parseInstance(cfg.Instance); err != nil {
		return err
	}
	if _, err := ParseScorePath(cfg.ScorePath, cfg.Accept); err != nil {
		return err
	}
	if cfg.Outputs <= 0 {
		cfg.Outputs = 1
	}
	if cfg.Fallback != nil && cfg.Fallback.Outputs() != cfg.Outputs {
		return fmt.Errorf("fallback has %d outputs, endpoint %d", cfg.Fallback.Outputs(), cfg.Outputs)
	}
	if cfg.InferenceComponent != "" {
		if err := CheckInferenceComponent(cfg.InferenceComponent); err != nil {
			return err
		}
	}
	if cfg.TargetContainerHostname != "" {
		if err := CheckTargetContainerHostname(cfg.TargetContainerHostname); err != nil {
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
		return CheckTargetModel(cfg.TargetModel)
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
		if err := CheckTargetModel(m); err != nil {
			return fmt.Errorf("target_models[%q]: %w", k, err)
		}
	}
	if cfg.TargetModelTemplate != "" {
		return CheckTargetModelTemplate(cfg.TargetModelTemplate, cfg.TargetModelFrom)
	}
	return nil
}

// defaults fills every zero field with its default, here and only here.
func (cfg *RemoteConfig) defaults() {
	limit := MaxPayloadBytes
	if cfg.Serverless {
		limit = ServerlessMaxPayloadBytes
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

func (r *Remote) onStateChange(t *target, from, to gobreaker.State) {
	ev := BreakerEvent{Endpoint: t.label, Target: t.name, From: from, To: to, At: time.Now()}
	if b := t.lastErr.Load(); b != nil && to == gobreaker.StateOpen {
		ev.LastError = b.err
	}
	if to != gobreaker.StateOpen {
		t.timeouts.Store(0)
	}
	lvl := slog.LevelInfo
	if to == gobreaker.StateOpen {
		lvl = slog.LevelWarn
	}
	r.log.Log(context.Background(), lvl, "sagemaker endpoint circuit breaker changed state",
		"endpoint", r.cfg.Endpoint, "target_model", t.name, "from", from.String(), "to", to.String(), "cause", ev.LastError)
	r.cfg.Metrics.breaker(t.label, float64(to), to.String())
	if r.cfg.OnBreakerChange != nil {
		r.cfg.OnBreakerChange(ev)
	}
}

// State returns the breaker's state; with per-row target models, the most
// severe state among them (open, then half-open, then closed).
func (r *Remote) State() BreakerState {
	if r.fixed != nil {
		return r.fixed.cb.State()
	}
	worst := BreakerClosed
	r.targets.mu.Lock()
	defer r.targets.mu.Unlock()
	for _, t := range r.targets.m {
		switch s := t.cb.State(); {
		case s == BreakerOpen:
			return s
		case s == BreakerHalfOpen:
			worst = s
		}
	}
	return worst
}

// TargetState returns the breaker state of a per-row target model; false
// if no breaker is kept for it (never routed to, or evicted).
func (r *Remote) TargetState(model string) (BreakerState, bool) {
	if r.fixed != nil {
		return r.fixed.cb.State(), r.fixed.name == model
	}
	r.targets.mu.Lock()
	defer r.targets.mu.Unlock()
	if t := r.targets.m[model]; t != nil {
		return t.cb.State(), true
	}
	return BreakerClosed, false
}

// Outputs is the number of scores per row.
func (r *Remote) Outputs() int { return r.cfg.Outputs }

// chunk is the rows of one request: sent[lo:hi] of its Score's scratch.
type chunk struct {
	t      *target
	lo, hi int
	body   *bytes.Buffer
	err    error
}

// remoteScratch is one Score call's working memory, pooled.
type remoteScratch struct {
	order, sent, tid, misses []int32
	groups                   []group
	gid                      map[string]int32
	chunks                   []chunk
	line, keyBuf             []byte
}

// Score implements Scorer. Rows are grouped per target model and sent in
// requests of up to MaxRowsPerRequest rows and MaxPayloadBytes encoded,
// concurrently within the concurrency limit. Rows of requests that fail
// (after retries, or at once while their breaker is open), and rows that
// cannot be sent (no target model, a value the content type cannot carry,
// a row over the payload limit alone) are scored by the fallback and
// marked SourceFallback, or else marked SourceNone; res.Err says why.
func (r *Remote) Score(ctx context.Context, rec arrow.RecordBatch, res *Result) error {
	n := int(rec.NumRows())
	res.reset(n, r.cfg.Outputs)
	res.Version = r.version
	cols, err := res.bindColumns(rec, r.cfg.Features)
	if err != nil {
		return fmt.Errorf("remote scorer %s: %w", r.cfg.Endpoint, err)
	}
	sc := r.scratch.Get().(*remoteScratch)
	defer r.scratch.Put(sc)
	failed, err := r.route(rec, n, sc)
	if err != nil {
		return err
	}
	if encErr := r.encode(cols, sc); failed == nil {
		failed = encErr
	}
	var wg sync.WaitGroup
	for i := range sc.chunks {
		ch := &sc.chunks[i]
		if ch.t.cb.State() == gobreaker.StateOpen {
			ch.err = fmt.Errorf("endpoint %s: %w", ch.t.label, gobreaker.ErrOpenState)
			r.cfg.Metrics.request("rejected")
			continue
		}
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			ch.err = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-r.sem }()
			ch.err = r.call(ctx, ch, sc.sent[ch.lo:ch.hi], res)
		}()
	}
	wg.Wait()
	for i := range sc.chunks {
		r.pool.Put(sc.chunks[i].body)
		sc.chunks[i].body = nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	scored := 0
	for _, ch := range sc.chunks {
		if ch.err != nil {
			failed = ch.err
			continue
		}
		for _, i := range sc.sent[ch.lo:ch.hi] {
			res.Source[i] = SourcePrimary
		}
		scored += ch.hi - ch.lo
	}
	r.cfg.Metrics.rows(SourcePrimary, scored)
	if scored == n {
		return nil
	}
	for i, s := range res.Source {
		if s == SourceNone {
			res.markUnscored(i, i+1)
		}
	}
	res.Err = failed
	if r.cfg.Fallback == nil {
		r.cfg.Metrics.rows(SourceNone, n-scored)
		return nil
	}
	fb := res.auxResult()
	if err := r.cfg.Fallback.Score(ctx, rec, fb); err != nil {
		r.cfg.Metrics.rows(SourceNone, n-scored)
		res.Err = fmt.Errorf("%w; fallback failed too: %w", failed, err)
		return nil
	}
	res.FallbackVersion = fb.Version
	for i := range n {
		if res.Source[i] == SourceNone && fb.Source[i] != SourceNone {
			res.Source[i] = SourceFallback
			for k := range res.Scores {
				res.Scores[k][i] = fb.Scores[k][i]
			}
		}
	}
	r.cfg.Metrics.rows(SourceFallback, res.Count(SourceFallback))
	r.cfg.Metrics.rows(SourceNone, res.Count(SourceNone))
	return nil
}

// encode writes each group's rows into request bodies (sc.chunks), each
// within MaxRowsPerRequest rows and MaxPayloadBytes bytes, the body's
// framing included. A row that cannot be sent is left out, and the error
// returned says why.
func (r *Remote) encode(cols [][]float64, sc *remoteScratch) error {
	var rowErr error
	sc.chunks = sc.chunks[:0]
	sc.sent = grow(sc.sent, len(sc.order))[:0]
	limit := r.cfg.MaxPayloadBytes
	for _, g := range sc.groups {
		cur := chunk{t: g.t, lo: len(sc.sent), hi: len(sc.sent)}
		for _, i := range sc.order[g.lo:g.hi] {
			var bad int
			sc.line, bad = r.enc.row(sc.line[:0], cols, int(i))
			switch {
			case bad >= 0:
				if rowErr == nil {
					rowErr = fmt.Errorf("endpoint %s: row %d: feature %s is %v, which %s cannot carry", r.cfg.Endpoint, i, r.cfg.Features[bad], cols[bad][i], r.cfg.ContentType)
				}
				continue
			case len(sc.line)+r.enc.overhead() > limit:
				if rowErr == nil {
					rowErr = fmt.Errorf("endpoint %s: row %d alone is %d bytes, over the %d byte payload limit", r.cfg.Endpoint, i, len(sc.line)+r.enc.overhead(), limit)
				}
				continue
			}
			rows := cur.hi - cur.lo
			if rows > 0 && (rows >= r.cfg.MaxRowsPerRequest || !r.enc.fits(cur.body.Len(), rows, len(sc.line), limit)) {
				r.enc.finish(cur.body)
				sc.chunks = append(sc.chunks, cur)
				cur = chunk{t: g.t, lo: len(sc.sent), hi: len(sc.sent)}
				rows = 0
			}
			if cur.body == nil {
				cur.body = r.pool.Get().(*bytes.Buffer)
				cur.body.Reset()
			}
			r.enc.add(cur.body, rows, sc.line)
			sc.sent = append(sc.sent, i)
			cur.hi++
		}
		if cur.hi > cur.lo {
			r.enc.finish(cur.body)
			sc.chunks = append(sc.chunks, cur)
		}
	}
	return rowErr
}

// call sends one request, retrying with jittered backoff, through its
// target's breaker.
func (r *Remote) call(ctx context.Context, ch *chunk, rows []int32, res *Result) error {
	t := ch.t
	var lastErr error
	attempts := 0
	for {
		if attempts > 0 && !retry.Sleep(ctx, r.backoff.Delay(attempts-1)) {
			return ctx.Err()
		}
		attempts++
		body, err := t.cb.Execute(func() ([]byte, error) { return r.invoke(ctx, t, ch.body.Bytes()) })
		if err == nil {
			if perr := r.dec.parse(body, rows, res.Scores); perr != nil {
				// A malformed answer is the endpoint's fault, but retrying
				// will not fix it.
				return fmt.Errorf("endpoint %s: %w", t.label, perr)
			}
			return nil
		}
		lastErr = err
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			r.cfg.Metrics.request("rejected")
			return fmt.Errorf("endpoint %s: %w", t.label, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c := classify(err); c == "client_error" {
			return fmt.Errorf("endpoint %s rejected the request: %w", t.label, err)
		}
		var nr *notReadyError
		if errors.As(err, &nr) && !nr.final {
			// Within the cold-start allowance: wait for the model, past
			// MaxAttempts (the allowance bounds it).
			continue
		}
		if attempts >= r.cfg.MaxAttempts {
			break
		}
	}
	return fmt.Errorf("endpoint %s: %d attempts failed: %w", t.label, attempts, lastErr)
}

func (r *Remote) invoke(ctx context.Context, t *target, body []byte) ([]byte, error) {
	start := time.Now()
	timeout := r.cfg.Timeout
	cold := r.cfg.ColdStartTimeout > 0 && t.cold(start.UnixNano(), r.cfg.ColdAfterIdle)
	if cold {
		timeout = max(timeout, r.cfg.ColdStartTimeout)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in := &sagemakerruntime.InvokeEndpointInput{
		EndpointName: aws.String(r.cfg.Endpoint),
		Body:         body,
		ContentType:  aws.String(r.cfg.ContentType),
		Accept:       aws.String(r.cfg.Accept),
		TargetModel:  t.model,
	}
	if r.cfg.TargetVariant != "" {
		in.TargetVariant = aws.String(r.cfg.TargetVariant)
	}
	if r.cfg.CustomAttributes != "" {
		in.CustomAttributes = aws.String(r.cfg.CustomAttributes)
	}
	if r.cfg.InferenceComponent != "" {
		in.InferenceComponentName = aws.String(r.cfg.InferenceComponent)
	}
	if r.cfg.TargetContainerHostname != "" {
		in.TargetContainerHostname = aws.String(r.cfg.TargetContainerHostname)
	}
	// Retries are ours (so the breaker and the per-call timeout see every
	// attempt), not the SDK's.
	out, err := r.c.InvokeEndpoint(cctx, in, func(o *sagemakerruntime.Options) { o.Retryer = aws.NopRetryer{} })
	if err != nil {
		now := time.Now().UnixNano()
		if cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = &timeoutError{after: timeout, cold: cold, err: err}
		}
		outcome := classify(err)
		r.cfg.Metrics.request(outcome)
		switch outcome {
		case "timeout":
			t.timeouts.Add(1)
			if cold {
				t.coldSpent.Store(true)
			}
		case "not_ready":
			err = &notReadyError{final: t.notReadyFinal(now, r.cfg.ColdStartTimeout), err: err}
		case "client_error":
		default:
			t.timeouts.Store(0)
		}
		t.lastErr.Store(&errBox{err})
		return nil, err
	}
	t.answered(time.Now().UnixNano())
	r.cfg.Metrics.request("ok")
	r.cfg.Metrics.observe(time.Since(start).Seconds())
	return out.Body, nil
}

// timeoutError marks a call that exceeded the per-call timeout.
type timeoutError struct {
	after time.Duration
	cold  bool
	err   error
}

func (e *timeoutError) Error() string {
	if e.cold {
		return fmt.Sprintf("no answer within the cold-start allowance of %v: %v", e.after, e.err)
	}
	return fmt.Sprintf("no answer within %v: %v", e.after, e.err)
}
func (e *timeoutError) Unwrap() error { return e.err }

// ErrRemoteTimeout matches (errors.Is) calls that exceeded the per-call timeout.
var ErrRemoteTimeout = errors.New("sagemaker call timed out")

func (e *timeoutError) Is(target error) bool { return target == ErrRemoteTimeout }

// notReadyError marks a ModelNotReadyException; final once the target has
// been not ready for longer than the cold-start allowance.
type notReadyError struct {
	final bool
	err   error
}

func (e *notReadyError) Error() string { return "model not ready: " + e.err.Error() }
func (e *notReadyError) Unwrap() error { return e.err }

// excluded says which failures the breaker does not count: rejections of
// our own input say nothing about the endpoint's health, the caller giving
// up neither, and a model still loading within its allowance is expected.
func excluded(err error) bool {
	var nr *notReadyError
	if errors.As(err, &nr) {
		return !nr.final
	}
	return errors.Is(err, context.Canceled) || classify(err) == "client_error"
}

// classify names the outcome of a failed call for retries, the breaker and
// metrics, from the shared classification: throttled, server_error,
// not_ready, timeout and connection errors are the endpoint's trouble and
// are retried; client_error (our request was refused as invalid, or the
// endpoint is out of reach for this account) is not. A timeout here is
// the per-call deadline only; a network timeout is a connection_error.
func classify(err error) string {
	if err == nil {
		return "ok"
	}
	var te *timeoutError
	if errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ModelNotReadyException" {
		return "not_ready"
	}
	switch retry.Classify(err) {
	case retry.Throttled:
		return "throttled"
	case retry.ServerError:
		return "server_error"
	case retry.Timeout, retry.Connection:
		return "connection_error"
	case retry.Invalid, retry.Unavailable:
		return "client_error"
	}
	return "error"
}

// splitTemplate splits a target model template at its {column}
// placeholders, for strings.Join with the key.
func splitTemplate(tmpl, column string) []string {
	return strings.Split(tmpl, "{"+column+"}")
}
