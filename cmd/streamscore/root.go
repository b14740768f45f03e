package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "streamscore",
		Short: "Real-time scoring pipelines for Amazon Kinesis streams",
		Long: `streamscore consumes Kinesis streams with KCL-compatible leases in DynamoDB,
computes event-time windowed features, scores them with an embedded XGBoost or
linear model (or a SageMaker endpoint behind a circuit breaker), and writes the
results to S3 (Parquet), CloudWatch, SNS alerts and an online feature table.

Start here:
  streamscore dev up --config examples/factory.yaml   # local AWS stack, no Docker
  eval "$(streamscore dev env)"                        # point AWS tools at it
  streamscore config validate examples/factory.yaml
  streamscore run --config examples/factory.yaml

AWS credentials and region come from the SDK's default chain; endpoints from the
standard AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> variables.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(),
		newDevCmd(),
		newConfigCmd(),
		newVersionCmd(),
		newLoadtestCmd(),
		newModelCmd(),
		newServeCmd(),
		newMonitorCmd(),
		newRetrainCmd(),
		newReviewCmd(),
		newConsumerCmd(),
	)
	return root
}
