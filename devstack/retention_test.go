package devstack_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/pipeline"
)

// The churn example's day-long window with an hour of lateness needs 27 h
// of records; `dev up` provisions that, so the pipeline's retention check
// passes on the local stack as on a CDK deployment.
func TestPlanProvisionsTheRetentionTheWindowsNeed(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../examples/churn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plan := devstack.PlanFor(pipeline.WindowRetention, cfg)
	if len(plan.Streams) != 1 || plan.Streams[0].RetentionHours != 27 {
		t.Fatalf("streams %+v, want app-events with 27h (24h + 1m out-of-orderness + 1h lateness + 1h margin, rounded up)", plan.Streams)
	}
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	stream := env.CreateStream(t, 1)
	if err := devstack.EnsureRetention(ctx, env.Kinesis, stream, 27); err != nil {
		t.Fatal(err)
	}
	d, err := env.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt32(d.StreamDescriptionSummary.RetentionPeriodHours); got != 27 {
		t.Errorf("retention %dh after EnsureRetention(27)", got)
	}
}
