package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/pipeline"
)

// devFlags are shared by the dev subcommands.
type devFlags struct {
	dir      string
	services string
	kinesis  string
	s3       string
	configs  []string
}

func (f *devFlags) resolve() (root, dir string, err error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	root, err = devstack.FindRoot(wd)
	if err != nil {
		return "", "", fmt.Errorf("%w (run streamscore dev from a clone of the streamscore repository)", err)
	}
	dir = f.dir
	if dir == "" {
		dir = devstack.DefaultDir(root)
	}
	return root, dir, nil
}

// load finds the repository and the stack recorded in the state directory.
func (f *devFlags) load() (root string, st *devstack.State, err error) {
	root, dir, err := f.resolve()
	if err != nil {
		return "", nil, err
	}
	st, err = devstack.Load(dir)
	return root, st, err
}

func newDevCmd() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local AWS stack (Kinesis, DynamoDB, S3, SNS/SQS, CloudWatch) with no Docker",
		Long: `The local stack runs real AWS-protocol servers on 127.0.0.1: kinesis-local,
dynalite, versitygw, fauxqs, kumo and toxiproxy. Their pinned versions are
installed on first use (Node.js >= 20, npm and Go are required). State, logs
and data live in .devstack/stack.`,
	}
	cmd.PersistentFlags().StringVar(&f.dir, "dir", "", "stack state directory (default: .devstack/stack in the repository)")

	up := &cobra.Command{
		Use:   "up",
		Short: "Install (if needed), start and provision the local stack",
		Example: `  streamscore dev up --config examples/factory.yaml --config examples/churn.yaml
  streamscore dev up --dir .devstack/perf --kinesis kinesalite --config examples/demo/factory.yaml
  eval "$(streamscore dev env)"
  aws kinesis list-streams`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root, dir, err := f.resolve()
			if err != nil {
				return err
			}
			svcs, err := devstack.ParseServices(f.services)
			if err != nil {
				return err
			}
			kin, err := devstack.ParseKinesisServer(f.kinesis)
			if err != nil {
				return err
			}
			s3srv, err := devstack.ParseS3Server(f.s3)
			if err != nil {
				return err
			}
			var cfgs []*config.Config
			for _, path := range f.configs {
				c, err := config.Load(path)
				if err != nil {
					return err
				}
				cfgs = append(cfgs, c)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			st, err := devstack.Up(cmd.Context(), devstack.Config{Root: root, Dir: dir, Services: svcs, KinesisServer: kin, S3Server: s3srv, Logger: log})
			if err != nil {
				return err
			}
			if len(cfgs) > 0 {
				out, err := devstack.Provision(cmd.Context(), st.Endpoints.Clients(), devstack.PlanFor(pipeline.WindowRetention, cfgs...))
				if err != nil {
					return err
				}
				for name := range out.StreamARNs {
					log.Info("stream ready", "name", name)
				}
				for name, url := range out.QueueURLs {
					log.Info("queue ready", "name", name, "url", url)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "local AWS stack is up (Kinesis: %s): %s\nnext: eval \"$(streamscore dev env)\"\n", st.KinesisServer, st.Endpoints)
			return nil
		},
	}
	up.Flags().StringVar(&f.services, "services", "", "comma-separated services to run (default: all)")
	up.Flags().StringVar(&f.kinesis, "kinesis", string(devstack.KinesisLocal),
		"Kinesis server: kinesis-local (complete: resharding, fan-out; slow), kinesalite (faster; no fan-out, no UpdateShardCount, no ChildShards) or kumo (puts and reads only); docs/performance.md compares them")
	up.Flags().StringVar(&f.s3, "s3", string(devstack.Versitygw),
		"S3 server: versitygw (checks signatures; compiled on first use, minutes on a fresh machine) or s3rver (installed by npm in seconds; no signature checks)")
	up.Flags().StringArrayVar(&f.configs, "config", nil, "pipeline config whose streams, tables, buckets, topics and queues to provision (repeatable)")

	down := &cobra.Command{
		Use:   "down",
		Short: "Stop every server of the local stack",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := f.load()
			if errors.Is(err, devstack.ErrNotRunning) {
				fmt.Fprintln(cmd.OutOrStdout(), "no local stack is running")
				return nil
			}
			if err != nil {
				return err
			}
			if err := st.Down(context.WithoutCancel(cmd.Context())); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "local AWS stack stopped")
			return nil
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show each server of the local stack and whether it answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := f.load()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tPID\tENDPOINT\tSTATE\tLOG")
			unhealthy := 0
			for _, s := range st.Status(cmd.Context()) {
				state := "ok"
				if s.Err != nil {
					state = "DOWN: " + s.Err.Error()
					unhealthy++
				}
				fmt.Fprintf(tw, "%s\t%d\thttp://127.0.0.1:%d\t%s\t%s\n", s.Service, s.PID, s.Port, state, s.Log)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if unhealthy > 0 {
				return fmt.Errorf("%d servers are not answering: see their logs, or restart with streamscore dev up", unhealthy)
			}
			return nil
		},
	}

	env := &cobra.Command{
		Use:   "env",
		Short: "Print shell exports that point AWS SDKs and the AWS CLI at the local stack",
		Long: `Prints AWS_ENDPOINT_URL_<SERVICE>, static credentials and the region, which
the AWS SDKs, AWS CLI v2 >= 2.13 and AWS CLI v1 >= 1.29 honour by themselves.
Older CLIs (Debian 12 ships v2 2.9) need the plugin in devstack/awscli, so it
also exports AWS_CONFIG_FILE (a config that loads the plugin: v2 finds it via
cli_legacy_plugin_path) and prepends devstack/awscli to PYTHONPATH (v1 imports
plugins from the Python path only). With these, both v1 and v2 CLIs reach the
stack; an explicit --endpoint-url still wins.`,
		Example: `  eval "$(streamscore dev env)"
  aws kinesis list-streams`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root, st, err := f.load()
			if errors.Is(err, devstack.ErrNotRunning) {
				return fmt.Errorf("%w: start it with streamscore dev up", err)
			}
			if err != nil {
				return err
			}
			lines, err := st.EnvLines(root)
			if err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
	install := &cobra.Command{
		Use:   "install [go-tool...]",
		Short: "Install the pinned local servers and Go tools (dev up does this too)",
		Long: `Runs npm ci for the Node servers (devstack/node/package-lock.json) and, at the
same time, go install for the Go servers and developer tools pinned by
devstack/tools/go.mod, into .devstack/bin: all of them, or only the Go tools
named (` + strings.Join(devstack.GoTools(), ", ") + `). Does nothing when
everything is installed and the pins did not change. dev up installs only
the servers it starts.`,
		Example: `  streamscore dev install
  streamscore dev install kumo aws-lambda-rie`,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, _, err := f.resolve()
			if err != nil {
				return err
			}
			return devstack.Install(cmd.Context(), root, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)), args...)
		},
	}
	cmd.AddCommand(up, down, status, env, install)
	return cmd
}
