package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/worker"
)

func newConsumerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consumer",
		Short: "Inspect and steer the Kinesis consumer's lease coordination",
	}
	cmd.AddCommand(newMigrationCmd())
	return cmd
}

// newMigrationCmd is Java KCL's migration script for our workers: it reads
// and moves the Migration3.0 state that workers with client_version
// 2x-compatible or 3x follow.
func newMigrationCmd() *cobra.Command {
	var cfgPath, by string
	cmd := &cobra.Command{
		Use:   "migration status|rollback|rollforward --config FILE",
		Short: "Read or move the application's migration between KCL 2.x and 3.x lease sharing",
		Long: `The workers of an application with consumer.client_version 2x-compatible or 3x
follow the client version recorded in its Migration3.0 item, as Java KCL 3.x
workers do (docs/consumer.md):

  status       prints the client version and its history
  rollback     moves CLIENT_VERSION_UPGRADE_FROM_2X or _3X_WITH_ROLLBACK to
               CLIENT_VERSION_2X: every worker goes back to taking and
               stealing leases as KCL 2.x does, at its next poll (a minute)
  rollforward  moves CLIENT_VERSION_2X back to _UPGRADE_FROM_2X, from where
               the fleet moves to 3.x once every lease owner reports metrics

A fleet at CLIENT_VERSION_3X has finished the migration and cannot go back.
AWS credentials, region and endpoints as for "run".`,
		Example: `  streamscore consumer migration status --config examples/factory.yaml
  streamscore consumer migration rollback --config examples/factory.yaml --by oncall@example.com`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"status", "rollback", "rollforward"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			app, table := cfg.Consumer.Application, cfg.Consumer.LeaseTable
			ctx := cmd.Context()
			clients, err := worker.LoadAWS(ctx)
			if err != nil {
				return err
			}
			switch args[0] {
			case "rollback":
				err = consumer.RollBackTo2X(ctx, clients.DynamoDB, app, table, by)
			case "rollforward":
				err = consumer.RollForward(ctx, clients.DynamoDB, app, table, by)
			case "status":
			default:
				return fmt.Errorf("unknown action %q: status, rollback or rollforward", args[0])
			}
			if err != nil {
				return err
			}
			m, ok, err := consumer.MigrationStatus(ctx, clients.DynamoDB, app, table)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("no migration state: the application's workers run client_version 2x, or none has started with 2x-compatible or 3x")
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %s (by %s at %s)\n", app, m.ClientVersion, m.ModifiedBy, m.ModifiedAt.UTC().Format(time.RFC3339))
			for _, h := range m.History {
				fmt.Fprintf(out, "  before: %s (by %s at %s)\n", h.ClientVersion, h.ModifiedBy, h.ModifiedAt.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "pipeline configuration file (required): names the application and its lease table")
	cmd.MarkFlagRequired("config")
	cmd.Flags().StringVar(&by, "by", defaultBy(), "who moves it, recorded in the state's history")
	return cmd
}
