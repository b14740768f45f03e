package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/scorer"
)

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect, run, benchmark, promote and roll back scoring models (XGBoost JSON/UBJSON, model.tar.gz, linear JSON)",
	}
	cmd.AddCommand(newModelInspectCmd(), newModelPredictCmd(), newModelBenchCmd(),
		newModelPromoteCmd(), newModelRollbackCmd(), newModelStatusCmd())
	return cmd
}

// loadModelArg loads a model from a path, a directory holding one, or an
// s3:// URI (S3 client from the SDK's default configuration).
func loadModelArg(ctx context.Context, uri string, allTrees bool) (*scorer.Model, error) {
	var getter scorer.ObjectGetter
	if strings.HasPrefix(uri, "s3://") {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("aws config: %w", err)
		}
		getter = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	}
	var opts []scorer.LoadOption
	if allTrees {
		opts = append(opts, scorer.WithAllTrees())
	}
	return scorer.LoadModel(ctx, uri, getter, opts...)
}

func newModelInspectCmd() *cobra.Command {
	var allTrees bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a model's objective, trees, depth and features",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := loadModelArg(cmd.Context(), args[0], allTrees)
			if err != nil {
				return err
			}
			inf := m.Info()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "source:\t%s\n", inf.Source)
			fmt.Fprintf(w, "kind:\t%s (%s)\n", inf.Kind, inf.Encoding)
			if inf.Booster != "" {
				fmt.Fprintf(w, "booster:\t%s\n", inf.Booster)
			}
			switch {
			case inf.FormatVersion == "":
			case inf.Kind == "xgboost":
				fmt.Fprintf(w, "written by:\tXGBoost %s\n", inf.FormatVersion)
			default:
				fmt.Fprintf(w, "format version:\t%s\n", inf.FormatVersion)
			}
			fmt.Fprintf(w, "version:\t%s\n", inf.Version)
			fmt.Fprintf(w, "sha256:\t%s\n", inf.SHA256) // the value models.NAME.sha256 pins
			fmt.Fprintf(w, "objective:\t%s\n", inf.Objective)
			fmt.Fprintf(w, "outputs:\t%d\n", inf.Outputs)
			if inf.TotalTrees > 0 {
				fmt.Fprintf(w, "trees:\t%d used of %d\n", inf.Trees, inf.TotalTrees)
				if inf.BestIteration >= 0 {
					fmt.Fprintf(w, "best_iteration:\t%d\n", inf.BestIteration)
				}
				fmt.Fprintf(w, "max depth:\t%d\n", inf.MaxDepth)
			}
			fmt.Fprintf(w, "features:\t%d\n", len(inf.Features))
			for i, f := range inf.Features {
				typ := ""
				if i < len(inf.FeatureTypes) {
					typ = inf.FeatureTypes[i]
				}
				fmt.Fprintf(w, "  %d\t%s\t%s\n", i, f, typ)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&allTrees, "all-trees", false, "use every tree, ignoring best_iteration")
	return cmd
}

func newModelPredictCmd() *cobra.Command {
	var modelPath, input, output string
	var allTrees bool
	cmd := &cobra.Command{
		Use:   "predict --model FILE --input FILE.csv [--output FILE]",
		Short: "Score a CSV of features (header row of feature names; empty cell = missing)",
		Long: `Score a CSV whose first row names the features (in any order; extra columns
are ignored); an empty cell is a missing value. The output has a header (score,
or score_0..score_k for multi-class models) and one row per input row, in order,
in shortest round-trip form (full float64 precision).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := loadModelArg(cmd.Context(), modelPath, allTrees)
			if err != nil {
				return err
			}
			in, err := os.Open(input)
			if err != nil {
				return err
			}
			defer in.Close()
			var out io.Writer = cmd.OutOrStdout()
			if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			if err := scorer.PredictCSV(m, in, out); err != nil {
				return fmt.Errorf("%s: %w", input, err)
			}
			if f, ok := out.(*os.File); ok && f != os.Stdout {
				return f.Close()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model file, directory or s3:// URI (required)")
	cmd.Flags().StringVar(&input, "input", "", "input CSV (required)")
	cmd.Flags().StringVar(&output, "output", "", "output CSV (default standard output)")
	cmd.Flags().BoolVar(&allTrees, "all-trees", false, "use every tree, ignoring best_iteration")
	cmd.MarkFlagRequired("model")
	cmd.MarkFlagRequired("input")
	return cmd
}

func newModelBenchCmd() *cobra.Command {
	var modelPath string
	var rows, batch int
	var dur time.Duration
	var missing float64
	cmd := &cobra.Command{
		Use:   "bench --model FILE [--rows N] [--batch N]",
		Short: "Measure scoring throughput (rows/s) on one core with random rows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := loadModelArg(cmd.Context(), modelPath, false)
			if err != nil {
				return err
			}
			res, err := scorer.BenchModel(m, scorer.BenchOptions{Rows: rows, Batch: batch, Duration: dur, MissingRate: missing})
			if err != nil {
				return err
			}
			inf := m.Info()
			fmt.Fprintf(cmd.OutOrStdout(), "model %s: %s, %d trees, depth %d, %d features\n",
				inf.Source, inf.Objective, inf.Trees, inf.MaxDepth, len(inf.Features))
			fmt.Fprintf(cmd.OutOrStdout(), "%d rows in batches of %d on one goroutine: %.0f rows/s (%.0f rows per CPU-second)\n",
				res.Rows, batch, res.RowsPerSec, res.RowsPerCPUSec)
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model file, directory or s3:// URI (required)")
	cmd.Flags().IntVar(&rows, "rows", 65536, "distinct random rows")
	cmd.Flags().IntVar(&batch, "batch", 4096, "rows per batch")
	cmd.Flags().DurationVar(&dur, "duration", 3*time.Second, "how long to run")
	cmd.Flags().Float64Var(&missing, "missing", 0.05, "fraction of missing values")
	cmd.MarkFlagRequired("model")
	return cmd
}
