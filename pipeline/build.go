package pipeline

// Building a pipeline's parts from its configuration: the dead-letter and
// result sinks, and the scorers with their models.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/review/link"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// buildSinks starts the dead-letter queue; the result sinks are per scorer.
func (p *Pipeline) buildSinks(ctx context.Context, c Clients, o Options) error {
	sm := p.sm
	if cwc := p.cfg.Sinks.CloudWatch; cwc != nil {
		co := sinks.CloudWatchOptions{Namespace: cwc.Namespace, Pipeline: p.cfg.Pipeline, Interval: cwc.FlushInterval.D(),
			ServerTimestamps: cwc.ServerTimestamps, Metrics: sm, Logger: p.log}
		if cwc.PutMetricData {
			if c.CloudWatch == nil {
				return fmt.Errorf("pipeline: sinks.cloudwatch.put_metric_data needs a CloudWatch client")
			}
			co.Client = c.CloudWatch
		}
		switch cwc.EMF {
		case "":
		case "stdout":
			co.EMF = os.Stdout
		default:
			f, err := os.OpenFile(cwc.EMF, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("pipeline: sinks.cloudwatch.emf: %w", err)
			}
			co.EMF, p.emf = f, f
		}
		if co.Client != nil || co.EMF != nil {
			cw, err := sinks.NewCloudWatch(co)
			if err != nil {
				return fmt.Errorf("pipeline: cloudwatch sink: %w", err)
			}
			p.cw = cw
			p.sinks = append(p.sinks, cw)
		}
	}
	dl := p.cfg.Sinks.DeadLetter
	if dl == nil {
		return fmt.Errorf("pipeline: %s: sinks.dead_letter is required: undecodable records, late events and unscorable rows must go somewhere", p.cfg.File)
	}
	url, err := sinks.QueueURL(ctx, c.SQS, dl.Queue)
	if err != nil {
		return err
	}
	dopts := sinks.DeadLetterOptions{SQS: c.SQS, QueueURL: url, Metrics: sm, Logger: p.log, Prefix: "dead-letter/" + p.cfg.Pipeline + "/"}
	if dl.Bucket != "" {
		dopts.S3, dopts.Bucket = c.S3, dl.Bucket
	}
	p.dlq, err = sinks.NewDeadLetter(dopts)
	if err != nil {
		return fmt.Errorf("pipeline: dead-letter sink: %w", err)
	}
	return nil
}

// buildScorer loads the scorer's models and starts its result sinks.
func (p *Pipeline) buildScorer(ctx context.Context, s config.Scorer, c Clients, scm *scorer.Metrics, o Options) error {
	wp, ok := p.pl.windows[s.Window]
	if !ok {
		return fmt.Errorf("pipeline: %s: scorer %s reads undefined window %q", p.cfg.File, s.Name, s.Window)
	}
	stream := wp.stream
	// The embedded models behind this scorer's rows, for the contributions
	// its alerts carry.
	ex := &explainer{log: p.log.With("scorer", s.Name)}
	// The alert sink is built after the scorer; breaker events and refused
	// model reloads reach it through this holder once it exists.
	var alerts atomic.Pointer[sinks.Alerts]
	// With a promotion, the champion is scored through a switch that the
	// decision it follows can point at another model, and the challenger
	// through one its registration can (challenger.go).
	var sw, chSw *scorer.Switch
	var configured, chConfigured scorer.ModelSource
	embedded := func(model string, role modelRole) (scorer.Scorer, error) {
		m := p.cfg.Models[model]
		var src scorer.ModelSource
		if m.ReloadInterval > 0 {
			w, err := scorer.WatchModel(ctx, m.Path, scorer.WatchOptions{
				Interval: m.ReloadInterval.D(), S3: c.S3, Logger: p.log, Metrics: scm,
				Check: func(mod *scorer.Model) error { return scorer.CheckSchema(wp.schema, mod.Features()) },
				Load:  loadOptions(m), Name: model,
				OnReloadRejected: func(name string, err error) {
					p.modelRejected(s.Name, stream, name, err, alerts.Load())
				},
			})
			if err != nil {
				return nil, fmt.Errorf("pipeline: scorer %s: model %s: %w", s.Name, model, err)
			}
			p.watchers = append(p.watchers, w)
			src = w
		} else {
			mod, err := scorer.LoadModel(ctx, m.Path, c.S3, loadOptions(m)...)
			if err != nil {
				return nil, fmt.Errorf("pipeline: scorer %s: model %s: %w", s.Name, model, err)
			}
			src = mod
		}
		switch {
		case s.Promotion == nil:
		case role == roleChampion:
			configured, sw = src, scorer.NewSwitch(src)
			src = sw
		case role == roleChallenger:
			chConfigured, chSw = src, scorer.NewSwitch(src)
			src = chSw
		}
		e, err := scorer.NewEmbedded(src, wp.schema, scm)
		if err != nil {
			return nil, fmt.Errorf("pipeline: scorer %s: model %s does not fit window %s: %w", s.Name, model, s.Window, err)
		}
		ex.sources = append(ex.sources, src)
		return e, nil
	}
	var sc scorer.Scorer
	var err error
	if e := s.Endpoint; e != nil {
		if c.SageMaker == nil {
			return fmt.Errorf("pipeline: scorer %s: no SageMaker runtime client", s.Name)
		}
		var fallback scorer.Scorer
		if e.Fallback != "" {
			if fallback, err = embedded(e.Fallback, roleFallback); err != nil {
				return err
			}
		}
		var features []string
		for _, f := range wp.spec.Features {
			features = append(features, f.Name)
		}
		if s.Model != "" {
			// The endpoint serves the same model: send its features in its order.
			mod, err := scorer.LoadModel(ctx, p.cfg.Models[s.Model].Path, c.S3, loadOptions(p.cfg.Models[s.Model])...)
			if err != nil {
				return fmt.Errorf("pipeline: scorer %s: model %s: %w", s.Name, s.Model, err)
			}
			features = mod.Features()
		}
		sc, err = scorer.NewRemote(c.SageMaker, scorer.RemoteConfig{
			Endpoint: e.Name, Features: features, TargetVariant: e.Variant, CustomAttributes: e.CustomAttributes,
			ContentType: e.ContentType, Accept: e.Accept, Instance: e.Instance, ScorePath: e.ScorePath,
			InferenceComponent: e.InferenceComponent, TargetContainerHostname: e.TargetContainerHostname,
			TargetModel: e.TargetModel, TargetModelFrom: e.TargetModelFrom, TargetModelDelimiter: e.TargetModelDelimiter,
			TargetModelSegment: e.TargetModelSegment, TargetModels: e.TargetModels, TargetModelTemplate: e.TargetModelTemplate,
			MaxTargets: e.MaxTargets, Serverless: e.Serverless, ColdStartTimeout: e.ColdStartTimeout.D(), ColdAfterIdle: e.ColdAfterIdle.D(),
			Timeout: e.Timeout.D(), MaxRowsPerRequest: e.MaxRowsPerRequest, MaxPayloadBytes: e.MaxPayloadBytes, Concurrency: e.Concurrency,
			Fallback: fallback, Logger: p.log, Metrics: scm,
			OnBreakerChange: func(ev scorer.BreakerEvent) {
				p.breakerChanged(s.Name, stream, ev, alerts.Load())
			},
		})
		if err != nil {
			return fmt.Errorf("pipeline: scorer %s: %w", s.Name, err)
		}
	} else if sc, err = embedded(s.Model, roleChampion); err != nil {
		return err
	}
	plan := &scorerPlan{name: s.Name, sc: sc, outputs: sc.Outputs()}
	if s.Challenger != "" {
		ch, err := embedded(s.Challenger, roleChallenger)
		if err != nil {
			return err
		}
		if s.CanaryPercent > 0 {
			cn, err := scorer.NewCanary(sc, ch, wp.schema.Field(0).Name, s.CanaryPercent)
			if err != nil {
				return fmt.Errorf("pipeline: scorer %s: %w", s.Name, err)
			}
			plan.sc = cn
		} else {
			plan.sc = &scorer.Shadow{Champion: sc, Challenger: ch, Logger: p.log}
			plan.shadow = ch.Outputs()
		}
	}
	var pr *promoter
	if sw != nil {
		load := func(ctx context.Context, m promotion.Model) (*scorer.Watcher, error) {
			return p.watchDecided(ctx, m, s, wp, c, scm, alerts.Load)
		}
		var registered *registeredChallenger
		if chSw != nil {
			if registered, err = p.newRegisteredChallenger(s, wp, chSw, chConfigured, c, o, alerts.Load); err != nil {
				return err
			}
		}
		if pr, err = p.buildPromoter(ctx, s, sw, configured, load, registered, c, o); err != nil {
			return err
		}
		p.promoters[s.Name] = pr
	}
	var al *sinks.Alerts
	if plan.sink, al, err = p.resultSinks(ctx, s, stream, c, o, ex); err != nil {
		return err
	}
	if pr != nil && al != nil {
		pr.alert = func(a sinks.Alert) { p.notify(al, a, s.Name) }
	}
	alerts.Store(al)
	p.pl.addScorer(wp, plan)
	return nil
}

// resultSinks starts the sinks a scorer's results go to, teed.
func (p *Pipeline) resultSinks(ctx context.Context, s config.Scorer, stream string, c Clients, o Options, ex *explainer) (sinks.Sink, *sinks.Alerts, error) {
	sm := p.sm
	var out []sinks.Sink
	add := func(sk sinks.Sink, err error, what string) error {
		if err != nil {
			return fmt.Errorf("pipeline: scorer %s: %s sink: %w", s.Name, what, err)
		}
		out = append(out, sk)
		p.sinks = append(p.sinks, sk)
		return nil
	}
	if c3 := p.cfg.Sinks.S3; c3 != nil {
		sk, err := sinks.NewS3(sinks.S3Options{
			Client: c.S3, Bucket: c3.Bucket, Prefix: c3.Prefix + s.Name + "/",
			RollBytes: int64(c3.RollMiB) << 20, RollAge: c3.RollAge.D(), SpoolDir: o.SpoolDir,
			ZstdLevel: c3.ZstdLevel, FloatEncoding: sinks.FloatEncoding(c3.FloatEncoding), FeatureStats: c3.FeatureStats,
			Metrics: sm, Logger: p.log,
		})
		if err := add(sk, err, "s3"); err != nil {
			return nil, nil, err
		}
	}
	if ft := p.cfg.Sinks.FeatureTable; ft != nil {
		sk, err := sinks.NewFeatureTable(sinks.FeatureTableOptions{
			Client: c.DynamoDB, Table: ft.Table, TTL: ft.TTL.D(), Metrics: sm, Logger: p.log,
			FeatureSet: sinks.FeatureSet(p.cfg.Pipeline, s.Window), DeadLetters: p.dlq,
		})
		if err := add(sk, err, "feature table"); err != nil {
			return nil, nil, err
		}
	}
	if p.cw != nil {
		out = append(out, p.cw) // shared: already in p.sinks
	}
	var al *sinks.Alerts
	var rules []sinks.AlertRule
	mw, monitored := p.monitoredBy(s)
	if monitored {
		rules = append(rules, p.driftRules(mw.Window)...)
	}
	qm, judged := p.qualityOf(s)
	if judged {
		rules = append(rules, p.qualityRules(s.Name)...)
	}
	for _, r := range p.cfg.Alerts.Rules {
		if r.Scorer != s.Name || r.Drift != "" {
			continue
		}
		rules = append(rules, sinks.AlertRule{
			Name: r.Name, Stream: stream, FireAfter: r.FireAfter, ClearAfter: r.ClearAfter, Cooldown: r.Cooldown.D(),
			Levels: []sinks.AlertLevel{{Severity: r.Severity, Threshold: r.Threshold}},
		})
	}
	if len(rules) > 0 {
		arn, err := sinks.TopicARN(ctx, c.SNS, p.cfg.Alerts.Topic)
		if err != nil {
			return nil, nil, err
		}
		ao := sinks.AlertOptions{Client: c.SNS, TopicARN: arn, Rules: rules, Metrics: sm, Logger: p.log, DeadLetters: p.dlq}
		if len(ex.sources) > 0 {
			ao.Explain = ex.explain
		}
		if ao.Review, err = p.reviewOptions(ctx, c, rules); err != nil {
			return nil, nil, err
		}
		sk, err := sinks.NewAlerts(ao)
		al = sk
		if err := add(sk, err, "alerts"); err != nil {
			return nil, nil, err
		}
	}
	if monitored {
		mon, err := p.buildMonitor(ctx, mw, s, stream, c, o, al)
		if err != nil {
			return nil, nil, err
		}
		// Closed first: its last verdicts go out through the alert sink.
		out, p.sinks = append(out, mon), append([]sinks.Sink{mon}, p.sinks...)
		st := p.pl.streams[stream]
		st.monitors = append(st.monitors, mon)
		st.reducers = append(st.reducers, mon)
	}
	if judged {
		qmon, err := p.buildQuality(ctx, qm, s, stream, c, o, al)
		if err != nil {
			return nil, nil, err
		}
		p.quality = append(p.quality, qmon)
		st := p.pl.streams[stream]
		st.reducers = append(st.reducers, qmon)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("pipeline: scorer %s: no sink configured for its results (sinks.s3, sinks.feature_table or an alert rule)", s.Name)
	}
	if len(out) == 1 {
		return out[0], al, nil
	}
	return sinks.Tee(out...), al, nil
}

// loadOptions are a model's pins and limits, as configured.
func loadOptions(m *config.Model) []scorer.LoadOption {
	opts := []scorer.LoadOption{scorer.WithLimits(scorer.ModelLimits(m.Limits)), scorer.WithKind(m.Format)}
	if m.SHA256 != "" {
		opts = append(opts, scorer.WithSHA256(m.SHA256))
	}
	if m.VersionID != "" {
		opts = append(opts, scorer.WithVersionID(m.VersionID))
	}
	return opts
}

// reviewOptions are alerts.review as one scorer's alert sink takes it:
// the reviewed rules among its own (nil when it has none).
func (p *Pipeline) reviewOptions(ctx context.Context, c Clients, rules []sinks.AlertRule) (*sinks.ReviewOptions, error) {
	rv := p.cfg.Alerts.Review
	if rv == nil {
		return nil, nil
	}
	var names []string
	for _, r := range rules {
		if r.Drift == "" && r.Quality == "" && (len(rv.Rules) == 0 || slices.Contains(rv.Rules, r.Name)) {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	o := &sinks.ReviewOptions{Rules: names}
	if rv.Link != "" {
		tpl, err := link.Parse(rv.Link)
		if err != nil {
			return nil, fmt.Errorf("pipeline: alerts.review.link: %w", err)
		}
		o.Link = tpl
	}
	if rv.Queue != "" {
		if c.SQS == nil {
			return nil, fmt.Errorf("pipeline: alerts.review.queue needs an SQS client")
		}
		url, err := sinks.QueueURL(ctx, c.SQS, rv.Queue)
		if err != nil {
			return nil, fmt.Errorf("pipeline: alerts.review.queue: %w", err)
		}
		o.Queue, o.QueueURL = c.SQS, url
	}
	return o, nil
}
