package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/consumer/assign"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// Options are the optional parts of a Pipeline.
type Options struct {
	// Logger receives the pipeline's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer receives every metric, labelled pipeline=<name> so that
	// several pipelines can share one registry; default: a private registry.
	Registerer prometheus.Registerer
	// WorkerID names this worker in the lease table; default: host name
	// plus a random suffix (the consumer's default).
	WorkerID string
	// Now is the processing-time clock; default time.Now.
	Now func() time.Time
	// Consumer overrides parts of the consumer configuration built from the
	// config file (renewal and sync intervals, for tests); zero fields keep
	// the config's values.
	Consumer consumer.Config
	// SpoolDir holds Parquet files being written; default os.TempDir().
	SpoolDir string
}

// Pipeline is one configured scoring pipeline: a consumer over the config's
// streams and, per shard, decode → windows → scorers → sinks.
type Pipeline struct {
	cfg  *config.Config
	pl   *plan
	log  *slog.Logger
	cons *consumer.Consumer
	// obs takes every count; prom is its Prometheus part, which the status
	// line reads.
	obs  Observer
	prom *promObserver
	sm   *sinks.Metrics
	// deps is what each shard's chain is built with.
	deps *shardDeps

	dlq *sinks.DeadLetter
	// quality are the quality monitors, stopped before the sinks (their
	// alerts go out through a scorer's alert sink).
	quality []*qualityMonitor
	// promoters follow (and, on the reducer, make) each promoted
	// scorer's champion decision, by scorer.
	promoters map[string]*promoter
	// retrain asks for retraining on the monitors' verdicts; nil without
	// monitor.retrain.
	retrain *retrainer
	// sinks are closed on shutdown.
	sinks    []sinks.Sink
	watchers []*scorer.Watcher
	// cw is shared by every scorer's results and also takes the pipeline's
	// own counts; nil without a CloudWatch sink.
	cw  *sinks.CloudWatch
	emf io.Closer

	running atomic.Bool
}

// New builds the pipeline the configuration describes: it plans the chain
// (schemas and windows as the windowing package judges them), then loads
// every model (a model that needs a feature its window does not compute is
// an error here, not at scoring time), starts the sinks and prepares the
// consumer. Close releases what New started if Run is never called.
func New(ctx context.Context, cfg *config.Config, c Clients, o Options) (*Pipeline, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	pl, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": cfg.Pipeline}, o.Registerer)
	log := o.Logger.With("pipeline", cfg.Pipeline)
	p := &Pipeline{cfg: cfg, pl: pl, log: log, promoters: map[string]*promoter{}}
	ok := false
	defer func() {
		if !ok {
			_ = p.Close(context.WithoutCancel(ctx))
		}
	}()
	if p.prom, err = newPromObserver(reg); err != nil {
		return nil, err
	}
	if p.sm, err = sinks.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	scm, err := scorer.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if err := p.buildSinks(ctx, c, o); err != nil {
		return nil, err
	}
	if err := p.buildLabels(c); err != nil {
		return nil, err
	}
	p.obs = p.prom
	if p.cw != nil {
		p.obs = observers{p.prom, cloudWatchObserver{p.cw}}
	}
	if err := p.checkRetention(ctx, c.Kinesis); err != nil {
		return nil, err
	}
	if p.retrain, err = p.buildRetrainer(c); err != nil {
		return nil, err
	}
	for _, s := range cfg.Scorers {
		if err := p.buildScorer(ctx, s, c, scm, o); err != nil {
			return nil, err
		}
	}
	p.deps = &shardDeps{streams: pl.streams, tails: c.Kinesis, dlq: p.dlq, obs: p.obs, log: log, now: o.Now}
	if p.cons, err = p.buildConsumer(c, reg, o); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

func (p *Pipeline) buildConsumer(c Clients, reg prometheus.Registerer, o Options) (*consumer.Consumer, error) {
	cc := p.cfg.Consumer
	ccfg := consumer.Config{
		ApplicationName:    cc.Application,
		LeaseTable:         cc.LeaseTable,
		WorkerID:           cc.WorkerID,
		FailoverTime:       cc.FailoverTime.D(),
		MaxLeasesPerWorker: cc.MaxLeasesPerWorker,
		MaxRecords:         int32(cc.MaxRecords),
		IdleInterval:       cc.IdleInterval.D(),
		FanOut:             cc.Retrieval == "fanout",
		FanOutConsumerName: cc.ConsumerName,
	}
	ccfg.KCL3.HandoffTimeout = cc.HandoffTimeout.D()
	switch cc.ClientVersion {
	case "3x":
		ccfg.ClientVersion = consumer.ClientVersion3X
	case "2x-compatible":
		ccfg.ClientVersion = consumer.ClientVersionCompatibleWith2X
	}
	ccfg.KCL3.DisableWorkerMetrics = cc.ReportCPU != nil && !*cc.ReportCPU
	if cc.LeaseAssignment == "lease_count_based" {
		ccfg.KCL3.Assign.Strategy = assign.LeaseCountBased
	}
	if o.WorkerID != "" {
		ccfg.WorkerID = o.WorkerID
	}
	if v := o.Consumer.RenewInterval; v > 0 {
		ccfg.RenewInterval = v
	}
	if v := o.Consumer.ShardSyncInterval; v > 0 {
		ccfg.ShardSyncInterval = v
	}
	if v := o.Consumer.FailoverTime; v > 0 {
		ccfg.FailoverTime = v
	}
	if v := o.Consumer.ParentPollInterval; v > 0 {
		ccfg.ParentPollInterval = v
	}
	if v := o.Consumer.IdleHeartbeat; v > 0 {
		ccfg.IdleHeartbeat = v
	}
	if ccfg.IdleHeartbeat == 0 {
		// Windows close on processing time when a shard goes quiet; the
		// handler must hear from the consumer even without records.
		ccfg.IdleHeartbeat = time.Second
	}
	for _, s := range p.cfg.Streams {
		ccfg.Streams = append(ccfg.Streams, consumer.StreamConfig{
			Name: s.Name, InitialPosition: cc.StartPosition, InitialTimestamp: cc.StartTimestamp,
		})
	}
	cons, err := consumer.New(ccfg, c.Kinesis, c.DynamoDB, consumer.WithLogger(p.log), consumer.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("pipeline: consumer: %w", err)
	}
	return cons, nil
}

// breakerChanged reports a circuit breaker's state change: a log line, a
// CloudWatch count, and an alert on the scorer's alert topic (a breaker
// opening means rows are scored by the fallback model or dead-lettered).
func (p *Pipeline) breakerChanged(scorerName, stream string, ev scorer.BreakerEvent, alerts *sinks.Alerts) {
	log := p.log.With("scorer", scorerName, "endpoint", ev.Endpoint, "from", ev.From.String(), "to", ev.To.String())
	if ev.LastError != nil {
		log = log.With("err", ev.LastError)
	}
	if ev.Evicted {
		log = log.With("evicted", true)
	}
	log.Warn("circuit breaker changed state")
	p.obs.BreakerChanged(stream, ev.Endpoint)
	if alerts == nil {
		return
	}
	p.notify(alerts, breakerAlert(p.cfg.Pipeline, stream, ev), scorerName)
}

// breakerAlert is the alert of a breaker's state change: firing when it
// leaves closed, resolved when it returns to closed or is evicted (a
// multi-model target's breaker dropped past max_targets, whose open state
// no later change would end).
func breakerAlert(pipeline, stream string, ev scorer.BreakerEvent) sinks.Alert {
	sev, state := "warning", "firing"
	if ev.To == scorer.BreakerClosed {
		sev, state = "info", "resolved"
	}
	msg := fmt.Sprintf("circuit breaker of SageMaker endpoint %s went from %s to %s", ev.Endpoint, ev.From, ev.To)
	if ev.Evicted {
		msg = fmt.Sprintf("circuit breaker of SageMaker endpoint %s was dropped while %s (more target models than max_targets): "+
			"its rows try the endpoint again, and a new breaker opens if it still fails", ev.Endpoint, ev.From)
	}
	if ev.LastError != nil {
		msg += ": " + ev.LastError.Error()
	}
	return sinks.Alert{Rule: "circuit-breaker", State: state, Severity: sev, Stream: stream, Model: ev.Endpoint,
		Subject: fmt.Sprintf("streamscore %s: endpoint %s breaker %s", pipeline, ev.Endpoint, ev.To), Message: msg}
}

// modelRejected reports a hot reload the scorer refused (a digest that does
// not match the pin, a model over its limits or that fails to load or to
// fit the window): the running model goes on scoring, and operators hear of
// the bad write at once rather than when it is rolled back.
func (p *Pipeline) modelRejected(scorerName, stream, model string, err error, alerts *sinks.Alerts) {
	p.log.Error("model reload refused; the running model keeps scoring", "scorer", scorerName, "model", model, "err", err)
	p.obs.ModelRejected(stream, model)
	if alerts == nil {
		return
	}
	p.notify(alerts, sinks.Alert{Rule: "model-reload-rejected", State: "firing", Severity: "warning", Stream: stream, Model: model,
		Subject: fmt.Sprintf("streamscore %s: model %s reload refused", p.cfg.Pipeline, model),
		Message: fmt.Sprintf("the new version of model %s was refused and the running one keeps scoring: %v", model, err)}, scorerName)
}

// notify publishes an operational alert off the caller's goroutine (the
// scorer's callbacks must be quick), bounded so a dead topic cannot pile
// goroutines up.
func (p *Pipeline) notify(alerts *sinks.Alerts, al sinks.Alert, scorerName string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := alerts.Notify(ctx, al); err != nil {
			p.log.Warn("operational alert not published", "scorer", scorerName, "rule", al.Rule, "err", err)
		}
	}()
}

// Run consumes until ctx ends, then shuts down gracefully: every shard
// finishes its batch, the sinks flush, what is durable is checkpointed and
// the leases are handed over. It closes the sinks before returning.
func (p *Pipeline) Run(ctx context.Context) error {
	p.running.Store(true)
	stopStatus := p.statusLoop(ctx)
	fctx, stopFollowing := context.WithCancel(ctx)
	var following sync.WaitGroup
	for _, pr := range p.promoters {
		f, err := pr.follow(fctx)
		if err != nil {
			stopFollowing()
			stopStatus()
			p.running.Store(false)
			return errors.Join(err, p.Close(context.WithoutCancel(ctx)))
		}
		following.Go(func() { _ = f.Run(fctx) })
	}
	err := p.cons.Run(ctx, p.newProcessor)
	stopFollowing()
	following.Wait()
	stopStatus()
	p.running.Store(false)
	cerr := p.Close(context.WithoutCancel(ctx))
	return errors.Join(err, cerr)
}

// Close stops the sinks (flushing them) and the model watchers.
func (p *Pipeline) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for _, q := range p.quality {
		if err := q.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	p.quality = nil
	for _, s := range p.sinks {
		if err := s.Close(ctx); err != nil && !errors.Is(err, sinks.ErrClosed) {
			errs = append(errs, err)
		}
	}
	p.sinks = nil
	if p.emf != nil {
		if err := p.emf.Close(); err != nil {
			errs = append(errs, err)
		}
		p.emf = nil
	}
	for _, w := range p.watchers {
		w.Close()
	}
	for _, pr := range p.promoters {
		pr.close()
	}
	p.watchers = nil
	return errors.Join(errs...)
}

// Ready reports whether the pipeline is doing its job: it runs, holds at
// least one lease, no shard is failing (the consumer retries those), and no
// sink is out as a whole.
func (p *Pipeline) Ready(context.Context) error {
	if !p.running.Load() {
		return fmt.Errorf("pipeline %s is not running", p.cfg.Pipeline)
	}
	if len(p.cons.HeldLeases()) == 0 {
		return fmt.Errorf("pipeline %s holds no leases yet", p.cfg.Pipeline)
	}
	if f := p.cons.Unhealthy(); len(f) > 0 {
		return fmt.Errorf("pipeline %s: %d shards failing, first %s/%s (%s, since %s): %w", p.cfg.Pipeline, len(f),
			f[0].Stream, f[0].ShardID, f[0].Kind, f[0].Since.UTC().Format(time.RFC3339), f[0].Err)
	}
	// A sink that is out as a whole holds its batches, and so the shards'
	// checkpoints, back: not ready, and its metric says which.
	for _, s := range p.sinks {
		if err := s.Healthy(); err != nil {
			return fmt.Errorf("pipeline %s: %w", p.cfg.Pipeline, err)
		}
	}
	if p.dlq != nil {
		if err := p.dlq.Healthy(); err != nil {
			return fmt.Errorf("pipeline %s: %w", p.cfg.Pipeline, err)
		}
	}
	return nil
}

// HeldLeases lists the leases this worker holds.
func (p *Pipeline) HeldLeases() []string { return p.cons.HeldLeases() }

// newProcessor is the consumer's ProcessorFactory: a fresh chain for each
// shard run on this worker, the windows' or the labels' by its stream.
func (p *Pipeline) newProcessor() consumer.ShardProcessor { return &streamProcessor{d: p.deps} }
