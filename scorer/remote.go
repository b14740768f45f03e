package scorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
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

// BreakerEvent reports a breaker state change. Remote logs it, exports it as
// the streamscore_scorer_breaker_state metric and hands it to
// DefaultMaxRowsPerRequest is how many rows one InvokeEndpoint call carries
// at most unless configured: small enough that a request of wide rows stays
// well under the 6 MB payload limit and one slow call holds few rows back.
const DefaultMaxRowsPerRequest = 500

// RemoteConfig.OnBreakerChange (the pipeline wires that to the alert sink).
type BreakerEvent struct {
	Endpoint string
	From, To BreakerState
	At       time.Time
	// LastError is the failure that tripped the breaker, if any.
	LastError error
}

// BreakerConfig tunes the circuit breaker around the endpoint. Zero fields
// take the defaults shown.
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

// RemoteConfig configures a SageMaker real-time endpoint scorer.
type RemoteConfig struct {
	// Endpoint is the endpoint name. Required.
	Endpoint string
	// Features are the columns sent, in the order the endpoint's model
	// takes them (the CSV has no header). Required.
	Features []string
	// Outputs is the number of scores per row the endpoint returns
	// (default 1; the class count for multi:softprob).
	Outputs int
	// TargetVariant and CustomAttributes are passed through to every call.
	TargetVariant, CustomAttributes string
	// MaxPayloadBytes bounds one request body (default and maximum 6 MB);
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

// Remote scores batches with a SageMaker real-time endpoint (text/csv, as
// the built-in XGBoost container takes), behind a circuit breaker, so an
// endpoint outage never stops the stream: rows are then scored by the
// fallback model or handed back unscored.
type Remote struct {
	c       InvokeAPI
	cfg     RemoteConfig
	cb      *gobreaker.CircuitBreaker[[]byte]
	sem     chan struct{}
	version string
	log     *slog.Logger
	backoff retry.Policy // between the attempts of one request

	timeouts atomic.Uint32 // consecutive timeouts
	lastErr  atomic.Pointer[errBox]
	pool     sync.Pool // *bytes.Buffer
}

type errBox struct{ err error }

// NewRemote returns a Scorer for cfg.Endpoint.
func NewRemote(c InvokeAPI, cfg RemoteConfig) (*Remote, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("remote scorer: endpoint name is required")
	}
	if len(cfg.Features) == 0 {
		return nil, errors.New("remote scorer: the endpoint's feature order (features) is required")
	}
	if cfg.Outputs <= 0 {
		cfg.Outputs = 1
	}
	if cfg.Fallback != nil && cfg.Fallback.Outputs() != cfg.Outputs {
		return nil, fmt.Errorf("remote scorer: fallback has %d outputs, endpoint %d", cfg.Fallback.Outputs(), cfg.Outputs)
	}
	if cfg.MaxPayloadBytes <= 0 || cfg.MaxPayloadBytes > MaxPayloadBytes {
		cfg.MaxPayloadBytes = MaxPayloadBytes
	}
	if cfg.MaxRowsPerRequest <= 0 {
		cfg.MaxRowsPerRequest = DefaultMaxRowsPerRequest
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
	r := &Remote{c: c, cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), log: cfg.Logger,
		backoff: retry.Policy{Base: cfg.BackoffBase, Cap: cfg.BackoffMax, Jitter: retry.FullJitter}}
	r.version = "sagemaker:" + cfg.Endpoint
	if cfg.TargetVariant != "" {
		r.version += "/" + cfg.TargetVariant
	}
	r.pool.New = func() any { return new(bytes.Buffer) }
	r.cb = gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
		Name:         cfg.Endpoint,
		MaxRequests:  b.HalfOpenProbes,
		Interval:     b.Interval,
		BucketPeriod: b.Interval / 6,
		Timeout:      b.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= b.ConsecutiveFailures ||
				(c.Requests >= b.MinRequests && float64(c.TotalFailures) >= b.FailureRatio*float64(c.Requests)) ||
				r.timeouts.Load() >= b.ConsecutiveTimeouts
		},
		// Rejections of our own input say nothing about the endpoint's
		// health, and neither does the caller giving up.
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || classify(err) == "client_error"
		},
		OnStateChange: r.onStateChange,
	})
	cfg.Metrics.breaker(cfg.Endpoint, 0, "closed")
	return r, nil
}

func (r *Remote) onStateChange(name string, from, to gobreaker.State) {
	ev := BreakerEvent{Endpoint: name, From: from, To: to, At: time.Now()}
	if b := r.lastErr.Load(); b != nil && to == gobreaker.StateOpen {
		ev.LastError = b.err
	}
	if to != gobreaker.StateOpen {
		r.timeouts.Store(0)
	}
	lvl := slog.LevelInfo
	if to == gobreaker.StateOpen {
		lvl = slog.LevelWarn
	}
	r.log.Log(context.Background(), lvl, "sagemaker endpoint circuit breaker changed state",
		"endpoint", name, "from", from.String(), "to", to.String(), "cause", ev.LastError)
	r.cfg.Metrics.breaker(name, float64(to), to.String())
	if r.cfg.OnBreakerChange != nil {
		r.cfg.OnBreakerChange(ev)
	}
}

// State returns the breaker's current state.
func (r *Remote) State() BreakerState { return r.cb.State() }

// Outputs is the number of scores per row.
func (r *Remote) Outputs() int { return r.cfg.Outputs }

// chunk is a contiguous run of rows sent in one request.
type chunk struct {
	lo, hi int
	body   *bytes.Buffer
	err    error
}

// Score implements Scorer. Rows are sent in requests of up to
// MaxRowsPerRequest rows and MaxPayloadBytes, concurrently within the
// concurrency limit. Rows of requests that fail (after retries, or at once
// while the breaker is open) are scored by the fallback and marked
// SourceFallback, or else marked SourceNone; res.Err says why.
func (r *Remote) Score(ctx context.Context, rec arrow.RecordBatch, res *Result) error {
	n := int(rec.NumRows())
	res.reset(n, r.cfg.Outputs)
	res.Version = r.version
	cols, err := res.bindColumns(rec, r.cfg.Features)
	if err != nil {
		return fmt.Errorf("remote scorer %s: %w", r.cfg.Endpoint, err)
	}
	chunks, err := r.encode(cols, n)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := range chunks {
		ch := &chunks[i]
		if r.cb.State() == gobreaker.StateOpen {
			ch.err = fmt.Errorf("endpoint %s: %w", r.cfg.Endpoint, gobreaker.ErrOpenState)
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
			ch.err = r.call(ctx, ch, res)
		}()
	}
	wg.Wait()
	for i := range chunks {
		r.pool.Put(chunks[i].body)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var failed error
	failedRows := 0
	for _, ch := range chunks {
		if ch.err != nil {
			failed = ch.err
			res.markUnscored(ch.lo, ch.hi)
			failedRows += ch.hi - ch.lo
		} else {
			for i := ch.lo; i < ch.hi; i++ {
				res.Source[i] = SourcePrimary
			}
		}
	}
	r.cfg.Metrics.rows(SourcePrimary, n-failedRows)
	if failed == nil {
		return nil
	}
	res.Err = failed
	if r.cfg.Fallback == nil {
		r.cfg.Metrics.rows(SourceNone, failedRows)
		return nil
	}
	fb := res.auxResult()
	if err := r.cfg.Fallback.Score(ctx, rec, fb); err != nil {
		r.cfg.Metrics.rows(SourceNone, failedRows)
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

// encode writes the rows as headerless CSV, split into requests.
func (r *Remote) encode(cols [][]float64, n int) ([]chunk, error) {
	var chunks []chunk
	var line []byte
	cur := chunk{body: r.pool.Get().(*bytes.Buffer)}
	cur.body.Reset()
	for i := range n {
		line = line[:0]
		for j := range cols {
			if j > 0 {
				line = append(line, ',')
			}
			if v := cols[j][i]; !math.IsNaN(v) {
				line = strconv.AppendFloat(line, v, 'g', -1, 64)
			}
		}
		line = append(line, '\n')
		if len(line) > r.cfg.MaxPayloadBytes {
			return nil, fmt.Errorf("remote scorer %s: row %d alone is %d bytes, over the payload limit", r.cfg.Endpoint, i, len(line))
		}
		if cur.hi > cur.lo && (cur.body.Len()+len(line) > r.cfg.MaxPayloadBytes || cur.hi-cur.lo >= r.cfg.MaxRowsPerRequest) {
			chunks = append(chunks, cur)
			cur = chunk{lo: i, hi: i, body: r.pool.Get().(*bytes.Buffer)}
			cur.body.Reset()
		}
		cur.body.Write(line)
		cur.hi = i + 1
	}
	if cur.hi > cur.lo {
		chunks = append(chunks, cur)
	} else {
		r.pool.Put(cur.body)
	}
	return chunks, nil
}

// call sends one request, retrying with jittered backoff, through the breaker.
func (r *Remote) call(ctx context.Context, ch *chunk, res *Result) error {
	var lastErr error
	for attempt := 0; attempt < r.cfg.MaxAttempts; attempt++ {
		if attempt > 0 && !retry.Sleep(ctx, r.backoff.Delay(attempt-1)) {
			return ctx.Err()
		}
		body, err := r.cb.Execute(func() ([]byte, error) { return r.invoke(ctx, ch.body.Bytes()) })
		if err == nil {
			if perr := parseScores(body, ch.lo, ch.hi, res.Scores); perr != nil {
				// A malformed answer is the endpoint's fault, but retrying
				// will not fix it.
				return fmt.Errorf("endpoint %s: %w", r.cfg.Endpoint, perr)
			}
			return nil
		}
		lastErr = err
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			r.cfg.Metrics.request("rejected")
			return fmt.Errorf("endpoint %s: %w", r.cfg.Endpoint, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c := classify(err); c == "client_error" {
			return fmt.Errorf("endpoint %s rejected the request: %w", r.cfg.Endpoint, err)
		}
	}
	return fmt.Errorf("endpoint %s: %d attempts failed: %w", r.cfg.Endpoint, r.cfg.MaxAttempts, lastErr)
}

func (r *Remote) invoke(ctx context.Context, body []byte) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	in := &sagemakerruntime.InvokeEndpointInput{
		EndpointName: aws.String(r.cfg.Endpoint),
		Body:         body,
		ContentType:  aws.String("text/csv"),
		Accept:       aws.String("text/csv"),
	}
	if r.cfg.TargetVariant != "" {
		in.TargetVariant = aws.String(r.cfg.TargetVariant)
	}
	if r.cfg.CustomAttributes != "" {
		in.CustomAttributes = aws.String(r.cfg.CustomAttributes)
	}
	start := time.Now()
	// Retries are ours (so the breaker and the per-call timeout see every
	// attempt), not the SDK's.
	out, err := r.c.InvokeEndpoint(cctx, in, func(o *sagemakerruntime.Options) { o.Retryer = aws.NopRetryer{} })
	if err != nil {
		if cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = &timeoutError{after: r.cfg.Timeout, err: err}
		}
		outcome := classify(err)
		r.cfg.Metrics.request(outcome)
		if outcome == "timeout" {
			r.timeouts.Add(1)
		} else if outcome != "client_error" {
			r.timeouts.Store(0)
		}
		r.lastErr.Store(&errBox{err})
		return nil, err
	}
	r.timeouts.Store(0)
	r.cfg.Metrics.request("ok")
	r.cfg.Metrics.observe(time.Since(start).Seconds())
	return out.Body, nil
}

// timeoutError marks a call that exceeded the per-call timeout.
type timeoutError struct {
	after time.Duration
	err   error
}

func (e *timeoutError) Error() string { return fmt.Sprintf("no answer within %v: %v", e.after, e.err) }
func (e *timeoutError) Unwrap() error { return e.err }

// ErrRemoteTimeout matches (errors.Is) calls that exceeded the per-call timeout.
var ErrRemoteTimeout = errors.New("sagemaker call timed out")

func (e *timeoutError) Is(target error) bool { return target == ErrRemoteTimeout }

// classify names the outcome of a failed call for retries, the breaker and
// metrics, from the shared classification: throttled, server_error,
// timeout and connection errors are the endpoint's trouble and are
// retried; client_error (our request was refused as invalid, or the
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

// parseScores reads text/csv predictions for rows lo..hi into scores. It
// accepts one line per row (classes comma-separated) as well as the single
// comma-separated line SageMaker's XGBoost container returns for real-time
// requests.
func parseScores(body []byte, lo, hi int, scores [][]float64) error {
	k := len(scores)
	want := (hi - lo) * k
	idx := 0
	for len(body) > 0 {
		var tok []byte
		j := bytes.IndexAny(body, ",\n")
		if j < 0 {
			tok, body = body, nil
		} else {
			tok, body = body[:j], body[j+1:]
		}
		tok = bytes.Trim(tok, " \r\t[]")
		if len(tok) == 0 {
			continue
		}
		if idx >= want {
			return fmt.Errorf("response has more than %d values for %d rows", want, hi-lo)
		}
		v, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return fmt.Errorf("response value %d: %q is not a number", idx, tok)
		}
		scores[idx%k][lo+idx/k] = v
		idx++
	}
	if idx != want {
		return fmt.Errorf("response has %d values, want %d (%d rows x %d outputs)", idx, want, hi-lo, k)
	}
	return nil
}
