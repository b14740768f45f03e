package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/sinks"
)

// qualityOf is the quality monitor entry of a scorer, if it has one.
func (p *Pipeline) qualityOf(s config.Scorer) (config.QualityMonitor, bool) {
	for _, q := range p.cfg.Monitor.Quality {
		if q.Scorer == s.Name {
			return q, true
		}
	}
	return config.QualityMonitor{}, false
}

// qualityRules are the alert rules that judge a scorer's model quality.
func (p *Pipeline) qualityRules(scorer string) []sinks.AlertRule {
	return p.periodRules(func(r config.Rule) bool { return r.Quality == scorer }, func(r *sinks.AlertRule) { r.Quality = scorer })
}

// buildQuality starts the quality monitor of a scorer. Its constraints
// are read now: a monitor told to judge against a file it cannot read
// stops the build, naming the file.
func (p *Pipeline) buildQuality(ctx context.Context, qm config.QualityMonitor, s config.Scorer, stream string, c Clients, o Options, al *sinks.Alerts) (*qualityMonitor, error) {
	if c.S3 == nil {
		return nil, fmt.Errorf("pipeline: quality monitor of scorer %s: no S3 client", s.Name)
	}
	qc := qualityConfig{
		pipeline: p.cfg.Pipeline, scorer: s.Name, stream: stream,
		problem: dataset.ProblemBinary, opts: quality.Options{Threshold: qm.Threshold}, horizon: qm.Horizon.D(),
		s3: c.S3, bucket: p.cfg.Sinks.S3.Bucket, results: p.cfg.Sinks.S3.Prefix + s.Name + "/",
		labels: sinks.GroundTruthPrefix(p.cfg.Pipeline, p.cfg.Labels.Prefix),
		obs:    p.obs, log: p.log.With("quality", s.Name), now: o.Now,
	}
	if qm.Problem == string(dataset.ProblemRegression) {
		qc.problem = dataset.ProblemRegression
	}
	if err := qc.opts.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: quality monitor of scorer %s: %w", s.Name, err)
	}
	if qm.Constraints != "" {
		cons, err := dataset.LoadQualityBaseline(ctx, c.S3, qm.Constraints)
		if err != nil {
			return nil, fmt.Errorf("pipeline: quality monitor of scorer %s: constraints: %w", s.Name, err)
		}
		qc.constraints = cons
	}
	qc.period, qc.settle, _ = p.monitorTiming()
	if qc.delay = p.cfg.Labels.Delay.D(); qc.delay <= 0 {
		qc.delay = DefaultLabelsDelay
	}
	qc.out = QualityPrefix(p.cfg, s.Name)
	// A window's rows sit in the partition of its start: a period's rows
	// may have started a window's size before it. A session has no size:
	// a day is looked back, the longest session the layout serves.
	spec := p.pl.windows[s.Window].spec
	qc.span = max(spec.Size, spec.Slide)
	if qc.span <= 0 {
		qc.span = 24 * time.Hour
	}
	qc.promoter, qc.retrain = p.promoters[s.Name], p.retrain
	if al != nil && len(p.qualityRules(s.Name)) > 0 {
		qc.alerts = al
	}
	return newQualityMonitor(qc), nil
}
