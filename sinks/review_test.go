package sinks

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/review/link"
)

const testReviewLink = "https://review.example.com/r?id={result_id}&e={entity}&at={window_end}&rule={rule}"

func reviewOptions(t *testing.T, queue ReviewQueueAPI, url string) *ReviewOptions {
	t.Helper()
	tpl, err := link.Parse(testReviewLink)
	if err != nil {
		t.Fatal(err)
	}
	return &ReviewOptions{Link: tpl, Rules: []string{"failure-risk"}, Queue: queue, QueueURL: url}
}

// reviewTasks reads the review queue until want tasks arrived and then a
// quiet second passes (so that extra tasks are caught too).
func reviewTasks(t *testing.T, env *devstacktest.Env, queue string, want int) []Alert {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	var out []Alert
	deadline, lastNew := time.Now().Add(45*time.Second), time.Now()
	for time.Now().Before(deadline) && (len(out) < want || time.Since(lastNew) < time.Second) {
		res, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			var a Alert
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &a); err != nil {
				t.Fatalf("review task is not an alert's JSON: %v: %s", err, aws.ToString(m.Body))
			}
			out = append(out, a)
			lastNew = time.Now()
		}
	}
	return out
}

func wantReviewURL(a Alert) string {
	return fmt.Sprintf("https://review.example.com/r?id=%s&e=%s&at=%s&rule=%s", a.ResultID, a.Entity,
		strings.ReplaceAll(a.WindowEnd.UTC().Format(time.RFC3339Nano), ":", "%3A"), a.Rule)
}

// TestAlertsReviewLinkAndQueue: every firing alert of the reviewed rule,
// escalation included, carries its review link in the JSON and the
// message and is queued as a review task through a real SQS queue;
// resolutions and the alerts of a rule not under review carry no link
// and queue nothing.
func TestAlertsReviewLinkAndQueue(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, alerts := env.CreateTopicQueue(t, false)
	queue := env.CreateQueue(t, false)
	m, reg := newMetrics(t)
	other := AlertRule{Name: "other", Stream: "factory", Levels: []AlertLevel{{"info", 0.6}}}
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{alertRule(), other}, Metrics: m,
		Review: reviewOptions(t, env.SQS, queue)})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := newAcks()
	writeScript(t, s, a, "b", t0)
	a.wait(t, 30*time.Second, "b0", "b1", "b2")

	var reviewed []received
	for _, r := range drain(t, env, alerts, len(scriptWant), 2*time.Second) {
		switch {
		case r.alert.Rule == "failure-risk":
			reviewed = append(reviewed, r)
		case r.alert.ReviewURL != "" || strings.Contains(r.alert.Message, "Review:"):
			t.Errorf("alert of rule %s (not under review) carries a review link: %+v", r.alert.Rule, r.alert)
		}
	}
	checkAlerts(t, reviewed, t0)
	firing := map[string]bool{}
	for _, r := range reviewed {
		al := r.alert
		if al.State != StateFiring {
			if al.ReviewURL != "" || al.Message != "" {
				t.Errorf("a resolution carries review %q, message %q", al.ReviewURL, al.Message)
			}
			continue
		}
		if want := wantReviewURL(al); al.ReviewURL != want || al.Message != "Review: "+want {
			t.Errorf("firing alert at %v: review_url %q message %q, want %q", al.WindowStart, al.ReviewURL, al.Message, want)
		}
		firing[al.ResultID] = true
	}
	tasks := reviewTasks(t, env, queue, len(firing))
	if len(tasks) != len(firing) {
		t.Fatalf("%d review tasks, want one per firing alert (%d)", len(tasks), len(firing))
	}
	for _, task := range tasks {
		if !firing[task.ResultID] || task.Rule != "failure-risk" || task.State != StateFiring || task.ReviewURL != wantReviewURL(task) || task.Entity != "press-1" {
			t.Errorf("review task %+v, want one of the firing alerts with its link", task)
		}
		delete(firing, task.ResultID)
	}
	if n := counter(t, reg, "streamscore_sink_rows_total", "review_queue"); n != float64(len(tasks)) {
		t.Errorf("rows_total{sink=review_queue} = %v, want %d", n, len(tasks))
	}
}

// TestAlertsReviewTaskRefusedIsDeadLettered: a task SQS refuses on its own
// (an entity with a character SQS bodies cannot hold) goes to the dead
// letter queue with SQS's reason and is counted; the other task of the
// batch is queued and the batch is acked.
func TestAlertsReviewTaskRefusedIsDeadLettered(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, _ := env.CreateTopicQueue(t, false)
	queue, dlq := env.CreateQueue(t, false), env.CreateQueue(t, false)
	m, reg := newMetrics(t)
	dl, err := NewDeadLetter(DeadLetterOptions{SQS: env.SQS, QueueURL: dlq, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rule := AlertRule{Name: "failure-risk", Stream: "factory", Levels: []AlertLevel{{"critical", 0.9}}}
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{rule}, Metrics: m, DeadLetters: dl,
		Review: reviewOptions(t, env.SQS, queue)})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rec := resultRecord(t, 1, []row{{entity: "press-\uffff", ws: t0, score: 0.95, model: "m"}, {entity: "press-2", ws: t0, score: 0.95, model: "m"}})
	defer rec.Release()
	a := newAcks()
	if err := s.Write(devstacktest.Ctx(t), Batch{Stream: "factory", Shard: "sh", Range: Range{First: pos(1), Last: pos(2)}, Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 30*time.Second, "b") // fails on an error ack
	if tasks := reviewTasks(t, env, queue, 1); len(tasks) != 1 || tasks[0].Entity != "press-2" {
		t.Fatalf("review tasks %+v, want press-2's alone", tasks)
	}
	got := receiveDeadLetters(t, env, dlq, 1)
	var task Alert
	if err := json.Unmarshal(got[0].body, &task); err != nil || task.Entity != "press-\uffff" || task.ReviewURL == "" {
		t.Errorf("dead letter body %q (%v), want the refused task", got[0].body, err)
	}
	if d := got[0].attrs; d["reason"] != ReasonRefused || !strings.Contains(d["detail"], "review_queue") || !strings.Contains(d["detail"], "InvalidMessageContents") ||
		d["result_id"] != ResultID("factory", "press-\uffff", t0, t0.Add(time.Minute), "m") {
		t.Errorf("dead letter attributes %v, want reason refused naming the review queue and SQS's code", d)
	}
	if n := counter(t, reg, "streamscore_sink_refused_rows_total", "review_queue"); n != 1 {
		t.Errorf("refused_rows_total{sink=review_queue} = %v, want 1", n)
	}
}

// TestAlertsReviewQueueOutage: while the review queue is unreachable the
// batch stays unacked (its checkpoint with it) and the sink retries; once
// the queue is back the task arrives and the batch is acked.
func TestAlertsReviewQueueOutage(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	topic, _ := env.CreateTopicQueue(t, false)
	queue := env.CreateQueue(t, false)
	proxy := env.Proxy(t, env.Endpoints.SQS)
	down := devstack.Endpoints{SQS: proxy.URL()}.Clients().SQS
	m, reg := newMetrics(t)
	rule := AlertRule{Name: "failure-risk", Stream: "factory", Levels: []AlertLevel{{"critical", 0.9}}}
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: []AlertRule{rule}, Metrics: m,
		Backoff: Backoff{Base: 50 * time.Millisecond, Max: 300 * time.Millisecond}, Review: reviewOptions(t, down, queue)})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rec := resultRecord(t, 1, []row{{entity: "press-1", ws: t0, score: 0.95, model: "m"}})
	defer rec.Release()
	a := newAcks()
	if err := s.Write(ctx, Batch{Stream: "factory", Shard: "sh", Range: Range{First: pos(1), Last: pos(1)}, Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for counter(t, reg, "streamscore_sink_retries_total", "alerts") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no retries of the review queue while it was unreachable")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err, ok := a.get("b"); ok {
		t.Fatalf("batch acked (%v) while its review task was not queued", err)
	}
	if err := proxy.SetEnabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 60*time.Second, "b")
	if tasks := reviewTasks(t, env, queue, 1); len(tasks) != 1 || tasks[0].Entity != "press-1" {
		t.Fatalf("review tasks %+v, want press-1's", tasks)
	}
}
