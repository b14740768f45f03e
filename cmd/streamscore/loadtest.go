package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/loadtest"
)

func newLoadtestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Generate traffic with known ground truth and measure the pipeline against it",
	}
	cmd.AddCommand(newDatasetCmd())
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

Scenarios: factory-demo (the demo fleet's compressed clock), factory (a reading
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
			case "factory-demo", "factory":
				fc, d := loadtest.FactoryTraining(start, seed)
				horizon := loadtest.FactoryHorizon
				step = time.Minute
				if scenario == "factory-demo" {
					fc, d = loadtest.FactoryDemoTraining(start, seed)
					horizon = loadtest.FactoryDemoHorizon
					step = 5 * time.Second
				}
				f := loadtest.NewFleet(fc)
				src, label, end = f, loadtest.FailureLabels(f.Truth(), horizon), start.Add(d)
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
