package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"
)

// Settings are the stack's parameters. They come from CDK context (cdk.json,
// or -c key=value on the command line); Defaults holds the value of every key
// that is not given, and cdk.json repeats them so that they are visible.
type Settings struct {
	// StackName is the CloudFormation stack's name.
	StackName string `json:"stackName"`
	// RepoRoot is the streamscore repository: the Docker build context of
	// the worker image and the base of Pipelines. Relative to the CDK app.
	RepoRoot string `json:"repoRoot"`
	// Pipelines are the worker's pipeline configurations, relative to
	// RepoRoot (or absolute). Their streams, lease tables, feature tables,
	// models and result sinks decide what the stack creates.
	Pipelines []string `json:"pipelines"`

	// StreamMode is "provisioned" (shard counts from the configurations'
	// streams[].shards) or "on-demand".
	StreamMode string `json:"streamMode"`
	// StreamEncryption is "managed" (the AWS managed key aws/kinesis, which
	// readers need no KMS permission for) or "kms" (a customer managed key
	// of this stack, with rotation; readers get kms:Decrypt on it).
	StreamEncryption string `json:"streamEncryption"`
	// StreamRetentionHours is the least time records stay readable: the
	// longest outage the consumers can recover from without losing data.
	// A stream whose windows hold records longer gets more: their size
	// (or gap) + out-of-orderness + allowed lateness + 6 h, in whole
	// hours, at most 8,760 (retention.go).
	StreamRetentionHours int `json:"streamRetentionHours"`

	// WorkerDesiredCount is the number of worker tasks; leases spread the
	// shards across them.
	WorkerDesiredCount int `json:"workerDesiredCount"`
	// WorkerCPU (CPU units) and WorkerMemoryMiB size one worker task.
	WorkerCPU       int `json:"workerCpu"`
	WorkerMemoryMiB int `json:"workerMemoryMiB"`
	// WorkerArchitecture is "x86_64" or "arm64": the Fargate platform and
	// the platform the image is built for at deploy time.
	WorkerArchitecture string `json:"workerArchitecture"`
	// WorkerMaxCount bounds autoscaling: the service runs between
	// WorkerDesiredCount and WorkerMaxCount tasks. Leases spread shards
	// over the workers, so a worker beyond the streams' total shard count
	// holds none.
	WorkerMaxCount int `json:"workerMaxCount"`
	// WorkerCPUTarget is the average CPU utilization, in percent, that
	// target tracking keeps the service at (and the only signal that
	// scales it in).
	WorkerCPUTarget int `json:"workerCpuTarget"`
	// WorkerScaleOutLagMillis is the iterator age (the maximum over the
	// streams the workers read) above which a task is added; four times
	// it adds two. Lag never scales in: a drained backlog leaves CPU to
	// decide.
	WorkerScaleOutLagMillis int `json:"workerScaleOutLagMillis"`
	// WorkerFargateSpot runs the tasks autoscaling adds above
	// WorkerDesiredCount on Fargate Spot; the first WorkerDesiredCount
	// stay on Fargate. A Spot interruption is a SIGTERM two minutes
	// ahead, within which the worker drains and hands its leases over.
	WorkerFargateSpot bool `json:"workerFargateSpot"`
	// HelperImage is a static busybox image: the task's init container
	// writes the pipeline configurations from it, and lends its binary to
	// the worker's health check (the streamscore image is distroless).
	HelperImage string `json:"helperImage"`
	// NATGateways in the worker's VPC (1 is cheapest, one per AZ survives
	// an AZ outage).
	NATGateways int `json:"natGateways"`

	// AlertEmail, when set, subscribes this address to the alert topic.
	AlertEmail string `json:"alertEmail"`
	// IteratorAgeAlarmMillis is the iterator age above which the stream and
	// Lambda lag alarms fire.
	IteratorAgeAlarmMillis int `json:"iteratorAgeAlarmMillis"`

	// LoginLambda deploys the login-event Lambda.
	LoginLambda bool `json:"loginLambda"`
	// LoginLambdaCode is a directory holding a built `bootstrap`. Empty:
	// the app builds ./lambda/bootstrap of RepoRoot with the Go toolchain.
	LoginLambdaCode string `json:"loginLambdaCode"`
	// LoginLambdaArchitecture is "arm64" or "x86_64".
	LoginLambdaArchitecture string `json:"loginLambdaArchitecture"`
	// LoginStream is the stream the Lambda reads (one of the pipelines').
	LoginStream string `json:"loginStream"`
	// LoginFeatureSet is the feature table sort key the Lambda reads,
	// "<pipeline>#<window>". Empty: the one window over LoginStream (an
	// error if there are several).
	LoginFeatureSet string `json:"loginFeatureSet"`
	// LoginEventType is the event_type of a login, the events the function
	// scores (it skips the others). Required.
	LoginEventType string `json:"loginEventType"`
	// LoginFanOut reads through a dedicated enhanced fan-out consumer
	// instead of polling: the worker's polling already uses the shard's
	// read budget of 5 GetRecords calls a second.
	LoginFanOut bool `json:"loginFanOut"`
	// LoginModelKey is the Lambda's model object in the bucket: the model
	// of the pipeline whose feature table it reads (churn's by default).
	LoginModelKey string `json:"loginModelKey"`
	// LoginThreshold is the score at which the Lambda alerts.
	LoginThreshold float64 `json:"loginThreshold"`
	// LoginBatchSize, LoginRetryAttempts and LoginMaxRecordAgeSeconds
	// configure the Kinesis event source.
	LoginBatchSize           int `json:"loginBatchSize"`
	LoginRetryAttempts       int `json:"loginRetryAttempts"`
	LoginMaxRecordAgeSeconds int `json:"loginMaxRecordAgeSeconds"`

	// ResultsTransitionDays moves result files to Intelligent-Tiering;
	// ResultsExpirationDays deletes them; DeadLetterExpirationDays deletes
	// large dead letters (must outlive the queue's 14-day retention, which
	// points at them).
	ResultsTransitionDays    int `json:"resultsTransitionDays"`
	ResultsExpirationDays    int `json:"resultsExpirationDays"`
	DeadLetterExpirationDays int `json:"deadLetterExpirationDays"`
	// GlueDatabase names the Glue database of the result tables; empty
	// leaves out Glue and Athena.
	GlueDatabase string `json:"glueDatabase"`
	// LogRetentionDays for the worker's and the Lambda's logs.
	LogRetentionDays int `json:"logRetentionDays"`
	// Retraining deploys the retraining loop (retraining.go) when a
	// pipeline has a promotion section: an EventBridge rule on
	// "Retraining Requested" events starting a state machine that trains
	// with SageMaker's built-in XGBoost and registers the model as the
	// scorer's challenger.
	Retraining bool `json:"retraining"`
	// RetrainingInstanceType and RetrainingMaxRuntimeMinutes size and
	// bound one training job.
	RetrainingInstanceType      string `json:"retrainingInstanceType"`
	RetrainingMaxRuntimeMinutes int    `json:"retrainingMaxRuntimeMinutes"`
	// RetrainingSource is the key, in the results bucket, of the training
	// script's sourcedir.tar.gz, which the user uploads; RetrainingEntryPoint
	// is the script in it that the XGBoost container runs.
	RetrainingSource     string `json:"retrainingSource"`
	RetrainingEntryPoint string `json:"retrainingEntryPoint"`
	// RetainData keeps streams, tables, the bucket and logs when the stack
	// is deleted (and turns on deletion protection); false is for
	// short-lived test stacks.
	RetainData bool `json:"retainData"`
}

// Defaults are the settings of a key the context does not give.
func Defaults() Settings {
	return Settings{
		StackName:                   "Streamscore",
		RepoRoot:                    "../..",
		Pipelines:                   []string{"examples/factory.yaml", "examples/churn.yaml"},
		StreamMode:                  "provisioned",
		StreamEncryption:            "managed",
		StreamRetentionHours:        24,
		WorkerDesiredCount:          2,
		WorkerCPU:                   1024,
		WorkerMemoryMiB:             2048,
		WorkerArchitecture:          "x86_64",
		WorkerMaxCount:              8,
		WorkerCPUTarget:             60,
		WorkerScaleOutLagMillis:     30000,
		HelperImage:                 "public.ecr.aws/docker/library/busybox:1.37.0-musl",
		NATGateways:                 1,
		IteratorAgeAlarmMillis:      60000,
		LoginLambda:                 true,
		LoginLambdaArchitecture:     "arm64",
		LoginStream:                 "app-events",
		LoginEventType:              "login",
		LoginFanOut:                 true,
		LoginModelKey:               "models/churn.json",
		LoginThreshold:              0.7,
		LoginBatchSize:              100,
		LoginRetryAttempts:          3,
		LoginMaxRecordAgeSeconds:    3600,
		ResultsTransitionDays:       30,
		ResultsExpirationDays:       400,
		DeadLetterExpirationDays:    30,
		GlueDatabase:                "streamscore",
		LogRetentionDays:            30,
		Retraining:                  true,
		RetrainingInstanceType:      "ml.m5.xlarge",
		RetrainingMaxRuntimeMinutes: 120,
		RetrainingSource:            "retraining/sourcedir.tar.gz",
		RetrainingEntryPoint:        "train.py",
		RetainData:                  true,
	}
}

// SettingsFromContext reads every key of Settings from the construct's
// context, falling back to Defaults. Values given on the command line
// arrive as strings ("-c workerDesiredCount=3"), values from cdk.json as
// JSON; both are accepted.
func SettingsFromContext(scope constructs.Construct) (Settings, error) {
	s := Defaults()
	// Start from the defaults as a JSON object, overlay each context value
	// the node has, and decode once: one place knows the field types.
	var raw map[string]any
	b, err := json.Marshal(s)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return s, err
	}
	for key, def := range raw {
		v := scope.Node().TryGetContext(&key)
		if v == nil {
			continue
		}
		cv, err := coerce(key, v, def)
		if err != nil {
			return s, err
		}
		raw[key] = cv
	}
	b, err = json.Marshal(raw)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("context: %w", err)
	}
	return s, s.validate()
}

// coerce turns a command-line string into the type of the default.
func coerce(key string, v, def any) (any, error) {
	str, ok := v.(string)
	if !ok {
		return v, nil
	}
	switch def.(type) {
	case string:
		return str, nil
	case bool:
		b, err := strconv.ParseBool(str)
		if err != nil {
			return nil, fmt.Errorf("context %s: %q is not true or false", key, str)
		}
		return b, nil
	case float64:
		f, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("context %s: %q is not a number", key, str)
		}
		return f, nil
	case []any:
		if strings.HasPrefix(strings.TrimSpace(str), "[") {
			var l []any
			if err := json.Unmarshal([]byte(str), &l); err != nil {
				return nil, fmt.Errorf("context %s: %w", key, err)
			}
			return l, nil
		}
		var l []any
		for p := range strings.SplitSeq(str, ",") {
			if p = strings.TrimSpace(p); p != "" {
				l = append(l, p)
			}
		}
		return l, nil
	}
	return v, nil
}

func (s Settings) validate() error {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("context %s: "+format, append([]any{key}, args...)...))
	}
	if len(s.Pipelines) == 0 {
		bad("pipelines", "at least one pipeline configuration is needed")
	}
	if s.StreamMode != "provisioned" && s.StreamMode != "on-demand" {
		bad("streamMode", "%q: want provisioned or on-demand", s.StreamMode)
	}
	if s.StreamEncryption != "managed" && s.StreamEncryption != "kms" {
		bad("streamEncryption", "%q: want managed or kms", s.StreamEncryption)
	}
	if s.StreamRetentionHours < 24 || s.StreamRetentionHours > 8760 {
		bad("streamRetentionHours", "%d: Kinesis allows 24 to 8760", s.StreamRetentionHours)
	}
	if s.WorkerDesiredCount < 1 {
		bad("workerDesiredCount", "%d: at least 1 worker", s.WorkerDesiredCount)
	}
	if s.WorkerMaxCount < s.WorkerDesiredCount {
		bad("workerMaxCount", "%d: at least workerDesiredCount (%d), the autoscaling floor", s.WorkerMaxCount, s.WorkerDesiredCount)
	}
	if s.WorkerCPUTarget < 10 || s.WorkerCPUTarget > 90 {
		bad("workerCpuTarget", "%d: a utilization percentage from 10 to 90", s.WorkerCPUTarget)
	}
	if s.WorkerScaleOutLagMillis <= 0 {
		bad("workerScaleOutLagMillis", "%d: must be positive", s.WorkerScaleOutLagMillis)
	}
	if !strings.HasPrefix(s.RetrainingInstanceType, "ml.") {
		bad("retrainingInstanceType", "%q: a SageMaker instance type (ml.*)", s.RetrainingInstanceType)
	}
	// SageMaker allows a training job at most 28 days.
	if s.RetrainingMaxRuntimeMinutes < 1 || s.RetrainingMaxRuntimeMinutes > 28*24*60 {
		bad("retrainingMaxRuntimeMinutes", "%d: 1 to %d (28 days)", s.RetrainingMaxRuntimeMinutes, 28*24*60)
	}
	if !strings.HasSuffix(s.RetrainingSource, ".tar.gz") || strings.HasPrefix(s.RetrainingSource, "/") || strings.Contains(s.RetrainingSource, "*") {
		bad("retrainingSource", "%q: the key of a .tar.gz in the results bucket, without a leading '/' or '*'", s.RetrainingSource)
	}
	if s.RetrainingEntryPoint == "" {
		bad("retrainingEntryPoint", "empty: the script in retrainingSource to run")
	}
	if s.WorkerArchitecture != "x86_64" && s.WorkerArchitecture != "arm64" {
		bad("workerArchitecture", "%q: want x86_64 or arm64", s.WorkerArchitecture)
	}
	if s.LoginLambdaArchitecture != "x86_64" && s.LoginLambdaArchitecture != "arm64" {
		bad("loginLambdaArchitecture", "%q: want x86_64 or arm64", s.LoginLambdaArchitecture)
	}
	if s.LoginLambda && s.LoginEventType == "" {
		bad("loginEventType", "empty: the event_type value of a login is needed")
	}
	if s.NATGateways < 1 {
		bad("natGateways", "%d: the workers' private subnets reach the AWS APIs through at least one", s.NATGateways)
	}
	if s.HelperImage == "" {
		bad("helperImage", "empty")
	}
	if s.IteratorAgeAlarmMillis <= 0 {
		bad("iteratorAgeAlarmMillis", "%d: must be positive", s.IteratorAgeAlarmMillis)
	}
	if s.LoginBatchSize < 1 || s.LoginBatchSize > 10000 {
		bad("loginBatchSize", "%d: Kinesis event sources take 1 to 10000", s.LoginBatchSize)
	}
	if s.LoginRetryAttempts < 0 || s.LoginRetryAttempts > 10000 {
		bad("loginRetryAttempts", "%d: 0 to 10000", s.LoginRetryAttempts)
	}
	if s.LoginMaxRecordAgeSeconds < 60 || s.LoginMaxRecordAgeSeconds > 604800 {
		bad("loginMaxRecordAgeSeconds", "%d: 60 to 604800", s.LoginMaxRecordAgeSeconds)
	}
	if s.ResultsTransitionDays >= s.ResultsExpirationDays {
		bad("resultsTransitionDays", "%d must be less than resultsExpirationDays %d", s.ResultsTransitionDays, s.ResultsExpirationDays)
	}
	// A dead letter in SQS (kept 14 days) may point at an S3 object: the
	// object must outlive the message.
	if s.DeadLetterExpirationDays < 15 {
		bad("deadLetterExpirationDays", "%d: must exceed the queue's 14-day retention", s.DeadLetterExpirationDays)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// resolve makes RepoRoot absolute (relative to dir, the CDK app's
// directory) and each pipeline path absolute.
func (s *Settings) resolve(dir string) {
	if !filepath.IsAbs(s.RepoRoot) {
		s.RepoRoot = filepath.Join(dir, s.RepoRoot)
	}
	for i, p := range s.Pipelines {
		if !filepath.IsAbs(p) {
			s.Pipelines[i] = filepath.Join(s.RepoRoot, p)
		}
	}
	if s.LoginLambdaCode != "" && !filepath.IsAbs(s.LoginLambdaCode) {
		s.LoginLambdaCode = filepath.Join(dir, s.LoginLambdaCode)
	}
}
