package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// statement is one named IAM statement; the Sid makes the policy readable
// in the console and lets the tests find each statement.
func statement(sid string, actions, resources []string, conditions map[string]any) awsiam.PolicyStatement {
	p := &awsiam.PolicyStatementProps{
		Sid:       jsii.String(sid),
		Actions:   jsii.Strings(actions...),
		Resources: jsii.Strings(resources...),
	}
	if conditions != nil {
		p.Conditions = &conditions
	}
	return awsiam.NewPolicyStatement(p)
}

// grantWorker gives the worker's task role exactly the calls streamscore
// run makes, on exactly the resources its configurations name:
//
//   - consumer: DescribeStreamSummary, ListShards, GetShardIterator,
//     GetRecords (polling); RegisterStreamConsumer, DescribeStreamConsumer,
//     SubscribeToShard (fan-out, on the consumer consumer_name names);
//     DescribeTable, Scan, GetItem, PutItem, UpdateItem, and DeleteItem
//     (cleanup of finished shards' leases) on its lease table
//     (which this stack creates, so no CreateTable);
//   - sinks: PutItem on the feature table (conditional writes); PutObject
//     and AbortMultipartUpload under the pipelines' result and dead-letter
//     prefixes (the transfer manager's multipart calls are PutObject
//     permissions); Publish (PublishBatch) on the topic, with the topic
//     key; SendMessage (SendMessageBatch) on the dead-letter queue;
//     PutMetricData in the configured namespaces only;
//   - scorer: GetObject (and HeadObject, the same permission) on the model
//     objects; InvokeEndpoint on configured SageMaker endpoints;
//   - monitor (only pipelines with monitored windows): PutObject and
//     GetObject (HeadObject) on monitoring/<pipeline>/*, for its parts,
//     statistics.json and constraint_violations.json; GetObject on each
//     baseline's prefix. ListBucket on the bucket, with an s3:prefix
//     condition on those same prefixes: ListObjectsV2 of a period's parts,
//     and a 404 rather than a 403 for an object that is not there (S3
//     answers 403 to a caller who may not list it), which the monitor
//     relies on: HeadObject of a period not judged yet, and an optional
//     baseline constraints.json.
//
// The topic and queue are given to the worker as an ARN and a URL, so it
// needs neither sns:CreateTopic nor sqs:GetQueueUrl to resolve names.
func grantWorker(ss *Streamscore, role awsiam.Role) error {
	stack := ss.Stack
	add := func(st awsiam.PolicyStatement) { role.AddToPrincipalPolicy(st) }

	var streamARNs, fanOutStreams, consumerARNs []string
	for _, p := range ss.Pipelines {
		for _, st := range p.Streams {
			arn := *ss.Streams[st.Name].StreamArn()
			if !slices.Contains(streamARNs, arn) {
				streamARNs = append(streamARNs, arn)
			}
			if p.FanOut {
				fanOutStreams = append(fanOutStreams, arn)
				consumerARNs = append(consumerARNs, arn+"/consumer/"+p.FanOutConsumer+":*")
			}
		}
	}
	add(statement("ReadStreams", []string{"kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"}, streamARNs, nil))
	if len(fanOutStreams) > 0 {
		add(statement("RegisterFanOutConsumers", []string{"kinesis:RegisterStreamConsumer"}, fanOutStreams, nil))
		add(statement("ReadFanOut", []string{"kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"}, consumerARNs, nil))
	}
	if ss.StreamKey != nil {
		add(statement("DecryptStream", []string{"kms:Decrypt"}, []string{*ss.StreamKey.KeyArn()}, nil))
	}

	var leaseARNs []string
	for _, p := range ss.Pipelines {
		leaseARNs = append(leaseARNs, *ss.LeaseTables[p.Name].TableArn())
	}
	add(statement("Leases", []string{"dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}, leaseARNs, nil))
	add(statement("WriteFeatures", []string{"dynamodb:PutItem"}, []string{*ss.FeatureTable.TableArn()}, nil))

	bucket := *ss.Bucket.BucketArn()
	var writes, models []string
	for _, p := range ss.Pipelines {
		if p.HasS3 {
			writes = append(writes, bucket+"/"+ResultsPrefix+p.S3Prefix+"*")
		}
		// pipeline.buildSinks: Prefix "dead-letter/<pipeline>/".
		writes = append(writes, bucket+"/"+DeadLetterPrefix+p.Name+"/*")
		for _, name := range sortedKeys(p.Models) {
			key, external := ModelKey(p.Models[name])
			if external {
				return fmt.Errorf("%s: models.%s.path: %s is outside this stack's bucket; upload the model to s3://<bucket>/%s instead", p.File, name, key, ModelsPrefix)
			}
			if arn := bucket + "/" + key; !slices.Contains(models, arn) {
				models = append(models, arn)
			}
		}
	}
	add(statement("WriteResults", []string{"s3:PutObject", "s3:AbortMultipartUpload"}, writes, nil))
	if len(models) > 0 {
		add(statement("ReadModels", []string{"s3:GetObject"}, models, nil))
	}

	if err := grantMonitor(ss, add); err != nil {
		return err
	}
	if err := grantFlywheel(ss, add); err != nil {
		return err
	}

	add(statement("PublishAlerts", []string{"sns:Publish"}, []string{*ss.Topic.TopicArn()}, nil))
	add(statement("EncryptAlerts", []string{"kms:GenerateDataKey", "kms:Decrypt"}, []string{*ss.AlertsKey.KeyArn()}, nil))
	add(statement("SendDeadLetters", []string{"sqs:SendMessage"}, []string{*ss.DeadLetters.QueueArn()}, nil))
	if ns := namespaces(ss.Pipelines); len(ns) > 0 {
		// PutMetricData has no resource type: "*" is what IAM requires; the
		// namespace condition is the scope.
		add(statement("PutMetrics", []string{"cloudwatch:PutMetricData"}, []string{"*"},
			map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": ns}}))
	}
	var endpoints []string
	for _, p := range ss.Pipelines {
		for _, e := range p.Endpoints {
			// SageMaker endpoint ARNs are lower case.
			endpoints = append(endpoints, "arn:"+*stack.Partition()+":sagemaker:"+*stack.Region()+":"+*stack.Account()+":endpoint/"+strings.ToLower(e))
		}
	}
	if len(endpoints) > 0 {
		add(statement("InvokeEndpoints", []string{"sagemaker:InvokeEndpoint"}, endpoints, nil))
	}
	return nil
}

// grantMonitor adds the monitor's statements (grantWorker) for the
// pipelines that monitor a window, if any. The pipeline appends
// <window>/... to MonitoringKeyPrefix and lists only below it, and reads a
// baseline only below its BaselineKey.
func grantMonitor(ss *Streamscore, add func(awsiam.PolicyStatement)) error {
	bucketARN, bucket := *ss.Bucket.BucketArn(), *ss.Bucket.BucketName()
	var files, filePrefixes, baselines, baselinePrefixes []string
	for _, p := range ss.Pipelines {
		if !p.Monitored() {
			continue
		}
		files = append(files, bucketARN+"/"+p.MonitoringKeyPrefix()+"*")
		filePrefixes = append(filePrefixes, p.MonitoringKeyPrefix()+"*")
		for i := range p.Monitor.Windows {
			key, _, err := p.BaselineKey(i, bucket)
			if err != nil {
				return err
			}
			if !slices.Contains(baselinePrefixes, key+"*") {
				baselines = append(baselines, bucketARN+"/"+key+"*")
				baselinePrefixes = append(baselinePrefixes, key+"*")
			}
		}
	}
	if len(files) == 0 {
		return nil
	}
	listing := func(prefixes []string) map[string]any {
		return map[string]any{"StringLike": map[string]any{"s3:prefix": prefixes}}
	}
	add(statement("WriteMonitoring", []string{"s3:PutObject", "s3:GetObject"}, files, nil))
	add(statement("ListMonitoring", []string{"s3:ListBucket"}, []string{bucketARN}, listing(filePrefixes)))
	add(statement("ReadBaselines", []string{"s3:GetObject"}, baselines, nil))
	add(statement("ListBaselines", []string{"s3:ListBucket"}, []string{bucketARN}, listing(baselinePrefixes)))
	return nil
}
