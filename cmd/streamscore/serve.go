package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/ops"
	"github.com/streamscore/streamscore/scorer"
)

// multiModelEnv is what SageMaker sets, to "true", in the containers of a
// multi-model endpoint.
const multiModelEnv = "SAGEMAKER_MULTI_MODEL"

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
		multiModel             bool
		memoryBudget           string
		metricsListen          string
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
default) and the port is 8080 (or $SAGEMAKER_BIND_TO_PORT).

With --multi-model (or SAGEMAKER_MULTI_MODEL=true, which SageMaker sets in the
containers of a multi-model endpoint) it serves SageMaker's multi-model
container contract instead, and --model is not read: POST /models with
{"model_name": NAME, "url": DIR} loads a model (409 if NAME is loaded, 507 if it
does not fit in memory), GET /models and GET /models/NAME list and describe
them, DELETE /models/NAME unloads one, POST /models/NAME/invoke scores as POST
/invocations does, and POST /endpoints/E/invocations scores with the model the
X-Amzn-SageMaker-Target-Model header names (the SDK's TargetModel). Loaded
models are held within --memory-budget bytes of compiled model (default: half
the container's cgroup memory limit, else half the machine's memory); a load
that would pass it first unloads the least recently used idle models.`,
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
			if v := os.Getenv(multiModelEnv); v != "" && !cmd.Flags().Changed("multi-model") {
				multiModel = strings.EqualFold(strings.TrimSpace(v), "true")
			}
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			serveOpts := scorer.ServeOptions{MaxBodyBytes: maxBody, MaxConcurrent: maxConcurrent, Logger: slog.Default()}
			reg, err := serveMetrics(ctx, metricsListen)
			if err != nil {
				return err
			}
			if multiModel {
				budget, err := parseByteSize(memoryBudget)
				if err != nil {
					return fmt.Errorf("--memory-budget: %w", err)
				}
				var met *scorer.MultiModelMetrics
				if reg != nil {
					if met, err = scorer.NewMultiModelMetrics(reg); err != nil {
						return err
					}
				}
				if cmd.Flags().Changed("model") {
					slog.Info("multi-model mode loads models on POST /models; --model is not read", "model", modelPath)
				}
				slog.Info("serving multi-model endpoint", "addr", addr)
				h := scorer.NewMultiModelHandler(scorer.MultiModelOptions{Serve: serveOpts, MemoryBudget: budget, Metrics: met})
				return scorer.Serve(ctx, addr, h, readTimeout, writeTime)
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
			if reg != nil {
				if opts.Metrics, err = scorer.NewMetrics(reg); err != nil {
					return err
				}
			}
			w, err := scorer.WatchModel(ctx, modelPath, opts)
			if err != nil {
				return err
			}
			defer w.Close()
			inf := w.Current().Info()
			slog.Info("serving model", "addr", addr, "model", inf.Source, "version", inf.Version,
				"objective", inf.Objective, "trees", inf.Trees, "features", len(inf.Features))
			h := scorer.NewHandler(w, serveOpts)
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
	f.BoolVar(&multiModel, "multi-model", false, "serve SageMaker's multi-model container contract (POST /models...) instead of one model (default $"+multiModelEnv+" == true)")
	f.StringVar(&memoryBudget, "memory-budget", "", "with --multi-model, the compiled size the loaded models may take, in bytes or with a unit (512MiB, 2GiB, 1.5GB); default half the cgroup memory limit, else half of RAM")
	f.StringVar(&metricsListen, "metrics-listen", "", "address to serve /metrics, /healthz and /readyz on (host:port); off by default")
	return cmd
}

// serveMetrics starts the operations endpoints on addr and returns their
// registry, or nil when addr is empty.
func serveMetrics(ctx context.Context, addr string) (*prometheus.Registry, error) {
	if addr == "" {
		return nil, nil
	}
	reg := ops.NewRegistry()
	srv, err := ops.Listen(addr, reg, nil)
	if err != nil {
		return nil, err
	}
	slog.Info("serving metrics", "addr", srv.Addr())
	go func() {
		if err := srv.Serve(ctx); err != nil {
			slog.Error("metrics server stopped", "err", err)
		}
	}()
	return reg, nil
}

// byteUnits are the units --memory-budget takes, binary and decimal.
var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
}

// parseByteSize reads a size such as 536870912, 512MiB or 1.5GB; "" is 0
// (the default).
func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, nil
	}
	mult := 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	// !(>= 1) also refuses NaN, and a fraction that would round to 0, the default.
	if err != nil || !(v*mult >= 1) || v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a positive size in bytes (e.g. 536870912, 512MiB, 2GiB, 1.5GB)", s)
	}
	return int64(v * mult), nil
}
