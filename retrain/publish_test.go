package retrain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

var quiet = slog.New(slog.DiscardHandler)

// delivered is an event as a rule's SQS target receives it.
type delivered struct {
	Source     string          `json:"source"`
	DetailType string          `json:"detail-type"`
	Detail     json.RawMessage `json:"detail"`
	raw        []byte
}

// receive reads n events from a queue, waiting for each as long as the
// test's context allows; kumo delivers a rule's targets asynchronously.
func receive(t *testing.T, q *sqs.Client, url string, n int) []delivered {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	var out []delivered
	for len(out) < n {
		res, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 5})
		if err != nil {
			t.Fatalf("receiving %d events, got %d: %v", n, len(out), err)
		}
		for _, m := range res.Messages {
			var ev delivered
			ev.raw = []byte(aws.ToString(m.Body))
			if err := json.Unmarshal(ev.raw, &ev); err != nil {
				t.Fatalf("a delivered message is not an event: %v: %s", err, ev.raw)
			}
			out = append(out, ev)
			if _, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// expectEmpty asserts that nothing more arrives on a queue within one
// long poll. Call it after a queue that sees every event has received
// them all, so that deliveries of the same PutEvents are done.
func expectEmpty(t *testing.T, q *sqs.Client, url string) {
	t.Helper()
	res, err := q.ReceiveMessage(devstacktest.Ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Messages {
		t.Errorf("unexpected delivery: %s", aws.ToString(m.Body))
	}
}

const (
	retrainingPattern = `{"source": ["streamscore"], "detail-type": ["Retraining Requested"]}`
	everythingPattern = `{"source": ["streamscore"]}`
)

// TestRetrainingRequestReachesItsRule is the production path on the local
// stack's EventBridge: the Trigger decides, the Publisher puts the event,
// a rule on source and detail type delivers it to its target with the
// evidence intact, and an event of another detail type is not delivered.
func TestRetrainingRequestReachesItsRule(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	bus := env.CreateEventBus(t)
	retraining := env.CreateEventRule(t, bus, retrainingPattern)
	everything := env.CreateEventRule(t, bus, everythingPattern)

	tr, err := NewTrigger(Config{Pipeline: "factory", ResultsPrefix: "s3://bkt/results/factory/", GroundTruthPrefix: "s3://bkt/labels/factory/"})
	if err != nil {
		t.Fatal(err)
	}
	var dec Decision
	for h := 1; h <= DefaultDriftPeriods; h++ {
		if dec, err = tr.Drift(drift("machine_5m", h, true)); err != nil {
			t.Fatal(err)
		}
	}
	if dec.Outcome != Requested {
		t.Fatalf("the trigger did not ask: %s", dec.Why)
	}
	promoted := sampleDetails(t)["promote"]

	p := NewPublisher(env.EventBridge(), PublisherOptions{EventBus: bus, Logger: quiet})
	ids, err := p.Publish(devstacktest.Ctx(t), promoted, dec.Requests[0])
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] == "" || ids[1] == "" {
		t.Fatalf("event ids %q", ids)
	}

	// Both events reach the rule that takes every streamscore event...
	all := receive(t, env.EventSQS(), everything, 2)
	types := map[string]bool{}
	for _, ev := range all {
		types[ev.DetailType] = true
	}
	if !types[DetailTypeRetrainingRequested] || !types[DetailTypeModelPromoted] {
		t.Fatalf("the catch-all rule got %v; want both detail types", types)
	}
	// ...and only the request reaches the retraining rule.
	got := receive(t, env.EventSQS(), retraining, 1)[0]
	expectEmpty(t, env.EventSQS(), retraining)

	if got.Source != Source || got.DetailType != DetailTypeRetrainingRequested {
		t.Errorf("delivered source %q, detail type %q", got.Source, got.DetailType)
	}
	want, _ := json.Marshal(dec.Requests[0])
	var back RetrainingRequested
	if err := json.Unmarshal(got.Detail, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(&back); !bytes.Equal(again, want) {
		t.Errorf("delivered detail\n%s\nwant\n%s", again, want)
	}
	if back.Reason != ReasonDrift || back.Window != "machine_5m" || back.Scorer != "failure" || len(back.Periods) != DefaultDriftPeriods ||
		back.Features[0].Name != "temp_mean" || back.Data.GroundTruthPrefix != "s3://bkt/labels/factory/" {
		t.Errorf("evidence: %+v", back)
	}
	doc, err := decodeJSON(got.raw)
	if err != nil {
		t.Fatal(err)
	}
	if errs := loadSchema(t).validate("", doc); len(errs) > 0 {
		t.Errorf("the delivered event does not match the schema: %s\n%s", strings.Join(errs, "\n"), got.raw)
	}
}

// faultProxy stands in front of the stack's EventBridge and injects the
// failures kumo never answers with (throttling, 5xx, refused entries):
// a whole call it fails is not forwarded; the entries of a call it fails
// are taken out before the rest is forwarded, and put back into kumo's
// answer, so only what the answer says was put is delivered.
type faultProxy struct {
	upstream string
	// whole returns the HTTP status and error code to answer call n
	// (from 1) with, or 0 to pass it on.
	whole func(n int) (int, string)
	// entry returns the error code to fail an entry of call n with, or
	// "" to forward it.
	entry func(n int, detail string) string

	mu    sync.Mutex
	calls int
}

func (f *faultProxy) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if f.whole != nil {
		if status, code := f.whole(n); status != 0 {
			w.Header().Set("X-Amzn-ErrorType", code)
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": "injected by the test"})
			return
		}
	}
	var req map[string]json.RawMessage
	var entries []map[string]any
	if err := json.Unmarshal(body, &req); err != nil || json.Unmarshal(req["Entries"], &entries) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	failed := make([]string, len(entries))
	var keep []map[string]any
	for i, e := range entries {
		detail, _ := e["Detail"].(string)
		if f.entry != nil {
			failed[i] = f.entry(n, detail)
		}
		if failed[i] == "" {
			keep = append(keep, e)
		}
	}
	var answered struct {
		FailedEntryCount int
		Entries          []map[string]any
	}
	if len(keep) > 0 {
		req["Entries"], _ = json.Marshal(keep)
		fwd, _ := json.Marshal(req)
		up, err := http.NewRequestWithContext(r.Context(), http.MethodPost, f.upstream+r.URL.Path, bytes.NewReader(fwd))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		up.Header = r.Header.Clone()
		up.Header.Del("Content-Length")
		resp, err := http.DefaultClient.Do(up)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&answered); err != nil || len(answered.Entries) != len(keep) {
			http.Error(w, "upstream answer", http.StatusBadGateway)
			return
		}
	}
	out := answered.Entries[:0:0]
	next := 0
	for _, code := range failed {
		if code != "" {
			out = append(out, map[string]any{"ErrorCode": code, "ErrorMessage": "injected by the test"})
			answered.FailedEntryCount++
			continue
		}
		out = append(out, answered.Entries[next])
		next++
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"FailedEntryCount": answered.FailedEntryCount, "Entries": out})
}

// proxied returns an EventBridge client that goes through f to the
// stack's EventBridge, with the SDK's own retries off, so the retries
// measured are the Publisher's.
func proxied(t *testing.T, env *devstacktest.Env, f *faultProxy) *eventbridge.Client {
	f.upstream = env.Endpoints.CloudWatch
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return eventbridge.NewFromConfig(env.AWS, func(o *eventbridge.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.Retryer = aws.NopRetryer{}
	})
}

func requests(t *testing.T, n int) []Detail {
	tr, _ := NewTrigger(Config{Pipeline: "factory", QualityPeriods: 1})
	var out []Detail
	for i := range n {
		dec, err := tr.Quality(quality("scorer"+itoa(i), "v1", 1, true))
		if err != nil || len(dec.Requests) != 1 {
			t.Fatalf("%v %s", err, dec.Why)
		}
		out = append(out, dec.Requests[0])
	}
	return out
}

func requestIDs(t *testing.T, evs []delivered) map[string]int {
	ids := map[string]int{}
	for _, ev := range evs {
		var r RetrainingRequested
		if err := json.Unmarshal(ev.Detail, &r); err != nil {
			t.Fatal(err)
		}
		ids[r.RequestID]++
	}
	return ids
}

func TestPublishRetriesThrottlingAndServerErrors(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	bus := env.CreateEventBus(t)
	queue := env.CreateEventRule(t, bus, retrainingPattern)
	f := &faultProxy{
		whole: func(n int) (int, string) {
			switch n {
			case 1:
				return http.StatusInternalServerError, "InternalException"
			case 2:
				return http.StatusBadRequest, "ThrottlingException"
			}
			return 0, ""
		},
		// The third call has its second entry throttled: only it is sent again.
		entry: func(n int, detail string) string {
			if n == 3 && strings.Contains(detail, `"scorer":"scorer1"`) {
				return "ThrottlingException"
			}
			return ""
		},
	}
	p := NewPublisher(proxied(t, env, f), PublisherOptions{EventBus: bus, BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond, Logger: quiet})
	details := requests(t, 3)
	ids, err := p.Publish(devstacktest.Ctx(t), details...)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if id == "" {
			t.Errorf("event %d has no id", i)
		}
	}
	if got := f.count(); got != 4 {
		t.Errorf("%d PutEvents calls; want 4 (a 500, a throttled call, one entry throttled, its retry)", got)
	}
	got := requestIDs(t, receive(t, env.EventSQS(), queue, 3))
	expectEmpty(t, env.EventSQS(), queue)
	for _, d := range details {
		if id := d.(*RetrainingRequested).RequestID; got[id] != 1 {
			t.Errorf("request %s delivered %d times; want once", id, got[id])
		}
	}
}

func TestPublishReportsRefusedEntries(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	bus := env.CreateEventBus(t)
	queue := env.CreateEventRule(t, bus, retrainingPattern)
	f := &faultProxy{entry: func(_ int, detail string) string {
		switch {
		case strings.Contains(detail, `"scorer":"scorer1"`):
			return "MalformedDetail" // refused for good: not sent again
		case strings.Contains(detail, `"scorer":"scorer2"`):
			return "ThrottlingException" // throttled on every attempt
		}
		return ""
	}}
	p := NewPublisher(proxied(t, env, f), PublisherOptions{EventBus: bus, Attempts: 3, BackoffBase: time.Millisecond, Logger: quiet})
	details := requests(t, 3)
	ids, err := p.Publish(devstacktest.Ctx(t), details...)
	var refused []*EntryError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ee *EntryError
		if !errors.As(e, &ee) {
			t.Fatalf("not an entry error: %v", e)
		}
		refused = append(refused, ee)
	}
	if len(refused) != 2 {
		t.Fatalf("errors %v; want the two refused entries", err)
	}
	for i, want := range []struct {
		index    int
		code     string
		attempts int
	}{{1, "MalformedDetail", 1}, {2, "ThrottlingException", 3}} {
		e := refused[i]
		if e.Index != want.index || e.Code != want.code || e.Attempts != want.attempts || e.DetailType != DetailTypeRetrainingRequested ||
			!strings.Contains(e.Error(), "scorer scorer"+itoa(want.index)) {
			t.Errorf("refusal %d: %+v (%v); want entry %d, %s after %d attempts, named", i, e, e, want.index, want.code, want.attempts)
		}
	}
	if ids[0] == "" || ids[1] != "" || ids[2] != "" {
		t.Errorf("ids %q; want only the first", ids)
	}
	got := requestIDs(t, receive(t, env.EventSQS(), queue, 1))
	expectEmpty(t, env.EventSQS(), queue)
	if got[details[0].(*RetrainingRequested).RequestID] != 1 {
		t.Errorf("delivered %v; want only the first request", got)
	}
}

func TestPublishFailsAtOnceWhenRefused(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	f := &faultProxy{whole: func(int) (int, string) { return http.StatusBadRequest, "AccessDeniedException" }}
	p := NewPublisher(proxied(t, env, f), PublisherOptions{BackoffBase: time.Millisecond, Logger: quiet})
	_, err := p.Publish(devstacktest.Ctx(t), requests(t, 1)...)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(err.Error(), "bus default") ||
		!strings.Contains(err.Error(), "scorer scorer0") {
		t.Fatalf("error %v; want the SDK's AccessDeniedException naming the bus and the event", err)
	}
	if f.count() != 1 {
		t.Errorf("%d calls; access denied must not be retried", f.count())
	}
}

func TestPublishBatchesByEventBridgeLimits(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	bus := env.CreateEventBus(t)
	queue := env.CreateEventRule(t, bus, retrainingPattern)
	f := &faultProxy{}
	p := NewPublisher(proxied(t, env, f), PublisherOptions{EventBus: bus, Logger: quiet})
	details := requests(t, 23)
	huge := *details[0].(*RetrainingRequested)
	huge.Metrics = []MetricEvidence{{Name: strings.Repeat("m", maxBatchSize)}}
	ids, err := p.Publish(devstacktest.Ctx(t), append(details, &huge)...)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Index != 23 || ee.Code != "TooLarge" || ee.Attempts != 0 {
		t.Fatalf("error %v; want the oversized event 23 refused before sending", err)
	}
	if f.count() != 3 {
		t.Errorf("%d calls for 23 events; want 3 (at most 10 entries a call)", f.count())
	}
	got := requestIDs(t, receive(t, env.EventSQS(), queue, 23))
	if len(got) != 23 || ids[22] == "" || ids[23] != "" {
		t.Errorf("%d distinct requests delivered, ids %q", len(got), ids)
	}
}

func TestPublishStopsWithItsContext(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	f := &faultProxy{whole: func(int) (int, string) { return http.StatusServiceUnavailable, "ServiceUnavailable" }}
	p := NewPublisher(proxied(t, env, f), PublisherOptions{Attempts: 1000, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Logger: quiet})
	ctx, cancel := context.WithCancel(devstacktest.Ctx(t))
	go func() {
		for f.count() < 3 && ctx.Err() == nil { // wait for a few failed attempts, then give up
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := p.Publish(ctx, requests(t, 1)...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v; want the context's", err)
	}
}
