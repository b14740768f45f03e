package pipeline

import (
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/retrain"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// Clients are the AWS clients a pipeline talks to, each the narrow part its
// users declare: the SDK's clients satisfy them, and so can a test's. Production
// builds them from the SDK's default configuration; tests point them at
// the local stack. SageMaker may be nil when no scorer uses an endpoint;
// CloudWatch may be nil when the config has no CloudWatch sink writing
// PutMetricData; EventBridge when the monitor asks for no retraining.
type Clients struct {
	Kinesis    consumer.KinesisAPI
	DynamoDB   DynamoDBAPI
	S3         S3API
	SNS        SNSAPI
	SQS        SQSAPI
	CloudWatch sinks.CloudWatchAPI
	SageMaker  scorer.InvokeAPI
	// EventBridge receives the flywheel's events (monitor.retrain).
	EventBridge retrain.PutEventsAPI
}

// DynamoDBAPI holds the lease table and the online feature table.
type DynamoDBAPI interface {
	consumer.DynamoDBAPI
	sinks.FeatureTableAPI
}

// S3API writes the results' Parquet files and large dead letters, and
// reads models.
type S3API interface {
	transfermanager.S3APIClient
	sinks.DeadLetterS3
	scorer.ObjectGetter
}

// SNSAPI publishes alerts and resolves the alert topic.
type SNSAPI interface {
	sinks.AlertsAPI
	sinks.TopicAPI
}

// SQSAPI sends dead letters and resolves the queue.
type SQSAPI interface {
	sinks.DeadLetterSQS
	sinks.QueueURLAPI
}
