package main

// The retraining loop (docs/flywheel.md): a "Retraining Requested" event
// on the default bus starts a state machine that trains a model with
// SageMaker's built-in XGBoost container on a scorer's labelled data and
// registers it as that scorer's challenger in its promotion table.

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctionstasks"
	"github.com/aws/jsii-runtime-go"
)

// The event that starts retraining: package retrain's Retraining
// Requested (retrain.Source, retrain.DetailTypeRetrainingRequested;
// schema/events-v1.schema.json), restated as this module does not import
// the root one (TestDefaultsMatchRootModule checks them). The state machine
// reads, of its detail: schema_version (it knows 1), request_id, pipeline,
// scorer, and data.results_prefix, data.ground_truth_prefix, data.from and
// data.to. The prefixes must lie under the pipeline's results and ground
// truth in this stack's bucket (it refuses others before training, and
// the training role could not read them anyway). The rest (the reason,
// rule, periods, features or metrics) is evidence, kept in the
// execution's input.
const (
	RetrainingEventSource   = "streamscore"
	RetrainingDetailType    = "Retraining Requested"
	retrainingSchemaVersion = 1
)

// The challenger registration the state machine writes: an item of its own
// in the scorer's promotion table, beside the decision item, with sort key
// scorer + challengerSuffix. Not the decision item itself: a reader of
// that item refuses one without its schema and generation (a scorer that
// was never promoted has no item, and an update would create one), and
// each decision rewrites the whole item, which would drop a challenger
// set on it.
const challengerSuffix = "#challenger"

// The built-in XGBoost container: SageMaker's sagemaker-xgboost
// repository, version 1.7-1 (XGBoost 1.7, as examples/models/train.py
// uses), run in script mode: the container runs the user's entry point
// from sourcedir.tar.gz instead of its own algorithm, since the labelled
// data is our Parquet results plus JSON Lines labels, which its algorithm
// mode cannot read.
const (
	xgboostRepository = "sagemaker-xgboost"
	xgboostVersion    = "1.7-1"
)

// xgboostRegistries maps each region to the account of its
// sagemaker-xgboost repository for version 1.7-1, as SageMaker documents
// them (Docker Registry Paths and Example Code, XGBoost algorithm). A
// region not here fails the deployment at the mapping lookup.
var xgboostRegistries = map[string]string{
	"af-south-1": "510948584623", "ap-east-1": "651117190479", "ap-northeast-1": "354813040037",
	"ap-northeast-2": "366743142698", "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
	"ap-south-2": "628508329040", "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285",
	"ap-southeast-3": "951798379941", "ap-southeast-4": "106583098589", "ca-central-1": "341280168497",
	"ca-west-1": "190319476487", "cn-north-1": "450853457545", "cn-northwest-1": "451049120500",
	"eu-central-1": "492215442770", "eu-central-2": "680994064768", "eu-north-1": "662702820516",
	"eu-south-1": "978288397137", "eu-south-2": "104374241257", "eu-west-1": "141502667606",
	"eu-west-2": "764974769150", "eu-west-3": "659782779980", "il-central-1": "898809789911",
	"me-central-1": "272398656194", "me-south-1": "801668240914", "sa-east-1": "737474898029",
	"us-east-1": "683313688378", "us-east-2": "257758044811", "us-gov-east-1": "237065988967",
	"us-gov-west-1": "414596584902", "us-west-1": "746614075791", "us-west-2": "246618743249",
}

// trainingLogGroup is where SageMaker writes every training job's logs.
const trainingLogGroup = "/aws/sagemaker/TrainingJobs"

// Retraining is the retraining loop's resources.
type Retraining struct {
	Rule         awsevents.Rule
	StateMachine awsstepfunctions.StateMachine
	// TrainingRole is the role SageMaker runs the training jobs with.
	TrainingRole awsiam.Role
	Logs         awslogs.LogGroup
	// Requests holds the request ids taken, one item each.
	Requests awsdynamodb.Table
	// DeadLetters keeps the events the rule could not deliver.
	DeadLetters awssqs.Queue
	// ImageURI is the XGBoost image, a token resolved per region.
	ImageURI string
}

// retrainTarget is one scorer that retraining can serve: a scorer with a
// promotion section.
type retrainTarget struct {
	p  *Pipeline
	pr ScorerPromotion
}

func retrainTargets(ps []*Pipeline) []retrainTarget {
	var out []retrainTarget
	for _, p := range ps {
		for _, pr := range p.Promotions {
			out = append(out, retrainTarget{p, pr})
		}
	}
	return out
}

// newRetraining builds the rule, the state machine and the training role.
//
// The state machine:
//
//  1. refuses an event of another schema version, one whose detail lacks
//     request_id, pipeline, scorer or the data prefixes (a request without
//     labels has no ground_truth_prefix: nothing to train on), one naming
//     a scorer without a promotion section, or data outside its
//     pipeline's prefixes (a Fail state saying which);
//  2. drops a repeated request: EventBridge delivers at least once and a
//     publisher may put an event twice, so it writes the request id to
//     the requests table on the condition that it is new, and ends
//     (Succeed) when it is not;
//  3. runs a training job (createTrainingJob.sync: it waits for the end)
//     named streamscore-<request id>, with channels results, groundtruth
//     and code, network isolation, and output under
//     models/retrained/<pipeline>/<scorer>/;
//  4. registers the model as the scorer's challenger with one UpdateItem.
func newRetraining(ss *Streamscore, removal awscdk.RemovalPolicy) *Retraining {
	s, stack := ss.Settings, ss.Stack
	r := &Retraining{}
	bucketName := *ss.Bucket.BucketName()
	s3uri := func(key string) string { return "s3://" + bucketName + "/" + key }

	registry := awscdk.NewCfnMapping(stack, jsii.String("XGBoostRegistry"), &awscdk.CfnMappingProps{Mapping: xgboostMapping()})
	account := *registry.FindInMap(stack.Region(), jsii.String("account"), nil)
	r.ImageURI = account + ".dkr.ecr." + *stack.Region() + "." + *stack.UrlSuffix() + "/" + xgboostRepository + ":" + xgboostVersion

	r.TrainingRole = newTrainingRole(ss)

	// 1. Which scorer, and is its data where it must be?
	str := func(path string) awsstepfunctions.Condition {
		return awsstepfunctions.Condition_IsString(jsii.String(path))
	}
	complete := awsstepfunctions.Condition_And(str("$.detail.request_id"), str("$.detail.pipeline"), str("$.detail.scorer"),
		str("$.detail.data.results_prefix"), str("$.detail.data.ground_truth_prefix"), str("$.detail.data.from"), str("$.detail.data.to"))
	fail := func(id, cause string) awsstepfunctions.Fail {
		return awsstepfunctions.NewFail(stack, jsii.String(id), &awsstepfunctions.FailProps{Error: jsii.String(id), Cause: jsii.String(cause)})
	}
	unsupported := fail("UnsupportedSchema", fmt.Sprintf("the event's detail.schema_version is not %d, the layout this state machine reads", retrainingSchemaVersion))
	incomplete := fail("IncompleteEvent", "the event's detail needs the strings request_id, pipeline, scorer, data.results_prefix, data.ground_truth_prefix (the pipeline has labels), data.from and data.to")
	unknown := fail("UnknownScorer", "no scorer with a promotion section has this pipeline and scorer, or data.results_prefix or data.ground_truth_prefix is not under the pipeline's s3://<bucket>/results/<sinks.s3.prefix> or s3://<bucket>/groundtruth/<pipeline>/")

	// 2. Once per request.
	r.Requests = awsdynamodb.NewTable(stack, jsii.String("RetrainingRequests"), &awsdynamodb.TableProps{
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String("request_id"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:                       awsdynamodb.TableEncryption_AWS_MANAGED,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		RemovalPolicy:                    removal,
	})
	once := awsstepfunctionstasks.NewDynamoPutItem(stack, jsii.String("OncePerRequest"), &awsstepfunctionstasks.DynamoPutItemProps{
		Table: r.Requests,
		Item: &map[string]awsstepfunctionstasks.DynamoAttributeValue{
			"request_id": awsstepfunctionstasks.DynamoAttributeValue_FromString(awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.request_id"))),
			"execution":  awsstepfunctionstasks.DynamoAttributeValue_FromString(awsstepfunctions.JsonPath_StringAt(jsii.String("$$.Execution.Id"))),
			"at":         awsstepfunctionstasks.DynamoAttributeValue_FromString(awsstepfunctions.JsonPath_StringAt(jsii.String("$$.State.EnteredTime"))),
		},
		ConditionExpression: jsii.String("attribute_not_exists(request_id)"),
		ResultPath:          awsstepfunctions.JsonPath_DISCARD(),
	})
	once.AddCatch(awsstepfunctions.NewSucceed(stack, jsii.String("RepeatedRequest"), &awsstepfunctions.SucceedProps{
		Comment: jsii.String("this request id was taken by an earlier execution"),
	}), &awsstepfunctions.CatchProps{Errors: jsii.Strings("DynamoDB.ConditionalCheckFailedException"), ResultPath: jsii.String("$.repeated")})

	train := awsstepfunctionstasks.NewSageMakerCreateTrainingJob(stack, jsii.String("Train"), &awsstepfunctionstasks.SageMakerCreateTrainingJobProps{
		IntegrationPattern: awsstepfunctions.IntegrationPattern_RUN_JOB,
		TrainingJobName:    awsstepfunctions.JsonPath_Format(jsii.String("streamscore-{}"), awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.request_id"))),
		// Immutable here: given S3 locations as JSON paths, the task
		// would add s3:GetObject, s3:ListBucket and s3:PutObject on "*"
		// to the role; its statements are newTrainingRole's alone.
		Role: r.TrainingRole.WithoutPolicyUpdates(nil),
		AlgorithmSpecification: &awsstepfunctionstasks.AlgorithmSpecification{
			TrainingImage:     awsstepfunctionstasks.DockerImage_FromRegistry(jsii.String(r.ImageURI)),
			TrainingInputMode: awsstepfunctionstasks.InputMode_FILE,
		},
		// Script mode (the SageMaker Python SDK's framework estimators
		// pass the same): the entry point from the code channel,
		// extracted by the container, gets the other hyperparameters as
		// arguments (--pipeline P --scorer S --from T --to T).
		Hyperparameters: &map[string]any{
			"sagemaker_program":          s.RetrainingEntryPoint,
			"sagemaker_submit_directory": "/opt/ml/input/data/code/" + path.Base(s.RetrainingSource),
			"pipeline":                   awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.pipeline")),
			"scorer":                     awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.scorer")),
			"from":                       awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.data.from")),
			"to":                         awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.data.to")),
		},
		InputDataConfig: &[]*awsstepfunctionstasks.Channel{
			channel("results", "$.detail.data.results_prefix", "application/x-parquet"),
			channel("groundtruth", "$.detail.data.ground_truth_prefix", "application/jsonlines"),
			channel("code", "$.target.code", "application/x-gzip"),
		},
		OutputDataConfig: &awsstepfunctionstasks.OutputDataConfig{
			S3OutputLocation: awsstepfunctionstasks.S3Location_FromJsonExpression(jsii.String("$.target.output")),
		},
		ResourceConfig: &awsstepfunctionstasks.ResourceConfig{
			InstanceCount: jsii.Number(1),
			// The task adds the "ml." prefix back.
			InstanceType: awsec2.NewInstanceType(jsii.String(strings.TrimPrefix(s.RetrainingInstanceType, "ml."))),
			VolumeSize:   awscdk.Size_Gibibytes(jsii.Number(30)),
		},
		StoppingCondition: &awsstepfunctionstasks.StoppingCondition{
			MaxRuntime: awscdk.Duration_Minutes(jsii.Number(float64(s.RetrainingMaxRuntimeMinutes))),
		},
		// The container reaches nothing: SageMaker itself downloads the
		// channels and uploads the model with the training role.
		EnableNetworkIsolation: jsii.Bool(true),
		ResultSelector: &map[string]any{
			"job":   awsstepfunctions.JsonPath_StringAt(jsii.String("$.TrainingJobName")),
			"model": awsstepfunctions.JsonPath_StringAt(jsii.String("$.ModelArtifacts.S3ModelArtifacts")),
		},
		ResultPath: jsii.String("$.training"),
	})

	var tables []string
	for _, t := range retrainTargets(ss.Pipelines) {
		if arn := *ss.PromotionTables[t.pr.Table].TableArn(); !slices.Contains(tables, arn) {
			tables = append(tables, arn)
		}
	}
	register := awsstepfunctionstasks.NewCallAwsService(stack, jsii.String("RegisterChallenger"), &awsstepfunctionstasks.CallAwsServiceProps{
		Service:      jsii.String("dynamodb"),
		Action:       jsii.String("updateItem"),
		IamAction:    jsii.String("dynamodb:UpdateItem"),
		IamResources: jsii.Strings(tables...),
		Parameters: &map[string]any{
			"TableName": awsstepfunctions.JsonPath_StringAt(jsii.String("$.target.table")),
			"Key": map[string]any{
				"pipeline": map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.pipeline"))},
				"scorer":   map[string]any{"S": awsstepfunctions.JsonPath_Format(jsii.String("{}"+challengerSuffix), awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.scorer")))},
			},
			"UpdateExpression": "SET challenger = :m, request_id = :r, event_id = :e, registered_at = :t ADD registrations :one",
			"ExpressionAttributeValues": map[string]any{
				":m": map[string]any{"M": map[string]any{
					"path":         map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.training.model"))},
					"training_job": map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.training.job"))},
				}},
				":r":   map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.request_id"))},
				":e":   map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.id"))},
				":t":   map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$$.State.EnteredTime"))},
				":one": map[string]any{"N": "1"},
			},
		},
		ResultPath: awsstepfunctions.JsonPath_DISCARD(),
	})
	once.Next(train)
	train.Next(register)

	route := awsstepfunctions.NewChoice(stack, jsii.String("WhichScorer"), nil)
	for _, t := range retrainTargets(ss.Pipelines) {
		p, sc := t.p, t.pr.Scorer
		target := awsstepfunctions.NewPass(stack, jsii.String("Target-"+p.Name+"-"+sc), &awsstepfunctions.PassProps{
			Result: awsstepfunctions.Result_FromObject(&map[string]any{
				"table":  t.pr.Table,
				"output": s3uri(p.RetrainedKeyPrefix(sc)),
				"code":   s3uri(s.RetrainingSource),
			}),
			ResultPath: jsii.String("$.target"),
		})
		target.Next(once)
		route.When(awsstepfunctions.Condition_And(
			awsstepfunctions.Condition_StringEquals(jsii.String("$.detail.pipeline"), jsii.String(p.Name)),
			awsstepfunctions.Condition_StringEquals(jsii.String("$.detail.scorer"), jsii.String(sc)),
			awsstepfunctions.Condition_StringMatches(jsii.String("$.detail.data.results_prefix"), jsii.String(s3uri(p.ResultsRootPrefix())+"*")),
			awsstepfunctions.Condition_StringMatches(jsii.String("$.detail.data.ground_truth_prefix"), jsii.String(s3uri(p.GroundTruthKeyPrefix())+"*")),
		), target, nil)
	}
	route.Otherwise(unknown)
	checked := awsstepfunctions.NewChoice(stack, jsii.String("CompleteEvent"), nil).
		When(complete, route, nil).
		Otherwise(incomplete)
	// Rules are tried in order: a non-number never reaches NumericEquals.
	version := jsii.String("$.detail.schema_version")
	definition := awsstepfunctions.NewChoice(stack, jsii.String("SchemaVersion"), nil).
		When(awsstepfunctions.Condition_Not(awsstepfunctions.Condition_IsNumeric(version)), unsupported, nil).
		When(awsstepfunctions.Condition_NumberEquals(version, jsii.Number(retrainingSchemaVersion)), checked, nil).
		Otherwise(unsupported)

	r.Logs = awslogs.NewLogGroup(stack, jsii.String("RetrainingLogs"), &awslogs.LogGroupProps{
		Retention:     retention(s.LogRetentionDays),
		RemovalPolicy: removal,
	})
	r.StateMachine = awsstepfunctions.NewStateMachine(stack, jsii.String("Retraining"), &awsstepfunctions.StateMachineProps{
		Comment:          jsii.String("streamscore retraining: train with SageMaker XGBoost, register the model as the scorer's challenger"),
		DefinitionBody:   awsstepfunctions.DefinitionBody_FromChainable(definition),
		StateMachineType: awsstepfunctions.StateMachineType_STANDARD,
		// The training job's bound, and an hour for the rest.
		Timeout:        awscdk.Duration_Minutes(jsii.Number(float64(s.RetrainingMaxRuntimeMinutes + 60))),
		TracingEnabled: jsii.Bool(true),
		Logs: &awsstepfunctions.LogOptions{
			Destination:          r.Logs,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(true),
		},
	})

	r.Rule = awsevents.NewRule(stack, jsii.String("RetrainingRequested"), &awsevents.RuleProps{
		Description: jsii.String("streamscore: sustained drift or a quality violation asks for a retrained challenger"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(RetrainingEventSource),
			DetailType: jsii.Strings(RetrainingDetailType),
		},
	})
	// An event the state machine could not take (EventBridge retried for
	// a day) is kept, and alarmed on.
	r.DeadLetters = newQueue(stack, "RetrainingDeadLetters")
	r.Rule.AddTarget(awseventstargets.NewSfnStateMachine(r.StateMachine, &awseventstargets.SfnStateMachineProps{
		RetryAttempts:   jsii.Number(20),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(24)),
		DeadLetterQueue: r.DeadLetters,
	}))

	// A training that failed or timed out leaves the champion alone, but
	// someone asked for a better model: say so on the alert topic.
	failed := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String("FILL(failed, 0) + FILL(timedOut, 0)"),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"failed":   r.StateMachine.MetricFailed(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum")}),
			"timedOut": r.StateMachine.MetricTimedOut(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum")}),
		},
		Period: awscdk.Duration_Minutes(jsii.Number(5)),
	})
	alarm := awscloudwatch.NewAlarm(stack, jsii.String("Alarm-RetrainingFailed"), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String("a retraining execution failed or timed out: no new challenger was registered (the execution's error says why)"),
		Metric:             failed,
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(ss.Topic))
	undelivered := awscloudwatch.NewAlarm(stack, jsii.String("Alarm-RetrainingUndelivered"), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String("retraining requests the state machine could not take are waiting in the rule's dead-letter queue"),
		Metric:             r.DeadLetters.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: awscdk.Duration_Minutes(jsii.Number(5))}),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	undelivered.AddAlarmAction(awscloudwatchactions.NewSnsAction(ss.Topic))
	return r
}

// channel is a training input channel from an s3:// prefix in the state's
// input. Given as a JSON path, the task grants the role nothing: the
// training role's statements are all newTrainingRole's.
func channel(name, jsonPath, contentType string) *awsstepfunctionstasks.Channel {
	return &awsstepfunctionstasks.Channel{
		ChannelName: jsii.String(name),
		ContentType: jsii.String(contentType),
		DataSource: &awsstepfunctionstasks.DataSource{S3DataSource: &awsstepfunctionstasks.S3DataSource{
			S3Location:             awsstepfunctionstasks.S3Location_FromJsonExpression(jsii.String(jsonPath)),
			S3DataType:             awsstepfunctionstasks.S3DataType_S3_PREFIX,
			S3DataDistributionType: awsstepfunctionstasks.S3DataDistributionType_FULLY_REPLICATED,
		}},
	}
}

// newTrainingRole is the role SageMaker runs the training jobs with:
//
//   - GetObject of the retrained pipelines' results and ground truth (the
//     prefixes a request's data names) and the training script's
//     archive, and ListBucket on exactly those (SageMaker lists a
//     channel's prefix);
//   - PutObject under the retrained scorers' models/retrained/ prefixes
//     (SageMaker uploads model.tar.gz and the job's output there);
//   - the job's logs in /aws/sagemaker/TrainingJobs and its metrics in
//     the /aws/sagemaker/TrainingJobs namespace.
//
// No ECR statement: SageMaker pulls its built-in algorithm images, the
// XGBoost one included, with its own credentials (CreateTrainingJob's
// AlgorithmSpecification), so the role could not restrict it anyway.
// Only SageMaker training jobs of this account may assume it.
func newTrainingRole(ss *Streamscore) awsiam.Role {
	s, stack := ss.Settings, ss.Stack
	arn := func(service, resource string) string {
		return "arn:" + *stack.Partition() + ":" + service + ":" + *stack.Region() + ":" + *stack.Account() + ":" + resource
	}
	role := awsiam.NewRole(stack, jsii.String("TrainingRole"), &awsiam.RoleProps{
		Description: jsii.String("streamscore retraining: SageMaker training jobs read the labelled data and write models"),
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("sagemaker.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{
				"StringEquals": map[string]any{"aws:SourceAccount": stack.Account()},
				"ArnLike":      map[string]any{"aws:SourceArn": arn("sagemaker", "training-job/*")},
			},
		}),
	})
	add := func(st awsiam.PolicyStatement) { role.AddToPrincipalPolicy(st) }

	bucket := *ss.Bucket.BucketArn()
	var reads, prefixes, writes []string
	have := func(k string) bool { return slices.Contains(prefixes, k) }
	for _, t := range retrainTargets(ss.Pipelines) {
		for _, k := range []string{t.p.ResultsRootPrefix() + "*", t.p.GroundTruthKeyPrefix() + "*"} {
			if !have(k) {
				prefixes = append(prefixes, k)
				reads = append(reads, bucket+"/"+k)
			}
		}
		writes = append(writes, bucket+"/"+t.p.RetrainedKeyPrefix(t.pr.Scorer)+"*")
	}
	prefixes = append(prefixes, s.RetrainingSource)
	reads = append(reads, bucket+"/"+s.RetrainingSource)
	add(statement("ReadTrainingData", []string{"s3:GetObject"}, reads, nil))
	add(statement("ListTrainingData", []string{"s3:ListBucket"}, []string{bucket},
		map[string]any{"StringLike": map[string]any{"s3:prefix": prefixes}}))
	add(statement("WriteModels", []string{"s3:PutObject"}, writes, nil))
	add(statement("WriteLogs", []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"},
		[]string{arn("logs", "log-group:"+trainingLogGroup), arn("logs", "log-group:"+trainingLogGroup+":log-stream:*")}, nil))
	add(statement("PutTrainingMetrics", []string{"cloudwatch:PutMetricData"}, []string{"*"},
		map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": trainingLogGroup}}))
	return role
}

// xgboostMapping is the CloudFormation mapping region -> {account}.
func xgboostMapping() *map[string]*map[string]any {
	m := map[string]*map[string]any{}
	for region, account := range xgboostRegistries {
		m[region] = &map[string]any{"account": account}
	}
	return &m
}
