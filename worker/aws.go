package worker

import (
	"context"
	"errors"
	"fmt"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/pipeline"
)

// AWS are the SDK clients a worker (and the load test driving workers)
// uses, built once from the default configuration chain.
type AWS struct {
	Kinesis    *kinesis.Client
	DynamoDB   *dynamodb.Client
	S3         *s3.Client
	SNS        *sns.Client
	SQS        *sqs.Client
	CloudWatch *cloudwatch.Client
	SageMaker  *sagemakerruntime.Client
	// EventBridge publishes the flywheel's events (AWS_ENDPOINT_URL_EVENTBRIDGE
	// on the local stack: its CloudWatch server emulates EventBridge).
	EventBridge *eventbridge.Client
}

// LoadAWS builds the clients from the SDK's default configuration chain:
// credentials, region and AWS_ENDPOINT_URL_* come from the environment
// ("streamscore dev env" sets them for the local stack).
func LoadAWS(ctx context.Context) (*AWS, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION (or a profile's region)")
	}
	return &AWS{
		Kinesis:  kinesis.NewFromConfig(cfg),
		DynamoDB: dynamodb.NewFromConfig(cfg),
		// An object without a checksum header (S3-compatible servers, old
		// objects) is read unvalidated either way; the SDK's note about it
		// on every GetObject would drown the logs.
		S3:          s3.NewFromConfig(cfg, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true }),
		SNS:         sns.NewFromConfig(cfg),
		SQS:         sqs.NewFromConfig(cfg),
		CloudWatch:  cloudwatch.NewFromConfig(cfg),
		SageMaker:   sagemakerruntime.NewFromConfig(cfg),
		EventBridge: eventbridge.NewFromConfig(cfg),
	}, nil
}

// Pipeline returns the clients as a pipeline takes them.
func (a *AWS) Pipeline() pipeline.Clients {
	return pipeline.Clients{
		Kinesis: a.Kinesis, DynamoDB: a.DynamoDB, S3: a.S3, SNS: a.SNS, SQS: a.SQS,
		CloudWatch: a.CloudWatch, SageMaker: a.SageMaker, EventBridge: a.EventBridge,
	}
}
