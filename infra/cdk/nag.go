package main

// cdk-nag's AwsSolutions checks run over the stack in the tests
// (nag_test.go). What they flag and the stack does on purpose is
// suppressed here, on the construct concerned, each with the reason; the
// rest was fixed (access logs on the results bucket, a VPC flow log, an
// immutable training role). README.md lists every suppression.

import (
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// nagRule is one suppression: a rule id, the findings it covers (empty:
// all of the rule's on the construct; a string for one finding; a regex
// in cdk-nag's /pattern/ form for several) and why.
type nagRule struct {
	id, reason string
	appliesTo  []string
	regex      []string
}

// suppress adds the rules to c and, for a role, to its children (the
// DefaultPolicy that holds its statements).
func suppress(c constructs.IConstruct, rules ...nagRule) { suppressions(c, true, rules) }

func suppressions(c constructs.IConstruct, children bool, rules []nagRule) {
	var out []*cdknag.NagPackSuppression
	for _, r := range rules {
		sup := &cdknag.NagPackSuppression{Id: jsii.String(r.id), Reason: jsii.String(r.reason)}
		if len(r.appliesTo)+len(r.regex) > 0 {
			var at []any
			for _, a := range r.appliesTo {
				at = append(at, a)
			}
			for _, re := range r.regex {
				at = append(at, &cdknag.RegexAppliesTo{Regex: jsii.String(re)})
			}
			sup.AppliesTo = &at
		}
		out = append(out, sup)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &out, jsii.Bool(children))
}

// suppressOnly adds the rules to c alone.
func suppressOnly(c constructs.IConstruct, rules ...nagRule) {
	suppressions(c, false, rules)
}

// Findings of AwsSolutions-IAM5 (wildcards) are "Resource::<ARN as
// written>"; the bucket's ARN appears as <Results...Arn>.
const (
	// bucketKeys matches object ARNs under a key prefix of the results
	// bucket.
	bucketKeys  = `/^Resource::<Results[0-9A-F]{8}\.Arn>\/[A-Za-z0-9_\/.-]*\*$/`
	anyResource = "Resource::*"
)

// suppressNag records the suppressions of the stack's intended findings.
func suppressNag(ss *Streamscore) {
	w := ss.Worker
	suppress(w.TaskRole,
		nagRule{id: "AwsSolutions-IAM5", regex: []string{bucketKeys},
			reason: "Object keys below the pipelines' own prefixes of this stack's bucket (results/<sinks.s3.prefix>, dead-letter/<pipeline>/, groundtruth/<pipeline>/, monitoring/<pipeline>/, monitoring/model-quality/<pipeline>/, baselines/<pipeline>/<window>/, models/retrained/<pipeline>/): the worker writes objects it names per shard, hour and sequence, and reads files other parts of the loop name, so IAM can only name the prefix."},
		nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{anyResource},
			reason: "cloudwatch:PutMetricData has no resource type, so its resource must be *; the statement is scoped by a cloudwatch:namespace condition to the pipelines' namespaces."},
		nagRule{id: "AwsSolutions-IAM5", regex: []string{`/^Resource::<Stream[A-Za-z0-9]+\.Arn>\/consumer\/[A-Za-z0-9_.-]+:\*$/`},
			reason: "An enhanced fan-out consumer's ARN ends in its creation timestamp, known only once the worker has registered it; the grant names the stream and the consumer's name."},
	)
	// The task definition's own resource: its children include the
	// execution role, which the reason does not concern.
	suppressOnly(w.TaskDefinition.Node().DefaultChild(),
		nagRule{id: "AwsSolutions-ECS2",
			reason: "The environment holds the rendered pipeline configurations (resource names, ARNs and URLs, no secrets: credentials come from the task role) and AWS_REGION; in the task definition, a configuration change is a new revision that the deployment circuit breaker rolls back with the tasks that failed on it."},
	)
	if er := w.TaskDefinition.ExecutionRole(); er != nil {
		suppress(er, nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{anyResource},
			reason: "ecr:GetAuthorizationToken has no resource type, so its resource must be *; pulling the image itself is granted on the image asset's repository only."})
	}
	suppress(ss.DeadLetters, nagRule{id: "AwsSolutions-SQS3",
		reason: "This queue is the pipelines' dead-letter destination itself: poison records land here with a reason for a person to inspect; nothing consumes it automatically, so there is no failed processing to redrive."})
	if l := ss.Login; l != nil {
		suppress(l.Failures, nagRule{id: "AwsSolutions-SQS3",
			reason: "This queue is the login Lambda's on-failure destination itself: it holds the shard and sequence ranges of batches given up on, for a person to replay; nothing consumes it automatically."})
		suppress(l.Role,
			nagRule{id: "AwsSolutions-IAM5", regex: []string{`/^Resource::<LoginLogs[0-9A-F]{8}\.Arn>:\*$/`},
				reason: "The log streams of the function's own log group, which Lambda names per execution environment."},
			nagRule{id: "AwsSolutions-IAM5", regex: []string{bucketKeys},
				reason: "Dead letters too large for SQS, written under dead-letter/login/ with keys the function makes per record."},
		)
	}
	if r := ss.Retraining; r != nil {
		suppress(r.DeadLetters, nagRule{id: "AwsSolutions-SQS3",
			reason: "This queue is the retraining rule's dead-letter queue itself: it keeps the events EventBridge could not hand to the state machine, for a person to replay; nothing consumes it automatically."})
		suppress(r.TrainingRole,
			nagRule{id: "AwsSolutions-IAM5", regex: []string{bucketKeys},
				reason: "SageMaker reads every object under the retrained pipelines' results/ and groundtruth/ prefixes (the training channels) and writes the job's model.tar.gz under models/retrained/<pipeline>/<scorer>/<job>/, so IAM can only name the prefixes."},
			nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{"Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:" + trainingLogGroup + ":log-stream:*"},
				reason: "SageMaker writes each training job's logs to streams it names per job and instance in the /aws/sagemaker/TrainingJobs log group."},
			nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{anyResource},
				reason: "cloudwatch:PutMetricData has no resource type, so its resource must be *; the statement is scoped by a cloudwatch:namespace condition to /aws/sagemaker/TrainingJobs."},
		)
		suppress(r.StateMachine.Role(),
			nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/*"},
				reason: "The training job is named per request (streamscore-<request id>), and SageMakerCreateTrainingJob's generated statement names training-job/* of this account and region for any name computed at run time."},
			nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{anyResource},
				reason: "Generated by the CDK for logging and tracing and the SageMaker integration: CloudWatch Logs' log delivery actions (which Step Functions logging needs) and X-Ray's trace and sampling actions support no resource-level permissions, and Step Functions' policy for createTrainingJob.sync grants sagemaker:ListTags on *."},
		)
	}
}
