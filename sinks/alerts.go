package sinks

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
)

// AlertLevel is one severity of a rule: the rule is at this level while
// the score is at or above Threshold.
type AlertLevel struct {
	Severity  string  `yaml:"severity" json:"severity"`
	Threshold float64 `yaml:"threshold" json:"threshold"`
}

// AlertRule turns a score sequence per entity into alerts, or a window's
// drift verdicts per feature (a drift rule, see Alerts.Drift: read period
// for window, feature for entity, drifted for at or above the threshold).
type AlertRule struct {
	// Name identifies the rule in messages and deduplication ids.
	Name string `yaml:"name" json:"name"`
	// Stream and Model restrict the rule; empty matches any. A drift
	// report names no stream: Stream does not restrict a drift rule.
	Stream string `yaml:"stream" json:"stream"`
	Model  string `yaml:"model" json:"model"`
	// Score names the score column; default "score" (none for drift).
	Score string `yaml:"score" json:"score"`
	// Drift, if set, is the window whose monitor verdicts this rule
	// judges, instead of scores; Quality, the scorer whose model-quality
	// verdicts it judges (see Alerts.Quality). A rule judges one thing.
	Drift   string `yaml:"drift" json:"drift"`
	Quality string `yaml:"quality" json:"quality"`
	// Levels are the severities, any order; the highest threshold reached
	// wins. A drift rule has its lowest one's severity (the monitor judges).
	Levels []AlertLevel `yaml:"levels" json:"levels"`
	// FireAfter is how many consecutive windows at or above the lowest
	// threshold fire the alert; default 1.
	FireAfter int `yaml:"fire_after" json:"fire_after"`
	// ClearAfter is how many consecutive windows below it clear the alert;
	// default 1.
	ClearAfter int `yaml:"clear_after" json:"clear_after"`
	// Cooldown suppresses a new firing for the same entity until this long
	// (in event time, window ends) after the previous notification, so a
	// flapping machine does not page every few minutes.
	Cooldown time.Duration `yaml:"cooldown" json:"cooldown"`
}

// Alert states.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is one notification. Score and drift alerts come from rules; others
// (a circuit breaker opening) are sent with Alerts.Notify.
type Alert struct {
	Rule        string             `json:"rule"`
	State       string             `json:"state"`
	Severity    string             `json:"severity"`
	Stream      string             `json:"stream,omitempty"`
	Entity      string             `json:"entity,omitempty"`
	Model       string             `json:"model,omitempty"`
	Score       float64            `json:"score"`
	Threshold   float64            `json:"threshold"`
	WindowStart time.Time          `json:"window_start"`
	WindowEnd   time.Time          `json:"window_end"`
	ResultID    string             `json:"result_id,omitempty"`
	Features    map[string]float64 `json:"features,omitempty"`
	// TopFeatures are the model inputs that moved the score most, largest
	// contribution (by magnitude) first, at most five; only on firing
	// alerts, and only when AlertOptions.Explain gives contributions.
	TopFeatures []FeatureContribution `json:"top_features,omitempty"`
	// Subject is the human-readable one-liner (at most 100 characters).
	Subject string `json:"subject"`
	// Message is free text for non-score alerts.
	Message string `json:"message,omitempty"`
	// Pipeline, Window and the period say what a drift alert judged; Drift
	// the features it is about (that fired or escalated, or that cleared),
	// largest distance first; Violations where the period's
	// constraint_violations.json is.
	Pipeline    string         `json:"pipeline,omitempty"`
	Window      string         `json:"window,omitempty"`
	PeriodStart time.Time      `json:"period_start,omitzero"`
	PeriodEnd   time.Time      `json:"period_end,omitzero"`
	Drift       []DriftFeature `json:"drift,omitempty"`
	Violations  string         `json:"violations,omitempty"`
	// Scorer and Quality say what a model-quality alert judged: the
	// scorer, Model its model version, and the metrics that violated
	// their constraints (or cleared).
	Scorer  string          `json:"scorer,omitempty"`
	Quality []QualityMetric `json:"quality,omitempty"`
	// ReviewURL is the review page of a firing alert under human review
	// (AlertOptions.Review); the message has it on a line too.
	ReviewURL string `json:"review_url,omitempty"`
	review    bool   // goes to the review queue
}

// AlertsAPI is the part of the SNS client the alert sink uses.
type AlertsAPI interface {
	PublishBatch(context.Context, *sns.PublishBatchInput, ...func(*sns.Options)) (*sns.PublishBatchOutput, error)
}

// AlertOptions configure the alert sink.
type AlertOptions struct {
	// Client and TopicARN name the topic. A topic whose name ends in ".fifo"
	// gets MessageGroupId = entity (pipeline/window for drift; see GroupID)
	// and a MessageDeduplicationId per (rule, entity, window, state), or
	// per (rule, pipeline/window, period, state) for drift.
	Client   AlertsAPI
	TopicARN string
	// Rules are evaluated on every row of every batch (drift rules on
	// every Drift report of their window).
	Rules []AlertRule
	// MaxEntities bounds the per-entity (and per drift feature) rule
	// state; the least recently seen are forgotten beyond it. Default 100,000.
	MaxEntities int
	// Queue is how many batches Write buffers before it blocks; default 16.
	Queue int
	// Backoff is the retry schedule.
	Backoff Backoff
	// Metrics receives the sink's metrics (label sink="alerts").
	Metrics *Metrics
	// Logger receives retry warnings; default slog.Default().
	Logger *slog.Logger
	// DeadLetters receives an alert SNS refuses on its own (a sender
	// fault for that message), as JSON with SNS's reason; the batch's
	// other alerts are published and it is acked nil. Without it such an
	// alert fails the batch with a *PermanentError.
	DeadLetters DeadLetters
	// Explain, if set, is asked for the contributions of a model's inputs
	// to the score behind an alert when the alert fires (not when it
	// resolves, nor for windows that notify nobody): row i of rec, scored
	// by model version model, in the rule's score column. The alert
	// carries the largest as top_features. It runs on the sink's
	// goroutine, rarely, so it may allocate; nil or an empty result (a
	// model without contributions, a SageMaker endpoint) leaves
	// top_features out.
	Explain func(rec arrow.RecordBatch, i int, model, score string) []FeatureContribution
	// Review, if set, sends firing score alerts to human review.
	Review *ReviewOptions
}

// Alerts evaluates alert rules on scored windows and publishes alerts to
// SNS with PublishBatch. A batch is acked once every alert it raised has
// been published.
type Alerts struct {
	*runner
	h *alertHandler
}

// NewAlerts starts an alert sink.
func NewAlerts(o AlertOptions) (*Alerts, error) {
	if o.Client == nil || o.TopicARN == "" {
		return nil, errors.New("sinks: AlertOptions.Client and TopicARN are required")
	}
	for i := range o.Rules {
		r := &o.Rules[i]
		if r.Name == "" {
			return nil, fmt.Errorf("sinks: alert rule %d: name is required", i)
		}
		if len(r.Levels) == 0 {
			return nil, fmt.Errorf("sinks: alert rule %q: at least one level is required", r.Name)
		}
		if r.Drift != "" && r.Score != "" || r.Quality != "" && (r.Drift != "" || r.Score != "") {
			return nil, fmt.Errorf("sinks: alert rule %q: score %q, drift %q and quality %q are exclusive: a rule judges scores, or the monitor's drift or model-quality verdicts", r.Name, r.Score, r.Drift, r.Quality)
		}
		r.Levels = slices.Clone(r.Levels)
		slices.SortFunc(r.Levels, func(a, b AlertLevel) int { return cmp.Compare(a.Threshold, b.Threshold) })
		if r.Score == "" && r.Drift == "" && r.Quality == "" {
			r.Score = ColScore
		}
		r.FireAfter = max(r.FireAfter, 1)
		r.ClearAfter = max(r.ClearAfter, 1)
	}
	if o.Review != nil {
		if err := checkReview(o.Review, o.Rules); err != nil {
			return nil, err
		}
	}
	if o.MaxEntities <= 0 {
		o.MaxEntities = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := o.Metrics.forSink("alerts")
	h := &alertHandler{
		o: o, m: m, fifo: strings.HasSuffix(o.TopicARN, ".fifo"),
		r:     newRetrier("alerts", o.Backoff, m, o.Logger),
		ref:   &refuser{sink: "alerts", dl: o.DeadLetters, m: m, log: o.Logger},
		state: map[alertKey]*alertState{},
	}
	h.rq = newReviewQueue(o)
	return &Alerts{runner: newRunner("alerts", h, m, h.r.h, o.Queue, 0), h: h}, nil
}

// Notify publishes an alert that does not come from a score rule, such as
// a circuit breaker changing state, and returns once it is published. Safe
// for concurrent use.
func (a *Alerts) Notify(ctx context.Context, al Alert) error {
	if al.State == "" {
		al.State = StateFiring
	}
	if al.Subject == "" {
		al.Subject = fmt.Sprintf("[%s] %s", strings.ToUpper(al.Severity), al.Rule)
	}
	return a.h.publish(ctx, []Alert{al}, nil)
}

// alertKey names one hysteresis: a score rule's entity of a stream, or a
// drift rule's feature (entity) of a pipeline (stream) and window.
type alertKey struct{ rule, stream, window, entity string }

type alertState struct {
	above, below int
	firing       bool
	notified     bool // the current firing was sent (not suppressed by cooldown)
	severity     int  // index into Levels of the current firing
	lastNotified time.Time
	judged       time.Time // drift: end of the last period judged
	seen         uint64
}

type alertHandler struct {
	o     AlertOptions
	m     *sinkMetrics
	r     *retrier
	ref   *refuser
	rq    *reviewQueue // nil: no review queue
	fifo  bool
	mu    sync.Mutex // batches are judged on the runner's goroutine, drift on the caller's
	state map[alertKey]*alertState
	clock uint64
	// driftMu judges and publishes drift reports one at a time, in order.
	driftMu sync.Mutex
}

// flush has nothing to force out: handle publishes and acks every batch
// before it returns, so whatever shard is asked for is already acked.
func (h *alertHandler) flush(context.Context, *shardKey) <-chan struct{} { return closedChan() }
func (h *alertHandler) tick(context.Context, time.Time)                  {}

func (h *alertHandler) handle(ctx context.Context, b Batch) {
	v, err := newView(b.Rec)
	if err != nil {
		b.Ack(&PermanentError{Sink: "alerts", Err: fmt.Errorf("batch %s/%s: %w", b.Stream, b.Shard, err)})
		return
	}
	var out []Alert
	h.mu.Lock()
	for ri := range h.o.Rules {
		r := &h.o.Rules[ri]
		if r.Drift != "" || r.Quality != "" || (r.Stream != "" && r.Stream != b.Stream) {
			continue
		}
		for i := range v.n {
			// An update revises a window already judged: counting it again
			// would break "N consecutive windows".
			if v.isUpdate(i) || v.isPartial(i) {
				continue // a part of a window is no window to judge
			}
			model := v.modelVersion(i)
			if r.Model != "" && r.Model != model {
				continue
			}
			score, ok := v.score(r.Score, i)
			if !ok || math.IsNaN(score) {
				continue
			}
			if al, ok := h.step(r, b.Stream, b.Rec, v, i, score, model); ok {
				out = append(out, al)
			}
		}
	}
	h.evict()
	h.mu.Unlock()
	err = h.publish(ctx, out, &b)
	if err == nil {
		err = h.queueReviews(ctx, out, &b)
	}
	b.Ack(err)
}

// advance, the one state machine of score and drift rules, moves a key's
// state by one observation at level (of r.Levels; -1 below them all) and
// event time at (window or period end, the cooldown's clock) and returns
// the state of the alert to send, "" for none.
func (st *alertState) advance(r *AlertRule, level int, at time.Time) string {
	if level < 0 {
		st.above = 0
		st.below++
		if st.firing && st.below >= r.ClearAfter {
			st.firing = false
			if st.notified {
				st.notified = false
				return StateResolved
			}
		}
		return ""
	}
	st.below = 0
	st.above++
	switch {
	case !st.firing && st.above >= r.FireAfter:
		st.firing, st.severity = true, level
		if !st.lastNotified.IsZero() && at.Sub(st.lastNotified) < r.Cooldown {
			st.notified = false
			return ""
		}
		st.notified, st.lastNotified = true, at
		return StateFiring
	case st.firing && level > st.severity:
		// Escalation pages even within the cooldown: it is new information.
		st.severity, st.notified, st.lastNotified = level, true, at
		return StateFiring
	}
	return ""
}

// step advances one entity's rule state by one window and returns the
// notification it causes, if any. h.mu is held.
func (h *alertHandler) step(r *AlertRule, stream string, rec arrow.RecordBatch, v *view, i int, score float64, model string) (Alert, bool) {
	k := alertKey{rule: r.Name, stream: stream, entity: v.entity.Value(i)}
	st := h.state[k]
	if st == nil {
		st = &alertState{}
		h.state[k] = st
	}
	h.clock++
	st.seen = h.clock
	level := -1
	for li, l := range r.Levels {
		if score >= l.Threshold {
			level = li
		}
	}
	we := v.we.time(i)
	state := st.advance(r, level, we)
	if state == "" {
		return Alert{}, false
	}
	l := r.Levels[st.severity]
	if state == StateResolved {
		l = r.Levels[0]
	}
	al := Alert{
		Rule: r.Name, State: state, Severity: l.Severity, Stream: stream, Entity: k.entity, Model: model,
		Score: score, Threshold: l.Threshold, WindowStart: v.ws.time(i), WindowEnd: we,
		ResultID: ResultID(stream, k.entity, v.ws.time(i), we, model),
	}
	if len(v.features) <= 64 {
		al.Features = make(map[string]float64, len(v.features))
		for _, f := range v.features {
			if x, ok := f.value(i); ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
				al.Features[f.name] = x
			}
		}
	}
	if state == StateFiring && h.o.Explain != nil {
		al.TopFeatures = TopFeatures(h.o.Explain(rec, i, model, r.Score), MaxTopFeatures)
	}
	h.markReview(r, &al)
	cmp := ">="
	if state == StateResolved {
		cmp = "<"
	}
	al.Subject = fmt.Sprintf("[%s] %s %s: %s %.3g %s %.3g (%s, %s)", strings.ToUpper(l.Severity), r.Name, state, k.entity, score, cmp, l.Threshold, model, stream)
	return al, true
}

// evict forgets the least recently seen entities beyond MaxEntities.
func (h *alertHandler) evict() {
	over := len(h.state) - h.o.MaxEntities
	if over <= 0 {
		return
	}
	type kv struct {
		k    alertKey
		seen uint64
	}
	all := make([]kv, 0, len(h.state))
	for k, s := range h.state {
		all = append(all, kv{k, s.seen})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(a.seen, b.seen) })
	for _, e := range all[:over] {
		delete(h.state, e.k)
	}
}

const maxSubject = 100 // SNS's limit on a subject, in (ASCII) characters

func (h *alertHandler) entry(i int, a *Alert) (snstypes.PublishBatchRequestEntry, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return snstypes.PublishBatchRequestEntry{}, err
	}
	subject := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, a.Subject)
	if len(subject) > maxSubject {
		subject = subject[:maxSubject]
	}
	attrs := map[string]snstypes.MessageAttributeValue{}
	for k, v := range map[string]string{"severity": a.Severity, "stream": a.Stream, "entity": a.Entity, "model": a.Model, "state": a.State, "rule": a.Rule, "pipeline": a.Pipeline, "window": a.Window, "scorer": a.Scorer} {
		if v != "" {
			// SNS refuses control characters in attributes; the exact
			// value is in the message body.
			attrs[k] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(sqsText(v))}
		}
	}
	e := snstypes.PublishBatchRequestEntry{
		Id: aws.String(strconv.Itoa(i)), Message: aws.String(string(body)), Subject: aws.String(subject), MessageAttributes: attrs,
	}
	if h.fifo {
		e.MessageGroupId = aws.String(GroupID(cmp.Or(a.Entity, a.periodGroup(), a.Rule)))
		e.MessageDeduplicationId = aws.String(a.dedupID())
	}
	return e, nil
}

// GroupID is the SNS FIFO MessageGroupId of an entity: the id itself when
// SNS accepts it (1 to 128 characters, each a letter, digit or ASCII
// punctuation), otherwise "sha256-" and the first 32 hex digits of its
// SHA-256, so that no legitimate id (spaces, non-ASCII, longer ones) is
// ever refused and one entity always lands in the same group. A hashed
// group could only collide with an id that is itself such a string, which
// would merely share ordering.
func GroupID(id string) string {
	ok := len(id) >= 1 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] >= 0x21 && id[i] <= 0x7e
	}
	if ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:16])
}

// publish sends alerts 10 per PublishBatch call, retrying failed entries.
// An alert SNS refuses on its own is dead-lettered (b is the batch that
// raised it; nil for Notify, whose caller gets the error instead).
func (h *alertHandler) publish(ctx context.Context, alerts []Alert, b *Batch) error {
	start := time.Now()
	err := inBatches(alerts, func(chunk []Alert) error { return h.publishChunk(ctx, chunk, b) }, h.m.flushes.Inc)
	if err != nil {
		return err
	}
	h.m.latency.Observe(time.Since(start).Seconds())
	return nil
}

// inBatches sends items in calls of at most 10 (SNS's PublishBatch and
// SQS's SendMessageBatch limit), calling sent after each. A call refused
// as a whole (a permanent error on several items) is made again one item
// at a time, so the item at fault is found and handled on its own.
func inBatches[T any](items []T, send func([]T) error, sent func()) error {
	for len(items) > 0 {
		n := min(10, len(items))
		err := send(items[:n])
		if err != nil && IsPermanent(err) && n > 1 {
			err = nil
			for i := range n {
				if err = send(items[i : i+1]); err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
		sent()
		items = items[n:]
	}
	return nil
}

// publishChunk publishes up to 10 alerts in one PublishBatch call.
func (h *alertHandler) publishChunk(ctx context.Context, alerts []Alert, b *Batch) error {
	entries := make([]snstypes.PublishBatchRequestEntry, 0, len(alerts))
	for i := range alerts {
		e, err := h.entry(i, &alerts[i])
		if err != nil {
			return &PermanentError{Sink: "alerts", Err: err}
		}
		entries = append(entries, e)
	}
	var refused []snstypes.BatchResultErrorEntry
	err := h.r.do(ctx, "PublishBatch", func(ctx context.Context) error {
		out, err := h.o.Client.PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: aws.String(h.o.TopicARN), PublishBatchRequestEntries: entries})
		if err != nil {
			return err
		}
		if len(out.Failed) == 0 {
			return nil
		}
		failed := map[string]bool{}
		for _, f := range out.Failed {
			if f.SenderFault {
				refused = append(refused, f)
				continue
			}
			failed[aws.ToString(f.Id)] = true
		}
		entries = slices.DeleteFunc(entries, func(e snstypes.PublishBatchRequestEntry) bool { return !failed[aws.ToString(e.Id)] })
		if len(entries) == 0 {
			return nil
		}
		return fmt.Errorf("SNS failed %d alerts of the batch (first: %s)", len(entries), aws.ToString(out.Failed[0].Code))
	})
	if err == nil && len(alerts) == 1 && len(refused) == 0 {
		h.m.rows.Inc()
		return nil
	}
	if err != nil {
		if len(alerts) == 1 && IsPermanent(err) {
			return h.refuse(ctx, b, &alerts[0], err)
		}
		return err
	}
	for _, f := range refused {
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		rerr := &PermanentError{Sink: "alerts", Err: fmt.Errorf("SNS refused the alert: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))}
		if err := h.refuse(ctx, b, &alerts[i], rerr); err != nil {
			return err
		}
	}
	h.m.rows.Add(float64(len(alerts) - len(refused)))
	return nil
}

// refuse dead-letters an alert SNS refused, as the JSON it would have sent.
func (h *alertHandler) refuse(ctx context.Context, b *Batch, a *Alert, err error) error {
	if b == nil {
		return err
	}
	body, _ := json.Marshal(a)
	return h.ref.refuseData(ctx, b, a.ResultID, body, err)
}
