package loadtest

// The model's loop in a run (docs/flywheel.md, "The demo's loop"). The
// fleet's failures become labels on the factory pipeline's labels stream
// as they happen; a Retraining Requested event the pipeline publishes is
// routed by an EventBridge rule to a queue and started as a Step Functions
// execution, whose activity task the training worker in this process
// takes (train.py on the run's labelled windows, the model written to the
// challenger's S3 path); and the quality monitor's verdicts and the
// promotion decision are read back for the report. In AWS the CDK app's
// rule starts the state machine itself; the local EventBridge delivers to
// SQS only, so here the run starts each execution from the rule's queue.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/retrain"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/training"
)

// FlywheelConfig closes the model's loop on the factory pipeline during a
// run. The pipeline must have labels, a scorer with a challenger, a
// quality monitor of it, and (for retraining) monitor.retrain.
type FlywheelConfig struct {
	// ChallengerSeed is a model file put at the scorer's challenger path
	// (an s3:// URI) before the workers start: the challenger the run
	// begins with. Empty: the path must hold a model already.
	ChallengerSeed string
	// Script is train.py and Python its interpreter (training.Options'
	// defaults when empty). Training needs Python with xgboost: without
	// it, requests are reported and not trained, and the report says why.
	Script, Python string
	// LabelDelay is how long after a failure its label is published, as a
	// maintenance system reports it; default 2 s.
	LabelDelay time.Duration
	// WorkDir holds the training runs' files; default a temporary
	// directory, removed at the end.
	WorkDir string
}

// DefaultLabelDelay is how late a failure's label is published.
const DefaultLabelDelay = 2 * time.Second

// flywheel is one run's loop.
type flywheel struct {
	fc      FlywheelConfig
	c       Clients
	cfg     *config.Config
	scorer  config.Scorer
	log     *slog.Logger
	labels  *Publisher
	entity  string // the labels schema's fields
	timeKey string
	label   string
	queue   string // the rule's queue URL
	machine string // the state machine's ARN
	train   *training.Worker
	workDir string
	cleanup func()

	mu       sync.Mutex
	sent     int // labels published
	requests []*RetrainRun
	skipped  string // why no training worker runs
	unjudged string
}

// RetrainRun is one retraining request the run saw and what became of it.
type RetrainRun struct {
	At       time.Time // when the rule's queue delivered it
	ID       string
	Trigger  string // the request's reason: drift or quality
	Subject  string
	Status   string // the execution's: RUNNING, SUCCEEDED, FAILED, ...
	Error    string
	Finished time.Time
	Output   training.TaskOutput
	// Version is the trained model's version as the workers' results
	// carry it (read from the challenger's path after training).
	Version string
	exec    string
}

// newFlywheel checks the pipeline's configuration and prepares what must
// exist before the workers start: the challenger's seed model, the rule
// and its queue, the activity and the state machine.
func newFlywheel(ctx context.Context, fc FlywheelConfig, c Clients, cfg *config.Config, log *slog.Logger) (*flywheel, error) {
	if fc.LabelDelay <= 0 {
		fc.LabelDelay = DefaultLabelDelay
	}
	f := &flywheel{fc: fc, c: c, cfg: cfg, log: log, cleanup: func() {}}
	if err := f.checkConfig(); err != nil {
		return nil, err
	}
	f.labels = NewPublisher(c.Kinesis, PublisherConfig{Stream: cfg.Labels.Stream})
	if fc.ChallengerSeed != "" {
		if err := f.seedChallenger(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.Monitor.Retrain == nil {
		f.skipped = "the pipeline asks for no retraining (monitor.retrain)"
		return f, nil
	}
	if c.EventBridge == nil || c.EventQueues == nil || c.SFN == nil {
		return nil, errors.New("loadtest: the flywheel needs EventBridge, its queues and Step Functions clients")
	}
	if err := f.route(ctx); err != nil {
		return nil, err
	}
	if err := f.trainer(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *flywheel) checkConfig() error {
	cfg := f.cfg
	if cfg.Labels == nil {
		return fmt.Errorf("loadtest: %s: the flywheel publishes the fleet's failures as labels: configure a labels section", cfg.File)
	}
	var sc *config.Schema
	for _, s := range cfg.Streams {
		if s.Name == cfg.Labels.Stream {
			sc = cfg.Schemas[s.Schema]
		}
	}
	if sc == nil {
		return fmt.Errorf("loadtest: %s: labels.stream %q has no schema", cfg.File, cfg.Labels.Stream)
	}
	if sc.TimeFormat != "" && !strings.EqualFold(sc.TimeFormat, "rfc3339") {
		return fmt.Errorf("loadtest: %s: the labels schema's time_format %q: the flywheel writes RFC 3339 times", cfg.File, sc.TimeFormat)
	}
	if cfg.Labels.InferenceID != "" {
		return fmt.Errorf("loadtest: %s: labels.inference_id: the fleet's failures judge predictions by entity and horizon, not by id", cfg.File)
	}
	f.entity, f.timeKey, f.label = sc.Entity, sc.Time, cfg.Labels.Label
	for _, s := range cfg.Scorers {
		if s.Challenger == "" {
			continue
		}
		for _, q := range cfg.Monitor.Quality {
			if q.Scorer == s.Name {
				f.scorer = s
				return nil
			}
		}
	}
	return fmt.Errorf("loadtest: %s: the flywheel needs a scorer with a challenger and a monitor.quality entry judging it", cfg.File)
}

// challengerPath is the s3:// path of the scorer's challenger model.
func (f *flywheel) challengerPath() string {
	if m := f.cfg.Models[f.scorer.Challenger]; m != nil {
		return m.Path
	}
	return ""
}

func (f *flywheel) seedChallenger(ctx context.Context) error {
	path := f.challengerPath()
	bucket, key, err := scorer.ParseS3URI(path)
	if err != nil {
		return fmt.Errorf("loadtest: %s: challenger model %s: a seed goes to an s3:// path: %w", f.cfg.File, f.scorer.Challenger, err)
	}
	body, err := os.ReadFile(f.fc.ChallengerSeed)
	if err != nil {
		return fmt.Errorf("loadtest: challenger seed: %w", err)
	}
	if _, err := f.c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		return fmt.Errorf("loadtest: putting the challenger seed at %s: %w", path, err)
	}
	f.log.Info("challenger seeded", "model", f.scorer.Challenger, "path", path, "from", f.fc.ChallengerSeed)
	return nil
}

// route creates the rule that sends the pipeline's retraining requests to
// a queue of the run's own, on the bus the pipeline publishes to.
func (f *flywheel) route(ctx context.Context) error {
	bus := f.cfg.Monitor.Retrain.EventBus
	if bus == "" {
		bus = "default"
	}
	name := fmt.Sprintf("%s-retraining-%d", f.cfg.Pipeline, time.Now().UnixNano())
	q, err := f.c.EventQueues.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("loadtest: the retraining queue: %w", err)
	}
	f.queue = aws.ToString(q.QueueUrl)
	attrs, err := f.c.EventQueues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return fmt.Errorf("loadtest: the retraining queue's ARN: %w", err)
	}
	pattern := fmt.Sprintf(`{"source":[%q],"detail-type":[%q]}`, retrain.Source, retrain.DetailTypeRetrainingRequested)
	if _, err := f.c.EventBridge.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(name), EventBusName: aws.String(bus), EventPattern: aws.String(pattern)}); err != nil {
		return fmt.Errorf("loadtest: the retraining rule on bus %s: %w", bus, err)
	}
	if _, err := f.c.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])}}}); err != nil {
		return fmt.Errorf("loadtest: the retraining rule's target: %w", err)
	}
	return nil
}

// trainer creates the state machine (one activity task) and the worker
// taking its tasks, when Python can train.
func (f *flywheel) trainer(ctx context.Context) error {
	py := cmpOr(f.fc.Python, training.DefaultPython)
	if out, err := exec.CommandContext(ctx, py, "-c", "import xgboost, numpy").CombinedOutput(); err != nil {
		f.skipped = fmt.Sprintf("%s cannot import xgboost (apt-get install python3-xgboost): %s", py, firstLine(out, err))
		return nil
	}
	name := fmt.Sprintf("%s-training-%d", f.cfg.Pipeline, time.Now().UnixNano())
	act, err := f.c.SFN.CreateActivity(ctx, &sfn.CreateActivityInput{Name: aws.String(name)})
	if err != nil {
		return fmt.Errorf("loadtest: the training activity: %w", err)
	}
	def := fmt.Sprintf(`{"StartAt":"Train","States":{"Train":{"Type":"Task","Resource":%q,"End":true}}}`, aws.ToString(act.ActivityArn))
	sm, err := f.c.SFN.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String(name), Definition: aws.String(def),
		RoleArn: aws.String("arn:aws:iam::000000000000:role/" + name)})
	if err != nil {
		return fmt.Errorf("loadtest: the retraining state machine: %w", err)
	}
	f.machine = aws.ToString(sm.StateMachineArn)
	if f.workDir = f.fc.WorkDir; f.workDir == "" {
		if f.workDir, err = os.MkdirTemp("", "streamscore-training-"); err != nil {
			return fmt.Errorf("loadtest: %w", err)
		}
		dir := f.workDir
		f.cleanup = func() { _ = os.RemoveAll(dir) }
	}
	f.train = &training.Worker{SFN: f.c.SFN, Activity: aws.ToString(act.ActivityArn), Name: "loadtest-trainer",
		Options: training.Options{Config: f.cfg, S3: f.c.S3, Python: f.fc.Python, Script: f.fc.Script, WorkDir: f.workDir, Logger: f.log}}
	return nil
}

// run publishes the fleet's failures as labels until publishing ends
// (fleetDone), and takes retraining requests until ctx ends.
func (f *flywheel) run(ctx context.Context, failures []Failure, fleetDone <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { f.publishLabels(ctx, failures, fleetDone) })
	if f.queue != "" {
		wg.Go(func() { f.takeRequests(ctx) })
	}
	if f.train != nil {
		wg.Go(func() { _ = f.train.Run(ctx) })
	}
	wg.Wait()
}

// publishLabels sends each failure as a label LabelDelay after it, in
// time order; when publishing ends, every failure that happened by then at
// once (the rest never happened in this run: their machines stopped
// reporting first).
func (f *flywheel) publishLabels(ctx context.Context, failures []Failure, fleetDone <-chan struct{}) {
	pending := slices.Clone(failures)
	slices.SortFunc(pending, func(a, b Failure) int { return a.At.Compare(b.At) })
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for len(pending) > 0 {
		due := time.Now().Add(-f.fc.LabelDelay)
		var done bool
		select {
		case <-ctx.Done():
			return
		case <-fleetDone:
			done, due = true, time.Now()
		case <-tick.C:
		}
		n := 0
		for n < len(pending) && !pending[n].At.After(due) {
			n++
		}
		if n > 0 {
			f.sendLabels(ctx, pending[:n])
			pending = pending[n:]
		}
		if done {
			return
		}
	}
}

func (f *flywheel) sendLabels(ctx context.Context, fs []Failure) {
	evs := make([]Event, 0, len(fs))
	for _, x := range fs {
		data := fmt.Appendf(nil, `{%q:%q,%q:%q,%q:true}`, f.entity, x.Machine, f.timeKey, x.At.UTC().Format(time.RFC3339Nano), f.label)
		evs = append(evs, Event{Key: x.Machine, Data: data, EventTime: x.At})
	}
	if err := f.labels.Publish(ctx, evs); err != nil {
		f.log.Error("flywheel: publishing labels", "labels", len(evs), "error", err)
		return
	}
	f.mu.Lock()
	f.sent += len(evs)
	f.mu.Unlock()
}

// takeRequests starts an execution for each request the rule delivers
// and follows the executions to their end.
func (f *flywheel) takeRequests(ctx context.Context) {
	for ctx.Err() == nil {
		res, err := f.c.EventQueues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("flywheel: reading the retraining queue", "error", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		for _, m := range res.Messages {
			f.request(ctx, []byte(aws.ToString(m.Body)))
			_, _ = f.c.EventQueues.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(f.queue), ReceiptHandle: m.ReceiptHandle})
		}
		f.follow(ctx)
	}
}

func (f *flywheel) request(ctx context.Context, body []byte) {
	rr := &RetrainRun{At: time.Now().UTC()}
	req, err := training.ParseRequest(body)
	if err != nil {
		rr.Status, rr.Error = "REFUSED", err.Error()
	} else {
		rr.ID, rr.Trigger, rr.Subject = req.RequestID, req.Reason, req.Subject()
	}
	f.log.Info("flywheel: retraining requested", "request", rr.ID, "trigger", rr.Trigger, "subject", rr.Subject)
	switch {
	case err != nil:
	case f.machine == "":
		rr.Status = "NOT TRAINED"
		rr.Error = f.skipped
	default:
		out, err := f.c.SFN.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(f.machine),
			Name: aws.String(rr.ID), Input: aws.String(string(body))})
		if err != nil {
			rr.Status, rr.Error = "NOT STARTED", err.Error()
		} else {
			rr.Status, rr.exec = string(sfntypes.ExecutionStatusRunning), aws.ToString(out.ExecutionArn)
		}
	}
	f.mu.Lock()
	f.requests = append(f.requests, rr)
	f.mu.Unlock()
}

// follow reads the state of the executions still running.
func (f *flywheel) follow(ctx context.Context) {
	f.mu.Lock()
	var running []*RetrainRun
	for _, r := range f.requests {
		if r.exec != "" && r.Status == string(sfntypes.ExecutionStatusRunning) {
			running = append(running, r)
		}
	}
	f.mu.Unlock()
	for _, r := range running {
		d, err := f.c.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(r.exec)})
		if err != nil || d.Status == sfntypes.ExecutionStatusRunning {
			continue
		}
		var out training.TaskOutput
		var e, version string
		if d.Status == sfntypes.ExecutionStatusSucceeded {
			if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
				e = err.Error()
			} else if out.Challenger != "" {
				if m, err := scorer.LoadModel(ctx, out.Challenger, f.c.S3); err != nil {
					e = err.Error()
				} else {
					version = m.Version()
				}
			}
		} else {
			e = strings.TrimSpace(aws.ToString(d.Error) + ": " + aws.ToString(d.Cause))
		}
		f.mu.Lock()
		r.Status, r.Output, r.Error, r.Finished, r.Version = string(d.Status), out, e, time.Now().UTC(), version
		f.mu.Unlock()
		f.log.Info("flywheel: training finished", "request", r.ID, "status", r.Status, "model", out.Model, "error", e)
	}
}

// close removes what the run made for itself (the rule's queue stays
// with the stack).
func (f *flywheel) close() { f.cleanup() }

func cmpOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func firstLine(out []byte, err error) string {
	if l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); l != "" {
		return l
	}
	return err.Error()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
