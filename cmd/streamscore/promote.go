package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/retrain"
	"github.com/streamscore/streamscore/worker"
)

// decisionFlags are the flags promote, rollback and status share.
type decisionFlags struct {
	cfgPath, scorer string
	// expect is the generation the decision must be at; -1 takes the one
	// read just before writing.
	expect      int64
	by          string
	createTable bool
}

func (f *decisionFlags) register(cmd *cobra.Command, write bool) {
	cmd.Flags().StringVar(&f.cfgPath, "config", "", "pipeline configuration file (required)")
	cmd.MarkFlagRequired("config")
	if !write {
		cmd.Flags().StringVar(&f.scorer, "scorer", "", "the scorer (default: every scorer with a promotion section)")
		return
	}
	cmd.Flags().StringVar(&f.scorer, "scorer", "", "the scorer whose champion changes (required)")
	cmd.MarkFlagRequired("scorer")
	cmd.Flags().Int64Var(&f.expect, "expect-generation", -1, "write only if the decision is at this generation (as status printed it); default: the one read just before")
	cmd.Flags().StringVar(&f.by, "by", defaultBy(), "who decides, recorded with the decision")
	cmd.Flags().BoolVar(&f.createTable, "create-table", false, "create the decision table if missing (the local stack; in production the CDK app creates it)")
}

// defaultBy names the person at the terminal: user@host.
func defaultBy() string {
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, _ := os.Hostname()
	return user + "@" + host
}

// decisionTarget is a scorer's decision store and the configuration
// around it.
type decisionTarget struct {
	cfg    *config.Config
	scorer config.Scorer
	table  string
	store  *dynamo.Store
}

// openDecisions loads the configuration and the AWS clients and returns
// the decision stores of the named scorer, or of every scorer with a
// promotion section when name is empty.
func openDecisions(ctx context.Context, cfgPath, name string) ([]decisionTarget, *worker.AWS, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	var picked []config.Scorer
	var names []string
	for _, s := range cfg.Scorers {
		names = append(names, s.Name)
		if (name == "" && s.Promotion != nil) || s.Name == name {
			picked = append(picked, s)
		}
	}
	switch {
	case name != "" && len(picked) == 0:
		return nil, nil, fmt.Errorf("%s: no scorer %q (scorers: %s)", cfgPath, name, strings.Join(names, ", "))
	case name != "" && picked[0].Promotion == nil:
		return nil, nil, fmt.Errorf("%s: scorer %q has no promotion section: the pipeline follows decisions only for scorers with one (docs/flywheel.md)", cfgPath, name)
	case len(picked) == 0:
		return nil, nil, fmt.Errorf("%s: no scorer has a promotion section (docs/flywheel.md)", cfgPath)
	}
	clients, err := worker.LoadAWS(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []decisionTarget
	for _, s := range picked {
		table := s.Promotion.TableName(cfg.Pipeline)
		configured := promotion.Model{Key: s.Model}
		if m := cfg.Models[s.Model]; m != nil {
			configured.Path, configured.SHA256 = m.Path, m.SHA256
		}
		st, err := dynamo.NewStore(clients.DynamoDB, dynamo.Config{Table: table, Pipeline: cfg.Pipeline, Scorer: s.Name, Configured: configured})
		if err != nil {
			return nil, nil, err
		}
		out = append(out, decisionTarget{cfg: cfg, scorer: s, table: table, store: st})
	}
	return out, clients, nil
}

// current reads the decision, creating the table first when asked to,
// and says what to do about a missing table.
func (t decisionTarget) current(ctx context.Context, clients *worker.AWS, create bool) (promotion.Decision, error) {
	if create {
		if err := dynamo.EnsureTable(ctx, clients.DynamoDB, t.table); err != nil {
			return promotion.Decision{}, err
		}
	}
	d, err := t.store.Current(ctx)
	if nf := (*types.ResourceNotFoundException)(nil); errors.As(err, &nf) {
		return d, fmt.Errorf("decision table %s does not exist: the CDK app creates it in production; on the local stack, promote with --create-table: %w", t.table, err)
	}
	return d, err
}

// announce publishes a decision written by hand as the pipeline's own are
// (a Model Promoted or Model Rolled Back event), on the bus of
// monitor.retrain; a pipeline without one publishes none. The decision is
// written either way, so a failure is reported, not returned: a retry of
// the command would be refused on the generation.
func announce(ctx context.Context, cmd *cobra.Command, t decisionTarget, clients *worker.AWS, d promotion.Decision) {
	r := t.cfg.Monitor.Retrain
	ev := retrain.NewModelDecision(d)
	if r == nil || ev == nil {
		return
	}
	// The line below says it; the publisher's own log would repeat it.
	pub := retrain.NewPublisher(clients.EventBridge, retrain.PublisherOptions{EventBus: r.EventBus, Logger: slog.New(slog.DiscardHandler)})
	if _, err := pub.Publish(ctx, ev); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "the decision is written, but its %q event was not published on bus %s: %v\n", ev.DetailType(), pub.EventBus(), err)
		return
	}
	fmt.Fprintf(cmd.OutOrStdout(), "announced: %q on bus %s\n", ev.DetailType(), pub.EventBus())
}

func expected(flag int64, d promotion.Decision) int64 {
	if flag >= 0 {
		return flag
	}
	return d.Generation
}

func newModelPromoteCmd() *cobra.Command {
	var f decisionFlags
	var to, reason string
	var challenger bool
	cmd := &cobra.Command{
		Use:   "promote --config FILE --scorer S (--to MODEL | --challenger) --reason TEXT",
		Short: "Make a model the champion of a scorer, for every worker of the pipeline",
		Long: `Writes a decision to the pipeline's decision table (DynamoDB): the model becomes
the scorer's champion and the one it replaces the previous champion, which
"model rollback" restores. Every worker follows the decision (docs/flywheel.md).

The model is a key of the configuration's models (--to) or the scorer's
challenger (--challenger). It is loaded first, with its sha256 and version_id
pins and limits: a model that does not load is not promoted. The decision
records its path, version and digest.

The write is conditional on the decision's generation: if another decision
was written since it was read (or since --expect-generation), nothing is
written and the command fails; read "model status" and decide again.

AWS credentials, region and endpoints as for "run" (see "streamscore dev env").`,
		Example: `  streamscore model promote --config examples/factory.yaml --scorer failure --challenger --reason "auc 0.91 vs 0.87 on 5 204 rows"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (to != "") == challenger {
				return errors.New("name the model to promote: --to MODEL or --challenger, one of them")
			}
			ctx := cmd.Context()
			targets, clients, err := openDecisions(ctx, f.cfgPath, f.scorer)
			if err != nil {
				return err
			}
			t := targets[0]
			if challenger {
				if to = t.scorer.Challenger; to == "" {
					return fmt.Errorf("%s: scorer %q has no challenger", f.cfgPath, t.scorer.Name)
				}
			}
			m, err := pipeline.PromotableModel(ctx, t.cfg, to, clients.S3)
			if err != nil {
				return err
			}
			cur, err := t.current(ctx, clients, f.createTable)
			if err != nil {
				return err
			}
			d, err := t.store.Promote(ctx, expected(f.expect, cur), m, reason, f.by)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "scorer %s: %s is champion, replacing %s (generation %d)\n",
				t.scorer.Name, d.Champion, d.Previous, d.Generation)
			announce(ctx, cmd, t, clients, d)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&to, "to", "", "the model to promote: a key of the configuration's models")
	cmd.Flags().BoolVar(&challenger, "challenger", false, "promote the scorer's challenger")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the decision (required)")
	cmd.MarkFlagRequired("reason")
	return cmd
}

func newModelRollbackCmd() *cobra.Command {
	var f decisionFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "rollback --config FILE --scorer S [--reason TEXT]",
		Short: "Restore a scorer's previous champion, for every worker of the pipeline",
		Long: `Writes a decision that makes the previous champion the champion again; the one
it replaces becomes the previous, so a second rollback undoes the first. The
write is conditional on the generation, as for "model promote".`,
		Example: `  streamscore model rollback --config examples/factory.yaml --scorer failure --reason "false alarms doubled"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			targets, clients, err := openDecisions(ctx, f.cfgPath, f.scorer)
			if err != nil {
				return err
			}
			t := targets[0]
			cur, err := t.current(ctx, clients, f.createTable)
			if err != nil {
				return err
			}
			if reason == "" {
				reason = "rolled back by hand"
			}
			d, err := t.store.Rollback(ctx, expected(f.expect, cur), reason, f.by)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "scorer %s: rolled back to %s, replacing %s (generation %d)\n",
				t.scorer.Name, d.Champion, d.Previous, d.Generation)
			announce(ctx, cmd, t, clients, d)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the decision")
	return cmd
}

func newModelStatusCmd() *cobra.Command {
	var f decisionFlags
	var history bool
	cmd := &cobra.Command{
		Use:   "status --config FILE [--scorer S] [--history]",
		Short: "Print the champion decision of a scorer: champion, previous, generation, reason, when",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			targets, clients, err := openDecisions(ctx, f.cfgPath, f.scorer)
			if err != nil {
				return err
			}
			for i, t := range targets {
				d, err := t.current(ctx, clients, false)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				if err := printDecision(cmd.OutOrStdout(), t.table, d, history); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&history, "history", false, "also list the decisions kept, newest first")
	return cmd
}

func printDecision(out io.Writer, table string, d promotion.Decision, history bool) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "scorer:\t%s (pipeline %s, table %s)\n", d.Scorer, d.Pipeline, table)
	if d.Generation == 0 {
		fmt.Fprintf(w, "champion:\t%s\t%s\n", d.Champion, d.Champion.Path)
		fmt.Fprintf(w, "generation:\t0 (no decision yet: the configuration's model)\n")
		return w.Flush()
	}
	fmt.Fprintf(w, "champion:\t%s\t%s\n", d.Champion, d.Champion.Path)
	fmt.Fprintf(w, "previous:\t%s\t%s\n", d.Previous, d.Previous.Path)
	fmt.Fprintf(w, "generation:\t%d (%s)\n", d.Generation, d.Action)
	fmt.Fprintf(w, "reason:\t%s\n", d.Reason)
	fmt.Fprintf(w, "by:\t%s\n", d.By)
	fmt.Fprintf(w, "at:\t%s\n", d.At.Format(time.RFC3339))
	if history {
		fmt.Fprintf(w, "history:\n")
		for _, e := range d.History {
			fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\t%s\n", e.Generation, e.At.Format(time.RFC3339), e.Action, e.Champion, e.By, e.Reason)
		}
	}
	return w.Flush()
}
