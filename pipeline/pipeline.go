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

	"github.com/apache/arrow-go/v18/arrow"
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
		p.streams[s.Name] = &streamPlan{name: s.Name, schema: schema, bounds: StreamBounds(s), checkEntity: sinks.CheckEntity}
	}
	for _, w := range cfg.Windows {
		sp := p.streams[w.Stream]
		spec := WindowSpecFor(w)
		// Rows of evicted keys are flagged so that the sinks and the
		// readers' rule (docs/sinks.md) never take a part for the window.
		spec.PartialColumn = true
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
	p.notify(alerts, al, scorerName)
}

// modelRejected reports a hot reload the scorer refused (a digest that does
// not match the pin, a model over its limits or that fails to load or to
// fit the window): the running model goes on scoring, and operators hear of
// the bad write at once rather than when it is rolled back.
func (p *Pipeline) modelRejected(scorerName, stream, model string, err error, alerts *sinks.Alerts) {
	p.log.Error("model reload refused; the running model keeps scoring", "scorer", scorerName, "model", model, "err", err)
	if p.cw != nil {
		p.cw.Count("ModelReloadsRejected", sinks.Dimensions{Stream: stream, Model: model}, 1)
	}
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
		if h, ok := s.(sinks.HealthChecker); ok {
			if err := h.Healthy(); err != nil {
				return fmt.Errorf("pipeline %s: %w", p.cfg.Pipeline, err)
			}
		}
	}
	if p.dlq != nil {
		if err := p.dlq.Healthy(); err != nil {
			return fmt.Errorf("pipeline %s: %w", p.cfg.Pipeline, err)
		}
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
