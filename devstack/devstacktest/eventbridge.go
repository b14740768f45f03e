package devstacktest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// EventBridge returns a client for the stack's EventBridge: kumo, the
// stack's CloudWatch server, emulates it on the same endpoint (buses,
// rules with event patterns, PutEvents, SQS targets).
func (e *Env) EventBridge() *eventbridge.Client {
	return eventbridge.NewFromConfig(e.AWS, func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(e.cloudWatch()) })
}

// EventSQS returns an SQS client for kumo's own SQS, on the CloudWatch
// endpoint too: kumo delivers a rule's SQS targets there, not to the
// stack's SQS server (fauxqs), so a test reads delivered events with it.
func (e *Env) EventSQS() *sqs.Client {
	return sqs.NewFromConfig(e.AWS, func(o *sqs.Options) { o.BaseEndpoint = aws.String(e.cloudWatch()) })
}

func (e *Env) cloudWatch() string {
	if e.Endpoints.CloudWatch == "" {
		return "http://127.0.0.1:1" // fail fast and clearly, never reach for real AWS
	}
	return e.Endpoints.CloudWatch
}

// CreateEventBus creates an event bus for this test alone, so rules of
// tests running in parallel never see each other's events; deleted (with
// its rules) when the test ends.
func (e *Env) CreateEventBus(t testing.TB) string {
	t.Helper()
	name := e.Name("bus-" + t.Name())
	eb := e.EventBridge()
	if _, err := eb.CreateEventBus(Ctx(t), &eventbridge.CreateEventBusInput{Name: aws.String(name)}); err != nil {
		t.Fatalf("devstacktest: create event bus %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, _ = eb.DeleteEventBus(context.Background(), &eventbridge.DeleteEventBusInput{Name: aws.String(name)})
	})
	return name
}

// CreateEventRule creates a rule on bus with the event pattern (JSON) and
// a queue on kumo's SQS as its only target, and returns the queue's URL
// (read it with EventSQS). Rule and queue are deleted when the test ends.
func (e *Env) CreateEventRule(t testing.TB, bus, pattern string) string {
	t.Helper()
	ctx := Ctx(t)
	eb, q := e.EventBridge(), e.EventSQS()
	name := e.Name("r-" + t.Name())
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("devstacktest: create queue %s on the EventBridge server: %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() { _, _ = q.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}) })
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("devstacktest: queue %s's ARN: %v", name, err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(name), EventBusName: aws.String(bus),
		EventPattern: aws.String(pattern)}); err != nil {
		t.Fatalf("devstacktest: rule %s on bus %s: %v", name, bus, err)
	}
	t.Cleanup(func() {
		_, _ = eb.DeleteRule(context.Background(), &eventbridge.DeleteRuleInput{Name: aws.String(name), EventBusName: aws.String(bus), Force: true})
	})
	res, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])}}})
	if err != nil {
		t.Fatalf("devstacktest: target of rule %s: %v", name, err)
	}
	if res.FailedEntryCount > 0 {
		t.Fatalf("devstacktest: target of rule %s refused: %s", name, aws.ToString(res.FailedEntries[0].ErrorMessage))
	}
	return url
}
