package main

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// policyStatements returns the statements of the inline policies attached
// to the role whose logical id starts with rolePrefix.
func policyStatements(t testing.TB, s *synthesized, rolePrefix string) []map[string]any {
	t.Helper()
	roleID := s.idOf(t, "AWS::IAM::Role", rolePrefix)
	var out []map[string]any
	for _, r := range s.resources("AWS::IAM::Policy") {
		p := props(r)
		attached := false
		for _, ref := range asList(p["Roles"]) {
			if m, ok := ref.(map[string]any); ok && m["Ref"] == roleID {
				attached = true
			}
		}
		if !attached {
			continue
		}
		for _, st := range asList(p["PolicyDocument"].(map[string]any)["Statement"]) {
			out = append(out, st.(map[string]any))
		}
	}
	return out
}

func statementBySid(t testing.TB, s *synthesized, rolePrefix, sid string) map[string]any {
	t.Helper()
	for _, st := range policyStatements(t, s, rolePrefix) {
		if st["Sid"] == sid {
			return st
		}
	}
	t.Fatalf("%s: no statement %s", rolePrefix, sid)
	return nil
}

func strs(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, x.(string))
	}
	sort.Strings(out)
	return out
}

// refs renders each resource of a statement compactly, sorted.
func refs(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, compact(x))
	}
	sort.Strings(out)
	return out
}

// getAtt and join are the template forms of ARNs the stack builds.
func getAtt(id string) string { return `{"Fn::GetAtt":["` + id + `","Arn"]}` }
func under(bucketID, suffix string) string {
	return `{"Fn::Join":["",[` + getAtt(bucketID) + `,"` + suffix + `"]]}`
}

// wantStatement is one statement of a role as the template must show it:
// actions and resources sorted (resources compacted), and the condition
// compacted, empty for none.
type wantStatement struct {
	actions   []string
	resources []string
	condition string
}

// defaultWorkerStatements are the worker's statements for cdk.json's
// pipelines (examples/factory.yaml, examples/churn.yaml), with s's ids.
func defaultWorkerStatements(t testing.TB, s *synthesized) map[string]wantStatement {
	t.Helper()
	streamF := s.idOf(t, "AWS::Kinesis::Stream", "Streamfactorysensors")
	streamA := s.idOf(t, "AWS::Kinesis::Stream", "Streamappevents")
	leaseF := s.idOf(t, "AWS::DynamoDB::Table", "Leasesfactory")
	leaseC := s.idOf(t, "AWS::DynamoDB::Table", "Leaseschurn")
	features := s.idOf(t, "AWS::DynamoDB::Table", "FeatureTable")
	bucket := s.idOf(t, "AWS::S3::Bucket", "Results")
	topic := s.idOf(t, "AWS::SNS::Topic", "Alerts")
	key := s.idOf(t, "AWS::KMS::Key", "AlertsKey")
	dlq := s.idOf(t, "AWS::SQS::Queue", "DeadLetters")
	return map[string]wantStatement{
		"ReadStreams": {
			[]string{"kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"},
			[]string{getAtt(streamA), getAtt(streamF)}, "",
		},
		"Leases": {
			[]string{"dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:UpdateItem"},
			[]string{getAtt(leaseC), getAtt(leaseF)}, "",
		},
		"WriteFeatures": {[]string{"dynamodb:PutItem"}, []string{getAtt(features)}, ""},
		"WriteResults": {
			[]string{"s3:AbortMultipartUpload", "s3:PutObject"},
			[]string{under(bucket, "/dead-letter/churn/*"), under(bucket, "/dead-letter/factory/*"),
				under(bucket, "/results/churn/*"), under(bucket, "/results/factory/*")}, "",
		},
		"ReadModels": {
			[]string{"s3:GetObject"},
			[]string{under(bucket, "/models/churn.json"), under(bucket, "/models/factory-failure.json")}, "",
		},
		"PublishAlerts":   {[]string{"sns:Publish"}, []string{`{"Ref":"` + topic + `"}`}, ""},
		"EncryptAlerts":   {[]string{"kms:Decrypt", "kms:GenerateDataKey"}, []string{getAtt(key)}, ""},
		"SendDeadLetters": {[]string{"sqs:SendMessage"}, []string{getAtt(dlq)}, ""},
		// The namespace condition scopes the wildcard resource.
		"PutMetrics": {[]string{"cloudwatch:PutMetricData"}, []string{`"*"`}, `{"StringEquals":{"cloudwatch:namespace":["Streamscore"]}}`},
	}
}

// assertStatements: the role's statements are exactly want, one by one,
// and nothing else.
func assertStatements(t *testing.T, s *synthesized, rolePrefix string, want map[string]wantStatement) {
	t.Helper()
	seen := map[string]bool{}
	for _, st := range policyStatements(t, s, rolePrefix) {
		sid, _ := st["Sid"].(string)
		w, ok := want[sid]
		if !ok {
			t.Errorf("unexpected statement %s", compact(st))
			continue
		}
		seen[sid] = true
		if st["Effect"] != "Allow" {
			t.Errorf("%s: effect %v", sid, st["Effect"])
		}
		if a := strs(st["Action"]); !slices.Equal(a, w.actions) {
			t.Errorf("%s: actions %v, want %v", sid, a, w.actions)
		}
		if r := refs(st["Resource"]); !slices.Equal(r, w.resources) {
			t.Errorf("%s: resources\n  %v\nwant\n  %v", sid, r, w.resources)
		}
		if w.condition != "" {
			if c := compact(st["Condition"]); c != w.condition {
				t.Errorf("%s condition %s, want %s: the condition scopes the statement", sid, c, w.condition)
			}
		} else if st["Condition"] != nil {
			t.Errorf("%s: unexpected condition %s", sid, compact(st["Condition"]))
		}
	}
	for sid := range want {
		if !seen[sid] {
			t.Errorf("statement %s missing", sid)
		}
	}
}

// TestWorkerTaskRoleIsExact: the task role's statements, one by one:
// exactly the actions the worker's code calls, on exactly this stack's
// resources. Nothing else may be in the role (no CreateTable, no
// GetQueueUrl or CreateTopic, no wildcard actions, no monitor grants
// without a monitor section), and "*" appears only for PutMetricData,
// which has no resource type, scoped by namespace.
func TestWorkerTaskRoleIsExact(t *testing.T) {
	s := defaults(t)
	assertStatements(t, s, "WorkerTaskRole", defaultWorkerStatements(t, s))
}

// TestTaskRoleTrust: only ECS tasks of this account may assume the role.
func TestTaskRoleTrust(t *testing.T) {
	s := defaults(t)
	r := s.resources("AWS::IAM::Role")[s.idOf(t, "AWS::IAM::Role", "WorkerTaskRole")]
	st := asList(props(r)["AssumeRolePolicyDocument"].(map[string]any)["Statement"])
	if len(st) != 1 {
		t.Fatalf("trust statements: %s", compact(st))
	}
	c := compact(st[0].(map[string]any)["Condition"])
	if !strings.Contains(c, `"aws:SourceAccount":{"Ref":"AWS::AccountId"}`) || !strings.Contains(c, `"aws:SourceArn"`) {
		t.Errorf("trust condition %s: want aws:SourceAccount and aws:SourceArn", c)
	}
}

// TestFanOutGrants: a pipeline with retrieval: fanout gets the fan-out
// calls, on its stream and on its own consumer (named after the
// application) only, and its lag alarm watches the consumer's metric.
func TestFanOutGrants(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "factory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fan := strings.Replace(string(src), "retrieval: polling", "retrieval: fanout\n  consumer_name: factory-reader", 1)
	if fan == string(src) {
		t.Fatal("examples/factory.yaml has no 'retrieval: polling' to change")
	}
	file := filepath.Join(t.TempDir(), "factory-fanout.yaml")
	if err := os.WriteFile(file, []byte(fan), 0o644); err != nil {
		t.Fatal(err)
	}
	s := synth(t, map[string]any{"pipelines": []any{file, "examples/churn.yaml"}})
	streamF := s.idOf(t, "AWS::Kinesis::Stream", "Streamfactorysensors")

	reg := statementBySid(t, s, "WorkerTaskRole", "RegisterFanOutConsumers")
	if a, r := strs(reg["Action"]), refs(reg["Resource"]); !slices.Equal(a, []string{"kinesis:RegisterStreamConsumer"}) || !slices.Equal(r, []string{getAtt(streamF)}) {
		t.Errorf("RegisterFanOutConsumers: %v on %v", a, r)
	}
	read := statementBySid(t, s, "WorkerTaskRole", "ReadFanOut")
	wantARN := `{"Fn::Join":["",[` + getAtt(streamF) + `,"/consumer/factory-reader:*"]]}`
	if a, r := strs(read["Action"]), refs(read["Resource"]); !slices.Equal(a, []string{"kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"}) || !slices.Equal(r, []string{wantARN}) {
		t.Errorf("ReadFanOut: %v on %v, want on %s", a, r, wantARN)
	}
	alarm := props(s.resources("AWS::CloudWatch::Alarm")[s.idOf(t, "AWS::CloudWatch::Alarm", "AlarmIteratorAgefactorysensors")])
	if alarm["MetricName"] != "SubscribeToShardEvent.MillisBehindLatest" || !strings.Contains(compact(alarm["Dimensions"]), `{"Name":"ConsumerName","Value":"factory-reader"}`) {
		t.Errorf("fan-out lag alarm: %s %s", alarm["MetricName"], compact(alarm["Dimensions"]))
	}
	// The polling pipeline is unchanged.
	d := defaults(t)
	for _, st := range policyStatements(t, d, "WorkerTaskRole") {
		if strings.Contains(compact(st["Action"]), "SubscribeToShard") || strings.Contains(compact(st["Action"]), "RegisterStreamConsumer") {
			t.Errorf("polling pipelines got fan-out permissions: %s", compact(st))
		}
	}
}

// TestNoWildcardsInAnyPolicy audits every IAM policy in the template
// (worker, Lambda, execution role, CDK's own helpers), of the default
// stack, of one with a drift monitor and of the whole loop: no wildcard
// actions, "*" as a resource only where AWS has no resource type for the
// action, and s3:ListBucket only scoped by an s3:prefix condition.
func TestNoWildcardsInAnyPolicy(t *testing.T) {
	for name, s := range map[string]*synthesized{"default stack": defaults(t), "monitored stack": monitored(t), "loop stack": loop(t)} {
		t.Run(name, func(t *testing.T) { auditWildcards(t, s) })
	}
}

func auditWildcards(t *testing.T, s *synthesized) {
	// Actions that cannot be scoped to a resource (IAM's service
	// authorization reference lists no resource type for them).
	unscopable := map[string]bool{
		"ecr:GetAuthorizationToken": true, // image pull, execution role
		"cloudwatch:PutMetricData":  true, // scoped by cloudwatch:namespace instead
		// The retraining state machine's logging and tracing (CloudWatch
		// Logs' vended log delivery, X-Ray) and the .sync SageMaker
		// integration's ListTags, as the CDK generates them.
		"logs:CreateLogDelivery": true, "logs:DeleteLogDelivery": true, "logs:DescribeLogGroups": true,
		"logs:DescribeResourcePolicies": true, "logs:GetLogDelivery": true, "logs:ListLogDeliveries": true,
		"logs:PutResourcePolicy": true, "logs:UpdateLogDelivery": true,
		"xray:GetSamplingRules": true, "xray:GetSamplingTargets": true, "xray:PutTelemetryRecords": true, "xray:PutTraceSegments": true,
		"sagemaker:ListTags": true,
	}
	n := 0
	for id, r := range s.resources("AWS::IAM::Policy") {
		for _, st := range asList(props(r)["PolicyDocument"].(map[string]any)["Statement"]) {
			st := st.(map[string]any)
			n++
			actions := strs(st["Action"])
			for _, a := range actions {
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %s in %s", id, a, compact(st))
				}
			}
			if slices.Contains(actions, "s3:ListBucket") && !strings.Contains(compact(st["Condition"]), `"s3:prefix"`) {
				t.Errorf("%s: s3:ListBucket without an s3:prefix condition lists the whole bucket: %s", id, compact(st))
			}
			for _, res := range asList(st["Resource"]) {
				if res != "*" {
					continue
				}
				for _, a := range actions {
					if !unscopable[a] {
						t.Errorf("%s: %s on \"*\" in %s", id, a, compact(st))
					}
				}
				if slices.Contains(actions, "cloudwatch:PutMetricData") && st["Condition"] == nil {
					t.Errorf("%s: PutMetricData on * without a namespace condition", id)
				}
			}
		}
	}
	if n < 15 {
		t.Errorf("audited only %d statements: the policies were not found", n)
	}
	// Inline role policies too (CDK's VPC default-SG provider uses one).
	for id, r := range s.resources("AWS::IAM::Role") {
		for _, pol := range asList(props(r)["Policies"]) {
			for _, st := range asList(pol.(map[string]any)["PolicyDocument"].(map[string]any)["Statement"]) {
				if res := st.(map[string]any)["Resource"]; res == "*" {
					t.Errorf("role %s: inline statement on *: %s", id, compact(st))
				}
			}
		}
	}
}
