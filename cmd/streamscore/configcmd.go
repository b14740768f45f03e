package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with pipeline configuration files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate FILE...",
		Short: "Check pipeline configurations; report every problem with file, line and key",
		Long: `Decodes each file strictly: unknown keys, values of the wrong type, bad
durations and references to undefined streams, schemas, windows, models or
scorers are reported as FILE:LINE: KEY: PROBLEM. Schemas, windows and features
are judged by the windowing package's own rules (docs/windowing.md), on the
specs the pipeline builds from the file, so a file that validates has windows
the pipeline accepts. Exits non-zero if any file has a problem.`,
		Example: "  streamscore config validate examples/factory.yaml examples/churn.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, f := range args {
				cfg, err := config.Load(f)
				if err != nil {
					bad++
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (pipeline %q: %d streams, %d windows, %d scorers)\n",
					f, cfg.Pipeline, len(cfg.Streams), len(cfg.Windows), len(cfg.Scorers))
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d configuration files have problems", bad, len(args))
			}
			return nil
		},
	})
	return cmd
}
