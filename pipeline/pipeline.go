package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// Clients are the AWS clients a pipeline talks to. Production builds them
// from the SDK's default configuration; tests point them at the local stack.
// SageMaker may be nil when no scorer uses an endpoint; CloudWatch may be nil
// when the config has no CloudWatch sink.
type Clients struct {
	Kinesis    consumer.KinesisAPI
	DynamoDB   *dynamodb.Client
	S3         *s3.Client
	SNS        *sns.Client
	SQS        *sqs.Client
	CloudWatch *cloudwatch.Client
	SageMaker  scorer.InvokeAPI
}

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
	cfg     *config.Config
	kinesis consumer.KinesisAPI // reads parents' tails
	log     *slog.Logger
	now     func() time.Time
	cons    *consumer.Consumer
	m       *metrics
	sm      *sinks.Metrics

	streams map[string]*streamPlan
	dlq     *sinks.DeadLetter
	// sinks are closed on shutdown; flushers are flushed before a lease is
	// handed over.
	sinks    []sinks.Sink
	watchers []*scorer.Watcher
	// cw is shared by every scorer's results and also takes the pipeline's
	// own counters; nil without a CloudWatch sink.
	cw  *sinks.CloudWatch
	emf io.Closer

	mu     sync.Mutex
	shards map[string]*shardState

	running atomic.Bool
}

// streamPlan is what happens to one stream's records.
type streamPlan struct {
	name    string
	schema  windowing.Schema
	windows []*windowPlan
	// bounds and checkEntity refuse, at decode time, records that would
	// stall a watermark or that no sink could store.
	bounds      windowing.TimeBounds
	checkEntity func([]byte) error
}

type windowPlan struct {
	cfg     config.Window
	spec    windowing.WindowSpec
	schema  *arrow.Schema // feature batch schema
	scorers []*scorerPlan
}

type scorerPlan struct {
	name    string
	sc      scorer.Scorer
	outputs int
	shadow  int
	sink    sinks.Sink
}

// New builds the pipeline the configuration describes: it loads every model
// (a model that needs a feature its window does not compute is an error
// here, not at scoring time), starts the sinks and prepares the consumer.
// Close releases what New started if Run is never called.
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
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": cfg.Pipeline}, o.Registerer)
	log := o.Logger.With("pipeline", cfg.Pipeline)
	p := &Pipeline{cfg: cfg, log: log, now: o.Now, kinesis: c.Kinesis, streams: map[string]*streamPlan{}, shards: map[string]*shardState{}}
	ok := false
	defer func() {
		if !ok {
			_ = p.Close(context.WithoutCancel(ctx))
		}
	}()
	var err error
	if p.m, err = newMetrics(reg); err != nil {
		return nil, err
	}
	sm, err := sinks.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p.sm = sm
	scm, err := scorer.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if err := p.buildSinks(ctx, c, sm, o); err != nil {
		return nil, err
	}
	for _, s := range cfg.Streams {
		schema, err := SchemaFor(cfg, s.Schema)
		if err != nil {
			return nil, err
		}
		p.streams[s.Name] = &streamPlan{name: s.Name, schema: schema, bounds: StreamBounds(s)}
	}
	for _, w := range cfg.Windows {
		sp := p.streams[w.Stream]
		spec := WindowSpecFor(w)
		if err := spec.Validate(&sp.schema); err != nil {
			return nil, fmt.Errorf("pipeline: %s: window %s: %w", cfg.File, w.Name, err)
		}
		sp.windows = append(sp.windows, &windowPlan{cfg: w, spec: spec, schema: spec.OutputSchema(&sp.schema)})
	}
	if err := p.checkRetention(ctx, c.Kinesis); err != nil {
		return nil, err
	}
	for _, s := range cfg.Scorers {
		if err := p.buildScorer(ctx, s, c, scm, sm, o); err != nil {
			return nil, err
		}
	}
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

// buildSinks starts the dead-letter queue; the result sinks are per scorer.
func (p *Pipeline) buildSinks(ctx context.Context, c Clients, sm *sinks.Metrics, o Options) error {
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
	url, err := QueueURL(ctx, c.SQS, dl.Queue)
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

// QueueURL resolves a queue name to its URL; a URL is returned as it is.
func QueueURL(ctx context.Context, c *sqs.Client, queue string) (string, error) {
	if strings.HasPrefix(queue, "https://") || strings.HasPrefix(queue, "http://") {
		return queue, nil
	}
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	if err != nil {
		return "", fmt.Errorf("pipeline: queue %q: %w", queue, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// TopicARN resolves a topic name to its ARN; an ARN is returned as it is.
func TopicARN(ctx context.Context, c *sns.Client, topic string) (string, error) {
	if strings.HasPrefix(topic, "arn:") {
		return topic, nil
	}
	// CreateTopic is idempotent and returns the ARN of an existing topic;
	// it is the one call that maps a name to an ARN without listing.
	in := &sns.CreateTopicInput{Name: aws.String(topic)}
	if strings.HasSuffix(topic, ".fifo") {
		in.Attributes = map[string]string{"FifoTopic": "true"}
	}
	out, err := c.CreateTopic(ctx, in)
	if err != nil {
		return "", fmt.Errorf("pipeline: alert topic %q: %w", topic, err)
	}
	return aws.ToString(out.TopicArn), nil
}

// buildScorer loads the scorer's models and starts its result sinks.
func (p *Pipeline) buildScorer(ctx context.Context, s config.Scorer, c Clients, scm *scorer.Metrics, sm *sinks.Metrics, o Options) error {
	var wp *windowPlan
	var stream string
	for _, sp := range p.streams {
		for _, w := range sp.windows {
			if w.cfg.Name == s.Window {
				wp, stream = w, sp.name
			}
		}
	}
	// The embedded models behind this scorer's rows, for the contributions
	// its alerts carry.
	ex := &explainer{log: p.log.With("scorer", s.Name)}
	embedded := func(model string) (scorer.Scorer, error) {
		m := p.cfg.Models[model]
		var src scorer.ModelSource
		if m.ReloadInterval > 0 {
			w, err := scorer.WatchModel(ctx, m.Path, scorer.WatchOptions{
				Interval: m.ReloadInterval.D(), S3: c.S3, Logger: p.log, Metrics: scm,
				Check: func(mod *scorer.Model) error { return scorer.CheckSchema(wp.schema, mod.Features()) },
			})
			if err != nil {
				return nil, fmt.Errorf("pipeline: scorer %s: model %s: %w", s.Name, model, err)
			}
			p.watchers = append(p.watchers, w)
			src = w
		} else {
			mod, err := scorer.LoadModel(ctx, m.Path, c.S3)
			if err != nil {
				return nil, fmt.Errorf("pipeline: scorer %s: model %s: %w", s.Name, model, err)
			}
			src = mod
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
	// The alert sink is built after the scorer; breaker events reach it
	// through this holder once it exists.
	var alerts atomic.Pointer[sinks.Alerts]
	if e := s.Endpoint; e != nil {
		if c.SageMaker == nil {
			return fmt.Errorf("pipeline: scorer %s: no SageMaker runtime client", s.Name)
		}
		var fallback scorer.Scorer
		if e.Fallback != "" {
			if fallback, err = embedded(e.Fallback); err != nil {
				return err
			}
		}
		var features []string
		for _, f := range wp.spec.Features {
			features = append(features, f.Name)
		}
		if s.Model != "" {
			// The endpoint serves the same model: send its features in its order.
			mod, err := scorer.LoadModel(ctx, p.cfg.Models[s.Model].Path, c.S3)
			if err != nil {
				return fmt.Errorf("pipeline: scorer %s: model %s: %w", s.Name, s.Model, err)
			}
			features = mod.Features()
		}
		sc, err = scorer.NewRemote(c.SageMaker, scorer.RemoteConfig{
			Endpoint: e.Name, Features: features, TargetVariant: e.Variant, CustomAttributes: e.CustomAttributes,
			Timeout: e.Timeout.D(), MaxRowsPerRequest: e.MaxRowsPerRequest, Concurrency: e.Concurrency,
			Fallback: fallback, Logger: p.log, Metrics: scm,
			OnBreakerChange: func(ev scorer.BreakerEvent) {
				p.breakerChanged(s.Name, stream, ev, alerts.Load())
			},
		})
		if err != nil {
			return fmt.Errorf("pipeline: scorer %s: %w", s.Name, err)
		}
	} else if sc, err = embedded(s.Model); err != nil {
		return err
	}
	plan := &scorerPlan{name: s.Name, sc: sc, outputs: sc.Outputs()}
	if s.Challenger != "" {
		ch, err := embedded(s.Challenger)
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
	var al *sinks.Alerts
	if plan.sink, al, err = p.resultSinks(ctx, s, stream, c, sm, o, ex); err != nil {
		return err
	}
	alerts.Store(al)
	wp.scorers = append(wp.scorers, plan)
	return nil
}

// resultSinks starts the sinks a scorer's results go to, teed.
func (p *Pipeline) resultSinks(ctx context.Context, s config.Scorer, stream string, c Clients, sm *sinks.Metrics, o Options, ex *explainer) (sinks.Sink, *sinks.Alerts, error) {
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
	for _, r := range p.cfg.Alerts.Rules {
		if r.Scorer != s.Name {
			continue
		}
		rules = append(rules, sinks.AlertRule{
			Name: r.Name, Stream: stream, FireAfter: r.FireAfter, ClearAfter: r.ClearAfter, Cooldown: r.Cooldown.D(),
			Levels: []sinks.AlertLevel{{Severity: r.Severity, Threshold: r.Threshold}},
		})
	}
	if len(rules) > 0 {
		arn, err := TopicARN(ctx, c.SNS, p.cfg.Alerts.Topic)
		if err != nil {
			return nil, nil, err
		}
		ao := sinks.AlertOptions{Client: c.SNS, TopicARN: arn, Rules: rules, Metrics: sm, Logger: p.log}
		if len(ex.sources) > 0 {
			ao.Explain = ex.explain
		}
		sk, err := sinks.NewAlerts(ao)
		al = sk
		if err := add(sk, err, "alerts"); err != nil {
			return nil, nil, err
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("pipeline: scorer %s: no sink configured for its results (sinks.s3, sinks.feature_table or an alert rule)", s.Name)
	}
	if len(out) == 1 {
		return out[0], al, nil
	}
	return sinks.Tee(out...), al, nil
}

// breakerChanged reports a circuit breaker's state change: a log line, a
// CloudWatch count, and an alert on the scorer's alert topic (a breaker
// opening means rows are scored by the fallback model or dead-lettered).
func (p *Pipeline) breakerChanged(scorerName, stream string, ev scorer.BreakerEvent, alerts *sinks.Alerts) {
	log := p.log.With("scorer", scorerName, "endpoint", ev.Endpoint, "from", ev.From.String(), "to", ev.To.String())
	if ev.LastError != nil {
		log = log.With("err", ev.LastError)
	}
	log.Warn("circuit breaker changed state")
	if p.cw != nil {
		p.cw.Count("BreakerStateChanges", sinks.Dimensions{Stream: stream, Model: ev.Endpoint}, 1)
	}
	if alerts == nil {
		return
	}
	sev, state := "warning", "firing"
	if ev.To.String() == "closed" {
		sev, state = "info", "resolved"
	}
	msg := fmt.Sprintf("circuit breaker of SageMaker endpoint %s went from %s to %s", ev.Endpoint, ev.From, ev.To)
	if ev.LastError != nil {
		msg += ": " + ev.LastError.Error()
	}
	al := sinks.Alert{Rule: "circuit-breaker", State: state, Severity: sev, Stream: stream, Model: ev.Endpoint,
		Subject: fmt.Sprintf("streamscore %s: endpoint %s breaker %s", p.cfg.Pipeline, ev.Endpoint, ev.To), Message: msg}
	// Notify publishes; do it off the scorer's goroutine (the callback must
	// be quick), bounded so a dead topic cannot pile goroutines up.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := alerts.Notify(ctx, al); err != nil {
			p.log.Warn("breaker alert not published", "scorer", scorerName, "err", err)
		}
	}()
}

// Run consumes until ctx ends, then shuts down gracefully: every shard
// finishes its batch, the sinks flush, what is durable is checkpointed and
// the leases are handed over. It closes the sinks before returning.
func (p *Pipeline) Run(ctx context.Context) error {
	p.running.Store(true)
	stopStatus := p.statusLoop(ctx)
	err := p.cons.Run(ctx, p)
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
	p.watchers = nil
	p.mu.Lock()
	for k, st := range p.shards {
		st.release()
		delete(p.shards, k)
	}
	p.mu.Unlock()
	return errors.Join(errs...)
}

// Ready reports whether the pipeline is doing its job: it runs, holds at
// least one lease, and no shard is stopped by a sink that failed for good.
func (p *Pipeline) Ready(context.Context) error {
	if !p.running.Load() {
		return fmt.Errorf("pipeline %s is not running", p.cfg.Pipeline)
	}
	if len(p.cons.HeldLeases()) == 0 {
		return fmt.Errorf("pipeline %s holds no leases yet", p.cfg.Pipeline)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, st := range p.shards {
		if err := st.failed(); err != nil {
			return fmt.Errorf("pipeline %s: shard %s stopped: %w", p.cfg.Pipeline, key, err)
		}
	}
	return nil
}

// HeldLeases lists the leases this worker holds.
func (p *Pipeline) HeldLeases() []string { return p.cons.HeldLeases() }

// flushSinks makes every accepted batch durable (or failed): acks arrive
// and checkpoints advance.
func (p *Pipeline) flushSinks(ctx context.Context) error {
	var errs []error
	for _, s := range p.sinks {
		if err := s.Flush(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func shardKey(stream, shard string) string { return stream + "/" + shard }

// state returns the shard's state, starting afresh when the consumer
// (re)starts the shard with a new checkpointer: a regained lease replays
// from the checkpoint and rebuilds its windows.
func (p *Pipeline) state(b *consumer.Batch) (st *shardState, fresh bool, err error) {
	key := shardKey(b.Stream, b.ShardID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.shards[key]; ok {
		if st.cp == b.Checkpointer {
			return st, false, nil
		}
		st.release()
		delete(p.shards, key)
	}
	sp, ok := p.streams[b.Stream]
	if !ok {
		return nil, false, fmt.Errorf("pipeline: batch from unconfigured stream %q", b.Stream)
	}
	if st, err = newShardState(p, sp, b); err != nil {
		return nil, false, err
	}
	p.shards[key] = st
	return st, true, nil
}

func (p *Pipeline) drop(st *shardState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := shardKey(st.stream, st.shard)
	if p.shards[key] == st {
		st.release()
		delete(p.shards, key)
	}
}

// HandleBatch is the consumer's handler: one shard's batches, in order.
func (p *Pipeline) HandleBatch(ctx context.Context, b *consumer.Batch) error {
	st, fresh, err := p.state(b)
	if err != nil {
		return err
	}
	if fresh {
		if err := st.replayTails(ctx, p.kinesis); err != nil {
			p.drop(st)
			return err
		}
	}
	if err := st.handle(ctx, b); err != nil {
		if errors.Is(err, consumer.ErrLeaseLost) || ctx.Err() != nil {
			p.drop(st)
			return err
		}
		return err
	}
	if b.ShardEnd {
		p.drop(st)
	}
	return nil
}

// ShardClosed frees a shard's state once it stops running here (lease lost
// or handed over, shard finished): open windows of a lost shard would
// otherwise stay in memory until the process ends.
func (p *Pipeline) ShardClosed(stream, shard string) {
	p.mu.Lock()
	st := p.shards[shardKey(stream, shard)]
	p.mu.Unlock()
	if st != nil {
		p.drop(st)
	}
}

// FlushShard is called by the consumer before it writes a shard's final
// checkpoint and hands the lease over: flushing the sinks turns accepted
// batches into acks, so the checkpoint covers everything already written.
// Open windows are not flushed: the next owner rebuilds them by replaying
// from the checkpoint.
func (p *Pipeline) FlushShard(ctx context.Context, stream, shard string) error {
	err := p.flushSinks(ctx)
	p.mu.Lock()
	st := p.shards[shardKey(stream, shard)]
	p.mu.Unlock()
	if st != nil {
		st.advanceCheckpoint()
		p.drop(st)
	}
	return err
}
