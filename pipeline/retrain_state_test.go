package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/retrain"
)

// retrainRequest is what the test reads of a Retraining Requested event.
type retrainRequest struct {
	DetailType string `json:"detail-type"`
	Detail     struct {
		RequestID string    `json:"request_id"`
		Reason    string    `json:"reason"`
		Scorer    string    `json:"scorer"`
		At        time.Time `json:"at"`
		Periods   []struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"periods"`
	} `json:"detail"`
}

// TestTriggerStateSurvivesAChangeOfReducer: the quality rule asks after
// three bad periods in a row. Worker 1 judges periods A and A+10 s (bad)
// and stops; worker 2, the next reducer, judges A+20 s (bad) and asks at
// A+20 s with A's period first, where a fresh trigger would have needed
// three more periods. Worker 2 stops; worker 3 judges three more bad
// periods within the cooldown and does not ask again, where a fresh
// trigger would have.
//
// Period A's champion precision is 0.8 (quality_test.go); the periods
// after it have no positive label, so the champion's positives there give
// a precision of 0: every period violates the 0.9 constraint.
func TestTriggerStateSurvivesAChangeOfReducer(t *testing.T) {
	env := devstacktest.New(t)
	bus := env.CreateEventBus(t)
	queue := env.CreateEventRule(t, bus, `{"source":["streamscore"],"detail-type":["Retraining Requested"]}`)
	f := startQualityFleet(t, "", "", fmt.Sprintf("  retrain: {quality_periods: 3, event_bus: %s}\n", bus))
	tp := f.tp
	key := "monitoring/retrain/test/trigger.json"
	// Each call has a deadline of its own: the test outlasts one context.
	call := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return ctx
	}
	state := func() (retrain.State, bool) {
		t.Helper()
		ctx := call()
		body, err := dataset.ReadObject(ctx, tp.env.S3, tp.bucket, key)
		if dataset.Absent(err) {
			return retrain.State{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		s, err := retrain.DecodeState(body, key)
		if err != nil {
			t.Fatal(err)
		}
		return s, true
	}
	// run is the quality run of the scorer in the state file, if any.
	run := func() (retrain.RunState, bool) {
		s, ok := state()
		if !ok {
			return retrain.RunState{}, false
		}
		for _, r := range s.Runs {
			if r.Reason == retrain.ReasonQuality && r.Name == "failure" {
				return r, true
			}
		}
		return retrain.RunState{}, false
	}
	var requests []retrainRequest
	receive := func(wait int32) {
		t.Helper()
		res, err := env.EventSQS().ReceiveMessage(call(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			var r retrainRequest
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &r); err != nil {
				t.Fatalf("event %s is not JSON", aws.ToString(m.Body))
			}
			requests = append(requests, r)
			// Deleted once read: an unread message would come back after
			// the queue's visibility timeout and count twice.
			if _, err := env.EventSQS().DeleteMessage(call(), &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// reg is the running worker's registry: each registers its metrics
	// afresh.
	var reg *prometheus.Registry
	newWorker := func(id string) func() error {
		reg = prometheus.NewRegistry()
		tp.registerer = reg
		stop, _ := tp.startPipeline(t, id)
		return stop
	}
	// waitState waits for the trigger state to satisfy cond, failing at
	// once, with the reason, when the worker dead-letters late readings:
	// the periods after them would never be judged.
	waitState := func(what string, cond func(retrain.RunState, bool) bool) {
		t.Helper()
		waitFor(t, 5*time.Minute, what, func() bool {
			if n := counterValue(t, reg, "streamscore_pipeline_late_events_total"); n > 0 {
				t.Fatalf("waiting for %s: the worker dead-lettered %v readings as late", what, n)
			}
			return cond(run())
		})
	}
	// Each worker starts once its readings are all in the stream, and
	// reads them as a backlog. Read as they are put, they would come in
	// bursts of 500 records (2.5 s of event time) that a loaded machine
	// puts more than the window's 3 s idle timeout apart: the shard idles
	// at its tip in between, its watermark moves on with processing time,
	// and the next burst is late (dead-lettered), leaving the last period
	// without results (seen on this test, two instances under two busy
	// loops).
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}

	// Worker 1: period A's readings (and a second more, so its windows
	// close); A's verdict is the run's first bad period, and the second's
	// window (ending A+11 s) makes A+10 s its second, both written to S3.
	// Worker 1 is stopped only once both are in the state: stopped between
	// judging a period and writing the state, a reducer's verdict is lost
	// to the run (docs/flywheel.md), which is not what this test is about.
	f.sendReadings(t, f.a, 110)
	stop1 := newWorker("worker-q1")
	waitState("worker 1's trigger state with periods A and A+10s", func(r retrain.RunState, ok bool) bool {
		return ok && len(r.Periods) == 2 && r.Periods[0].Start.Equal(f.a) && r.Periods[0].Bad &&
			r.Periods[1].Start.Equal(f.a.Add(qualPeriod)) && r.Periods[1].Bad
	})
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	r1, _ := run()
	if len(r1.Periods) >= 3 || !r1.Requested.IsZero() {
		t.Fatalf("worker 1's run %+v: want fewer than 3 periods and no request (it had A's readings only)", r1)
	}
	receive(1)
	if len(requests) != 0 {
		t.Fatalf("worker 1 asked for retraining: %+v", requests)
	}

	// Worker 2 becomes the reducer, reads the state and completes the
	// run at A+20 s: its request's periods start at A. (Starting afresh,
	// its run would be one period long there, and it would not ask.)
	f.sendReadings(t, f.a.Add(11*time.Second), 140)
	stop2 := newWorker("worker-q2")
	waitState("worker 2's verdict of A+20s in the trigger state", func(r retrain.RunState, ok bool) bool {
		return ok && len(r.Periods) > 0 && !r.Periods[len(r.Periods)-1].End.Before(f.a.Add(3*qualPeriod))
	})
	// The request is published before the state is written.
	receive(2)
	if len(requests) != 1 {
		r2, _ := run()
		t.Fatalf("requests after worker 2 judged A+20s: %+v, want one (its run: %+v)", requests, r2)
	}
	req := requests[0]
	if d := req.Detail; req.DetailType != "Retraining Requested" || d.Reason != "quality" || d.Scorer != "failure" ||
		len(d.Periods) != 3 || !d.Periods[0].Start.Equal(f.a) || !d.At.Equal(f.a.Add(3*qualPeriod)) {
		t.Fatalf("request %+v: want quality of failure over the three periods from A, at A+30s", req)
	}
	if r2, _ := run(); !r2.Requested.Equal(req.Detail.At) {
		t.Fatalf("worker 2's run %+v: want its request at %s recorded", r2, req.Detail.At)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}

	// Worker 3 judges A+30 s, A+40 s and A+50 s, all bad: three in a row,
	// but within the cooldown of worker 2's request.
	f.sendReadings(t, f.a.Add(25*time.Second), 300)
	stop3 := newWorker("worker-q3")
	last := f.a.Add(6 * qualPeriod)
	waitState("worker 3's verdict of A+50s in the trigger state", func(r retrain.RunState, ok bool) bool {
		return ok && len(r.Periods) > 0 && !r.Periods[len(r.Periods)-1].End.Before(last)
	})
	r3, _ := run()
	if !r3.Requested.Equal(req.Detail.At) {
		t.Errorf("worker 3's run %+v: requested at %s, want worker 2's request (%s) held", r3, r3.Requested, req.Detail.At)
	}
	for _, p := range r3.Periods {
		if !p.Bad {
			t.Errorf("worker 3's run %+v: a healthy period; the test needs bad ones to mean anything", r3)
		}
	}
	// The request is published before the state is written: the state
	// names A+50 s, so any request of worker 3 is on the queue.
	receive(2)
	if len(requests) != 1 {
		t.Errorf("requests %+v: want worker 2's alone (the cooldown holds on worker 3)", requests)
	}
	if err := stop3(); err != nil {
		t.Fatal(err)
	}
}
