// Command cdk is the AWS CDK app that deploys streamscore: the Kinesis
// streams of the pipelines, the lease and feature tables, the results
// bucket (with Glue tables over the Parquet files), the alert topic and
// dead-letter queue, the worker on ECS Fargate, the login-event Lambda, and
// the alarms. See README.md beside this file.
//
// It is its own Go module so that the main module never compiles the CDK.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	defer jsii.Close()
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "streamscore cdk:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	app := awscdk.NewApp(nil)
	tmp, err := os.MkdirTemp("", "streamscore-cdk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := Build(ctx, app, tmp); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}

// Build reads the settings from app's context, builds the login Lambda if
// it is wanted and no built code is given (into tmp, which must outlive
// the synth), loads the pipelines and defines the stack. Account and region
// come from the CLI's environment (CDK_DEFAULT_ACCOUNT/REGION), unset for
// an environment-agnostic template.
func Build(ctx context.Context, app awscdk.App, tmp string) (*Streamscore, error) {
	s, err := SettingsFromContext(app)
	if err != nil {
		return nil, err
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	s.resolve(dir)
	var ps []*Pipeline
	for _, f := range s.Pipelines {
		p, err := LoadPipeline(f)
		if err != nil {
			return nil, err
		}
		for _, q := range ps {
			if q.Name == p.Name {
				return nil, fmt.Errorf("%s and %s: both are pipeline %q", q.File, p.File, p.Name)
			}
		}
		ps = append(ps, p)
	}
	if s.LoginLambda && s.LoginLambdaCode == "" {
		if s.LoginLambdaCode, err = BuildLogin(ctx, s.RepoRoot, LoginPackage, s.LoginLambdaArchitecture, tmp); err != nil {
			return nil, err
		}
	}
	var env *awscdk.Environment
	if acct, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); acct != "" && region != "" {
		env = &awscdk.Environment{Account: jsii.String(acct), Region: jsii.String(region)}
	}
	return NewStreamscore(app, s.StackName, &StackProps{
		StackProps: awscdk.StackProps{
			Env:         env,
			Description: jsii.String("streamscore: real-time scoring of Kinesis streams (infra/cdk)"),
		},
		Settings:  s,
		Pipelines: ps,
	})
}
