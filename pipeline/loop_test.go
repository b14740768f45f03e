package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/training"
)

// TestFlywheelLoop: the whole loop on the local stack. The champion's
// precision (0.8) violates its constraint (0.9) in period A, so the
// reducer asks for retraining on EventBridge; the request, delivered to a
// rule's queue (the local EventBridge delivers to SQS only, so the test
// starts the execution as EventBridge's Step Functions target would),
// runs a state machine whose activity the training worker takes: it
// joins the stream's results to their labels, trains XGBoost with
// examples/models/train.py and writes the model to the challenger's S3
// path. The challenger's watcher picks it up, the next periods judge it
// against the champion on the same rows, and the policy (recall at least
// the champion's, precision at least 0.5) promotes it: the decision names
// the trained model.
func TestFlywheelLoop(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bus := env.CreateEventBus(t)
	requests := env.CreateEventRule(t, bus, `{"source":["streamscore"],"detail-type":["Retraining Requested"]}`)
	table := env.Name("promotions")
	if err := dynamo.EnsureTable(ctx, env.DynamoDB, table); err != nil {
		t.Fatal(err)
	}
	// The challenger starts as an XGBoost model (its configured format)
	// that scores every window about 0 (sigmoid(-10)); the bucket is the
	// test pipeline's, made before the worker starts.
	bucket := env.CreateBucket(t)
	const challengerKey = "models/test/failure/challenger/model.json"
	if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(challengerKey),
		Body: bytes.NewReader(stumpModel(-10, -10))}); err != nil {
		t.Fatal(err)
	}
	f := startQualityFleetWith(t,
		fmt.Sprintf("{metric: recall, margin: 0, min_labelled: 100, guardrails: [{metric: precision, min: 0.5}], auto: true, table: %s}", table),
		"", fmt.Sprintf("  retrain: {quality_periods: 1, event_bus: %s}\n", bus),
		fmt.Sprintf("  challenger:\n    format: xgboost\n    reload_interval: 1s\n    path: s3://%s/%s\n", bucket, challengerKey))
	tp, a := f.tp, f.a
	// Failures every 30 s after period A: each window of a failing
	// machine has one within the horizon, as in period A.
	var more []ktypes.PutRecordsRequestEntry
	for k := 1; k <= 5; k++ {
		for m := range qualMachines {
			if failsAfterA(m) {
				id := fmt.Sprintf("mill-%03d", m)
				more = append(more, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(id),
					Data: fmt.Appendf(nil, `{"machine_id":%q,"ts":%q,"failed":true}`, id, a.Add(qualPeriod+time.Second+time.Duration(k)*30*time.Second).Format(time.RFC3339Nano))})
			}
		}
	}
	f.put(t, f.labelsTo, more)
	waitFor(t, 2*time.Minute, "the labels in S3", func() bool {
		return countLines(t, tp, "groundtruth/test/") == len(f.labels)+len(more)
	})
	f.sendPeriodA(t)

	// The request, as EventBridge delivers it.
	var request []byte
	waitFor(t, 5*time.Minute, "a retraining request", func() bool {
		res, err := env.EventSQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(requests), MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			return false
		}
		request = []byte(aws.ToString(res.Messages[0].Body))
		return true
	})

	// The training step: a state machine of one activity task, and its worker.
	activity := env.CreateActivity(t)
	machine := env.CreateStateMachine(t, fmt.Sprintf(`{"StartAt":"Train","States":{"Train":{"Type":"Task","Resource":%q,"End":true}}}`, activity))
	wctx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	w := &training.Worker{SFN: env.StepFunctions(), Activity: activity, Name: "test-trainer",
		Options: training.Options{Config: tp.cfg, S3: env.S3, Script: "../examples/models/train.py", WorkDir: t.TempDir()}}
	go func() { _ = w.Run(wctx) }()
	exec, err := env.StepFunctions().StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Input: aws.String(string(request))})
	if err != nil {
		t.Fatal(err)
	}
	var out training.TaskOutput
	waitFor(t, 3*time.Minute, "the training execution", func() bool {
		d, err := env.StepFunctions().DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: exec.ExecutionArn})
		if err != nil {
			t.Fatal(err)
		}
		switch d.Status {
		case sfntypes.ExecutionStatusSucceeded:
			if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
				t.Fatalf("execution output %q: %v", aws.ToString(d.Output), err)
			}
			return true
		case sfntypes.ExecutionStatusRunning:
			return false
		}
		t.Fatalf("training execution %s: %s %s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
		return false
	})
	if out.Challenger != fmt.Sprintf("s3://%s/%s", bucket, challengerKey) || out.SHA256 == "" {
		t.Fatalf("training output %+v, want the model written to the challenger's path", out)
	}

	// The stream goes on; the trained challenger is judged beside the
	// champion and promoted.
	store, err := dynamo.NewStore(env.DynamoDB, dynamo.Config{Table: table, Pipeline: "test", Scorer: "failure", Configured: promotion.Model{Key: "vib"}})
	if err != nil {
		t.Fatal(err)
	}
	from := a.Add(30 * time.Second)
	var d promotion.Decision
	waitFor(t, 5*time.Minute, "the trained challenger promoted", func() bool {
		if from.Before(a.Add(150 * time.Second)) {
			f.sendReadings(t, from, 50)
			from = from.Add(5 * time.Second)
		}
		if d, err = store.Current(ctx); err != nil {
			t.Fatal(err)
		}
		return d.Generation > 0
	})
	if d.Champion.Key != "challenger" || d.Champion.SHA256 != out.SHA256 {
		t.Errorf("decision %+v, want the trained model (sha256 %s) as champion", d.Entry, out.SHA256)
	}
	t.Logf("promoted: %s", d.Reason)
}
