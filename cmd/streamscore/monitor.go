package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/worker"
)

// violationsError is what `monitor check --fail-on-violation` returns when
// the input violates the baseline's constraints.
type violationsError struct {
	n    int
	file string
}

func (e *violationsError) Error() string {
	if e.n == 1 {
		return "1 constraint violation (listed in " + e.file + ")"
	}
	return fmt.Sprintf("%d constraint violations (listed in %s)", e.n, e.file)
}

// ExitCode is the status the process exits with.
func (e *violationsError) ExitCode() int { return exitViolations }

const inputRequired = "--input is required: a CSV or Parquet file, a directory, or an s3:// URI"

func newMonitorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Data drift and model quality in SageMaker Model Monitor's formats",
		Long: `Makes a baseline (statistics.json, constraints.json) from a training set or
from the results the S3 sink wrote, and checks a dataset against a baseline
(statistics.json, constraint_violations.json), in the formats SageMaker Model
Monitor reads and writes: a baseline Model Monitor made can be checked against,
and tools that read Model Monitor's files read these.

--input is a CSV file with a header line (optionally gzip'd), a Parquet file,
a local directory, an S3 object (s3://bucket/key) or every object under an S3
prefix (s3://bucket/prefix/, e.g. the S3 sink's results prefix). Names
starting with "_" or "." under a directory or prefix are skipped. CSV columns
are typed as Model Monitor infers them; of Parquet files, the feature and
score columns are profiled, and update and partial rows are left out, as the
in-stream monitor does (docs/monitor.md).

AWS credentials and region come from the SDK's default chain; the S3 endpoint
from AWS_ENDPOINT_URL_S3 (see "streamscore dev env" for the local stack).`,
	}
	cmd.AddCommand(newMonitorBaselineCmd(), newMonitorCheckCmd(), newMonitorQualityCmd())
	return cmd
}

func newMonitorBaselineCmd() *cobra.Command {
	var input, out string
	var noCompare []string
	cmd := &cobra.Command{
		Use:   "baseline --input FILE --out DIR",
		Short: "Profile a dataset into DIR/statistics.json and DIR/constraints.json",
		Long: `Profiles the input as Model Monitor's baselining job does and writes
DIR/statistics.json (item count; per feature its inferred type, present and
missing counts, mean, sum, std_dev, min, max and the KLL sketch with its
buckets, or the categories of a string feature) and DIR/constraints.json (the
constraints Model Monitor suggests from them, and the default monitoring
config: a Robust comparison at 0.1).`,
		Example: `  streamscore monitor baseline --input train.csv --out baseline/
  streamscore monitor baseline --input s3://lake/results/stream=factory/dt=2026-11-24/ --out baseline/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case input == "":
				return errors.New(inputRequired)
			case out == "":
				return errors.New("--out is required: the directory to write statistics.json and constraints.json to")
			}
			s3c, err := s3For(cmd.Context(), input)
			if err != nil {
				return err
			}
			stats, err := profileStatistics(cmd.Context(), s3c, input)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			if err := writeFile(filepath.Join(out, dataset.StatisticsFile), stats.WriteJSON); err != nil {
				return err
			}
			cons := monitor.Suggest(stats)
			if err := cons.DisableComparison(noCompare...); err != nil {
				return fmt.Errorf("--no-compare: %w", err)
			}
			if err := writeFile(filepath.Join(out, dataset.ConstraintsFile), cons.WriteJSON); err != nil {
				return err
			}
			printProfile(cmd.OutOrStdout(), stats)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s\n", filepath.Join(out, dataset.StatisticsFile), filepath.Join(out, dataset.ConstraintsFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "the dataset: CSV or Parquet file, directory, s3://bucket/key or s3://bucket/prefix/")
	cmd.Flags().StringVar(&out, "out", "", "directory to write statistics.json and constraints.json to")
	cmd.Flags().StringSliceVar(&noCompare, "no-compare", nil, "features whose distribution is not compared (perform_comparison Disabled in their monitoringConfigOverrides); completeness and type are still checked")
	return cmd
}

func newMonitorCheckCmd() *cobra.Command {
	var baseline, input, out string
	var failOnViolation bool
	cmd := &cobra.Command{
		Use:   "check --baseline DIR --input FILE --out DIR [--fail-on-violation]",
		Short: "Compare a dataset with a baseline; write statistics.json and constraint_violations.json",
		Long: `Profiles the input, compares it with the baseline in DIR, a directory or an
S3 prefix (s3://bucket/prefix/) holding statistics.json and constraints.json,
ours or Model Monitor's, with or without sketch data (without constraints.json,
the constraints Model Monitor would suggest for the statistics), by Model
Monitor's checks (data_type_check, completeness_check,
baseline_drift_check, missing_column_check, extra_column_check,
categorical_values_check), writes OUT/statistics.json and
OUT/constraint_violations.json, and prints each feature's drift distance with
its threshold, PSI, Jensen-Shannon, Wasserstein-1 and the KS statistic.

Exit status: 0 when the check ran (violations or not, unless
--fail-on-violation); 2 when it ran and found violations with
--fail-on-violation; 1 when it could not run (a usage error, an unreadable
baseline or input, a file it could not write).`,
		Example: `  streamscore monitor check --baseline baseline/ --input today.csv --out check/
  streamscore monitor check --baseline s3://lake/baselines/factory/ --input s3://lake/results/ --out check/ --fail-on-violation`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case baseline == "":
				return errors.New("--baseline is required: the directory or s3:// prefix holding statistics.json and constraints.json")
			case input == "":
				return errors.New(inputRequired)
			case out == "":
				return errors.New("--out is required: the directory to write statistics.json and constraint_violations.json to")
			case filepath.Clean(out) == filepath.Clean(baseline):
				return errors.New("--out is the baseline directory: the check's statistics.json would replace the baseline's")
			}
			s3c, err := s3For(cmd.Context(), baseline, input)
			if err != nil {
				return err
			}
			baseStats, cons, err := dataset.LoadBaseline(cmd.Context(), s3c, baseline)
			if err != nil {
				return fmt.Errorf("--baseline: %w", err)
			}
			stats, err := profileStatistics(cmd.Context(), s3c, input)
			if err != nil {
				return err
			}
			rep := monitor.Compare(baseStats, cons, stats)
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			if err := writeFile(filepath.Join(out, dataset.StatisticsFile), stats.WriteJSON); err != nil {
				return err
			}
			vf := filepath.Join(out, dataset.ViolationsFile)
			if err := writeFile(vf, rep.WriteViolations); err != nil {
				return err
			}
			printReport(cmd.OutOrStdout(), stats, rep)
			if failOnViolation && len(rep.Violations) > 0 {
				return &violationsError{n: len(rep.Violations), file: vf}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&baseline, "baseline", "", "directory or s3://bucket/prefix/ holding the baseline's statistics.json and constraints.json")
	cmd.Flags().StringVar(&input, "input", "", "the dataset: CSV or Parquet file, directory, s3://bucket/key or s3://bucket/prefix/")
	cmd.Flags().StringVar(&out, "out", "", "directory to write statistics.json and constraint_violations.json to")
	cmd.Flags().BoolVar(&failOnViolation, "fail-on-violation", false, "exit with status 2 when there are violations")
	return cmd
}

// profileStatistics reads the input into the statistics of one dataset.
func profileStatistics(ctx context.Context, s3c dataset.S3, input string) (*monitor.Statistics, error) {
	objs, err := dataset.Open(ctx, s3c, input)
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	prof, err := dataset.Profile(ctx, objs, monitor.Options{})
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	return prof.Statistics(), nil
}

// s3For returns the S3 client from the SDK's default chain, the one every
// other command uses (AWS_ENDPOINT_URL_S3 points it at a local server),
// when a location is an s3:// URI; nil otherwise, so that local files
// need no AWS configuration.
func s3For(ctx context.Context, locations ...string) (dataset.S3, error) {
	for _, l := range locations {
		if !dataset.IsS3(l) {
			continue
		}
		c, err := worker.LoadAWS(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l, err)
		}
		return c.S3, nil
	}
	return nil, nil
}

// writeFile writes a file through write, naming it in errors.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// printProfile prints one line per feature of a baseline.
func printProfile(w io.Writer, s *monitor.Statistics) {
	fmt.Fprintf(w, "%d rows, %d features\n", s.Dataset.ItemCount, len(s.Features))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "feature\tkind\tpresent\tmissing\tmean\tstd_dev\tmin\tmax\tdistinct")
	for _, f := range s.Features {
		if n := f.NumericalStatistics; n != nil {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t-\n", f.Name, f.InferredType, n.Common.NumPresent, n.Common.NumMissing,
				num(n.Mean), num(n.StdDev), num(n.Min), num(n.Max))
			continue
		}
		if c := f.StringStatistics; c != nil {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t-\t-\t-\t-\t%s\n", f.Name, f.InferredType, c.Common.NumPresent, c.Common.NumMissing, num(c.DistinctCount))
		}
	}
	tw.Flush()
}

// printReport prints each feature's distances and the violations.
func printReport(w io.Writer, s *monitor.Statistics, r *monitor.Report) {
	fmt.Fprintf(w, "%d rows, %d features\n", s.Dataset.ItemCount, len(s.Features))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "feature\tkind\tdistance\tthreshold\tdrifted\tPSI\tJS\tWasserstein\tKS")
	for _, f := range r.Features {
		drifted := "no"
		if f.Drifted {
			drifted = "YES"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Kind, num(f.Distance), num(f.Threshold), drifted,
			num(f.PSI), num(f.JensenShannon), num(f.Wasserstein), num(f.KS))
	}
	tw.Flush()
	if len(r.Violations) == 0 {
		fmt.Fprintln(w, "no violations")
		return
	}
	if len(r.Violations) == 1 {
		fmt.Fprintln(w, "1 violation:")
	} else {
		fmt.Fprintf(w, "%d violations:\n", len(r.Violations))
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range r.Violations {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.FeatureName, v.ConstraintCheckType, v.Description)
	}
	tw.Flush()
}

// num prints a statistic to five significant digits; NaN (not computed,
// e.g. a feature absent from one side) as "-".
func num(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 5, 64)
}
