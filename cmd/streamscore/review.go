package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/review"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/worker"
)

func newReviewCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "review",
		Short: "Human review of alerts: serve the review page, or post a verdict as a label",
		Long: `A reviewer's verdict on an alert becomes ground truth: a label on the
pipeline's labels stream, naming the alert's result_id, which the quality
monitor then judges the prediction with (docs/quality.md, "Human review").

alerts.review in the configuration gives each firing alert a review link and
sends it to a review queue; "review serve" is a page that link can open,
"review verdict" posts one verdict from a script or a terminal.`,
	}
	cmd.AddCommand(newReviewServeCmd(), newReviewVerdictCmd())
	return cmd
}

// reviewPoster loads the configuration and the AWS clients, as run does,
// and returns the labels stream's poster.
func reviewPoster(cmd *cobra.Command, cfgPath string) (*review.Poster, error) {
	if cfgPath == "" {
		return nil, errors.New("--config is required")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	clients, err := worker.LoadAWS(cmd.Context())
	if err != nil {
		return nil, err
	}
	return review.NewPoster(clients.Kinesis, cfg)
}

func newReviewServeCmd() *cobra.Command {
	var (
		cfgPath, listen string
		maxBody         int64
	)
	cmd := &cobra.Command{
		Use:   "serve --config FILE [--listen ADDR]",
		Short: "Serve the review page (GET /review), its form (POST /review) and a JSON API (POST /verdicts)",
		Long: `Serves the page an alert's review link opens: GET /review?result_id=…&entity=…
&window_end=… (the names of alerts.review.link's placeholders) shows the alert
with two buttons, Confirmed and False alarm; the verdict is put on the labels
stream as a label (1 or 0) for the alert's result_id, at its window_end.
POST /verdicts takes {"result_id","entity","time","label","reviewer","note"}
as JSON and answers 202 with the record's shard and sequence number.

It signs no one in: listen where only reviewers reach it, or behind the proxy
that authenticates them. Point alerts.review.link at it, e.g.
  link: "http://review.internal:8088/review?result_id={result_id}&entity={entity}&rule={rule}&window_end={window_end}&score={score}&model={model}&stream={stream}"`,
		Example: `  streamscore review serve --config examples/factory.yaml --listen 127.0.0.1:8088`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p, err := reviewPoster(cmd, cfgPath)
			if err != nil {
				return err
			}
			h := review.NewHandler(review.HandlerOptions{Poster: p, MaxBodyBytes: maxBody, Logger: slog.Default()})
			slog.Info("serving human review", "addr", listen, "labels_stream", p.Stream())
			return scorer.Serve(ctx, listen, h, 30*time.Second, 30*time.Second)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "pipeline configuration file (its labels section; required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8088", "address to listen on")
	cmd.Flags().Int64Var(&maxBody, "max-body", review.DefaultMaxBodyBytes, "largest request body in bytes")
	return cmd
}

func newReviewVerdictCmd() *cobra.Command {
	var (
		cfgPath, resultID, entity, at, label string
		v                                    review.Verdict
	)
	cmd := &cobra.Command{
		Use:   "verdict --config FILE --result-id ID --entity E --time T --label 1|0 [--reviewer R --note N]",
		Short: "Post one verdict on an alert to the labels stream",
		Long: `Puts one label on the labels stream for the prediction the alert named:
--result-id and --entity as the alert gives them, --time its window_end (RFC 3339),
--label 1 (confirmed) or 0 (false alarm), or any number the labels schema's
label field holds. Prints the record's shard and sequence number.`,
		Example: `  streamscore review verdict --config examples/factory.yaml --result-id 5f0e4c1a9b7d2e38c6a1f04b9e3d7c21 \
    --entity press-001 --time 2026-12-03T07:00:05Z --label 1 --reviewer ana --note "bearing replaced"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return fmt.Errorf("--time %q: want an RFC 3339 time, as the alert's window_end", at)
			}
			switch label {
			case "true":
				v.Label = review.Confirmed
			case "false":
				v.Label = review.FalseAlarm
			default:
				if v.Label, err = strconv.ParseFloat(label, 64); err != nil {
					return fmt.Errorf("--label %q: want 1 (confirmed), 0 (false alarm) or a number", label)
				}
			}
			v.ResultID, v.Entity, v.Time = resultID, entity, t
			p, err := reviewPoster(cmd, cfgPath)
			if err != nil {
				return err
			}
			rc, err := p.Post(cmd.Context(), v)
			if fe, ok := review.IsFieldError(err); ok {
				// The verdict's fields are the flags, with dashes.
				return fmt.Errorf("--%s: %s", strings.ReplaceAll(fe.Field, "_", "-"), fe.Msg)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "verdict %v on %s put on %s: shard %s, sequence %s\n", v.Label, v.ResultID, p.Stream(), rc.ShardID, rc.SequenceNumber)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "pipeline configuration file (its labels section; required)")
	f.StringVar(&resultID, "result-id", "", "the alert's result_id (required)")
	f.StringVar(&entity, "entity", "", "the alert's entity (required)")
	f.StringVar(&at, "time", "", "the label's time, RFC 3339: the alert's window_end (required)")
	f.StringVar(&label, "label", "", "1 (confirmed), 0 (false alarm), or a number (required)")
	f.StringVar(&v.Reviewer, "reviewer", defaultBy(), "who reviewed")
	f.StringVar(&v.Note, "note", "", "a note on the verdict")
	for _, name := range []string{"config", "result-id", "entity", "time", "label"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}
