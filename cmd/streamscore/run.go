package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/ops"
	"github.com/streamscore/streamscore/worker"
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
			log, err := ops.NewLogger(os.Stderr, cfgs[0].Ops.LogFormat, cfgs[0].Ops.LogLevel)
			if err != nil {
				return err
			}
			clients, err := worker.LoadAWS(cmd.Context())
			if err != nil {
				return err
			}
			return worker.Run(cmd.Context(), cfgs, clients.Pipeline(), worker.Options{Logger: log, Listen: listen, WorkerID: workerID, SpoolDir: spoolDir})
		},
	}
	cmd.Flags().StringArrayVar(&cfgPaths, "config", nil, "pipeline configuration file (YAML); repeat to run several pipelines in one process")
	cmd.Flags().StringVar(&listen, "listen", "", "override ops.listen, the address of /metrics, /healthz and /readyz")
	cmd.Flags().StringVar(&workerID, "worker-id", "", "this worker's id in the lease tables (default: host name and a random suffix)")
	cmd.Flags().StringVar(&spoolDir, "spool-dir", "", "directory for Parquet files being written (default: the system temp dir)")
	return cmd
}
