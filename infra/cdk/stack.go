package main

import (
	"fmt"
	"slices"
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// StackProps configures the streamscore stack.
type StackProps struct {
	awscdk.StackProps
	Settings Settings
	// Pipelines are the loaded configurations the worker runs.
	Pipelines []*Pipeline
}

// Streamscore is the deployed pipeline: the streams, the state the
// consumer and sinks keep, the worker service, the login Lambda and the
// alarms. Its fields are what other constructs (and the tests) refer to.
type Streamscore struct {
	Stack        awscdk.Stack
	Settings     Settings
	Pipelines    []*Pipeline
	Streams      map[string]awskinesis.Stream
	StreamKey    awskms.Key // nil with managed stream encryption
	LeaseTables  map[string]awsdynamodb.Table
	FeatureTable awsdynamodb.Table
	Bucket       awss3.Bucket
	AlertsKey    awskms.Key
	Topic        awssns.Topic
	DeadLetters  awssqs.Queue
	Worker       *Worker
	Login        *Login // nil without the login Lambda
	// PromotionTables are the decision tables by name (the scorers'
	// promotion.table or its default).
	PromotionTables map[string]awsdynamodb.Table
	// Retraining is the retraining loop, nil when no pipeline has a
	// promotion section or the retraining setting is off.
	Retraining *Retraining
}

// NewStreamscore builds the stack.
func NewStreamscore(scope constructs.Construct, id string, props *StackProps) (*Streamscore, error) {
	s := props.Settings
	if len(props.Pipelines) == 0 {
		return nil, fmt.Errorf("no pipelines")
	}
	stack := awscdk.NewStack(scope, &id, &props.StackProps)
	awscdk.Tags_Of(stack).Add(jsii.String("app"), jsii.String("streamscore"), nil)
	ss := &Streamscore{Stack: stack, Settings: s, Pipelines: props.Pipelines,
		Streams: map[string]awskinesis.Stream{}, LeaseTables: map[string]awsdynamodb.Table{},
		PromotionTables: map[string]awsdynamodb.Table{}}

	removal := awscdk.RemovalPolicy_DESTROY
	if s.RetainData {
		removal = awscdk.RemovalPolicy_RETAIN
	}

	// Streams: one per distinct name over all pipelines; the largest shard
	// count asked for wins.
	shards := map[string]int{}
	for _, p := range props.Pipelines {
		for _, st := range p.Streams {
			shards[st.Name] = max(shards[st.Name], st.Shards, 1)
		}
	}
	if s.StreamEncryption == "kms" {
		ss.StreamKey = awskms.NewKey(stack, jsii.String("StreamKey"), &awskms.KeyProps{
			Description:       jsii.String("streamscore Kinesis streams"),
			EnableKeyRotation: jsii.Bool(true),
			RemovalPolicy:     removal,
		})
	}
	holds := streamHolds(props.Pipelines)
	for _, name := range sortedKeys(shards) {
		sp := &awskinesis.StreamProps{
			StreamName: jsii.String(name),
			// Long enough for every window over the stream: a checkpoint
			// held by an open window must still be readable after a
			// failover (see retention.go).
			RetentionPeriod: awscdk.Duration_Hours(jsii.Number(float64(streamRetentionHours(s.StreamRetentionHours, holds[name])))),
			RemovalPolicy:   removal,
			Encryption:      awskinesis.StreamEncryption_MANAGED,
		}
		if ss.StreamKey != nil {
			sp.Encryption, sp.EncryptionKey = awskinesis.StreamEncryption_KMS, ss.StreamKey
		}
		if s.StreamMode == "on-demand" {
			sp.StreamMode = awskinesis.StreamMode_ON_DEMAND
		} else {
			sp.StreamMode = awskinesis.StreamMode_PROVISIONED
			sp.ShardCount = jsii.Number(float64(shards[name]))
		}
		ss.Streams[name] = awskinesis.NewStream(stack, jsii.String("Stream-"+name), sp)
	}

	// Lease tables: created here rather than by the worker, so the worker
	// needs no dynamodb:CreateTable and the checkpoints get point-in-time
	// recovery, deletion protection and a retain policy. The key schema is
	// the one the consumer would create (consumer/leasetable.go ensure).
	for _, p := range props.Pipelines {
		ss.LeaseTables[p.Name] = awsdynamodb.NewTable(stack, jsii.String("Leases-"+p.Name), &awsdynamodb.TableProps{
			PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String("leaseKey"), Type: awsdynamodb.AttributeType_STRING},
			BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
			Encryption:                       awsdynamodb.TableEncryption_AWS_MANAGED,
			PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
			DeletionProtection:               jsii.Bool(s.RetainData),
			RemovalPolicy:                    removal,
		})
	}
	ss.FeatureTable = awsdynamodb.NewTable(stack, jsii.String("FeatureTable"), &awsdynamodb.TableProps{
		// Partition key the entity, sort key the feature set
		// ("<pipeline>#<window>", sinks.FeatureSet): windows and
		// pipelines sharing entities keep separate items, and a reader
		// gets one window with one GetItem (sinks.FeatureLayout).
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String("entity"), Type: awsdynamodb.AttributeType_STRING},
		SortKey:                          &awsdynamodb.Attribute{Name: jsii.String("feature_set"), Type: awsdynamodb.AttributeType_STRING},
		TimeToLiveAttribute:              jsii.String("ttl"),
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:                       awsdynamodb.TableEncryption_AWS_MANAGED,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		DeletionProtection:               jsii.Bool(s.RetainData),
		RemovalPolicy:                    removal,
	})

	newPromotionTables(ss, removal)

	ss.Bucket = newResultsBucket(stack, s, removal, props.Pipelines)

	// Alerts: SNS server-side encryption needs a customer managed key for
	// CloudWatch alarms to publish (the AWS managed aws/sns key cannot
	// grant the CloudWatch service).
	ss.AlertsKey = awskms.NewKey(stack, jsii.String("AlertsKey"), &awskms.KeyProps{
		Description:       jsii.String("streamscore alert topic"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     removal,
	})
	ss.AlertsKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
	}), nil)
	ss.Topic = awssns.NewTopic(stack, jsii.String("Alerts"), &awssns.TopicProps{
		DisplayName: jsii.String("streamscore alerts"),
		MasterKey:   ss.AlertsKey,
		EnforceSSL:  jsii.Bool(true),
	})
	if s.AlertEmail != "" {
		ss.Topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.AlertEmail), nil))
	}

	// Dead letters: SQS-managed encryption, so senders need no KMS grant;
	// kept the maximum 14 days.
	ss.DeadLetters = newQueue(stack, "DeadLetters")

	if s.GlueDatabase != "" {
		newLake(stack, s, ss.Bucket, props.Pipelines)
	}

	var err error
	if ss.Worker, err = newWorker(ss); err != nil {
		return nil, err
	}
	if s.LoginLambda {
		if ss.Login, err = newLogin(ss); err != nil {
			return nil, err
		}
	}
	if s.Retraining && slices.ContainsFunc(props.Pipelines, func(p *Pipeline) bool { return len(p.Promotions) > 0 }) {
		ss.Retraining = newRetraining(ss, removal)
	}
	newAlarms(ss)
	ss.outputs()
	suppressNag(ss)
	return ss, nil
}

// newQueue is an encrypted queue that keeps messages 14 days and refuses
// plain HTTP.
func newQueue(scope constructs.Construct, id string) awssqs.Queue {
	return awssqs.NewQueue(scope, jsii.String(id), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		EnforceSSL:      jsii.Bool(true),
	})
}

// deployment is what rendered configurations point at, as tokens.
func (ss *Streamscore) deployment(p *Pipeline) Deployment {
	return Deployment{
		Bucket:        *ss.Bucket.BucketName(),
		LeaseTable:    *ss.LeaseTables[p.Name].TableName(),
		FeatureTable:  *ss.FeatureTable.TableName(),
		DeadLetterURL: *ss.DeadLetters.QueueUrl(),
		TopicARN:      *ss.Topic.TopicArn(),
	}
}

func (ss *Streamscore) outputs() {
	out := func(id, value, desc string) {
		awscdk.NewCfnOutput(ss.Stack, jsii.String("Output"+id), &awscdk.CfnOutputProps{Value: jsii.String(value), Description: jsii.String(desc)})
	}
	out("ResultsBucket", *ss.Bucket.BucketName(), "results (Parquet), large dead letters and models")
	out("AlertTopicArn", *ss.Topic.TopicArn(), "alerts and alarms")
	out("FeatureTableName", *ss.FeatureTable.TableName(), "online feature table")
	out("DeadLetterQueueUrl", *ss.DeadLetters.QueueUrl(), "dead letters")
	for _, p := range ss.Pipelines {
		out("LeaseTable"+exportName(p.Name), *ss.LeaseTables[p.Name].TableName(), "lease table of pipeline "+p.Name)
	}
	for _, name := range sortedKeys(ss.Streams) {
		out("Stream"+exportName(name), *ss.Streams[name].StreamName(), "Kinesis stream")
	}
	out("WorkerCluster", *ss.Worker.Cluster.ClusterName(), "ECS cluster")
	out("WorkerService", *ss.Worker.Service.ServiceName(), "ECS service")
	if ss.Login != nil {
		out("LoginFunction", *ss.Login.Function.FunctionName(), "login-event Lambda")
	}
	for _, name := range sortedKeys(ss.PromotionTables) {
		out("PromotionTable"+exportName(name), *ss.PromotionTables[name].TableName(), "promotion decisions (streamscore model promote/rollback/status)")
	}
	if ss.Retraining != nil {
		out("RetrainingStateMachine", *ss.Retraining.StateMachine.StateMachineArn(), "retraining: runs on each Retraining Requested event")
	}
}

// exportName makes a name usable in a logical id: letters and digits.
func exportName(s string) string {
	b := []byte{}
	up := true
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z':
			if up {
				c -= 'a' - 'A'
			}
			b, up = append(b, c), false
		case c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			b, up = append(b, c), false
		default:
			up = true
		}
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// namespaces are the CloudWatch namespaces the pipelines publish to.
func namespaces(ps []*Pipeline) []string {
	var out []string
	for _, p := range ps {
		if p.Namespace != "" && !slices.Contains(out, p.Namespace) {
			out = append(out, p.Namespace)
		}
	}
	return out
}
