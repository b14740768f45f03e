package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/ops"
)

func newRunCmd() *cobra.Command {
	var cfgPath, listen string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run a scoring pipeline: consume, window, score and deliver until stopped",
		Long: `Runs the pipeline the configuration describes. Several processes with the same
configuration share the streams' shards through leases in DynamoDB; stopping one
(SIGINT or SIGTERM) finishes the batch in hand, flushes the sinks, checkpoints
what is durable and hands its leases over.

Operations endpoints: /metrics (Prometheus), /healthz, /readyz on ops.listen
(default 127.0.0.1:9464).`,
		Example: `  streamscore run --config examples/factory.yaml
  streamscore run --config examples/factory.yaml --listen 127.0.0.1:0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return errors.New("--config is required (see examples/factory.yaml)")
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Ops.Listen = listen
			}
			log, err := ops.NewLogger(os.Stderr, cfg.Ops.LogFormat, cfg.Ops.LogLevel)
			if err != nil {
				return err
			}
			reg := ops.NewRegistry()
			srv, err := ops.Listen(cfg.Ops.Listen, reg, nil)
			if err != nil {
				return err
			}
			log.Info("operations endpoints up", "addr", srv.Addr())
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return srv.Serve(ctx) })
			g.Go(func() error {
				return fmt.Errorf("pipeline %q: the pipeline package is not built yet in this version", cfg.Pipeline)
			})
			return g.Wait()
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "pipeline configuration file (YAML)")
	cmd.Flags().StringVar(&listen, "listen", "", "override ops.listen, the address of /metrics, /healthz and /readyz")
	return cmd
}
