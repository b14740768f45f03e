package pipeline_test

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/review"
	"github.com/streamscore/streamscore/sinks"
)

// TestHumanReviewBecomesGroundTruth: a real worker's score alert carries
// a review link to a review server on loopback and is queued as a review
// task; the test follows the link as a reviewer would (the page, then the
// form's "Confirmed"), the verdict goes through the labels stream into
// the ground truth in S3 with eventId = the alert's result_id, and the
// quality monitor of the next worker judges the alert's period with it:
// the one labelled prediction, a true positive.
//
// Two workers one after the other, because a quality period is judged
// once and the review must be in before: the first scores, alerts and
// takes the verdict with no quality monitor configured, the second (the
// same pipeline with monitor.quality added, as an operator would turn it
// on) judges what the first left in S3. No step waits on a clock.
func TestHumanReviewBecomesGroundTruth(t *testing.T) {
	tp := newTestPipeline(t)
	ctx := devstacktest.Ctx(t)
	labels := tp.env.CreateStream(t, 1)
	reviewQueue := tp.env.CreateQueue(t, false)
	srv := httptest.NewUnstartedServer(nil)
	defer srv.Close()
	base := "http://" + srv.Listener.Addr().String()

	src := tp.yaml
	for _, r := range [][2]string{
		{"streams:\n", fmt.Sprintf("streams:\n  - {name: %s, schema: label, shards: 1}\n", labels)},
		{"schemas:\n", "schemas:\n  label:\n    entity: machine_id\n    time: ts\n    fields:\n      - {name: failed, type: bool}\n      - {name: result_id, type: string}\n"},
		{"alerts:\n  topic:", fmt.Sprintf("labels: {stream: %s, label: failed, inference_id: result_id, delay: 2s}\nalerts:\n  topic:", labels)},
		{"ops:\n", fmt.Sprintf("  review:\n    link: \"%s/review?result_id={result_id}&entity={entity}&rule={rule}&window_end={window_end}&score={score}&model={model}&stream={stream}\"\n    queue: %s\n    rules: [hot]\nops:\n", base, reviewQueue)},
	} {
		if !strings.Contains(src, r[0]) {
			t.Fatalf("test config has no %q", r[0])
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	cfg, err := config.Parse([]byte(src), "review.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	poster, err := review.NewPoster(tp.env.Kinesis, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = review.NewHandler(review.HandlerOptions{Poster: poster})
	srv.Start()

	// The first worker: mill-000 vibrates at 0.9 g (score 0.998) for five
	// seconds of period A, mill-010 at 0.3 g (0.003).
	stop := tp.start(t, "worker-review-1")
	a := time.Now().UTC().Add(-2 * time.Minute).Truncate(qualPeriod)
	f := &qualityFleet{tp: tp, a: a}
	var batch []ktypes.PutRecordsRequestEntry
	for step := range 50 {
		ts := a.Add(time.Duration(step) * 100 * time.Millisecond)
		for id, vib := range map[string]float64{"mill-000": 0.9, "mill-010": 0.3} {
			batch = append(batch, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(id), Data: []byte(reading(id, ts, vib))})
		}
	}
	f.put(t, tp.stream, batch)

	var al *sinks.Alert
	waitFor(t, 2*time.Minute, "mill-000's alert", func() bool {
		for _, x := range receiveAlerts(t, tp.env, tp.alertURL, time.Now().Add(5*time.Second)) {
			if x.Rule == "hot" && x.Entity == "mill-000" && x.State == sinks.StateFiring {
				al = &x
			}
		}
		return al != nil
	})
	if !strings.HasPrefix(al.ReviewURL, base+"/review?result_id="+al.ResultID+"&entity=mill-000&rule=hot&window_end=") ||
		!strings.Contains(al.Message, "Review: "+al.ReviewURL) {
		t.Fatalf("alert %+v: want a review link to %s naming its result_id, in the message too", al, base)
	}

	// The review task in the queue is the same alert.
	var task sinks.Alert
	waitFor(t, time.Minute, "the review task", func() bool {
		res, err := tp.env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(reviewQueue), MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Messages) == 1 && json.Unmarshal([]byte(aws.ToString(res.Messages[0].Body)), &task) == nil
	})
	if task.ResultID != al.ResultID || task.ReviewURL != al.ReviewURL || task.Entity != "mill-000" {
		t.Errorf("review task %+v, want the alert %s with its link", task, al.ResultID)
	}

	// The reviewer opens the link and confirms.
	res, err := http.Get(al.ReviewURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(page), "mill-000") {
		t.Fatalf("review page: %d\n%s", res.StatusCode, page)
	}
	form := url.Values{"verdict": {"confirmed"}, "reviewer": {"test"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`).FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("result_id") != al.ResultID || form.Get("time") == "" {
		t.Fatalf("the page's form %v does not carry the alert's result_id and time", form)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = noRedirect.PostForm(base+"/review", form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("posting the verdict: %d", res.StatusCode)
	}

	// The verdict is ground truth in S3, for the alert's prediction.
	gt := sinks.GroundTruthPrefix("test", "")
	waitFor(t, 2*time.Minute, "the verdict in the ground truth", func() bool { return countLines(t, tp, gt) == 1 })
	line := groundTruthText(t, tp, gt)
	if !strings.Contains(line, `"groundTruthData":{"data":"1","encoding":"CSV"}`) || !strings.Contains(line, `"eventId":"`+al.ResultID+`"`) ||
		!strings.Contains(line, `"entity":"mill-000","time":"`+al.WindowEnd.UTC().Format("2006-01-02T15:04:05.000Z")) {
		t.Errorf("ground truth %s, want the confirmed verdict of %s at the window's end %v", line, al.ResultID, al.WindowEnd)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The second worker judges period A with the quality monitor on.
	src = strings.Replace(src, "alerts:\n  topic:", "monitor:\n  period: 10s\n  settle: 2s\n  quality:\n    - {scorer: failure, threshold: 0.5}\nalerts:\n  topic:", 1)
	if tp.cfg, err = config.Parse([]byte(src), "review-quality.yaml"); err != nil {
		t.Fatal(err)
	}
	stop = tp.start(t, "worker-review-2")
	var j struct {
		Counts dataset.PeriodCounts `json:"counts"`
		Models []struct {
			Role       string `json:"role"`
			Statistics string `json:"statistics"`
		} `json:"models"`
	}
	f.judgement(t, &j)
	if c := j.Counts; c.Labelled != 1 || c.IDLabels != 1 || c.Predictions < 10 {
		t.Errorf("period A's counts %+v, want its predictions with the verdict's one labelled by id", c)
	}
	if len(j.Models) != 1 || j.Models[0].Role != "champion" {
		t.Fatalf("period A's models %+v, want the champion", j.Models)
	}
	key := strings.TrimPrefix(j.Models[0].Statistics, "s3://"+tp.bucket+"/")
	body, err := dataset.ReadObject(ctx, tp.env.S3, tp.bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := quality.ReadStatistics(strings.NewReader(string(body)), key)
	if err != nil {
		t.Fatal(err)
	}
	if cm := st.Binary.ConfusionMatrix; st.Dataset.ItemCount != 1 || cm.TruePositives != 1 || cm.FalsePositives+cm.FalseNegatives+cm.TrueNegatives != 0 {
		t.Errorf("period A's statistics: %d items, confusion %+v, want the confirmed alert alone, a true positive", st.Dataset.ItemCount, cm)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// groundTruthText is every ground-truth line under prefix.
func groundTruthText(t *testing.T, tp *testPipeline, prefix string) string {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	out, err := tp.env.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(tp.bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range out.Contents {
		body, err := dataset.ReadObject(ctx, tp.env.S3, tp.bucket, aws.ToString(o.Key))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(body)
	}
	return b.String()
}
