package pipeline

// Retraining requests: the drift and quality monitors' verdicts, on the
// reducer, feed one retrain.Trigger; when it asks, the request goes to
// EventBridge (docs/flywheel.md).

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/retrain"
	"github.com/streamscore/streamscore/sinks"
)

// retrainer feeds verdicts to the trigger and publishes its requests.
// Verdicts come from several monitors' goroutines: one at a time. The
// trigger's state goes to S3 after each decision that changed it and is
// read back when this worker becomes the reducer (retrain_state.go).
type retrainer struct {
	mu    sync.Mutex
	tr    *retrain.Trigger
	pub   *retrain.Publisher
	log   *slog.Logger
	store *triggerStore // nil: the state lives in memory only
}

// buildRetrainer starts the trigger of monitor.retrain, nil without one.
func (p *Pipeline) buildRetrainer(c Clients) (*retrainer, error) {
	r := p.cfg.Monitor.Retrain
	if r == nil {
		return nil, nil
	}
	if c.EventBridge == nil {
		return nil, fmt.Errorf("pipeline: monitor.retrain needs an EventBridge client")
	}
	rc := retrain.Config{Pipeline: p.cfg.Pipeline, DriftPeriods: r.DriftPeriods, QualityPeriods: r.QualityPeriods,
		Cooldown: r.Cooldown.D(), DataLookback: r.DataLookback.D()}
	if s3 := p.cfg.Sinks.S3; s3 != nil {
		rc.ResultsPrefix = "s3://" + s3.Bucket + "/" + s3.Prefix
		if l := p.cfg.Labels; l != nil {
			rc.GroundTruthPrefix = "s3://" + s3.Bucket + "/" + sinks.GroundTruthPrefix(p.cfg.Pipeline, l.Prefix)
		}
	}
	tr, err := retrain.NewTrigger(rc)
	if err != nil {
		return nil, fmt.Errorf("pipeline: monitor.retrain: %w", err)
	}
	store, err := p.newTriggerStore(c)
	if err != nil {
		return nil, err
	}
	log := p.log.With("retrain", r.EventBus)
	rt := &retrainer{tr: tr, pub: retrain.NewPublisher(c.EventBridge, retrain.PublisherOptions{EventBus: r.EventBus, Logger: log}), log: log, store: store}
	if store != nil {
		rt.attachLead(p)
	}
	return rt, nil
}

// drift feeds a drift monitor's period verdict.
func (r *retrainer) drift(ctx context.Context, window, scorer string, start, end time.Time, rep *monitor.Report, violations string) {
	if r == nil {
		return
	}
	v := retrain.DriftVerdict{Window: window, Scorers: []retrain.ScorerModel{{Scorer: scorer}}, PeriodStart: start, PeriodEnd: end, Violations: violations}
	for _, f := range rep.Features {
		v.Features = append(v.Features, retrain.Feature{Name: f.Name, Distance: f.Distance, Threshold: f.Threshold, Method: f.Method, Drifted: f.Drifted})
	}
	r.mu.Lock()
	r.loadState(ctx)
	d, err := r.tr.Drift(v)
	st, seq := r.snapshot()
	r.mu.Unlock()
	r.publish(ctx, d, err)
	r.saveState(ctx, st, seq)
}

// quality feeds a quality monitor's verdict on a served model version.
func (r *retrainer) quality(ctx context.Context, rep sinks.QualityReport) {
	if r == nil {
		return
	}
	v := retrain.QualityVerdict{Scorer: rep.Scorer, ModelVersion: rep.ModelVersion, PeriodStart: rep.PeriodStart, PeriodEnd: rep.PeriodEnd,
		Violations: rep.Violations}
	for _, m := range rep.Metrics {
		v.Metrics = append(v.Metrics, retrain.Metric{Name: m.Metric, Value: m.Value, Threshold: m.Threshold, Comparison: m.Comparison, Violated: m.Violated})
	}
	r.mu.Lock()
	r.loadState(ctx)
	d, err := r.tr.Quality(v)
	st, seq := r.snapshot()
	r.mu.Unlock()
	r.publish(ctx, d, err)
	r.saveState(ctx, st, seq)
}

// publish sends a decision's requests. A request that cannot be sent is
// logged, not retried later: the trigger counts it asked (its cooldown
// runs), and the verdicts stay in S3 for a person to act on. It goes out
// before the state is written: a reducer lost in between leaves a state
// without the request, and its successor may ask again (at least once),
// where the other order could lose the request for a whole cooldown.
func (r *retrainer) publish(ctx context.Context, d retrain.Decision, err error) {
	if err != nil {
		r.log.Error("retrain: verdict refused", "err", err)
		return
	}
	if d.Outcome != retrain.Requested {
		return
	}
	details := make([]retrain.Detail, len(d.Requests))
	for i, q := range d.Requests {
		details[i] = q
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := r.pub.Publish(ctx, details...); err != nil {
		r.log.Error("retrain: request not published", "why", d.Why, "err", err)
		return
	}
	r.log.Info("retrain: requested", "why", d.Why, "events", len(details))
}

// decided publishes a promotion decision this worker wrote, as the
// flywheel's Model Promoted (or Rolled Back) event. A failure is logged:
// the decision itself is in DynamoDB.
func (r *retrainer) decided(ctx context.Context, d promotion.Decision) {
	if r == nil {
		return
	}
	ev := retrain.NewModelDecision(d)
	if ev == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := r.pub.Publish(ctx, ev); err != nil {
		r.log.Error("retrain: decision not published", "decision", ev.Subject(), "err", err)
	}
}
