package pipeline

// The in-stream quality monitor: on the worker running the scored
// stream's first shard (the reducer, as for drift), it judges each
// monitoring period's predictions against the ground truth once the
// labels have had time to arrive. Everything it reads is durable in S3:
// the scorer's Parquet results and the labels the ground-truth sink (or
// another system) wrote. So a failover loses nothing: the new reducer
// reads the same objects and writes the same files (docs/quality.md).
//
// Layout under the monitor prefix, per period and model version:
//
//	<prefix>model-quality/<pipeline>/<scorer>/<period>/<version>/statistics.json
//	<prefix>model-quality/<pipeline>/<scorer>/<period>/<version>/constraint_violations.json
//	<prefix>model-quality/<pipeline>/<scorer>/<period>/judgement.json   counts and roles, written last
//	<prefix>model-quality/<pipeline>/<scorer>/progress.json              the last period judged

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/sinks"
)

// DefaultLabelsDelay is how long after a prediction (and its horizon) its
// label may still arrive, unless labels.delay says otherwise.
const DefaultLabelsDelay = 10 * time.Minute

// maxPeriodsPerPass bounds one pass of the quality monitor, so a reducer
// catching up on a long history still stops between periods.
const maxPeriodsPerPass = 24

// maxPeriodAttempts is how many passes try a failing period before it is
// left unjudged.
const maxPeriodAttempts = 3

// qualityConfig is one quality-monitored scorer, as built from the config.
type qualityConfig struct {
	pipeline, scorer, stream string
	problem                  dataset.Problem
	opts                     quality.Options
	horizon                  time.Duration // 0: labels join by inference id
	// period, settle and delay decide when a period is judged; span is how
	// long before a window's end it may have started (the window's size),
	// which says which of the results' partitions hold a period's rows.
	period, settle, delay, span time.Duration
	constraints                 *quality.Constraints // nil: statistics only
	s3                          qualityS3
	bucket                      string
	results                     string // <sinks.s3.prefix><scorer>/
	labels                      string // the ground truth prefix
	out                         string // <monitor prefix>model-quality/<pipeline>/<scorer>/
	alerts                      qualityAlerter
	promoter                    *promoter  // nil without a promotion policy
	retrain                     *retrainer // nil without monitor.retrain
	obs                         Observer
	log                         *slog.Logger
	now                         func() time.Time
}

// qualityS3 is the part of the S3 client the quality monitor uses.
type qualityS3 interface {
	monitorS3
	dataset.S3Getter
}

var _ qualityS3 = (S3API)(nil)

// qualityAlerter is the part of the alert sink the quality monitor uses.
type qualityAlerter interface {
	Quality(ctx context.Context, r sinks.QualityReport) error
}

var _ qualityAlerter = (*sinks.Alerts)(nil)

// qualityMonitor judges one scorer's periods while this worker is the
// reducer of its stream.
type qualityMonitor struct {
	c     qualityConfig
	store *partStore // lists and writes under the bucket
	leads atomic.Int32
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	// Owned by the loop goroutine.
	next    time.Time                // the next period to judge; zero: read progress.json
	results map[string]*shardResults // by shard
	failed  int                      // failed attempts at the next period
}

// shardResults is what the reducer knows of a shard's results in S3: the
// latest window end in its keys listed, and when a new key of it last
// appeared, so a shard that went quiet (or ended) holds no period back.
type shardResults struct {
	keys    int
	latest  time.Time
	changed time.Time
}

func newQualityMonitor(c qualityConfig) *qualityMonitor {
	q := &qualityMonitor{c: c, stop: make(chan struct{}), done: make(chan struct{}),
		store: &partStore{s3: c.s3, bucket: c.bucket, prefix: c.out, period: c.period}}
	go q.loop()
	return q
}

// lead records that this worker started (+1) or stopped (-1) running the
// scored stream's shard at hash key 0.
func (q *qualityMonitor) lead(delta int32) { q.leads.Add(delta) }

// Close stops the monitor; a pass under way ends at its next S3 call.
func (q *qualityMonitor) Close(ctx context.Context) error {
	q.once.Do(func() { close(q.stop) })
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// qualityTick is how often the reducer looks for due periods: a few
// times a period, within [1 s, 5 min].
func qualityTick(period time.Duration) time.Duration {
	return min(max(period/4, time.Second), 5*time.Minute)
}

func (q *qualityMonitor) loop() {
	defer close(q.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-q.stop
		cancel()
	}()
	tick := time.NewTicker(qualityTick(q.c.period))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-q.stop:
			return
		}
		if q.leads.Load() <= 0 {
			// A worker that becomes the reducer again starts from S3's
			// view, not from what it knew before.
			q.next, q.results, q.failed = time.Time{}, nil, 0
			continue
		}
		if err := q.pass(ctx); err != nil && ctx.Err() == nil {
			q.c.log.Error("quality: pass failed; the next tick tries again", "scorer", q.c.scorer, "err", err)
			q.c.obs.QualityFailed(q.c.scorer, "pass")
		}
	}
}

// pass judges every due period from the next one on.
func (q *qualityMonitor) pass(ctx context.Context) error {
	if q.next.IsZero() {
		next, err := q.start(ctx)
		if err != nil || next.IsZero() {
			return err
		}
		q.next = next
	}
	if err := q.scanResults(ctx); err != nil {
		return err
	}
	for range maxPeriodsPerPass {
		if !q.due(q.next) {
			return nil
		}
		skip, err := q.judge(ctx, q.next)
		if err != nil && ctx.Err() == nil {
			// A period that keeps failing (a results file no reader can
			// open) must not stop the monitor: after a few passes it is
			// left unjudged, logged and counted, and the next one comes.
			if q.failed++; q.failed < maxPeriodAttempts {
				return fmt.Errorf("period %s (attempt %d of %d): %w", q.next.Format(time.RFC3339), q.failed, maxPeriodAttempts, err)
			}
			q.c.log.Error("quality: period left unjudged after repeated failures; `streamscore monitor quality` over its files says which",
				"scorer", q.c.scorer, "period", q.next.Format(time.RFC3339), "attempts", q.failed, "err", err)
			q.c.obs.QualityFailed(q.c.scorer, "period_skipped")
		} else if err != nil {
			return err
		}
		q.failed = 0
		q.next = q.next.Add(q.c.period)
		if skip.After(q.next) {
			q.next = skip
		}
	}
	return nil
}

// due reports whether period start's labels have had time to arrive: its
// end, the horizon, the labels' delay and the settle time are behind the
// clock; and its results are in: every shard's latest window end in S3
// passed its end by the settle time, or the shard wrote no new results
// for the delay and settle time (it went quiet, or ended).
//
// A period no shard's results have reached yet is not due, however quiet
// they are: judged, it would find no predictions and be passed over for
// good. That is the moment a reducer takes over after a failover: the old
// owner's results have stopped before the period, and the new owner's are
// not written yet.
func (q *qualityMonitor) due(start time.Time) bool {
	c := q.c
	end := start.Add(c.period)
	now := c.now()
	if now.Before(end.Add(c.horizon + c.delay + c.settle)) {
		return false
	}
	reached := false
	for _, r := range q.results {
		if r.latest.Before(end.Add(c.settle)) && now.Sub(r.changed) < c.delay+c.settle {
			return false
		}
		reached = reached || r.latest.After(start)
	}
	return reached
}

// progressFile is where the last judged period is recorded.
const progressFile = "progress.json"

type qualityProgress struct {
	// Judged is the start of the last period judged.
	Judged time.Time `json:"judged"`
}

// start finds the first period to judge: the one after progress.json's,
// or, on a first run, the period of the oldest results. Zero when there
// are no results yet.
func (q *qualityMonitor) start(ctx context.Context) (time.Time, error) {
	body, err := q.store.get(ctx, q.c.out+progressFile)
	switch {
	case err == nil:
		var p qualityProgress
		if err := json.Unmarshal(body, &p); err != nil || p.Judged.IsZero() {
			return time.Time{}, fmt.Errorf("%s: not a progress file (remove it to judge the whole history): %v", q.store.URI(q.c.out+progressFile), err)
		}
		return p.Judged.Add(q.c.period), nil
	case !dataset.Absent(err):
		return time.Time{}, err
	}
	var first time.Time
	err = q.store.listAfter(ctx, q.c.results, "", func(k string) bool {
		if t, ok := sinks.ResultsPartitionTime(k[len(q.c.results):]); ok {
			first = t
			return false
		}
		return true
	})
	if err != nil || first.IsZero() {
		return time.Time{}, err
	}
	// The oldest partition is by window start: its windows end later.
	return periodStart(first, q.c.period), nil
}

// scanResults lists the results from the next period's partitions on and
// notes the latest window end in their keys.
func (q *qualityMonitor) scanResults(ctx context.Context) error {
	from := sinks.ResultsPartition(q.c.stream, q.next.Add(-q.c.span))
	seen := map[string]*shardResults{}
	err := q.store.listAfter(ctx, q.c.results, q.c.results+from, func(k string) bool {
		end, ok := sinks.ResultKeyWindowEnd(k)
		if !ok {
			return true
		}
		shard, _, _ := strings.Cut(k[strings.LastIndexByte(k, '/')+1:], "_")
		r := seen[shard]
		if r == nil {
			r = &shardResults{}
			seen[shard] = r
		}
		r.keys++
		if end.After(r.latest) {
			r.latest = end
		}
		return true
	})
	if err != nil {
		return err
	}
	now := q.c.now()
	for shard, r := range seen {
		if old := q.results[shard]; old != nil && old.keys == r.keys && old.latest.Equal(r.latest) {
			r.changed = old.changed
		} else {
			r.changed = now
		}
	}
	q.results = seen
	return nil
}

// judge reads a period's results and labels, joins them and writes the
// verdict of each model version, then progress.json. A period without
// predictions writes nothing, and returns the period of the next
// prediction read, if any, so the empty ones between are skipped.
func (q *qualityMonitor) judge(ctx context.Context, start time.Time) (time.Time, error) {
	c := q.c
	end := start.Add(c.period)
	preds, err := q.resultObjects(ctx, start, end)
	if err != nil || len(preds) == 0 {
		return time.Time{}, err
	}
	labels, err := q.labelObjects(ctx, start, end.Add(c.horizon+c.delay))
	if err != nil {
		return time.Time{}, err
	}
	// A read the server never answers must not hold the monitor for good.
	jctx, cancel := context.WithTimeout(ctx, max(5*time.Minute, c.period))
	defer cancel()
	pq, err := dataset.JudgePeriod(jctx, preds, labels, dataset.PeriodOptions{
		Problem: c.problem, Quality: c.opts, Horizon: c.horizon, Start: start, End: end,
		Bad: func(e *dataset.RecordError) error {
			c.log.Warn("quality: record skipped", "scorer", c.scorer, "err", e)
			c.obs.QualityFailed(c.scorer, "bad_record")
			return nil
		},
	})
	if err != nil {
		return time.Time{}, err
	}
	if pq.Counts.Predictions == 0 { // files of other periods only
		if pq.NextWindowEnd.IsZero() {
			return time.Time{}, nil
		}
		// A window ending on a boundary is the period's before.
		return periodStart(pq.NextWindowEnd.Add(-1), c.period), nil
	}
	return time.Time{}, q.write(ctx, start, pq, len(preds), len(labels))
}

// resultObjects are the result files that may hold rows whose window
// ended in [start, end): partitions (by window start) from a window's
// span before start, and keys whose latest window end is after start.
func (q *qualityMonitor) resultObjects(ctx context.Context, start, end time.Time) ([]dataset.Object, error) {
	var objs []dataset.Object
	first := start.Add(-q.c.span)
	for h := first.Truncate(time.Hour); h.Before(end); h = h.Add(time.Hour) {
		err := q.store.listAfter(ctx, q.c.results+sinks.ResultsPartition(q.c.stream, h), "", func(k string) bool {
			if last, ok := sinks.ResultKeyWindowEnd(k); ok && last.After(start) {
				objs = append(objs, dataset.S3Object(q.c.s3, q.c.bucket, k))
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// labelObjects are the ground-truth files of the hours [from, to].
func (q *qualityMonitor) labelObjects(ctx context.Context, from, to time.Time) ([]dataset.Object, error) {
	var objs []dataset.Object
	for h := from.Truncate(time.Hour); !h.After(to); h = h.Add(time.Hour) {
		err := q.store.listAfter(ctx, sinks.GroundTruthHourPrefix(q.c.labels, h), "", func(k string) bool {
			objs = append(objs, dataset.S3Object(q.c.s3, q.c.bucket, k))
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// periodStart is the start of the period holding t, periods counted from
// the Unix epoch as the drift monitor counts them.
func periodStart(t time.Time, period time.Duration) time.Time {
	p := period.Nanoseconds()
	return time.Unix(0, floorDiv(t.UnixNano(), p)*p).UTC()
}
