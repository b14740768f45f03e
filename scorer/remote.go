package scorer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/sony/gobreaker/v2"

	"github.com/streamscore/streamscore/internal/retry"
	"github.com/streamscore/streamscore/scorer/remotespec"
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
	// Evicted: the target's breaker was dropped while open or half-open,
	// to make room for another target past MaxTargets. To is closed: the
	// target starts over, closed, when rows route to it again, and no
	// other event will say the open state ended.
	Evicted bool
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
	path, _ := remotespec.ParseScorePath(cfg.ScorePath, cfg.Accept) // checked above
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
			r.cfg.Metrics.request(ch.t.label, "rejected")
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

// placeholders, for strings.Join with the key.
func splitTemplate(tmpl, column string) []string {
	return strings.Split(tmpl, remotespec.TemplatePlaceholder(column))
}
