package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

func obj(m map[string]any) *map[string]any { return &m }
func arr(v ...any) *[]any                  { return &v }

// TestResourceCounts pins what the default deployment creates: a change
// that adds or drops a stream, table, queue, service or alarm shows here.
func TestResourceCounts(t *testing.T) {
	s := defaults(t)
	for typ, n := range map[string]float64{
		"AWS::Kinesis::Stream":            2, // factory-sensors, app-events
		"AWS::Kinesis::StreamConsumer":    1, // the login Lambda's fan-out consumer
		"AWS::DynamoDB::Table":            3, // 2 lease tables + the feature table (no promotion tables)
		"AWS::S3::Bucket":                 2, // results + its server access logs
		"AWS::SNS::Topic":                 1,
		"AWS::SQS::Queue":                 2, // dead letters + the Lambda's failed batches
		"AWS::ECS::Service":               1,
		"AWS::ECS::TaskDefinition":        1,
		"AWS::Lambda::EventSourceMapping": 1,
		"AWS::CloudWatch::Alarm":          8, // 2 iterator age, dead letters, tasks, 3 Lambda, the lag scaling policy's
		"AWS::EC2::FlowLog":               1, // rejected traffic of the workers' VPC
		// The flywheel's parts need a promotion section, which the
		// examples do not have.
		"AWS::StepFunctions::StateMachine": 0,
		"AWS::Events::Rule":                0,
		"AWS::Glue::Database":              1,
		"AWS::Glue::Table":                 2, // factory_failure, churn_churn
		"AWS::Athena::WorkGroup":           1,
		"AWS::KMS::Key":                    1, // the alert topic's key (streams use aws/kinesis)
	} {
		check(t, typ, func() { s.template.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
	}
	// The only functions are the login Lambda and CDK's own provider that
	// strips the VPC's default security group.
	fns := s.resources("AWS::Lambda::Function")
	if len(fns) != 2 {
		t.Errorf("Lambda functions: %d, want 2 (login + default-SG cleanup)", len(fns))
	}
}

// TestStreams: shard counts come from the pipelines' configurations,
// encryption is on (AWS managed key by default), retention from the
// windows: factory's 5-minute window needs less than the 24 h floor;
// churn's day (24 h + 1 m out-of-orderness + 1 h lateness + 6 h margin =
// 31 h 1 m) needs 32 h.
func TestStreams(t *testing.T) {
	s := defaults(t)
	for name, want := range map[string][2]float64{"factory-sensors": {4, 24}, "app-events": {2, 32}} {
		check(t, name, func() {
			s.template.HasResourceProperties(jsii.String("AWS::Kinesis::Stream"), obj(map[string]any{
				"Name":                 name,
				"ShardCount":           want[0],
				"RetentionPeriodHours": want[1],
				"StreamModeDetails":    map[string]any{"StreamMode": "PROVISIONED"},
				"StreamEncryption":     map[string]any{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
			}))
		})
	}
}

// TestStreamRetentionFromWindows: a stream's retention covers its longest
// window (size or session gap + out-of-orderness + allowed lateness) plus
// the 6 h margin, rounded up to hours; the streamRetentionHours setting is
// a floor, and Kinesis's 8,760 h a ceiling. Two pipelines over one stream:
// the longer window wins.
func TestStreamRetentionFromWindows(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	a := write("a.yaml", `pipeline: a
streams: [{name: week, shards: 1}, {name: short, shards: 1}, {name: huge, shards: 1}, {name: app-events, shards: 1}]
windows:
  - {name: w7d, stream: week, kind: tumbling, size: 168h, out_of_orderness: 30m, allowed_lateness: 2h}
  - {name: s, stream: short, kind: session, gap: 30m, allowed_lateness: 10m}
  - {name: y, stream: huge, kind: tumbling, size: 8760h}
  - {name: login, stream: app-events, kind: tumbling, size: 1h}
`)
	b := write("b.yaml", `pipeline: b
streams: [{name: week, shards: 1}]
windows:
  - {name: d, stream: week, kind: hopping, size: 24h, slide: 1h}
`)
	s := synth(t, map[string]any{"pipelines": []any{a, b}, "streamRetentionHours": 48})
	for name, want := range map[string]float64{
		"week":  177, // 168 h + 30 m + 2 h + 6 h = 176 h 30 m
		"short": 48,  // 40 m + 6 h, under the 48 h floor
		"huge":  8760,
	} {
		check(t, name, func() {
			s.template.HasResourceProperties(jsii.String("AWS::Kinesis::Stream"), obj(map[string]any{
				"Name": name, "RetentionPeriodHours": want,
			}))
		})
	}
	// The Lambda reads the one window over its stream.
	fn := props(s.resources("AWS::Lambda::Function")[s.idOf(t, "AWS::Lambda::Function", "Login")])
	if got := fn["Environment"].(map[string]any)["Variables"].(map[string]any)[EnvFeatureSet]; got != "a#login" {
		t.Errorf("%s = %v, want a#login", EnvFeatureSet, got)
	}
}

// TestStreamsOnDemandWithCustomerKey: the two context switches for
// streams. On-demand streams carry no shard count; a customer managed key
// is rotated and both readers (worker, Lambda) may decrypt with it.
func TestStreamsOnDemandWithCustomerKey(t *testing.T) {
	s := synth(t, map[string]any{"streamMode": "on-demand", "streamEncryption": "kms"})
	streams := s.resources("AWS::Kinesis::Stream")
	if len(streams) != 2 {
		t.Fatalf("streams: %d", len(streams))
	}
	keyID := s.idOf(t, "AWS::KMS::Key", "StreamKey")
	for id, r := range streams {
		p := props(r)
		if _, ok := p["ShardCount"]; ok {
			t.Errorf("%s: on-demand stream has ShardCount %v", id, p["ShardCount"])
		}
		if got := compact(p["StreamModeDetails"]); got != `{"StreamMode":"ON_DEMAND"}` {
			t.Errorf("%s: StreamModeDetails %s", id, got)
		}
		if got, want := compact(p["StreamEncryption"]), `{"EncryptionType":"KMS","KeyId":{"Fn::GetAtt":["`+keyID+`","Arn"]}}`; got != want {
			t.Errorf("%s: StreamEncryption %s, want %s", id, got, want)
		}
	}
	if rot := props(s.resources("AWS::KMS::Key")[keyID])["EnableKeyRotation"]; rot != true {
		t.Errorf("stream key rotation: %v", rot)
	}
	want := `{"Fn::GetAtt":["` + keyID + `","Arn"]}`
	for _, role := range []string{"WorkerTaskRole", "LoginRole"} {
		st := statementBySid(t, s, role, "DecryptStream")
		if got := compact(st["Resource"]); got != want || compact(st["Action"]) != `"kms:Decrypt"` {
			t.Errorf("%s: decrypt statement %s, want kms:Decrypt on %s", role, compact(st), want)
		}
	}
}

// TestFeatureTable: the online feature table as the sink writes it
// (partition key entity, sort key feature_set = "<pipeline>#<window>",
// TTL attribute ttl; sinks.FeatureLayout), on demand, recoverable,
// encrypted.
func TestFeatureTable(t *testing.T) {
	s := defaults(t)
	check(t, "feature table", func() {
		s.template.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), obj(map[string]any{
			"KeySchema": []any{
				map[string]any{"AttributeName": "entity", "KeyType": "HASH"},
				map[string]any{"AttributeName": "feature_set", "KeyType": "RANGE"},
			},
			"AttributeDefinitions": []any{
				map[string]any{"AttributeName": "entity", "AttributeType": "S"},
				map[string]any{"AttributeName": "feature_set", "AttributeType": "S"},
			},
			"BillingMode":                      "PAY_PER_REQUEST",
			"TimeToLiveSpecification":          map[string]any{"AttributeName": "ttl", "Enabled": true},
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			"SSESpecification":                 map[string]any{"SSEEnabled": true},
			"DeletionProtectionEnabled":        true,
		}))
	})
	// Retained when the stack goes: it holds every entity's latest score.
	id := s.idOf(t, "AWS::DynamoDB::Table", "FeatureTable")
	if dp := s.resources("AWS::DynamoDB::Table")[id]["DeletionPolicy"]; dp != "Retain" {
		t.Errorf("feature table DeletionPolicy %v, want Retain", dp)
	}
}

// TestLeaseTables: one per pipeline with the key schema the consumer
// creates itself (leaseKey), so the worker finds them ACTIVE and never
// needs CreateTable; recoverable and retained (they hold the checkpoints).
func TestLeaseTables(t *testing.T) {
	s := defaults(t)
	for _, p := range []string{"factory", "churn"} {
		id := s.idOf(t, "AWS::DynamoDB::Table", "Leases"+p)
		r := s.resources("AWS::DynamoDB::Table")[id]
		pr := props(r)
		if got := compact(pr["KeySchema"]); got != `[{"AttributeName":"leaseKey","KeyType":"HASH"}]` {
			t.Errorf("%s KeySchema %s", id, got)
		}
		if pr["BillingMode"] != "PAY_PER_REQUEST" || compact(pr["PointInTimeRecoverySpecification"]) != `{"PointInTimeRecoveryEnabled":true}` {
			t.Errorf("%s: billing %v, PITR %v", id, pr["BillingMode"], pr["PointInTimeRecoverySpecification"])
		}
		if r["DeletionPolicy"] != "Retain" {
			t.Errorf("%s DeletionPolicy %v", id, r["DeletionPolicy"])
		}
	}
}

// TestRetainDataFalse: a throwaway stack (retainData=false) deletes its
// data with it; the default keeps streams, tables, bucket and logs.
func TestRetainDataFalse(t *testing.T) {
	s := synth(t, map[string]any{"retainData": false})
	for _, typ := range []string{"AWS::Kinesis::Stream", "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Logs::LogGroup"} {
		for id, r := range s.resources(typ) {
			if r["DeletionPolicy"] != "Delete" {
				t.Errorf("%s %s: DeletionPolicy %v, want Delete", typ, id, r["DeletionPolicy"])
			}
		}
	}
	for id, r := range s.resources("AWS::DynamoDB::Table") {
		if props(r)["DeletionProtectionEnabled"] != false {
			t.Errorf("%s: deletion protection %v", id, props(r)["DeletionProtectionEnabled"])
		}
	}
	d := defaults(t)
	for _, typ := range []string{"AWS::Kinesis::Stream", "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Logs::LogGroup"} {
		for id, r := range d.resources(typ) {
			if r["DeletionPolicy"] != "Retain" {
				t.Errorf("default %s %s: DeletionPolicy %v, want Retain", typ, id, r["DeletionPolicy"])
			}
		}
	}
}

// TestResultsBucket: private, encrypted, TLS only (a bucket policy that
// denies every request without aws:SecureTransport), and lifecycle rules
// per prefix: abandoned multipart uploads aborted, results tiered then
// expired, large dead letters kept longer than the queue keeps the
// messages pointing at them.
func TestResultsBucket(t *testing.T) {
	s := defaults(t)
	check(t, "bucket", func() {
		s.template.HasResourceProperties(jsii.String("AWS::S3::Bucket"), obj(map[string]any{
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
				map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
			}},
			"OwnershipControls": map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}},
		}))
	})
	bucketID := s.idOf(t, "AWS::S3::Bucket", "Results")
	check(t, "bucket policy", func() {
		s.template.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), obj(map[string]any{
			"Bucket": map[string]any{"Ref": bucketID},
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(arr(assertions.Match_ObjectLike(obj(map[string]any{
				"Effect":    "Deny",
				"Action":    "s3:*",
				"Principal": map[string]any{"AWS": "*"},
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
			}))))},
		}))
	})
	rules := map[string]map[string]any{}
	for _, r := range asList(props(s.resources("AWS::S3::Bucket")[bucketID])["LifecycleConfiguration"].(map[string]any)["Rules"]) {
		rule := r.(map[string]any)
		rules[rule["Id"].(string)] = rule
	}
	if got := compact(rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"]); got != `{"DaysAfterInitiation":7}` {
		t.Errorf("abort rule: %s", got)
	}
	if r := rules["results"]; r["Prefix"] != ResultsPrefix || r["ExpirationInDays"] != 400.0 ||
		compact(r["Transitions"]) != `[{"StorageClass":"INTELLIGENT_TIERING","TransitionInDays":30}]` {
		t.Errorf("results rule: %s", compact(r))
	}
	if r := rules["dead-letters"]; r["Prefix"] != DeadLetterPrefix || r["ExpirationInDays"].(float64) <= 14 {
		t.Errorf("dead-letter rule: %s (objects must outlive the queue's 14 days)", compact(r))
	}
	for id, r := range rules {
		if p, _ := r["Prefix"].(string); strings.HasPrefix(p, ModelsPrefix) || (p == "" && r["ExpirationInDays"] != nil) {
			t.Errorf("rule %s would expire models: %s", id, compact(r))
		}
	}
}

// TestQueues: both queues (dead letters, the Lambda's failed batches) are
// encrypted, keep messages the maximum 14 days and refuse plain HTTP.
func TestQueues(t *testing.T) {
	s := defaults(t)
	for id, r := range s.resources("AWS::SQS::Queue") {
		p := props(r)
		if p["SqsManagedSseEnabled"] != true || p["MessageRetentionPeriod"] != 1209600.0 {
			t.Errorf("%s: SSE %v, retention %v; want true, 1209600", id, p["SqsManagedSseEnabled"], p["MessageRetentionPeriod"])
		}
		check(t, id+" policy", func() {
			s.template.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), obj(map[string]any{
				"Queues": []any{map[string]any{"Ref": id}},
				"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(arr(assertions.Match_ObjectLike(obj(map[string]any{
					"Effect":    "Deny",
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				}))))},
			}))
		})
	}
}

// TestAlertTopic: encrypted with a rotated customer key whose policy lets
// CloudWatch alarms publish, TLS only; the email subscription appears only
// when alertEmail is set.
func TestAlertTopic(t *testing.T) {
	s := defaults(t)
	keyID := s.idOf(t, "AWS::KMS::Key", "AlertsKey")
	topicID := s.idOf(t, "AWS::SNS::Topic", "Alerts")
	check(t, "topic", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SNS::Topic"), obj(map[string]any{
			"KmsMasterKeyId": map[string]any{"Fn::GetAtt": []any{keyID, "Arn"}},
		}))
	})
	check(t, "topic policy", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), obj(map[string]any{
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(arr(assertions.Match_ObjectLike(obj(map[string]any{
				"Effect":    "Deny",
				"Resource":  map[string]any{"Ref": topicID},
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
			}))))},
		}))
	})
	check(t, "key", func() {
		s.template.HasResourceProperties(jsii.String("AWS::KMS::Key"), obj(map[string]any{
			"EnableKeyRotation": true,
			"KeyPolicy": map[string]any{"Statement": assertions.Match_ArrayWith(arr(assertions.Match_ObjectLike(obj(map[string]any{
				"Principal": map[string]any{"Service": "cloudwatch.amazonaws.com"},
				"Action":    []any{"kms:Decrypt", "kms:GenerateDataKey*"},
			}))))},
		}))
	})
	check(t, "no subscription by default", func() {
		s.template.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(0))
	})
	e := synth(t, map[string]any{"alertEmail": "oncall@example.com"})
	check(t, "email subscription", func() {
		e.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), obj(map[string]any{
			"Protocol": "email", "Endpoint": "oncall@example.com",
		}))
	})
}

// TestOutputs: the names operators and producers need.
func TestOutputs(t *testing.T) {
	s := defaults(t)
	outs := s.json["Outputs"].(map[string]any)
	for _, id := range []string{"OutputResultsBucket", "OutputAlertTopicArn", "OutputFeatureTableName", "OutputDeadLetterQueueUrl",
		"OutputLeaseTableFactory", "OutputLeaseTableChurn", "OutputStreamFactorySensors", "OutputStreamAppEvents",
		"OutputWorkerCluster", "OutputWorkerService", "OutputLoginFunction"} {
		if _, ok := outs[id]; !ok {
			t.Errorf("output %s missing (have %v)", id, sortedKeys(outs))
		}
	}
	if got := compact(outs["OutputStreamFactorySensors"].(map[string]any)["Value"]); !strings.Contains(got, s.idOf(t, "AWS::Kinesis::Stream", "Streamfactorysensors")) {
		t.Errorf("factory-sensors output %s", got)
	}
}
