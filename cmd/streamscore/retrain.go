package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/training"
	"github.com/streamscore/streamscore/worker"
)

// maxRequestBytes bounds a request read from a file or stdin: an event's
// detail is a few KiB (EventBridge caps an event at 256 KiB).
const maxRequestBytes = 1 << 20

func newRetrainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retrain",
		Short: "Train a challenger on the labelled data a Retraining Requested event points at",
		Long: `The retraining loop's training step (docs/flywheel.md, "The training step"):
the scorer's results in the request's range joined to the ground truth,
examples/models/train.py on them, the model written to
s3://<bucket>/models/<pipeline>/<scorer>/<request_id>/model.json and copied
to the scorer's challenger path when it is in S3.

AWS credentials, region and endpoints come from the SDK's default chain
(on the local stack: eval "$(streamscore dev env)", and for the worker
AWS_ENDPOINT_URL_SFN set to the stack's CloudWatch endpoint).`,
	}
	cmd.AddCommand(newRetrainTrainCmd(), newRetrainWorkerCmd())
	return cmd
}

// retrainFlags are the flags train and worker share.
type retrainFlags struct {
	cfgPath, python, script, bucket, workDir string
}

func (f *retrainFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cfgPath, "config", "", "pipeline configuration file (required)")
	cmd.MarkFlagRequired("config")
	cmd.Flags().StringVar(&f.python, "python", training.DefaultPython, "the Python interpreter (with xgboost and numpy)")
	cmd.Flags().StringVar(&f.script, "script", training.DefaultScript, "the training script")
	cmd.Flags().StringVar(&f.bucket, "bucket", "", "the bucket models are written to (default: the configuration's sinks.s3.bucket)")
	cmd.Flags().StringVar(&f.workDir, "work-dir", "", "where the training set and model are built (default: the system's temporary directory)")
}

// options loads the configuration and the S3 client.
func (f *retrainFlags) options(ctx context.Context, log *slog.Logger) (training.Options, error) {
	cfg, err := config.Load(f.cfgPath)
	if err != nil {
		return training.Options{}, err
	}
	clients, err := worker.LoadAWS(ctx)
	if err != nil {
		return training.Options{}, err
	}
	return training.Options{Config: cfg, S3: clients.S3, Python: f.python, Script: f.script, Bucket: f.bucket,
		WorkDir: f.workDir, Logger: log}, nil
}

func newRetrainTrainCmd() *cobra.Command {
	var f retrainFlags
	var request string
	cmd := &cobra.Command{
		Use:   "train --config FILE --request FILE|-",
		Short: "Run the training step once for a request (its detail or the whole EventBridge event)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			data, err := readRequest(cmd.InOrStdin(), request)
			if err != nil {
				return err
			}
			req, err := training.ParseRequest(data)
			if err != nil {
				return fmt.Errorf("%s: %w", request, err)
			}
			o, err := f.options(ctx, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			if err != nil {
				return err
			}
			res, err := training.Run(ctx, req, o)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&request, "request", "", `the request: a file holding the event's detail or the whole event, or "-" for stdin (required)`)
	cmd.MarkFlagRequired("request")
	return cmd
}

// readRequest reads the request file, or stdin for "-".
func readRequest(stdin io.Reader, path string) ([]byte, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request %s: %w", path, err)
	}
	if len(data) > maxRequestBytes {
		return nil, fmt.Errorf("the request %s: over %d bytes: not an event", path, maxRequestBytes)
	}
	return data, nil
}

func newRetrainWorkerCmd() *cobra.Command {
	var f retrainFlags
	var activity, name string
	cmd := &cobra.Command{
		Use:   "worker --config FILE --activity ARN",
		Short: "Run a Step Functions activity worker that trains each task's request until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			o, err := f.options(ctx, log)
			if err != nil {
				return err
			}
			awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
			if err != nil {
				return fmt.Errorf("AWS configuration: %w", err)
			}
			if name == "" {
				name = defaultBy()
			}
			w := &training.Worker{SFN: sfn.NewFromConfig(awsCfg), Activity: activity, Name: name, Options: o}
			log.Info("training worker: polling", "activity", activity, "worker", name)
			return w.Run(ctx)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&activity, "activity", "", "the Step Functions activity's ARN (required)")
	cmd.MarkFlagRequired("activity")
	cmd.Flags().StringVar(&name, "name", "", "the worker's name in executions' histories (default: user@host)")
	return cmd
}
