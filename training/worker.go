package training

// The Step Functions activity worker: the state machine's training task
// is an activity; this polls it, trains on each task's input (the event's
// detail, or the whole event) and reports the result.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
)

// ErrorTrainingFailed is the error name a failed task reports, for a
// state machine's Catch or Retry.
const ErrorTrainingFailed = "streamscore.TrainingFailed"

// maxCause is Step Functions' limit on a failure's cause.
const maxCause = 32768

// retryPause is how long the worker waits after a failed poll before
// polling again, so an unreachable endpoint is not hammered.
const retryPause = 5 * time.Second

// SFN is what the worker needs of a Step Functions client (*sfn.Client
// satisfies it).
type SFN interface {
	GetActivityTask(ctx context.Context, in *sfn.GetActivityTaskInput, opts ...func(*sfn.Options)) (*sfn.GetActivityTaskOutput, error)
	SendTaskSuccess(ctx context.Context, in *sfn.SendTaskSuccessInput, opts ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error)
	SendTaskFailure(ctx context.Context, in *sfn.SendTaskFailureInput, opts ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error)
}

// TaskOutput is a successful task's output: the state's result.
type TaskOutput struct {
	Model      string `json:"model"`
	Challenger string `json:"challenger,omitempty"`
	SHA256     string `json:"sha256"`
}

// Worker runs the training activity's tasks, one at a time.
type Worker struct {
	SFN SFN
	// Activity is the activity's ARN.
	Activity string
	// Name identifies the worker in the execution's history.
	Name string
	// Options are each run's.
	Options Options
}

// Run polls until ctx is done, running each task it gets. A task's
// failure is reported to Step Functions and the worker goes on; only
// ctx's end stops it (returning nil).
func (w *Worker) Run(ctx context.Context) error {
	if w.SFN == nil || w.Activity == "" {
		return errors.New("training worker: a Step Functions client and an activity ARN are required")
	}
	log := w.Options.Logger
	if log == nil {
		log = slog.Default()
	}
	for ctx.Err() == nil {
		task, err := w.SFN.GetActivityTask(ctx, &sfn.GetActivityTaskInput{ActivityArn: aws.String(w.Activity), WorkerName: aws.String(w.Name)})
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.Error("training worker: polling the activity", "activity", w.Activity, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(retryPause):
			}
			continue
		case aws.ToString(task.TaskToken) == "":
			continue // the long poll ended with no task
		}
		w.task(ctx, log, aws.ToString(task.TaskToken), []byte(aws.ToString(task.Input)))
	}
	return nil
}

// task runs one task and reports it. A report that fails is logged: the
// task then times out in the state machine, which retries it by its own
// rules (and a retried request reuses the model already published).
func (w *Worker) task(ctx context.Context, log *slog.Logger, token string, input []byte) {
	res, err := w.run(ctx, input)
	if err != nil {
		log.Error("training worker: task failed", "error", err)
		cause := err.Error()
		if len(cause) > maxCause {
			cause = cause[:maxCause]
		}
		if _, rerr := w.SFN.SendTaskFailure(context.WithoutCancel(ctx), &sfn.SendTaskFailureInput{TaskToken: aws.String(token),
			Error: aws.String(ErrorTrainingFailed), Cause: aws.String(cause)}); rerr != nil {
			log.Error("training worker: reporting the failure", "error", rerr)
		}
		return
	}
	out, _ := json.Marshal(TaskOutput{Model: res.Model, Challenger: res.Challenger, SHA256: res.SHA256})
	if _, err := w.SFN.SendTaskSuccess(context.WithoutCancel(ctx), &sfn.SendTaskSuccessInput{TaskToken: aws.String(token),
		Output: aws.String(string(out))}); err != nil {
		log.Error("training worker: reporting the success", "model", res.Model, "error", err)
	}
}

func (w *Worker) run(ctx context.Context, input []byte) (*Result, error) {
	req, err := ParseRequest(input)
	if err != nil {
		return nil, err
	}
	return Run(ctx, req, w.Options)
}
