package sinks

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// QueueURLAPI is the part of the SQS client that resolves a queue name.
type QueueURLAPI interface {
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
}

// TopicAPI is the part of the SNS client that resolves a topic name.
type TopicAPI interface {
	CreateTopic(context.Context, *sns.CreateTopicInput, ...func(*sns.Options)) (*sns.CreateTopicOutput, error)
}

// QueueURL resolves the dead-letter queue's name, as configurations give
// it, to its URL; a URL is returned as it is.
func QueueURL(ctx context.Context, c QueueURLAPI, queue string) (string, error) {
	if strings.HasPrefix(queue, "https://") || strings.HasPrefix(queue, "http://") {
		return queue, nil
	}
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	if err != nil {
		return "", fmt.Errorf("sinks: queue %q: %w", queue, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// TopicARN resolves an alert topic's name to its ARN; an ARN is returned
// as it is. CreateTopic is idempotent and returns the ARN of an existing
// topic: it is the one call that maps a name to an ARN without listing.
func TopicARN(ctx context.Context, c TopicAPI, topic string) (string, error) {
	if strings.HasPrefix(topic, "arn:") {
		return topic, nil
	}
	in := &sns.CreateTopicInput{Name: aws.String(topic)}
	if strings.HasSuffix(topic, ".fifo") {
		in.Attributes = map[string]string{"FifoTopic": "true"}
	}
	out, err := c.CreateTopic(ctx, in)
	if err != nil {
		return "", fmt.Errorf("sinks: alert topic %q: %w", topic, err)
	}
	return aws.ToString(out.TopicArn), nil
}
