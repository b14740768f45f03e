package pipeline

// The monitor's S3 side: each worker's parts, the reducer's merge and
// verdict, and the baseline. It runs on its own goroutine so that S3's
// latency or an outage never reaches the shards.
//
// Layout under the monitor prefix (docs/monitor.md), per period:
//
//	<prefix><pipeline>/<window>/<period>/statistics.json            the fleet's, merged from the parts
//	<prefix><pipeline>/<window>/<period>/constraint_violations.json the verdict against the baseline
//	<prefix><pipeline>/<window>/parts/<period>/<worker>-<run>-<seq>.json
//	                                          one worker's statistics of the period
//
// with <period> = <yyyy>/<mm>/<dd>/<hh>/[<minute>/[<second>/]]. The parts
// have a subtree of their own so a lifecycle rule can expire them sooner
// than the verdicts (S3 lifecycle prefixes take no wildcards).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/internal/retry"
	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/sinks"
)

// monitorS3 is the part of the S3 client the monitor uses.
type monitorS3 interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

var _ monitorS3 = (S3API)(nil)

// partStore names and moves a monitored window's objects.
type partStore struct {
	s3     monitorS3
	bucket string
	prefix string // <prefix><pipeline>/<window>/
	period time.Duration
	run    string
}

// dir is the period's directory: hourly as Model Monitor's schedules
// write, with the minute added for periods shorter than an hour (and the
// second for periods shorter than a minute), so each period has its own.
func (s *partStore) dir(start time.Time) string { return s.prefix + s.periodPath(start) }

// partsDir is where the workers' parts of the period go.
func (s *partStore) partsDir(start time.Time) string {
	return s.prefix + "parts/" + s.periodPath(start)
}

func (s *partStore) periodPath(start time.Time) string {
	d := start.Format("2006/01/02/15") + "/"
	if s.period < time.Hour {
		d += start.Format("04") + "/"
	}
	if s.period < time.Minute {
		d += start.Format("05") + "/"
	}
	return d
}

// URI is an object's s3:// address, for messages.
func (s *partStore) URI(key string) string { return "s3://" + s.bucket + "/" + key }

func (s *partStore) put(ctx context.Context, key string, body []byte) error {
	return withRetry(ctx, func(ctx context.Context) error {
		_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(body),
			ContentType: aws.String("application/json")})
		return err
	})
}

func (s *partStore) get(ctx context.Context, key string) ([]byte, error) {
	// ReadObject retries on its own: bound the whole read.
	ctx, cancel := context.WithTimeout(ctx, 4*monitorAttempt)
	defer cancel()
	return dataset.ReadObject(ctx, s.s3, s.bucket, key)
}

func (s *partStore) exists(ctx context.Context, key string) (bool, error) {
	var found bool
	err := withRetry(ctx, func(ctx context.Context) error {
		_, err := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
		if err == nil {
			found = true
			return nil
		}
		if dataset.Absent(err) {
			return nil
		}
		return err
	})
	return found, err
}

func (s *partStore) list(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := s.listAfter(ctx, prefix, "", func(k string) bool {
		keys = append(keys, k)
		return true
	})
	sort.Strings(keys)
	return keys, err
}

// listAfter calls each with the keys under prefix that sort after after, in
// order, until each returns false.
func (s *partStore) listAfter(ctx context.Context, prefix, after string, each func(key string) bool) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix}
	if after != "" {
		in.StartAfter = &after
	}
	for {
		var out *s3.ListObjectsV2Output
		err := withRetry(ctx, func(ctx context.Context) error {
			var err error
			out, err = s.s3.ListObjectsV2(ctx, in)
			return err
		})
		if err != nil {
			return err
		}
		for _, o := range out.Contents {
			if !each(aws.ToString(o.Key)) {
				return nil
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

var monitorRetry = retry.Policy{Base: 200 * time.Millisecond, Cap: 10 * time.Second}

// monitorAttempt bounds one S3 call of the monitors: a request the
// server never answers (the SDK's client sets no response timeout) would
// otherwise hold their one S3 goroutine, and with it every later verdict,
// for good.
const monitorAttempt = 30 * time.Second

// withRetry retries transient failures a few times, each attempt bounded
// by monitorAttempt: the monitor is not worth holding a period's verdict
// for long, and a later period comes.
func withRetry(ctx context.Context, f func(context.Context) error) error {
	b := retry.NewBackoff(monitorRetry)
	for {
		actx, cancel := context.WithTimeout(ctx, monitorAttempt)
		err := f(actx)
		cancel()
		if err == nil || !retry.Classify(err).Retryable() || b.Attempt() >= 5 {
			return err
		}
		if !b.Wait(ctx) {
			return errors.Join(err, ctx.Err())
		}
	}
}

// monitorIO runs the S3 jobs of one monitor, in order, off the fold
// goroutine. Its queue is bounded: when S3 is out for long, the oldest
// jobs go first, logged and counted (a verdict is worth less than memory).
type monitorIO struct {
	m    *monitorSink
	mu   sync.Mutex
	jobs []func(context.Context)
	wake chan struct{}
	quit chan struct{}
	done chan struct{}
	// idle is closed and replaced whenever the queue empties.
	idle chan struct{}
	busy bool
	seq  int
	// A reduce job queued, and the latest progress for it (mu).
	reduceQueued bool
	snap         progressSnapshot
	// red is the reducer's view of the fleet's periods (run goroutine).
	red reducer
}

const maxMonitorJobs = 256

func newMonitorIO(m *monitorSink) *monitorIO {
	w := &monitorIO{m: m, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), idle: make(chan struct{})}
	close(w.idle)
	go w.run()
	return w
}

func (w *monitorIO) push(job func(context.Context)) {
	w.mu.Lock()
	if len(w.jobs) >= maxMonitorJobs {
		w.jobs = w.jobs[1:]
		w.m.c.log.Error("monitor: S3 jobs piling up; the oldest dropped", "window", w.m.c.window)
		w.m.c.obs.MonitorFailed(w.m.c.window, "queue_full")
	}
	w.jobs = append(w.jobs, job)
	if !w.busy {
		w.busy = true
		w.idle = make(chan struct{})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *monitorIO) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.quit
		cancel()
	}()
	for {
		w.mu.Lock()
		if len(w.jobs) == 0 {
			if w.busy {
				w.busy = false
				close(w.idle)
			}
			w.mu.Unlock()
			select {
			case <-w.wake:
				continue
			case <-w.quit:
				return
			}
		}
		job := w.jobs[0]
		w.jobs = w.jobs[1:]
		w.mu.Unlock()
		job(ctx)
	}
}

// wait returns once every job queued so far has run.
func (w *monitorIO) wait(ctx context.Context) error {
	w.mu.Lock()
	idle := w.idle
	w.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pipeline: monitor of %s: S3 writes still pending: %w", w.m.c.window, ctx.Err())
	}
}

func (w *monitorIO) close(ctx context.Context) error {
	err := w.wait(ctx)
	close(w.quit)
	<-w.done
	return err
}

// part writes one worker's statistics of a period.
func (w *monitorIO) part(start time.Time, st *monitor.Statistics) {
	w.seq++
	m := w.m
	key := fmt.Sprintf("%s%s-%s-%06d.json", m.c.store.partsDir(start), safeName(m.c.worker), m.c.store.run, w.seq)
	w.push(func(ctx context.Context) {
		var buf bytes.Buffer
		if err := st.WriteJSON(&buf); err != nil {
			m.c.log.Error("monitor: statistics not serialisable; part dropped", "window", m.c.window, "err", err)
			m.c.obs.MonitorFailed(m.c.window, "part")
			return
		}
		if err := m.c.store.put(ctx, key, buf.Bytes()); err != nil {
			m.c.log.Error("monitor: part not written", "window", m.c.window, "key", key, "err", err)
			m.c.obs.MonitorFailed(m.c.window, "part")
			return
		}
		m.c.obs.MonitorPart(m.c.window)
	})
}

// judgePeriod returns how many parts it merged (0 when it judged nothing).
func (m *monitorSink) judgePeriod(ctx context.Context, start time.Time, again bool) (int, error) {
	s := m.c.store
	dir := s.dir(start)
	if !again {
		done, err := s.exists(ctx, dir+dataset.StatisticsFile)
		if err != nil || done {
			return 0, err
		}
	}
	keys, err := s.list(ctx, s.partsDir(start))
	if err != nil {
		return 0, err
	}
	var merged *monitor.Profile
	for _, k := range keys {
		body, err := s.get(ctx, k)
		if err != nil {
			return 0, err
		}
		st, err := monitor.ReadStatistics(bytes.NewReader(body), s.URI(k))
		if err == nil {
			var p *monitor.Profile
			if p, err = monitor.FromStatistics(st, monitor.Options{}); err == nil {
				if merged == nil {
					merged = p
				} else {
					err = merged.Merge(p)
				}
			}
		}
		if err != nil {
			// One bad part must not cost the period its verdict.
			m.c.log.Error("monitor: part skipped", "window", m.c.window, "key", k, "err", err)
			m.c.obs.MonitorFailed(m.c.window, "bad_part")
		}
	}
	if merged == nil {
		return 0, nil
	}
	cur := merged.Statistics()
	rep := monitor.Compare(m.c.baseline, m.c.constraints, cur)
	var sb, vb bytes.Buffer
	if err := errors.Join(cur.WriteJSON(&sb), rep.WriteViolations(&vb)); err != nil {
		return 0, err
	}
	// The violations first: statistics.json marks the period as judged.
	if err := s.put(ctx, dir+dataset.ViolationsFile, vb.Bytes()); err != nil {
		return 0, err
	}
	if err := s.put(ctx, dir+dataset.StatisticsFile, sb.Bytes()); err != nil {
		return 0, err
	}
	m.c.obs.MonitorJudged(m.c.window, cur, rep)
	var drifted []any
	for _, f := range rep.Features {
		if f.Drifted {
			drifted = append(drifted, slog.Float64(f.Name, f.Distance))
		}
	}
	m.c.log.Info("monitor: period judged", "period", start.Format(time.RFC3339), "rows", cur.Dataset.ItemCount, "parts", len(keys),
		"violations", len(rep.Violations), slog.Group("drifted", drifted...))
	m.c.retrain.drift(ctx, m.c.window, m.c.scorer, start, start.Add(m.c.period), rep, s.URI(dir+dataset.ViolationsFile))
	if m.c.alerts == nil {
		return len(keys), nil
	}
	dr := sinks.DriftReport{Pipeline: m.c.pipeline, Window: m.c.window, PeriodStart: start, PeriodEnd: start.Add(m.c.period),
		Violations: s.URI(dir + dataset.ViolationsFile)}
	for _, f := range rep.Features {
		dr.Features = append(dr.Features, sinks.DriftFeature{Feature: f.Name, Distance: f.Distance, Threshold: f.Threshold,
			Method: f.Method, Drifted: f.Drifted})
	}
	// The alert sink retries until its context ends: an SNS outage must
	// not hold the monitor's S3 jobs for longer than a period's worth.
	actx, cancel := context.WithTimeout(ctx, min(m.c.period, time.Minute))
	defer cancel()
	return len(keys), m.c.alerts.Drift(actx, dr)
}

// safeName keeps a worker id usable in an object key.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}
