package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// asl renders the retraining state machine's definition: the template
// joins JSON text with references, which become ${LogicalId} here (and
// ${Pseudo} for pseudo parameters, ${Map.Key} for a mapping lookup).
func asl(t *testing.T, s *synthesized) map[string]any {
	t.Helper()
	sm := props(s.resources("AWS::StepFunctions::StateMachine")[s.idOf(t, "AWS::StepFunctions::StateMachine", "Retraining")])
	join, ok := sm["DefinitionString"].(map[string]any)["Fn::Join"].([]any)
	if !ok {
		t.Fatalf("definition %s", compact(sm["DefinitionString"]))
	}
	var b strings.Builder
	for _, part := range join[1].([]any) {
		b.WriteString(renderToken(part))
	}
	var def map[string]any
	if err := json.Unmarshal([]byte(b.String()), &def); err != nil {
		t.Fatalf("definition is not JSON: %v\n%s", err, b.String())
	}
	return def
}

func renderToken(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if r, ok := v["Ref"].(string); ok {
			return "${" + strings.TrimPrefix(r, "AWS::") + "}"
		}
		if g, ok := v["Fn::GetAtt"].([]any); ok {
			return fmt.Sprintf("${%s.%s}", g[0], g[1])
		}
		if m, ok := v["Fn::FindInMap"].([]any); ok {
			return fmt.Sprintf("${%s.%s}", m[0], m[2])
		}
		if j, ok := v["Fn::Join"].([]any); ok {
			var b strings.Builder
			for _, p := range j[1].([]any) {
				b.WriteString(renderToken(p))
			}
			return b.String()
		}
	}
	return compact(v)
}

func state(t *testing.T, def map[string]any, name string) map[string]any {
	t.Helper()
	st, ok := def["States"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("no state %s in %s", name, compact(def))
	}
	return st
}

// TestRetrainingRule: the rule on the default bus matches exactly the
// documented event and starts the state machine, retrying for a day and
// then keeping the event in a dead-letter queue.
func TestRetrainingRule(t *testing.T) {
	s := loop(t)
	r := props(s.resources("AWS::Events::Rule")[s.idOf(t, "AWS::Events::Rule", "RetrainingRequested")])
	if got := compact(r["EventPattern"]); got != `{"detail-type":["Retraining Requested"],"source":["streamscore"]}` {
		t.Errorf("event pattern %s", got)
	}
	if r["EventBusName"] != nil {
		t.Errorf("bus %v, want the default", r["EventBusName"])
	}
	targets := asList(r["Targets"])
	sm := s.idOf(t, "AWS::StepFunctions::StateMachine", "Retraining")
	if len(targets) != 1 || compact(targets[0].(map[string]any)["Arn"]) != `{"Ref":"`+sm+`"}` {
		t.Fatalf("targets %s, want the state machine", compact(targets))
	}
	dlq := compact(targets[0].(map[string]any)["DeadLetterConfig"])
	if dlq != `{"Arn":`+getAtt(s.idOf(t, "AWS::SQS::Queue", "RetrainingDeadLetters"))+`}` {
		t.Errorf("target dead-letter config %s", dlq)
	}
	assertStatements(t, s, "RetrainingEventsRole", map[string]wantStatement{
		"": {[]string{"states:StartExecution"}, []string{`{"Ref":"` + sm + `"}`}, ""},
	})
}

// TestRetrainingStateMachine: the definition checks the event's schema
// version and fields, routes the two promoted scorers to their tables and
// model prefixes (refusing others and data outside their pipeline's
// prefixes), takes each request id once, trains with the XGBoost 1.7-1
// image for the region in script mode under network isolation with
// createTrainingJob.sync, and registers the model with one UpdateItem of
// the scorer's challenger item; logged in full and traced.
func TestRetrainingStateMachine(t *testing.T) {
	s := loop(t)
	def := asl(t, s)
	bucket := s.idOf(t, "AWS::S3::Bucket", "Results")
	if def["StartAt"] != "SchemaVersion" {
		t.Errorf("starts at %v", def["StartAt"])
	}
	version := state(t, def, "SchemaVersion")
	if got := compact(version["Choices"]); got != `[{"Next":"UnsupportedSchema","Not":{"IsNumeric":true,"Variable":"$.detail.schema_version"}},{"Next":"CompleteEvent","NumericEquals":1,"Variable":"$.detail.schema_version"}]` ||
		version["Default"] != "UnsupportedSchema" {
		t.Errorf("SchemaVersion choices %s, default %v", got, version["Default"])
	}
	complete := compact(state(t, def, "CompleteEvent"))
	for _, f := range []string{"request_id", "pipeline", "scorer", "data.results_prefix", "data.ground_truth_prefix", "data.from", "data.to"} {
		if !strings.Contains(complete, `{"IsString":true,"Variable":"$.detail.`+f+`"}`) {
			t.Errorf("CompleteEvent does not require detail.%s: %s", f, complete)
		}
	}
	route := state(t, def, "WhichScorer")
	if route["Default"] != "UnknownScorer" || state(t, def, "UnknownScorer")["Type"] != "Fail" {
		t.Errorf("WhichScorer default %v", route["Default"])
	}
	targets := map[string]string{}
	for _, c := range asList(route["Choices"]) {
		c := c.(map[string]any)
		targets[c["Next"].(string)] = compact(c["And"])
	}
	for _, sc := range []struct{ name, table string }{{"failure", "factory-promotions"}, {"failure_manual", "factory-manual-decisions"}} {
		id := "Target-factory-" + sc.name
		want := `[{"StringEquals":"factory","Variable":"$.detail.pipeline"},{"StringEquals":"` + sc.name + `","Variable":"$.detail.scorer"},` +
			`{"StringMatches":"s3://${` + bucket + `}/results/factory/*","Variable":"$.detail.data.results_prefix"},` +
			`{"StringMatches":"s3://${` + bucket + `}/groundtruth/factory/*","Variable":"$.detail.data.ground_truth_prefix"}]`
		if targets[id] != want {
			t.Errorf("choice for %s:\n %s\nwant\n %s", id, targets[id], want)
		}
		pass := state(t, def, id)
		wantResult := `{"code":"s3://${` + bucket + `}/retraining/sourcedir.tar.gz","output":"s3://${` + bucket + `}/models/retrained/factory/` + sc.name + `/","table":"` + sc.table + `"}`
		if got := compact(pass["Result"]); got != wantResult || pass["ResultPath"] != "$.target" || pass["Next"] != "OncePerRequest" {
			t.Errorf("%s: result %s at %v, next %v; want %s at $.target, next OncePerRequest", id, got, pass["ResultPath"], pass["Next"], wantResult)
		}
	}
	if len(targets) != 2 {
		t.Errorf("choices %v, want the two promoted scorers", targets)
	}

	once := state(t, def, "OncePerRequest")
	requests := s.idOf(t, "AWS::DynamoDB::Table", "RetrainingRequests")
	if once["Resource"] != "arn:${Partition}:states:::dynamodb:putItem" || once["Next"] != "Train" ||
		compact(once["Parameters"]) != `{"ConditionExpression":"attribute_not_exists(request_id)","Item":{"at":{"S.$":"$$.State.EnteredTime"},"execution":{"S.$":"$$.Execution.Id"},"request_id":{"S.$":"$.detail.request_id"}},"TableName":"${`+requests+`}"}` ||
		compact(once["Catch"]) != `[{"ErrorEquals":["DynamoDB.ConditionalCheckFailedException"],"Next":"RepeatedRequest","ResultPath":"$.repeated"}]` {
		t.Errorf("OncePerRequest %s", compact(once))
	}
	if state(t, def, "RepeatedRequest")["Type"] != "Succeed" {
		t.Errorf("a repeated request does not end the execution")
	}
	train := state(t, def, "Train")
	if train["Resource"] != "arn:${Partition}:states:::sagemaker:createTrainingJob.sync" || train["Next"] != "RegisterChallenger" {
		t.Errorf("Train: resource %v, next %v", train["Resource"], train["Next"])
	}
	p := train["Parameters"].(map[string]any)
	image := "${XGBoostRegistry.account}.dkr.ecr.${Region}.${URLSuffix}/sagemaker-xgboost:1.7-1"
	for key, want := range map[string]string{
		"TrainingJobName.$":      `"States.Format('streamscore-{}', $.detail.request_id)"`,
		"AlgorithmSpecification": `{"TrainingImage":"` + image + `","TrainingInputMode":"File"}`,
		"RoleArn":                `"${` + s.idOf(t, "AWS::IAM::Role", "TrainingRole") + `.Arn}"`,
		"EnableNetworkIsolation": `true`,
		"OutputDataConfig":       `{"S3OutputPath.$":"$.target.output"}`,
		"HyperParameters":        `{"from.$":"$.detail.data.from","pipeline.$":"$.detail.pipeline","sagemaker_program":"train.py","sagemaker_submit_directory":"/opt/ml/input/data/code/sourcedir.tar.gz","scorer.$":"$.detail.scorer","to.$":"$.detail.data.to"}`,
		"StoppingCondition":      `{"MaxRuntimeInSeconds":7200}`,
		"ResourceConfig":         `{"InstanceCount":1,"InstanceType":"ml.m5.xlarge","VolumeSizeInGB":30}`,
	} {
		if got := compact(p[key]); got != want {
			t.Errorf("Train %s: %s, want %s", key, got, want)
		}
	}
	channels := map[string]string{}
	for _, c := range asList(p["InputDataConfig"]) {
		c := c.(map[string]any)
		channels[c["ChannelName"].(string)] = compact(c["DataSource"].(map[string]any)["S3DataSource"].(map[string]any)["S3Uri.$"])
	}
	if want := map[string]string{"results": `"$.detail.data.results_prefix"`, "groundtruth": `"$.detail.data.ground_truth_prefix"`, "code": `"$.target.code"`}; compact(channels) != compact(want) {
		t.Errorf("channels %v, want %v", channels, want)
	}
	if got := compact(train["ResultSelector"]); got != `{"job.$":"$.TrainingJobName","model.$":"$.ModelArtifacts.S3ModelArtifacts"}` || train["ResultPath"] != "$.training" {
		t.Errorf("Train result %s at %v", got, train["ResultPath"])
	}

	reg := state(t, def, "RegisterChallenger")
	if reg["Resource"] != "arn:${Partition}:states:::aws-sdk:dynamodb:updateItem" || reg["End"] != true || reg["ResultPath"] != nil {
		t.Errorf("RegisterChallenger: resource %v, end %v, result path %v", reg["Resource"], reg["End"], reg["ResultPath"])
	}
	want := `{"ExpressionAttributeValues":{":e":{"S.$":"$.id"},":m":{"M":{"path":{"S.$":"$.training.model"},"training_job":{"S.$":"$.training.job"}}},":one":{"N":"1"},":r":{"S.$":"$.detail.request_id"},":t":{"S.$":"$$.State.EnteredTime"}},` +
		`"Key":{"pipeline":{"S.$":"$.detail.pipeline"},"scorer":{"S.$":"States.Format('{}#challenger', $.detail.scorer)"}},` +
		`"TableName.$":"$.target.table","UpdateExpression":"SET challenger = :m, request_id = :r, event_id = :e, registered_at = :t ADD registrations :one"}`
	if got := compact(reg["Parameters"]); got != want {
		t.Errorf("RegisterChallenger parameters\n %s\nwant\n %s", got, want)
	}

	sm := props(s.resources("AWS::StepFunctions::StateMachine")[s.idOf(t, "AWS::StepFunctions::StateMachine", "Retraining")])
	if compact(sm["TracingConfiguration"]) != `{"Enabled":true}` || !strings.Contains(compact(sm["LoggingConfiguration"]), `"IncludeExecutionData":true,"Level":"ALL"`) {
		t.Errorf("tracing %s, logging %s", compact(sm["TracingConfiguration"]), compact(sm["LoggingConfiguration"]))
	}
	if def["TimeoutSeconds"] != 10800.0 {
		t.Errorf("timeout %v, want the job's 2 h and an hour", def["TimeoutSeconds"])
	}
}

// TestXGBoostImageRegistry: the region mapping holds SageMaker's
// sagemaker-xgboost accounts (spot checks against SageMaker's documented
// paths) and the image URI is built from it for the stack's region.
func TestXGBoostImageRegistry(t *testing.T) {
	s := loop(t)
	m, _ := s.json["Mappings"].(map[string]any)["XGBoostRegistry"].(map[string]any)
	for region, acct := range map[string]string{"us-east-1": "683313688378", "us-west-2": "246618743249", "eu-west-1": "141502667606", "ap-northeast-1": "354813040037", "cn-north-1": "450853457545"} {
		if got := compact(m[region]); got != `{"account":"`+acct+`"}` {
			t.Errorf("%s: %s, want account %s", region, got, acct)
		}
	}
	if len(m) != len(xgboostRegistries) {
		t.Errorf("mapping has %d regions, the table %d", len(m), len(xgboostRegistries))
	}
}

// TestTrainingRoleIsExact: SageMaker's role reads exactly the retrained
// pipeline's results and ground truth and the script archive (listing
// only those), writes only under the scorers' models/retrained/
// prefixes, and logs and publishes metrics only where SageMaker's
// training jobs do; no ECR (SageMaker pulls its built-in images itself);
// only SageMaker training jobs of this account may assume it. The CDK
// task's own S3 grant on "*" is kept out.
func TestTrainingRoleIsExact(t *testing.T) {
	s := loop(t)
	bucket := s.idOf(t, "AWS::S3::Bucket", "Results")
	arn := func(service, resource string) string {
		return `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":` + service + `:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":` + resource + `"]]}`
	}
	assertStatements(t, s, "TrainingRole", map[string]wantStatement{
		"ReadTrainingData": {[]string{"s3:GetObject"}, sortedCopy(under(bucket, "/groundtruth/factory/*"), under(bucket, "/results/factory/*"),
			under(bucket, "/retraining/sourcedir.tar.gz")), ""},
		"ListTrainingData": {[]string{"s3:ListBucket"}, []string{getAtt(bucket)},
			`{"StringLike":{"s3:prefix":["results/factory/*","groundtruth/factory/*","retraining/sourcedir.tar.gz"]}}`},
		"WriteModels": {[]string{"s3:PutObject"}, sortedCopy(under(bucket, "/models/retrained/factory/failure/*"), under(bucket, "/models/retrained/factory/failure_manual/*")), ""},
		"WriteLogs": {[]string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"},
			sortedCopy(arn("logs", "log-group:/aws/sagemaker/TrainingJobs"), arn("logs", "log-group:/aws/sagemaker/TrainingJobs:log-stream:*")), ""},
		"PutTrainingMetrics": {[]string{"cloudwatch:PutMetricData"}, []string{`"*"`}, `{"StringEquals":{"cloudwatch:namespace":"/aws/sagemaker/TrainingJobs"}}`},
	})
	r := s.resources("AWS::IAM::Role")[s.idOf(t, "AWS::IAM::Role", "TrainingRole")]
	trust := compact(props(r)["AssumeRolePolicyDocument"])
	for _, want := range []string{`"Service":"sagemaker.amazonaws.com"`, `"aws:SourceAccount":{"Ref":"AWS::AccountId"}`, `:training-job/*"]]}`} {
		if !strings.Contains(trust, want) {
			t.Errorf("trust policy %s lacks %s", trust, want)
		}
	}
}

// TestRetrainingStateMachineRole: the state machine may run and watch
// training jobs, pass exactly the training role and only to SageMaker,
// manage the .sync integration's own rule, PutItem the request ids and
// UpdateItem the two decision tables; nothing on S3 or any other table.
func TestRetrainingStateMachineRole(t *testing.T) {
	s := loop(t)
	st := policyStatements(t, s, "RetrainingRole")
	all := compact(st)
	for _, want := range []string{
		`{"Action":"iam:PassRole","Condition":{"StringEquals":{"iam:PassedToService":"sagemaker.amazonaws.com"}},"Effect":"Allow","Resource":` + getAtt(s.idOf(t, "AWS::IAM::Role", "TrainingRole")) + `}`,
		`{"Action":"dynamodb:UpdateItem","Effect":"Allow","Resource":[` + getAtt(s.idOf(t, "AWS::DynamoDB::Table", "Promotionsfactorymanual")) + `,` + getAtt(s.idOf(t, "AWS::DynamoDB::Table", "Promotionsfactorypromotions")) + `]}`,
		`:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"]]}`,
		`{"Action":"dynamodb:PutItem","Effect":"Allow","Resource":{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":dynamodb:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":table/",{"Ref":"` + s.idOf(t, "AWS::DynamoDB::Table", "RetrainingRequests") + `"}]]}}`,
		`"sagemaker:CreateTrainingJob","sagemaker:DescribeTrainingJob","sagemaker:StopTrainingJob"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("state machine role lacks %s:\n%s", want, all)
		}
	}
	if strings.Count(all, "dynamodb:PutItem") != 1 {
		t.Errorf("state machine role: PutItem beyond the requests table:\n%s", all)
	}
	for _, bad := range []string{`"s3:`, `dynamodb:GetItem`, `dynamodb:DeleteItem`, `"*:`} {
		if strings.Contains(all, bad) {
			t.Errorf("state machine role has %s:\n%s", bad, all)
		}
	}
}

// TestRetrainingFailedAlarm: a failed or timed-out retraining reaches the
// alert topic.
func TestRetrainingFailedAlarm(t *testing.T) {
	s := loop(t)
	a := props(s.resources("AWS::CloudWatch::Alarm")[s.idOf(t, "AWS::CloudWatch::Alarm", "AlarmRetrainingFailed")])
	got := compact(a["Metrics"])
	for _, want := range []string{`"Expression":"FILL(failed, 0) + FILL(timedOut, 0)"`, `"MetricName":"ExecutionsFailed"`, `"MetricName":"ExecutionsTimedOut"`} {
		if !strings.Contains(got, want) {
			t.Errorf("alarm metrics %s lack %s", got, want)
		}
	}
	if compact(a["AlarmActions"]) != `[{"Ref":"`+s.idOf(t, "AWS::SNS::Topic", "Alerts")+`"}]` || a["Threshold"] != 0.0 {
		t.Errorf("alarm actions %s threshold %v", compact(a["AlarmActions"]), a["Threshold"])
	}
}

// TestRetrainingOff: retraining=false keeps the decision tables and the
// workers' grants on them, and leaves out the rule, the state machine,
// the training role and the workers' read of retrained models.
func TestRetrainingOff(t *testing.T) {
	s := synth(t, map[string]any{"pipelines": []any{loopFixture, "examples/churn.yaml"}, "retraining": false})
	for typ, n := range map[string]int{"AWS::StepFunctions::StateMachine": 0, "AWS::Events::Rule": 0, "AWS::DynamoDB::Table": 5, "AWS::SQS::Queue": 2} {
		if got := len(s.resources(typ)); got != n {
			t.Errorf("%s: %d, want %d", typ, got, n)
		}
	}
	for id := range s.resources("AWS::IAM::Role") {
		if strings.HasPrefix(id, "TrainingRole") {
			t.Errorf("training role %s without retraining", id)
		}
	}
	for _, st := range policyStatements(t, s, "WorkerTaskRole") {
		if st["Sid"] == "ReadRetrainedModels" {
			t.Errorf("workers may read retrained models without retraining: %s", compact(st))
		}
	}
	statementBySid(t, s, "WorkerTaskRole", "WritePromotions")
}

// TestRetrainingReadsTheEventSchema: every detail field the state machine
// reads ($.detail.* anywhere in its definition) is a field of the
// Retraining Requested detail in the root module's
// retrain/schema/events-v1.schema.json, and the schema's version is the
// one the definition accepts.
func TestRetrainingReadsTheEventSchema(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "retrain", "schema", "events-v1.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs map[string]map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	// resolve walks a dotted path through properties and $refs.
	var resolve func(def map[string]any, path []string) (map[string]any, bool)
	resolve = func(def map[string]any, path []string) (map[string]any, bool) {
		if ref, ok := def["$ref"].(string); ok {
			def = schema.Defs[strings.TrimPrefix(ref, "#/$defs/")]
		}
		if len(path) == 0 {
			return def, def != nil
		}
		props, _ := def["properties"].(map[string]any)
		next, ok := props[path[0]].(map[string]any)
		if !ok {
			return nil, false
		}
		return resolve(next, path[1:])
	}
	detail := schema.Defs["RetrainingRequested"]
	if v, ok := resolve(detail, []string{"schema_version"}); !ok || v["const"] != float64(retrainingSchemaVersion) {
		t.Errorf("schema_version in the schema: %v, the definition accepts %d", v, retrainingSchemaVersion)
	}
	text, _ := json.Marshal(asl(t, loop(t)))
	paths := regexp.MustCompile(`\$\.detail\.[a-z_.]+[a-z_]`).FindAllString(string(text), -1)
	if len(paths) < 10 {
		t.Fatalf("found %d detail paths in the definition: %v", len(paths), paths)
	}
	for _, p := range paths {
		if _, ok := resolve(detail, strings.Split(strings.TrimPrefix(p, "$.detail."), ".")); !ok {
			t.Errorf("the definition reads %s, which the Retraining Requested detail does not have", p)
		}
	}
}
