package main

// The retraining loop (docs/flywheel.md): a "Retraining Requested" event
// on the default bus starts a state machine that trains a model with
// SageMaker's built-in XGBoost container on a scorer's labelled data and
// registers it as that scorer's challenger in its promotion table.

import (
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctionstasks"
	"github.com/aws/jsii-runtime-go"
)

// The event that starts retraining. Its detail names the scorer and where
// its labelled data is (RetrainingDetail); anything else in it (the
// metric, window, model version, violations) is evidence for people and
// passes through to the execution's input.
const (
	RetrainingEventSource = "streamscore"
	RetrainingDetailType  = "Retraining Requested"
)

// RetrainingDetail is the part of the event's detail the state machine
// reads. Results and GroundTruth are s3:// prefixes that must lie under
// the scorer's results prefix and its pipeline's ground-truth prefix in
// this stack's bucket (the state machine refuses others before training,
// and the training role could not read them anyway).
type RetrainingDetail struct {
	Pipeline    string `json:"pipeline"`
	Scorer      string `json:"scorer"`
	Results     string `json:"results"`
	GroundTruth string `json:"ground_truth"`
}

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
//  1. refuses an event whose detail lacks pipeline, scorer, results or
//     ground_truth, or names a scorer without a promotion section, or
//     data outside that scorer's prefixes (a Fail state saying which);
//  2. runs a training job (createTrainingJob.sync: it waits for the end)
//     named streamscore-<event id>, so a redelivered event cannot train
//     twice, with channels results, groundtruth and code, network
//     isolation, and output under models/retrained/<pipeline>/<scorer>/;
//  3. registers the model as the scorer's challenger with one UpdateItem.
func newRetraining(ss *Streamscore, removal awscdk.RemovalPolicy) *Retraining {
	s, stack := ss.Settings, ss.Stack
	r := &Retraining{}
	bucketName := *ss.Bucket.BucketName()
	s3uri := func(key string) string { return "s3://" + bucketName + "/" + key }

	registry := awscdk.NewCfnMapping(stack, jsii.String("XGBoostRegistry"), &awscdk.CfnMappingProps{Mapping: xgboostMapping()})
	account := *registry.FindInMap(stack.Region(), jsii.String("account"), nil)
	r.ImageURI = account + ".dkr.ecr." + *stack.Region() + "." + *stack.UrlSuffix() + "/" + xgboostRepository + ":" + xgboostVersion
	repoARN := "arn:" + *stack.Partition() + ":ecr:" + *stack.Region() + ":" + account + ":repository/" + xgboostRepository

	r.TrainingRole = newTrainingRole(ss, repoARN)

	// 1. Which scorer, and is its data where it must be?
	complete := awsstepfunctions.Condition_And(
		awsstepfunctions.Condition_IsString(jsii.String("$.detail.pipeline")),
		awsstepfunctions.Condition_IsString(jsii.String("$.detail.scorer")),
		awsstepfunctions.Condition_IsString(jsii.String("$.detail.results")),
		awsstepfunctions.Condition_IsString(jsii.String("$.detail.ground_truth")),
	)
	incomplete := awsstepfunctions.NewFail(stack, jsii.String("IncompleteEvent"), &awsstepfunctions.FailProps{
		Error: jsii.String("IncompleteEvent"),
		Cause: jsii.String("the event's detail needs the strings pipeline, scorer, results and ground_truth"),
	})
	unknown := awsstepfunctions.NewFail(stack, jsii.String("UnknownScorer"), &awsstepfunctions.FailProps{
		Error: jsii.String("UnknownScorer"),
		Cause: jsii.String("no scorer with a promotion section has this pipeline and scorer, or results or ground_truth is not under its prefix s3://<bucket>/results/<sinks.s3.prefix><scorer>/ or s3://<bucket>/groundtruth/<pipeline>/"),
	})

	train := awsstepfunctionstasks.NewSageMakerCreateTrainingJob(stack, jsii.String("Train"), &awsstepfunctionstasks.SageMakerCreateTrainingJobProps{
		IntegrationPattern: awsstepfunctions.IntegrationPattern_RUN_JOB,
		TrainingJobName:    awsstepfunctions.JsonPath_Format(jsii.String("streamscore-{}"), awsstepfunctions.JsonPath_StringAt(jsii.String("$.id"))),
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
		// arguments (--pipeline P --scorer S).
		Hyperparameters: &map[string]any{
			"sagemaker_program":          s.RetrainingEntryPoint,
			"sagemaker_submit_directory": "/opt/ml/input/data/code/" + path.Base(s.RetrainingSource),
			"pipeline":                   awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.pipeline")),
			"scorer":                     awsstepfunctions.JsonPath_StringAt(jsii.String("$.detail.scorer")),
		},
		InputDataConfig: &[]*awsstepfunctionstasks.Channel{
			channel("results", "$.detail.results", "application/x-parquet"),
			channel("groundtruth", "$.detail.ground_truth", "application/jsonlines"),
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
			"UpdateExpression": "SET challenger = :m, event_id = :e, registered_at = :t ADD registrations :one",
			"ExpressionAttributeValues": map[string]any{
				":m": map[string]any{"M": map[string]any{
					"path":         map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.training.model"))},
					"training_job": map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.training.job"))},
				}},
				":e":   map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$.id"))},
				":t":   map[string]any{"S": awsstepfunctions.JsonPath_StringAt(jsii.String("$$.State.EnteredTime"))},
				":one": map[string]any{"N": "1"},
			},
		},
		ResultPath: awsstepfunctions.JsonPath_DISCARD(),
	})
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
		target.Next(train)
		route.When(awsstepfunctions.Condition_And(
			awsstepfunctions.Condition_StringEquals(jsii.String("$.detail.pipeline"), jsii.String(p.Name)),
			awsstepfunctions.Condition_StringEquals(jsii.String("$.detail.scorer"), jsii.String(sc)),
			awsstepfunctions.Condition_StringMatches(jsii.String("$.detail.results"), jsii.String(s3uri(p.ResultsKeyPrefix(sc))+"*")),
			awsstepfunctions.Condition_StringMatches(jsii.String("$.detail.ground_truth"), jsii.String(s3uri(p.GroundTruthKeyPrefix())+"*")),
		), target, nil)
	}
	route.Otherwise(unknown)
	definition := awsstepfunctions.NewChoice(stack, jsii.String("CompleteEvent"), nil).
		When(complete, route, nil).
		Otherwise(incomplete)

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
	r.Rule.AddTarget(awseventstargets.NewSfnStateMachine(r.StateMachine, &awseventstargets.SfnStateMachineProps{
		RetryAttempts: jsii.Number(20),
		MaxEventAge:   awscdk.Duration_Hours(jsii.Number(24)),
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
//   - GetObject of the retrained scorers' results, their pipelines'
//     ground truth and the training script's archive, and ListBucket on
//     exactly those prefixes (SageMaker lists a channel's prefix);
//   - PutObject under the retrained scorers' models/retrained/ prefixes
//     (SageMaker uploads model.tar.gz and the job's output there);
//   - the XGBoost image: BatchGetImage, GetDownloadUrlForLayer and
//     BatchCheckLayerAvailability on its repository, and
//     GetAuthorizationToken, which has no resource type;
//   - the job's logs in /aws/sagemaker/TrainingJobs and its metrics in
//     the /aws/sagemaker/TrainingJobs namespace.
//
// Only SageMaker training jobs of this account may assume it.
func newTrainingRole(ss *Streamscore, repoARN string) awsiam.Role {
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
		for _, k := range []string{t.p.ResultsKeyPrefix(t.pr.Scorer) + "*", t.p.GroundTruthKeyPrefix() + "*"} {
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
	add(statement("PullImage", []string{"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}, []string{repoARN}, nil))
	add(statement("RegistryLogin", []string{"ecr:GetAuthorizationToken"}, []string{"*"}, nil))
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
