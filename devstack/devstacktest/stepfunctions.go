package devstacktest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
)

// StepFunctions returns a client for the stack's Step Functions: kumo,
// the stack's CloudWatch server, emulates it on the same endpoint
// (activities, state machines, executions, activity tasks).
func (e *Env) StepFunctions() *sfn.Client {
	return sfn.NewFromConfig(e.AWS, func(o *sfn.Options) { o.BaseEndpoint = aws.String(e.cloudWatch()) })
}

// CreateActivity creates an activity for this test alone and returns its
// ARN; deleted when the test ends.
func (e *Env) CreateActivity(t testing.TB) string {
	t.Helper()
	c := e.StepFunctions()
	name := e.Name("act-" + t.Name())
	out, err := c.CreateActivity(Ctx(t), &sfn.CreateActivityInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("devstacktest: create activity %s: %v", name, err)
	}
	arn := aws.ToString(out.ActivityArn)
	t.Cleanup(func() {
		_, _ = c.DeleteActivity(context.Background(), &sfn.DeleteActivityInput{ActivityArn: aws.String(arn)})
	})
	return arn
}

// CreateStateMachine creates a state machine of definition (Amazon States
// Language) for this test alone and returns its ARN; deleted when the
// test ends.
func (e *Env) CreateStateMachine(t testing.TB, definition string) string {
	t.Helper()
	c := e.StepFunctions()
	name := e.Name("sm-" + t.Name())
	out, err := c.CreateStateMachine(Ctx(t), &sfn.CreateStateMachineInput{Name: aws.String(name), Definition: aws.String(definition),
		RoleArn: aws.String("arn:aws:iam::000000000000:role/" + name)})
	if err != nil {
		t.Fatalf("devstacktest: create state machine %s: %v", name, err)
	}
	arn := aws.ToString(out.StateMachineArn)
	t.Cleanup(func() {
		_, _ = c.DeleteStateMachine(context.Background(), &sfn.DeleteStateMachineInput{StateMachineArn: aws.String(arn)})
	})
	return arn
}
