package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/ops"
	"github.com/streamscore/streamscore/pipeline"
)

func newRunCmd() *cobra.Command {
	var (
		cfgPaths []string
		listen   string
		workerID string
		spoolDir string
	)
	cmd := &cobra.Command{
		Use:   "run --config FILE [--config FILE...]",
		Short: "Run scoring pipelines: consume, window, score and deliver until stopped",
		Long: `Runs the pipelines the configurations describe, side by side in one process.
Several processes with the same configuration share the streams' shards through
leases in DynamoDB; stopping one (SIGINT or SIGTERM) finishes the batch in hand,
flushes the sinks, checkpoints what is durable and hands its leases over.

AWS credentials and region come from the SDK's default chain; endpoints from the
standard AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> variables (see
"streamscore dev env" for the local stack).

Operations endpoints: /metrics (Prometheus), /healthz, /readyz on ops.listen of
the first configuration (default 127.0.0.1:9464).`,
		Example: `  streamscore run --config examples/factory.yaml
  streamscore run --config examples/factory.yaml --config examples/churn.yaml --listen 127.0.0.1:0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(cfgPaths) == 0 {
				return errors.New("--config is required (see examples/factory.yaml)")
			}
			var cfgs []*config.Config
			for _, path := range cfgPaths {
				cfg, err := config.Load(path)
				if err != nil {
					return err
				}
				cfgs = append(cfgs, cfg)
			}
			first := cfgs[0]
			if listen != "" {
				first.Ops.Listen = listen
			}
			log, err := ops.NewLogger(os.Stderr, first.Ops.LogFormat, first.Ops.LogLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			clients, err := awsClients(ctx)
			if err != nil {
				return err
			}
			reg := ops.NewRegistry()
			var pipes []*pipeline.Pipeline
			for _, cfg := range cfgs {
				p, err := pipeline.New(ctx, cfg, clients, pipeline.Options{Logger: log, Registerer: reg, WorkerID: workerID, SpoolDir: spoolDir})
				if err != nil {
					for _, q := range pipes {
						_ = q.Close(context.WithoutCancel(ctx))
					}
					return err
				}
				pipes = append(pipes, p)
			}
			srv, err := ops.Listen(first.Ops.Listen, reg, func(ctx context.Context) error {
				for _, p := range pipes {
					if err := p.Ready(ctx); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			log.Info("operations endpoints up", "addr", srv.Addr(), "pipelines", len(pipes))

			// The ops server outlives the pipelines' shutdown so /metrics
			// can be scraped while they drain.
			srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
			defer stopSrv()
			srvDone := make(chan error, 1)
			go func() { srvDone <- srv.Serve(srvCtx) }()

			g, gctx := errgroup.WithContext(ctx)
			for _, p := range pipes {
				g.Go(func() error { return p.Run(gctx) })
			}
			err = g.Wait()
			stopSrv()
			if serr := <-srvDone; serr != nil {
				log.Warn("operations server", "err", serr)
			}
			if err != nil {
				return err
			}
			log.Info("stopped cleanly")
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&cfgPaths, "config", nil, "pipeline configuration file (YAML); repeat to run several pipelines in one process")
	cmd.Flags().StringVar(&listen, "listen", "", "override ops.listen, the address of /metrics, /healthz and /readyz")
	cmd.Flags().StringVar(&workerID, "worker-id", "", "this worker's id in the lease tables (default: host name and a random suffix)")
	cmd.Flags().StringVar(&spoolDir, "spool-dir", "", "directory for Parquet files being written (default: the system temp dir)")
	return cmd
}

// awsClients builds the SDK clients from the default configuration chain:
// credentials, region and AWS_ENDPOINT_URL_* come from the environment.
func awsClients(ctx context.Context) (pipeline.Clients, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return pipeline.Clients{}, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return pipeline.Clients{}, errors.New("no AWS region: set AWS_REGION (or a profile's region)")
	}
	slog.Debug("AWS configuration loaded", "region", cfg.Region)
	return pipeline.Clients{
		Kinesis:    kinesis.NewFromConfig(cfg),
		DynamoDB:   dynamodb.NewFromConfig(cfg),
		S3:         s3.NewFromConfig(cfg),
		SNS:        sns.NewFromConfig(cfg),
		SQS:        sqs.NewFromConfig(cfg),
		CloudWatch: cloudwatch.NewFromConfig(cfg),
		SageMaker:  sagemakerruntime.NewFromConfig(cfg),
	}, nil
}
