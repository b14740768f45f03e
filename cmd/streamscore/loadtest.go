package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/loadtest"
	"github.com/streamscore/streamscore/training"
	"github.com/streamscore/streamscore/worker"
)

func newLoadtestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Generate traffic with known ground truth and measure the pipeline against it",
	}
	cmd.AddCommand(newDatasetCmd(), newLoadRunCmd())
	return cmd
}

func newDatasetCmd() *cobra.Command {
	var (
		scenario, cfgPath, window, out string
		seed                           uint64
	)
	cmd := &cobra.Command{
		Use:   "dataset",
		Short: "Write a labelled training set: generated traffic through the pipeline's own windows",
		Long: `Runs a scenario's generated events through the real decoder and window operator
of a config's window and writes one CSV row per window: entity, window_end, every
feature, and the label (1 when the machine fails / the user churns within the
scenario's horizon after the window). examples/models/train.py trains on it.

Scenarios: factory-demo (60 runs shaped like the demo's, on its compressed
clock, each with machines of its own), factory (a reading
a second, 10-minute degradation), churn (three weeks of app users).`,
		Example: `  streamscore loadtest dataset --scenario factory-demo --config examples/demo/factory.yaml --seed 1 --out train.csv`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if window == "" {
				window = cfg.Windows[0].Name
			}
			start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
			var (
				src   loadtest.Source
				label loadtest.Labeler
				end   time.Time
				step  time.Duration
			)
			switch scenario {
			case "factory-demo":
				var truth []loadtest.Failure
				src, truth, end = loadtest.FactoryDemoTraining(start, seed)
				label, step = loadtest.FailureLabels(truth, loadtest.FactoryDemoHorizon), 5*time.Second
			case "factory":
				fc, d := loadtest.FactoryTraining(start, seed)
				f := loadtest.NewFleet(fc)
				src, label, end, step = f, loadtest.FailureLabels(f.Truth(), loadtest.FactoryHorizon), start.Add(d), time.Minute
			case "churn":
				ac := loadtest.ChurnHistory(start.Add(21*24*time.Hour), 2000, seed)
				a := loadtest.NewApp(ac)
				src, label = a, loadtest.ChurnLabels(a.Truth(), loadtest.ChurnHorizon)
				start, end, step = ac.Start, ac.Start.Add(ac.Duration), time.Hour
			default:
				return fmt.Errorf("unknown scenario %q (factory-demo, factory, churn)", scenario)
			}
			w := cmd.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			st, err := loadtest.Dataset(cfg, window, src, start, end, step, label, w)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d events (%d rejected, %d late) -> %d windows, %d positive\n",
				st.Events, st.Rejected, st.Late, st.Rows, st.Positives)
			return nil
		},
	}
	cmd.Flags().StringVar(&scenario, "scenario", "factory-demo", "factory-demo, factory or churn")
	cmd.Flags().StringVar(&cfgPath, "config", "", "pipeline config whose window computes the features")
	cmd.Flags().StringVar(&window, "window", "", "window name (default: the config's first)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "generator seed")
	cmd.Flags().StringVar(&out, "out", "", "output CSV (default stdout)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func newLoadRunCmd() *cobra.Command {
	var (
		factoryCfg, churnCfg, reportDir string
		duration, settle, killAt        time.Duration
		workers, machines               int
		seed                            uint64
		aggregate                       bool
		driftField                      string
		driftShift, driftShare          float64
		driftAt                         = loadtest.ShiftAtFraction(loadtest.DefaultDriftAt)
		flywheel                        bool
		fly                             loadtest.FlywheelConfig
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Publish traffic with ground truth, run pipeline workers, and report what they made of it",
		Long: `Starts --workers pipeline processes (this binary's "run" with the configs), waits
until each holds its leases (/readyz), then publishes KPL aggregates (one sender per
shard): the demo fleet in real time (machines degrading for two minutes before
failures at known times) and three weeks of app users replayed on a compressed
clock. It optionally kills a worker with SIGKILL, then reads back everything the
pipelines produced and reports, verdict first:

  - every published event accounted for: counted in a scored window in S3, held in
    a window still open, or dead-lettered as late; windows whose counts differ
    from what was sent are listed;
  - detection: recall, precision and lead time of the failure alerts, and each
    false alarm;
  - end-to-end latency from the moment the stream carried a window's end to the
    alert on a subscribed queue and to the row in S3 (p50, p95, p99);
  - the publisher: how many events went out within 1 s of their schedule. If it
    fell further behind, the summary says so first: latency and detection then
    measure the machine, not the pipeline.

  - with --drift-field: the calibration shift (which field, by how much, on which
    machines, from when), the first drift alert naming a feature computed from that
    field and its delay after the shift (when it reached the queue, and when its
    period ended), drift alerts that named any other feature, and drift alerts for
    periods before the shift. Features map to fields by the window's "field:".

  - with --flywheel, the model's loop on the factory pipeline (its config needs
    labels:, a scorer with a challenger and a monitor.quality entry): each failure
    is published as a label on the labels stream as it happens; a Retraining
    Requested event the pipeline publishes reaches a queue through an EventBridge
    rule and starts a Step Functions execution, whose activity task this process
    takes (train.py with Python's xgboost; without it, requests are reported, not
    trained); the report shows each period's precision and recall per model
    version, each request and its training, and the promotion decision.

A summary goes to the terminal, the same verdict and charts to REPORT_DIR/report.html.
The pipelines' resources must exist and be fresh (make demo starts a new local
stack). Exits non-zero when an event is unaccounted for.`,
		Example: `  streamscore loadtest run --factory-config examples/demo/factory.yaml \
      --churn-config examples/demo/churn.yaml --workers 2 --duration 60s --report-dir out/demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc := loadtest.RunConfig{Duration: duration, Settle: settle, Workers: workers, KillAt: killAt, Seed: seed, Unaggregated: !aggregate, Machines: machines,
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))}
			if driftField != "" {
				rc.Shift = &loadtest.CalibrationShift{Field: driftField, By: driftShift, Share: driftShare, At: driftAt.Of(duration)}
			} else if cmd.Flags().Changed("drift-shift") || cmd.Flags().Changed("drift-share") || cmd.Flags().Changed("drift-at") {
				return errors.New("--drift-shift, --drift-share and --drift-at need --drift-field")
			}
			var configs []string
			for _, c := range []struct {
				path string
				dst  **config.Config
			}{{factoryCfg, &rc.Factory}, {churnCfg, &rc.Churn}} {
				if c.path == "" {
					continue
				}
				cfg, err := config.Load(c.path)
				if err != nil {
					return err
				}
				*c.dst = cfg
				configs = append(configs, c.path)
			}
			if len(configs) == 0 {
				return errors.New("give --factory-config, --churn-config or both")
			}
			if err := os.MkdirAll(reportDir, 0o755); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			rc.Worker = func(i int, listen string) *exec.Cmd {
				return loadtest.WorkerCommand(exe, configs, reportDir, i, listen)
			}
			clients, err := worker.LoadAWS(cmd.Context())
			if err != nil {
				return err
			}
			rc.Clients = loadtest.Clients{Kinesis: clients.Kinesis, S3: clients.S3, SNS: clients.SNS, SQS: clients.SQS}
			if flywheel {
				if err := flywheelClients(cmd.Context(), &rc.Clients, clients); err != nil {
					return err
				}
				rc.Flywheel = &fly
			}
			if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				rc.Progress = cmd.ErrOrStderr()
			}
			rep, err := loadtest.Run(cmd.Context(), rc)
			if err != nil {
				return err
			}
			rep.WriteSummary(cmd.OutOrStdout())
			// The charting script pinned in devstack/node, copied beside the
			// page so the report opens offline; without it the page loads
			// the script from go-echarts' public host.
			var echarts string
			if wd, err := os.Getwd(); err == nil {
				if root, err := devstack.FindRoot(wd); err == nil {
					echarts = filepath.Join(devstack.NodeDir(root), "node_modules", "echarts", "dist", "echarts.min.js")
				}
			}
			html, err := rep.WriteHTMLDir(reportDir, echarts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nreport: %s (worker logs beside it)\n", html)
			return rep.OK()
		},
	}
	cmd.Flags().StringVar(&factoryCfg, "factory-config", "", "factory pipeline config (the demo fleet publishes to its stream)")
	cmd.Flags().StringVar(&churnCfg, "churn-config", "", "churn pipeline config (app history replays to its stream)")
	cmd.Flags().DurationVar(&duration, "duration", time.Minute, "how long to publish")
	cmd.Flags().DurationVar(&settle, "settle", 25*time.Second, "how long to wait after publishing for the last windows to close")
	cmd.Flags().IntVar(&workers, "workers", 2, "pipeline worker processes to start (0: measure a pipeline running elsewhere)")
	cmd.Flags().DurationVar(&killAt, "kill-at", 0, "kill worker 0 with SIGKILL this long into the run (0: never)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "generator seed")
	cmd.Flags().BoolVar(&aggregate, "aggregate", true, "publish KPL-aggregated records, as production producers do (--aggregate=false: one record per event)")
	cmd.Flags().IntVar(&machines, "machines", 40, "machines in the fleet, each reporting 4 times a second")
	cmd.Flags().StringVar(&reportDir, "report-dir", "out/loadtest", "where report.html and the worker logs go")
	cmd.Flags().StringVar(&driftField, "drift-field", "", "shift this sensor's calibration on part of the fleet mid-run (one of "+
		strings.Join(loadtest.SensorFields(), ", ")+"; off when empty)")
	var defaults []string
	for _, f := range loadtest.SensorFields() {
		d, _ := loadtest.DefaultShift(f)
		defaults = append(defaults, fmt.Sprintf("%s %.3g %s", f, d, loadtest.SensorUnit(f)))
	}
	cmd.Flags().Float64Var(&driftShift, "drift-shift", 0, "added to every shifted reading, in the field's units; "+
		"0: one standard deviation of a machine's window mean across the fleet ("+strings.Join(defaults, ", ")+")")
	cmd.Flags().Float64Var(&driftShare, "drift-share", loadtest.DefaultDriftShare, "fraction of machines shifted, chosen by a hash of the machine id")
	cmd.Flags().BoolVar(&flywheel, "flywheel", false, "close the model's loop on the factory pipeline: failures as labels, retraining, promotion")
	cmd.Flags().StringVar(&fly.ChallengerSeed, "challenger-seed", "", "with --flywheel: a model file put at the challenger's s3:// path before the workers start")
	cmd.Flags().StringVar(&fly.Script, "train-script", "", "with --flywheel: the training script (default "+training.DefaultScript+")")
	cmd.Flags().StringVar(&fly.Python, "python", "", "with --flywheel: the interpreter with xgboost (default "+training.DefaultPython+")")
	cmd.Flags().Var(&driftAt, "drift-at", "when the shift starts: a fraction of --duration (0.5) or a duration after the traffic starts (40s)")
	return cmd
}

// flywheelClients adds the loop's clients. On the local stack the
// EventBridge server delivers rule targets to queues of its own, so the
// rule's queue is read at its endpoint (AWS_ENDPOINT_URL_EVENTBRIDGE).
func flywheelClients(ctx context.Context, c *loadtest.Clients, a *worker.AWS) error {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	c.EventBridge, c.DynamoDB, c.SFN = a.EventBridge, a.DynamoDB, sfn.NewFromConfig(cfg)
	c.EventQueues = a.SQS
	if ep := os.Getenv("AWS_ENDPOINT_URL_EVENTBRIDGE"); ep != "" {
		c.EventQueues = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(ep) })
	}
	return nil
}
