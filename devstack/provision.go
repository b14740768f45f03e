package devstack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Plan lists the resources a pipeline needs. Provision creates the missing
// ones and leaves existing ones alone, so it is safe to run repeatedly.
type Plan struct {
	Streams []StreamPlan
	// Tables are DynamoDB tables with a string hash key (lease tables are
	// created by the consumer itself; list them here only to pre-create).
	Tables  []TablePlan
	Buckets []string
	Topics  []TopicPlan
	// Queues are standalone SQS queues (a dead-letter queue, say).
	Queues []QueuePlan
}

// StreamPlan is a Kinesis stream, its shard count and the retention its
// windows need (pipeline.RetentionNeeded; 0 or up to 24 keeps the default).
type StreamPlan struct {
	RetentionHours int
	Name           string
	Shards         int
}

// TablePlan is a DynamoDB table keyed by a string hash key and, optionally, a
// string range key.
type TablePlan struct {
	Name     string
	HashKey  string
	RangeKey string
}

// TopicPlan is an SNS topic and the SQS queues subscribed to it (with raw
// message delivery off, as an ops team's queue would be).
type TopicPlan struct {
	Name   string
	FIFO   bool
	Queues []string
}

// QueuePlan is an SQS queue.
type QueuePlan struct {
	Name string
	FIFO bool
}

// Provisioned reports what exists after Provision, by name.
type Provisioned struct {
	StreamARNs map[string]string
	TopicARNs  map[string]string
	QueueURLs  map[string]string
}

// Provision creates what the plan lists and waits until streams and tables
// are ACTIVE.
func Provision(ctx context.Context, c *Clients, p Plan) (*Provisioned, error) {
	out := &Provisioned{StreamARNs: map[string]string{}, TopicARNs: map[string]string{}, QueueURLs: map[string]string{}}
	for _, s := range p.Streams {
		arn, err := EnsureStream(ctx, c.Kinesis, s.Name, s.Shards)
		if err != nil {
			return nil, err
		}
		if err := EnsureRetention(ctx, c.Kinesis, s.Name, s.RetentionHours); err != nil {
			return nil, err
		}
		out.StreamARNs[s.Name] = arn
	}
	for _, t := range p.Tables {
		if err := EnsureTable(ctx, c.DynamoDB, t); err != nil {
			return nil, err
		}
	}
	for _, b := range p.Buckets {
		if err := EnsureBucket(ctx, c.S3, b); err != nil {
			return nil, err
		}
	}
	for _, q := range p.Queues {
		url, _, err := EnsureQueue(ctx, c.SQS, q.Name, q.FIFO)
		if err != nil {
			return nil, err
		}
		out.QueueURLs[q.Name] = url
	}
	for _, t := range p.Topics {
		arn, err := EnsureTopic(ctx, c.SNS, t.Name, t.FIFO)
		if err != nil {
			return nil, err
		}
		out.TopicARNs[t.Name] = arn
		for _, qn := range t.Queues {
			url, err := Subscribe(ctx, c, arn, qn, t.FIFO)
			if err != nil {
				return nil, err
			}
			out.QueueURLs[qn] = url
		}
	}
	return out, nil
}

// EnsureStream creates the stream if it does not exist and waits until it is
// ACTIVE, returning its ARN.
func EnsureStream(ctx context.Context, k *kinesis.Client, name string, shards int) (string, error) {
	if shards <= 0 {
		shards = 1
	}
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))})
	var inUse *kintypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return "", fmt.Errorf("devstack: create stream %s: %w", name, err)
	}
	for {
		d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return "", fmt.Errorf("devstack: describe stream %s: %w", name, err)
		}
		if d.StreamDescriptionSummary.StreamStatus == kintypes.StreamStatusActive {
			return aws.ToString(d.StreamDescriptionSummary.StreamARN), nil
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return "", fmt.Errorf("devstack: waiting for stream %s: %w", name, err)
		}
	}
}

// EnsureRetention raises the stream's retention to at least hours (a new
// stream keeps records 24 h) and waits until it is ACTIVE again.
func EnsureRetention(ctx context.Context, k *kinesis.Client, name string, hours int) error {
	if hours <= 24 {
		return nil
	}
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("devstack: describe stream %s: %w", name, err)
	}
	if int(aws.ToInt32(d.StreamDescriptionSummary.RetentionPeriodHours)) >= hours {
		return nil
	}
	if _, err := k.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{
		StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(int32(hours))}); err != nil {
		return fmt.Errorf("devstack: stream %s: retention %dh: %w", name, hours, err)
	}
	_, err = EnsureStream(ctx, k, name, 0)
	return err
}

// EnsureTable creates a pay-per-request table if it does not exist and waits
// until it is ACTIVE.
func EnsureTable(ctx context.Context, d *dynamodb.Client, t TablePlan) error {
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(t.Name),
		BillingMode:          ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String(t.HashKey), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String(t.HashKey), KeyType: ddbtypes.KeyTypeHash}},
	}
	if t.RangeKey != "" {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{AttributeName: aws.String(t.RangeKey), AttributeType: ddbtypes.ScalarAttributeTypeS})
		in.KeySchema = append(in.KeySchema, ddbtypes.KeySchemaElement{AttributeName: aws.String(t.RangeKey), KeyType: ddbtypes.KeyTypeRange})
	}
	_, err := d.CreateTable(ctx, in)
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("devstack: create table %s: %w", t.Name, err)
	}
	w := dynamodb.NewTableExistsWaiter(d, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.Name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("devstack: waiting for table %s: %w", t.Name, err)
	}
	return nil
}

// EnsureBucket creates the bucket unless the caller already owns it.
func EnsureBucket(ctx context.Context, c *s3.Client, name string) error {
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)}); err == nil {
		return nil
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		if _, herr := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)}); herr == nil {
			return nil // created concurrently
		}
		return fmt.Errorf("devstack: create bucket %s: %w", name, err)
	}
	return nil
}

// EnsureTopic creates the topic (idempotent in SNS) and returns its ARN. A
// FIFO topic's name must end in ".fifo".
func EnsureTopic(ctx context.Context, c *sns.Client, name string, fifo bool) (string, error) {
	in := &sns.CreateTopicInput{Name: aws.String(name)}
	if fifo {
		in.Attributes = map[string]string{"FifoTopic": "true", "ContentBasedDeduplication": "false"}
	}
	out, err := c.CreateTopic(ctx, in)
	if err != nil {
		return "", fmt.Errorf("devstack: create topic %s: %w", name, err)
	}
	return aws.ToString(out.TopicArn), nil
}

// EnsureQueue creates the queue (idempotent in SQS) and returns its URL and ARN.
func EnsureQueue(ctx context.Context, c *sqs.Client, name string, fifo bool) (url, arn string, err error) {
	in := &sqs.CreateQueueInput{QueueName: aws.String(name)}
	if fifo {
		in.Attributes = map[string]string{"FifoQueue": "true"}
	}
	out, err := c.CreateQueue(ctx, in)
	if err != nil {
		return "", "", fmt.Errorf("devstack: create queue %s: %w", name, err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("devstack: queue %s attributes: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

// Subscribe creates the queue and subscribes it to the topic, returning the
// queue URL.
func Subscribe(ctx context.Context, c *Clients, topicARN, queue string, fifo bool) (string, error) {
	url, arn, err := EnsureQueue(ctx, c.SQS, queue, fifo)
	if err != nil {
		return "", err
	}
	if _, err := c.SNS.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(topicARN), Protocol: aws.String("sqs"), Endpoint: aws.String(arn)}); err != nil {
		return "", fmt.Errorf("devstack: subscribe %s to %s: %w", queue, topicARN, err)
	}
	return url, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
