package lambda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Open is the function's cold start: it reads the configuration from
// getenv, builds the AWS clients from the SDK's default chain (the
// execution role's credentials, AWS_REGION, and AWS_ENDPOINT_URL_<SERVICE>
// overrides) and loads the model. Only the clients the configuration uses
// are built.
func Open(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Handler, error) {
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("AWS_REGION: no AWS region (Lambda sets it; set it when running elsewhere)")
	}
	o := Options{DynamoDB: dynamodb.NewFromConfig(awsCfg), Logger: log}
	if cfg.AlertTopicARN != "" {
		o.SNS = sns.NewFromConfig(awsCfg)
	}
	if cfg.DeadLetterQueueURL != "" {
		o.SQS = sqs.NewFromConfig(awsCfg)
	}
	if strings.HasPrefix(cfg.Model, "s3://") || cfg.DeadLetterBucket != "" {
		o.S3 = s3.NewFromConfig(awsCfg, func(so *s3.Options) {
			// Path-style addressing when the endpoint is overridden (a VPC
			// interface endpoint, a local server): virtual-hosted bucket
			// names do not resolve there.
			so.UsePathStyle = getenv("AWS_ENDPOINT_URL_S3") != "" || getenv("AWS_ENDPOINT_URL") != ""
		})
	}
	return New(ctx, cfg, o)
}
