// Package worker is one streamscore process: the pipelines of one or more
// configurations side by side, sharing a metrics registry and the
// operations endpoints (/metrics, /healthz, /readyz), which stay up while
// the pipelines drain so the shutdown can be watched. Several processes
// with the same configurations share the streams' shards through the
// consumer's leases.
package worker

import (
	"context"
	"errors"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/ops"
	"github.com/streamscore/streamscore/pipeline"
)

// Options are a worker's process-wide settings.
type Options struct {
	// Logger receives every pipeline's logs; default slog.Default().
	Logger *slog.Logger
	// Listen overrides ops.listen of the first configuration, where the
	// operations endpoints are served.
	Listen string
	// WorkerID names this worker in the lease tables; default: the
	// consumer's (host name and a random suffix).
	WorkerID string
	// SpoolDir holds Parquet files being written; default os.TempDir().
	SpoolDir string
}

// Run builds every configuration's pipeline, serves the operations
// endpoints (ready when every pipeline is), and runs the pipelines until
// ctx ends; then each shuts down gracefully (see pipeline.Pipeline.Run).
// A pipeline that fails to build stops the worker before anything runs;
// one that fails while running cancels the others.
func Run(ctx context.Context, cfgs []*config.Config, c pipeline.Clients, o Options) error {
	if len(cfgs) == 0 {
		return errors.New("worker: no pipeline configuration")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	first := cfgs[0]
	listen := first.Ops.Listen
	if o.Listen != "" {
		listen = o.Listen
	}
	reg := ops.NewRegistry()
	var pipes []*pipeline.Pipeline
	closeAll := func() {
		for _, p := range pipes {
			_ = p.Close(context.WithoutCancel(ctx))
		}
	}
	for _, cfg := range cfgs {
		p, err := pipeline.New(ctx, cfg, c, pipeline.Options{Logger: o.Logger, Registerer: reg, WorkerID: o.WorkerID, SpoolDir: o.SpoolDir})
		if err != nil {
			closeAll()
			return err
		}
		pipes = append(pipes, p)
	}
	srv, err := ops.Listen(listen, reg, func(ctx context.Context) error {
		for _, p := range pipes {
			if err := p.Ready(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		closeAll()
		return err
	}
	o.Logger.Info("operations endpoints up", "addr", srv.Addr(), "pipelines", len(pipes))

	// The ops server outlives the pipelines' shutdown so /metrics can be
	// scraped while they drain.
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
		o.Logger.Warn("operations server", "err", serr)
	}
	if err != nil {
		return err
	}
	o.Logger.Info("stopped cleanly")
	return nil
}
