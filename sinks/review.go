package sinks

// Human review (docs/quality.md, "Human review"): a firing alert of a
// reviewed score rule carries a review link and is sent to a review queue
// as a task; a reviewer's verdict comes back as a label (package review).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/streamscore/streamscore/review/link"
)

// ReviewQueueAPI is the part of the SQS client that sends review tasks.
type ReviewQueueAPI interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// ReviewOptions send the firing alerts of reviewed score rules to human
// review. Resolutions, drift and model-quality alerts are not reviewed:
// they name no prediction.
type ReviewOptions struct {
	// Link, if set, is expanded for each reviewed alert into its
	// review_url and a line of its message.
	Link *link.Template
	// Rules names the reviewed score rules; empty takes every score rule.
	Rules []string
	// Queue and QueueURL, if set, receive each reviewed alert as a review
	// task: the alert's JSON, review_url included. A queue whose URL ends
	// in ".fifo" gets MessageGroupId = entity (GroupID) and the alert's
	// deduplication id, so a replay does not queue a task twice.
	Queue    ReviewQueueAPI
	QueueURL string
}

// checkReview checks the review options of NewAlerts against its rules.
func checkReview(o *ReviewOptions, rules []AlertRule) error {
	if o.Link == nil && o.Queue == nil {
		return errors.New("sinks: AlertOptions.Review needs a Link, a Queue or both")
	}
	if (o.Queue == nil) != (o.QueueURL == "") {
		return errors.New("sinks: AlertOptions.Review: Queue and QueueURL go together")
	}
	for _, name := range o.Rules {
		if !slices.ContainsFunc(rules, func(r AlertRule) bool { return r.Name == name && r.Drift == "" && r.Quality == "" }) {
			return fmt.Errorf("sinks: AlertOptions.Review: %q is no score rule of this sink", name)
		}
	}
	return nil
}

// reviewQueue is where review tasks go: their own series (sink
// "review_queue": tasks queued in rows_total, refused ones in
// refused_rows_total) and dead letters naming the queue. Calls go through
// the alert sink's retrier, so an outage of the queue shows in its health.
type reviewQueue struct {
	api  ReviewQueueAPI
	url  string
	fifo bool
	m    *sinkMetrics
	ref  *refuser
}

func newReviewQueue(o AlertOptions) *reviewQueue {
	if o.Review == nil || o.Review.Queue == nil {
		return nil
	}
	m := o.Metrics.forSink("review_queue")
	return &reviewQueue{api: o.Review.Queue, url: o.Review.QueueURL, fifo: strings.HasSuffix(o.Review.QueueURL, ".fifo"), m: m,
		ref: &refuser{sink: "review_queue", dl: o.DeadLetters, m: m, log: o.Logger}}
}

// reviewed reports whether r's firing alerts go to review.
func (o *ReviewOptions) reviewed(r *AlertRule) bool {
	return o != nil && r.Drift == "" && r.Quality == "" && (len(o.Rules) == 0 || slices.Contains(o.Rules, r.Name))
}

// markReview gives a firing alert of a reviewed rule its review link and
// marks it for the review queue.
func (h *alertHandler) markReview(r *AlertRule, al *Alert) {
	o := h.o.Review
	if al.State != StateFiring || !o.reviewed(r) {
		return
	}
	al.review = true
	if o.Link == nil {
		return
	}
	al.ReviewURL = o.Link.Expand(&link.Values{ResultID: al.ResultID, Entity: al.Entity, Rule: al.Rule, WindowEnd: al.WindowEnd,
		Score: al.Score, Model: al.Model, Stream: al.Stream})
	al.Message = strings.TrimPrefix(al.Message+"\nReview: "+al.ReviewURL, "\n")
}

// queueReviews sends the marked alerts to the review queue, 10 per
// SendMessageBatch call, after they were published. Failures are handled
// as publish handles SNS's: transient ones retried until they succeed or
// the sink's context ends (the batch stays unacked, nothing is lost), a
// task the queue refuses on its own dead-lettered with SQS's reason and
// counted, the rest of the batch sent.
func (h *alertHandler) queueReviews(ctx context.Context, alerts []Alert, b *Batch) error {
	if h.rq == nil {
		return nil
	}
	var tasks []*Alert
	for i := range alerts {
		if alerts[i].review {
			tasks = append(tasks, &alerts[i])
		}
	}
	return inBatches(tasks, func(chunk []*Alert) error { return h.queueChunk(ctx, chunk, b) }, func() {})
}

// queueChunk sends up to 10 review tasks in one SendMessageBatch call.
func (h *alertHandler) queueChunk(ctx context.Context, tasks []*Alert, b *Batch) error {
	q := h.rq
	entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, len(tasks))
	for i, a := range tasks {
		body, err := json.Marshal(a)
		if err != nil {
			return &PermanentError{Sink: "alerts", Err: fmt.Errorf("review task of %s: %w", a.ResultID, err)}
		}
		e := sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(body))}
		if q.fifo {
			e.MessageGroupId = aws.String(GroupID(a.Entity))
			e.MessageDeduplicationId = aws.String(a.dedupID())
		}
		entries = append(entries, e)
	}
	var refused []sqstypes.BatchResultErrorEntry
	err := h.r.do(ctx, "SendMessageBatch", func(ctx context.Context) error {
		out, err := q.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			return err
		}
		failed := map[string]bool{}
		for _, f := range out.Failed {
			if f.SenderFault {
				refused = append(refused, f)
				continue
			}
			failed[aws.ToString(f.Id)] = true
		}
		entries = slices.DeleteFunc(entries, func(e sqstypes.SendMessageBatchRequestEntry) bool { return !failed[aws.ToString(e.Id)] })
		if len(entries) == 0 {
			return nil
		}
		return fmt.Errorf("SQS failed %d review tasks of the batch (first: %s)", len(entries), aws.ToString(out.Failed[0].Code))
	})
	if err != nil {
		if len(tasks) == 1 && IsPermanent(err) {
			return h.refuseTask(ctx, b, tasks[0], err)
		}
		return err
	}
	for _, f := range refused {
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		rerr := &PermanentError{Sink: "alerts", Err: fmt.Errorf("the review queue refused the task: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))}
		if err := h.refuseTask(ctx, b, tasks[i], rerr); err != nil {
			return err
		}
	}
	q.m.flushes.Inc()
	q.m.rows.Add(float64(len(tasks) - len(refused)))
	return nil
}

// refuseTask dead-letters a review task the queue refused, as the JSON it
// would have sent.
func (h *alertHandler) refuseTask(ctx context.Context, b *Batch, a *Alert, err error) error {
	if b == nil {
		return err
	}
	body, _ := json.Marshal(a)
	return h.rq.ref.refuseData(ctx, b, a.ResultID, body, err)
}
