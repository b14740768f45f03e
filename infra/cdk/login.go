package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
)

// The login Lambda's environment: the names lambda/config.go reads
// (TestLoginEnvironmentMatchesLambdaPackage checks them against it).
const (
	EnvFeatureTable     = "STREAMSCORE_FEATURE_TABLE"
	EnvFeatureSet       = "STREAMSCORE_FEATURE_SET"
	EnvModel            = "STREAMSCORE_MODEL"
	EnvAlertTopic       = "STREAMSCORE_ALERT_TOPIC_ARN"
	EnvThreshold        = "STREAMSCORE_ALERT_THRESHOLD"
	EnvDeadLetterQueue  = "STREAMSCORE_DLQ_URL"
	EnvDeadLetterBucket = "STREAMSCORE_DLQ_BUCKET"
	EnvDeadLetterPrefix = "STREAMSCORE_DLQ_PREFIX"
	EnvTypeField        = "STREAMSCORE_TYPE_FIELD"
	EnvLoginValue       = "STREAMSCORE_LOGIN_VALUE"
)

// loginDeadLetterPrefix is where the Lambda puts dead letters too large for
// SQS, beside the worker's (dead-letter/<pipeline>/).
const loginDeadLetterPrefix = DeadLetterPrefix + "login/"

// Login is the login-event Lambda and what feeds it.
type Login struct {
	Function awslambda.Function
	Role     awsiam.Role
	// Failures receives Kinesis batches the function gave up on (their
	// shard and sequence range, not the records); alarmed on.
	Failures awssqs.Queue
	Consumer awskinesis.StreamConsumer // nil when polling
}

func newLogin(ss *Streamscore) (*Login, error) {
	s, stack := ss.Settings, ss.Stack
	stream, ok := ss.Streams[s.LoginStream]
	if !ok {
		return nil, fmt.Errorf("context loginStream: %q is not a stream of the pipelines (%v)", s.LoginStream, sortedKeys(ss.Streams))
	}
	if s.LoginLambdaCode == "" {
		return nil, fmt.Errorf("context loginLambdaCode: no directory with the login Lambda's bootstrap")
	}
	if _, err := os.Stat(filepath.Join(s.LoginLambdaCode, "bootstrap")); err != nil {
		return nil, fmt.Errorf("context loginLambdaCode: %w", err)
	}
	set, err := loginFeatureSet(ss)
	if err != nil {
		return nil, err
	}
	l := &Login{}
	removal := awscdk.RemovalPolicy_DESTROY
	if s.RetainData {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	logs := awslogs.NewLogGroup(stack, jsii.String("LoginLogs"), &awslogs.LogGroupProps{
		Retention:     retention(s.LogRetentionDays),
		RemovalPolicy: removal,
	})
	// An explicit role instead of the default one with the managed
	// AWSLambdaBasicExecutionRole, whose log permissions are on "*".
	l.Role = awsiam.NewRole(stack, jsii.String("LoginRole"), &awsiam.RoleProps{
		Description: jsii.String("streamscore login-event Lambda"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
	})
	l.Role.AddToPrincipalPolicy(statement("WriteLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, []string{*logs.LogGroupArn() + ":*"}, nil))
	l.Role.AddToPrincipalPolicy(statement("ReadFeatures", []string{"dynamodb:GetItem"}, []string{*ss.FeatureTable.TableArn()}, nil))
	l.Role.AddToPrincipalPolicy(statement("ReadModel", []string{"s3:GetObject"}, []string{*ss.Bucket.BucketArn() + "/" + s.LoginModelKey}, nil))
	l.Role.AddToPrincipalPolicy(statement("PublishAlerts", []string{"sns:Publish"}, []string{*ss.Topic.TopicArn()}, nil))
	l.Role.AddToPrincipalPolicy(statement("EncryptAlerts", []string{"kms:GenerateDataKey", "kms:Decrypt"}, []string{*ss.AlertsKey.KeyArn()}, nil))
	l.Role.AddToPrincipalPolicy(statement("SendDeadLetters", []string{"sqs:SendMessage"}, []string{*ss.DeadLetters.QueueArn()}, nil))
	l.Role.AddToPrincipalPolicy(statement("WriteLargeDeadLetters", []string{"s3:PutObject"}, []string{*ss.Bucket.BucketArn() + "/" + loginDeadLetterPrefix + "*"}, nil))

	arch := awslambda.Architecture_ARM_64()
	if s.LoginLambdaArchitecture == "x86_64" {
		arch = awslambda.Architecture_X86_64()
	}
	l.Function = awslambda.NewFunction(stack, jsii.String("Login"), &awslambda.FunctionProps{
		Description:   jsii.String("streamscore: scores login events, alerts above the threshold"),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  arch,
		Handler:       jsii.String("bootstrap"),
		Code:          awslambda.Code_FromAsset(jsii.String(s.LoginLambdaCode), nil),
		MemorySize:    jsii.Number(256),
		Timeout:       awscdk.Duration_Seconds(jsii.Number(30)),
		Role:          l.Role,
		LogGroup:      logs,
		LoggingFormat: awslambda.LoggingFormat_JSON,
		Environment: &map[string]*string{
			EnvFeatureTable:     ss.FeatureTable.TableName(),
			EnvFeatureSet:       jsii.String(set),
			EnvModel:            jsii.String("s3://" + *ss.Bucket.BucketName() + "/" + s.LoginModelKey),
			EnvAlertTopic:       ss.Topic.TopicArn(),
			EnvThreshold:        jsii.String(strconv.FormatFloat(s.LoginThreshold, 'g', -1, 64)),
			EnvDeadLetterQueue:  ss.DeadLetters.QueueUrl(),
			EnvDeadLetterBucket: ss.Bucket.BucketName(),
			EnvDeadLetterPrefix: jsii.String(loginDeadLetterPrefix),
			EnvTypeField:        jsii.String("event_type"),
			EnvLoginValue:       jsii.String(s.LoginEventType),
		},
	})

	l.Failures = newQueue(stack, "LoginFailures")
	props := &awslambdaeventsources.KinesisEventSourceProps{
		// Alerts on logins from before the function existed are noise.
		StartingPosition:        awslambda.StartingPosition_LATEST,
		BatchSize:               jsii.Number(float64(s.LoginBatchSize)),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(1)),
		ReportBatchItemFailures: jsii.Bool(true),
		BisectBatchOnError:      jsii.Bool(true),
		RetryAttempts:           jsii.Number(float64(s.LoginRetryAttempts)),
		MaxRecordAge:            awscdk.Duration_Seconds(jsii.Number(float64(s.LoginMaxRecordAgeSeconds))),
		ParallelizationFactor:   jsii.Number(1), // per-user order within a shard
		OnFailure:               awslambdaeventsources.NewSqsDlq(l.Failures),
	}
	// No event filter: Lambda drops the records a filter does not match,
	// and KPL aggregates and malformed records match none, so they would
	// vanish instead of reaching the function's dead-letter queue. The
	// function skips events that are not logins itself.
	if ss.StreamKey != nil {
		l.Role.AddToPrincipalPolicy(statement("DecryptStream", []string{"kms:Decrypt"}, []string{*ss.StreamKey.KeyArn()}, nil))
	}
	if s.LoginFanOut {
		l.Consumer = awskinesis.NewStreamConsumer(stack, jsii.String("LoginConsumer"), &awskinesis.StreamConsumerProps{
			Stream:             stream,
			StreamConsumerName: jsii.String("streamscore-login"),
		})
		l.Function.AddEventSource(awslambdaeventsources.NewKinesisConsumerEventSource(l.Consumer, props))
	} else {
		l.Function.AddEventSource(awslambdaeventsources.NewKinesisEventSource(stream, props))
	}
	return l, nil
}

// loginFeatureSet is the feature table sort key the Lambda reads: the
// setting, or "<pipeline>#<window>" (sinks.FeatureSet) of the one window
// over the login stream.
func loginFeatureSet(ss *Streamscore) (string, error) {
	s := ss.Settings
	if s.LoginFeatureSet != "" {
		return s.LoginFeatureSet, nil
	}
	var sets []string
	for _, p := range ss.Pipelines {
		for _, w := range p.Windows {
			if w.Stream == s.LoginStream {
				sets = append(sets, p.Name+"#"+w.Name)
			}
		}
	}
	if len(sets) != 1 {
		return "", fmt.Errorf("context loginFeatureSet: the windows over %s are %v; name the one the Lambda reads (\"<pipeline>#<window>\")", s.LoginStream, sets)
	}
	return sets[0], nil
}
