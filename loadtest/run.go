package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// Clients are the AWS clients a load test uses. The flywheel's
// (RunConfig.Flywheel) are needed only with it.
type Clients struct {
	Kinesis *kinesis.Client
	S3      *s3.Client
	SNS     *sns.Client
	SQS     *sqs.Client

	EventBridge *eventbridge.Client
	// EventQueues is the SQS the EventBridge server delivers rule targets
	// to: on the local stack its own (the CloudWatch server's), in AWS SQS.
	EventQueues *sqs.Client
	SFN         *sfn.Client
	DynamoDB    *dynamodb.Client
}

// RunConfig describes one load test run. The pipelines' resources (streams,
// buckets, queues, topics) must exist and be fresh: the accounting assumes
// everything it reads back came from this run.
type RunConfig struct {
	// Factory runs the fleet in real time; Churn replays app history. Either
	// may be nil.
	Factory, Churn *config.Config
	Clients        Clients
	// Duration is how long the fleet publishes; default 60 s. The churn
	// history is replayed within its first two thirds.
	Duration time.Duration
	// Settle is how long to wait after publishing for the last windows to
	// close and the sinks to flush; default 25 s.
	Settle time.Duration
	// Workers is how many pipeline processes to start with Worker; 0 means
	// the pipeline runs elsewhere.
	Workers int
	// Worker returns the command of worker i (its args, env, output),
	// serving its operations endpoints (/readyz) on listen. The traffic
	// starts once every worker is ready.
	Worker func(i int, listen string) *exec.Cmd
	// KillAt kills worker 0 with SIGKILL this long into the run (0: never),
	// to show that a failover loses nothing.
	KillAt time.Duration
	// Seed makes the run reproducible.
	Seed uint64
	// Unaggregated publishes one Kinesis record per event instead of KPL
	// aggregates. Aggregation is the default because production producers
	// aggregate: one record per event costs a local Kinesis server (and a
	// real shard's 1,000 records/s) far more than the pipeline.
	Unaggregated bool
	// Machines sizes the fleet (default 40, 160 readings a second); each
	// machine reports 4 times a second.
	Machines int
	// Shift, when set, shifts a sensor's calibration on part of the fleet
	// from Shift.At into the run (which must be within Duration); its
	// field must be a numeric field of the factory config's schema. The
	// report then judges the drift alerts against it.
	Shift *CalibrationShift
	// Flywheel, when set, closes the model's loop on the factory pipeline:
	// its failures become labels, retraining requests are trained, and the
	// report shows live quality per model version and the promotion.
	Flywheel *FlywheelConfig
	// Progress receives a line per second while publishing (nil: none).
	Progress io.Writer
	// Logger receives the run's logs; default slog.Default().
	Logger *slog.Logger
}

// published remembers what was sent, for the accounting.
type published struct {
	key  string
	at   time.Time
	late bool
}

type scenarioRun struct {
	name     string
	cfg      *config.Config
	stream   string
	window   config.Window
	count    string // the window's count feature
	bucket   string
	prefix   string
	pub      *Publisher
	sender   *Sender
	mu       sync.Mutex // sent, perSec and pace grow while the progress line reads them
	sent     []published
	perSec   map[int64]int
	pace     pace
	failures []Failure
	shift    *ShiftTruth
}

func newScenario(name string, cfg *config.Config, c Clients, rc RunConfig) (*scenarioRun, error) {
	if len(cfg.Windows) == 0 || len(cfg.Scorers) == 0 || cfg.Sinks.S3 == nil {
		return nil, fmt.Errorf("loadtest: %s: the %s pipeline needs a window, a scorer and an S3 sink", cfg.File, name)
	}
	w := cfg.Windows[0]
	s := &scenarioRun{name: name, cfg: cfg, stream: w.Stream, window: w, bucket: cfg.Sinks.S3.Bucket,
		prefix: cfg.Sinks.S3.Prefix + cfg.Scorers[0].Name + "/", perSec: map[int64]int{}}
	for _, f := range w.Features {
		if f.Agg == "count" {
			s.count = f.Name
		}
	}
	if s.count == "" {
		return nil, fmt.Errorf("loadtest: %s: window %s needs a count feature for the accounting", cfg.File, w.Name)
	}
	s.pub = NewPublisher(c.Kinesis, PublisherConfig{Stream: s.stream, Aggregate: !rc.Unaggregated})
	return s, nil
}

// accepted records a batch the stream accepted at done (called by the
// sender's shard goroutines).
func (s *scenarioRun) accepted(evs []Event, done time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perSec[done.Unix()] += len(evs)
	s.pace.sent(evs, done)
	for _, e := range evs {
		s.sent = append(s.sent, published{key: e.Key, at: e.EventTime, late: e.Late})
	}
}

// Run publishes the scenarios, starts and (optionally) kills workers, waits
// for the results and measures them.
func Run(ctx context.Context, rc RunConfig) (*Report, error) {
	if rc.Duration <= 0 {
		rc.Duration = time.Minute
	}
	if rc.Settle <= 0 {
		rc.Settle = 25 * time.Second
	}
	if rc.Logger == nil {
		rc.Logger = slog.Default()
	}
	log := rc.Logger
	var fleet, app *scenarioRun
	var err error
	if rc.Factory != nil {
		if fleet, err = newScenario("factory", rc.Factory, rc.Clients, rc); err != nil {
			return nil, err
		}
	}
	if rc.Churn != nil {
		if app, err = newScenario("churn", rc.Churn, rc.Clients, rc); err != nil {
			return nil, err
		}
	}
	if fleet == nil && app == nil {
		return nil, errors.New("loadtest: nothing to run: give a factory or a churn config")
	}
	if rc.Shift != nil {
		if fleet == nil {
			return nil, errors.New("loadtest: a calibration shift needs the factory scenario: give a factory config")
		}
		if err := checkShift(*rc.Shift, fleet, rc.Duration); err != nil {
			return nil, err
		}
	}

	var fw *flywheel
	if rc.Flywheel != nil {
		if fleet == nil {
			return nil, errors.New("loadtest: the flywheel runs on the factory scenario: give a factory config")
		}
		if fw, err = newFlywheel(ctx, *rc.Flywheel, rc.Clients, fleet.cfg, log); err != nil {
			return nil, err
		}
		defer fw.close()
	}

	// Watch every alert topic with a queue of our own.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watchers []*AlertWatcher
	var wg sync.WaitGroup
	topics := map[string]bool{}
	for _, s := range []*scenarioRun{fleet, app} {
		if s == nil || s.cfg.Alerts.Topic == "" || topics[s.cfg.Alerts.Topic] {
			continue
		}
		topics[s.cfg.Alerts.Topic] = true
		arn, err := sinks.TopicARN(ctx, rc.Clients.SNS, s.cfg.Alerts.Topic)
		if err != nil {
			return nil, err
		}
		w, err := WatchAlerts(ctx, rc.Clients.SQS, rc.Clients.SNS, arn, fmt.Sprintf("loadtest-alerts-%d", time.Now().UnixNano()))
		if err != nil {
			return nil, err
		}
		defer w.Close(context.WithoutCancel(ctx))
		watchers = append(watchers, w)
		wg.Go(func() { w.Run(watchCtx) })
	}

	ws, err := startWorkers(rc.Workers, rc.Worker, log)
	defer func() { _ = ws.stop() }()
	if err != nil {
		return nil, err
	}
	if err := ws.awaitReady(ctx); err != nil {
		return nil, err
	}
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	for _, s := range []*scenarioRun{fleet, app} {
		if s != nil {
			if s.sender, err = s.pub.Start(pubCtx, s.accepted); err != nil {
				return nil, err
			}
		}
	}

	start := time.Now().UTC()
	rep := &Report{Started: start, Duration: rc.Duration, Workers: rc.Workers}
	var f *Fleet
	if fleet != nil {
		fc := FactoryDemoFleet(start, rc.Duration, rc.Seed)
		if rc.Machines > 0 {
			fc.Machines = rc.Machines
		}
		fc.Shift = rc.Shift
		f = NewFleet(fc)
		fleet.failures = f.Truth()
		fleet.shift = f.ShiftTruth()
		if sh := fleet.shift; sh != nil {
			log.Info("calibration shift", "field", sh.Field, "by", sh.By, "machines", len(sh.Machines), "of", sh.FleetSize, "at", sh.Start)
		}
		fleet.pace.due = func(e Event) time.Time { return e.Arrival }
	}
	// The fleet publishes in real time and the churn history replays at its
	// own pace: one publisher never waits on the other.
	replay := rc.Duration * 2 / 3
	var a *App
	var history AppConfig
	if app != nil {
		// Three weeks ending at today's midnight: every daily window but
		// today's closes during the run.
		history = ChurnHistory(start.Truncate(24*time.Hour), 300, rc.Seed)
		a = NewApp(history)
		app.pace.due = replayDue(start, replay, history.Start, history.Duration)
	}
	var pubs sync.WaitGroup
	var pubErr error
	var pubMu sync.Mutex
	// Each scenario's events are generated every 100 ms and handed to its
	// sender, which never makes the generator wait; the run ends when every
	// sender has sent all it was given.
	loop := func(s *scenarioRun, next func(now time.Time, emit func(Event))) {
		pubs.Go(func() {
			defer func() {
				if err := s.sender.Close(); err != nil {
					pubMu.Lock()
					pubErr = errors.Join(pubErr, fmt.Errorf("loadtest: publishing to %s: %w", s.stream, err))
					pubMu.Unlock()
				}
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				now := time.Now().UTC()
				var evs []Event
				next(now, func(e Event) { evs = append(evs, e) })
				s.sender.Send(evs)
				if s.sender.Err() != nil || now.Sub(start) >= rc.Duration {
					return
				}
				select {
				case <-pubCtx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	if f != nil {
		loop(fleet, f.Until)
	}
	if a != nil {
		loop(app, func(now time.Time, emit func(Event)) {
			frac := min(float64(now.Sub(start))/float64(replay), 1)
			a.Until(history.Start.Add(time.Duration(frac*float64(history.Duration))), emit)
		})
	}
	pubDone := make(chan struct{})
	go func() { pubs.Wait(); close(pubDone) }()
	// The loop goes on through the settle time: labels come after their
	// failures, and a request's training after the period that asked.
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	loopDone := make(chan struct{})
	if fw != nil {
		go func() { defer close(loopDone); fw.run(loopCtx, fleet.failures, pubDone) }()
	} else {
		close(loopDone)
	}
	killed := false
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-pubDone:
			break wait
		case now := <-progress.C:
			if rc.KillAt > 0 && !killed && now.Sub(start) >= rc.KillAt && rc.Workers > 0 {
				ws.kill(0)
				killed = true
				rep.Killed = now
				log.Warn("killed worker 0 with SIGKILL", "at", now.Sub(start).Round(time.Second))
			}
			if rc.Progress != nil {
				fmt.Fprintf(rc.Progress, "\r%s  published: factory %s, churn %s   ", progressBar(now.Sub(start), rc.Duration),
					sentStatus(fleet), sentStatus(app))
			}
		}
	}
	if pubErr != nil {
		return nil, pubErr
	}
	rep.PublishEnded = time.Now().UTC()
	if rc.Progress != nil {
		fmt.Fprintln(rc.Progress)
	}
	log.Info("publishing done; letting the last windows close", "settle", rc.Settle)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(rc.Settle):
	}
	if fw != nil {
		log.Info("waiting for the quality monitor to judge the run's last period")
		fw.awaitJudged(ctx, rep.PublishEnded)
	}
	stopLoop()
	<-loopDone
	if err := ws.stop(); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	// Alerts published during the shutdown flush are still in flight.
	time.Sleep(2 * time.Second)
	stopWatch()
	wg.Wait()
	var alerts []ReceivedAlert
	for _, w := range watchers {
		alerts = append(alerts, w.Alerts()...)
	}

	dlq := map[string][]DeadLetter{}
	for _, s := range []*scenarioRun{fleet, app} {
		if s == nil {
			continue
		}
		if _, ok := dlq[s.cfg.Sinks.DeadLetter.Queue]; ok {
			continue
		}
		url, err := sinks.QueueURL(ctx, rc.Clients.SQS, s.cfg.Sinks.DeadLetter.Queue)
		if err != nil {
			return nil, err
		}
		if dlq[s.cfg.Sinks.DeadLetter.Queue], err = DrainDeadLetters(ctx, rc.Clients.SQS, url); err != nil {
			return nil, err
		}
	}
	for _, s := range []*scenarioRun{fleet, app} {
		if s == nil {
			continue
		}
		rows, files, err := ReadResults(ctx, rc.Clients.S3, s.bucket, s.prefix, s.count)
		if err != nil {
			return nil, err
		}
		sr := s.measure(rows, files, dlq[s.cfg.Sinks.DeadLetter.Queue], alerts, rep)
		if fw != nil && s == fleet {
			sr.Flywheel = fw.collect(ctx)
		}
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	rep.Alerts = alerts
	return rep, nil
}

// checkShift refuses a shift the run cannot make or the pipeline cannot
// see: a field the fleet does not report or the scenario's schema does not
// hold as a number, or a start past the run's end.
func checkShift(c CalibrationShift, s *scenarioRun, run time.Duration) error {
	if err := c.Check(); err != nil {
		return err
	}
	if c.At >= run {
		return fmt.Errorf("loadtest: the shift starts %s into a run of %s: it would shift nothing", c.At, run)
	}
	var stream config.Stream
	for _, st := range s.cfg.Streams {
		if st.Name == s.stream {
			stream = st
		}
	}
	sc := s.cfg.Schemas[stream.Schema]
	if sc == nil {
		return fmt.Errorf("loadtest: %s: stream %s has no schema %q", s.cfg.File, s.stream, stream.Schema)
	}
	var numeric []string
	for _, f := range sc.Fields {
		if t := windowing.FieldType(f.Type); t == windowing.TypeFloat64 || t == windowing.TypeInt64 {
			numeric = append(numeric, f.Name)
		}
	}
	if !slices.Contains(numeric, c.Field) {
		return fmt.Errorf("loadtest: %s: shift field %q is not a numeric field of schema %s (%s)", s.cfg.File, c.Field, stream.Schema, strings.Join(numeric, ", "))
	}
	return nil
}

// shardOf is the shard an entity's events went to (0 when the publisher
// never listed the shards: the accounting then treats them as one).
func (s *scenarioRun) shardOf(entity string) int {
	if s.pub == nil || s.pub.shards == nil {
		return 0
	}
	return s.pub.shardOf(entity)
}

// sentStatus is a scenario's part of the progress line: events sent, and
// whether the last batch went out on schedule.
func sentStatus(s *scenarioRun) string {
	if s == nil {
		return "-"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.pace.lags); n > 0 && s.pace.lags[n-1].v > OnSchedule.Seconds() {
		return fmt.Sprintf("%d (BEHIND by %.1fs)", len(s.sent), s.pace.lags[n-1].v)
	}
	return strconv.Itoa(len(s.sent))
}

func progressBar(done, total time.Duration) string {
	const width = 30
	n := min(int(float64(width)*float64(done)/float64(total)), width)
	bar := make([]byte, width)
	for i := range bar {
		if i < n {
			bar[i] = '#'
		} else {
			bar[i] = '.'
		}
	}
	return fmt.Sprintf("[%s] %3.0fs/%.0fs", bar, done.Seconds(), total.Seconds())
}

// windowsOf returns the starts of the windows an event at t belongs to,
// aligned to the Unix epoch as the windowing package aligns them.
func windowsOf(w config.Window, t time.Time) []time.Time {
	size := w.Size.D()
	slide := size
	if w.Kind == string(windowing.Hopping) {
		slide = w.Slide.D()
	}
	ns := t.UnixNano()
	first := ns - ((ns%int64(slide))+int64(slide))%int64(slide) // floor to the slide
	var out []time.Time
	for s := first; s > ns-int64(size); s -= int64(slide) {
		out = append(out, time.Unix(0, s).UTC())
	}
	return out
}

// sortedTimes sorts a copy.
func sortedTimes(ts []time.Duration) []time.Duration {
	out := slices.Clone(ts)
	slices.Sort(out)
	return out
}
