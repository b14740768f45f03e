package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/scorer"
)

func newServeCmd() *cobra.Command {
	var (
		modelPath              string
		port                   int
		host                   string
		readTimeout, writeTime time.Duration
		reload                 time.Duration
		maxBody                int64
		maxConcurrent          int
		pinSHA256, versionID   string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a model over SageMaker's inference container contract (GET /ping, POST /invocations)",
		Long: `Serve a model as a SageMaker bring-your-own-container endpoint: GET /ping,
POST /invocations (text/csv, application/json, application/jsonlines in; CSV or
{"predictions":[...]} out), and the runtime API path POST /endpoints/NAME/invocations
so the AWS SDK can call it directly. Bodies over 6 MB get 413; past
--max-concurrent requests in flight, 503 with Retry-After. The model file is
watched and hot-reloaded when it changes.

It listens on 127.0.0.1 unless --host (or $STREAMSCORE_SERVE_HOST) says
otherwise: the container image sets STREAMSCORE_SERVE_HOST=0.0.0.0, because
SageMaker replaces the image's arguments with the single word "serve".

In a SageMaker container the model artifact is unpacked into /opt/ml/model (the
default) and the port is 8080 (or $SAGEMAKER_BIND_TO_PORT).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if p := os.Getenv("SAGEMAKER_BIND_TO_PORT"); p != "" && !cmd.Flags().Changed("port") {
				v, err := strconv.Atoi(p)
				if err != nil {
					return fmt.Errorf("SAGEMAKER_BIND_TO_PORT=%q: %w", p, err)
				}
				port = v
			}
			if h := os.Getenv("STREAMSCORE_SERVE_HOST"); h != "" && !cmd.Flags().Changed("host") {
				host = h
			}
			opts := scorer.WatchOptions{Interval: reload, Logger: slog.Default()}
			if pinSHA256 != "" {
				opts.Load = append(opts.Load, scorer.WithSHA256(pinSHA256))
			}
			if versionID != "" {
				opts.Load = append(opts.Load, scorer.WithVersionID(versionID))
			}
			if strings.HasPrefix(modelPath, "s3://") {
				cfg, err := config.LoadDefaultConfig(ctx)
				if err != nil {
					return fmt.Errorf("aws config: %w", err)
				}
				opts.S3 = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
			}
			w, err := scorer.WatchModel(ctx, modelPath, opts)
			if err != nil {
				return err
			}
			defer w.Close()
			inf := w.Current().Info()
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			slog.Info("serving model", "addr", addr, "model", inf.Source, "version", inf.Version,
				"objective", inf.Objective, "trees", inf.Trees, "features", len(inf.Features))
			h := scorer.NewHandler(w, scorer.ServeOptions{MaxBodyBytes: maxBody, MaxConcurrent: maxConcurrent, Logger: slog.Default()})
			return scorer.Serve(ctx, addr, h, readTimeout, writeTime)
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "/opt/ml/model", "model file, directory holding one, or s3:// URI")
	f.IntVar(&port, "port", 8080, "port to listen on")
	f.StringVar(&host, "host", "127.0.0.1", "address to listen on (0.0.0.0 for every interface; default $STREAMSCORE_SERVE_HOST or 127.0.0.1)")
	f.DurationVar(&readTimeout, "read-timeout", 30*time.Second, "request read timeout")
	f.DurationVar(&writeTime, "write-timeout", 60*time.Second, "response write timeout (SageMaker allows 60 s)")
	f.DurationVar(&reload, "reload-interval", 30*time.Second, "how often to check the model for a new version")
	f.Int64Var(&maxBody, "max-body", scorer.MaxPayloadBytes, "largest request body in bytes (at most 6 MB)")
	f.IntVar(&maxConcurrent, "max-concurrent", 0, "requests decoded and scored at once; more get 503 with Retry-After (default 2 x GOMAXPROCS)")
	f.StringVar(&pinSHA256, "sha256", "", "refuse any model file whose SHA-256 is not this hex digest, at start and on reload (see `streamscore model inspect`)")
	f.StringVar(&versionID, "version-id", "", "for an s3:// model, load this object version (hot reload is then off)")
	return cmd
}
