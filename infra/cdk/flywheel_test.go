package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestLoopWorkerGrants: with labels, quality monitors and promotion, the
// worker's role is the default one plus exactly: the labels stream among
// the streams it reads (through its fan-out consumer), PutObject of the
// ground truth under groundtruth/factory/, the quality monitor's reads of
// the judged scorers' results and the ground truth and its own files
// (ListBucket only on those prefixes), GetItem on both decision tables,
// PutItem only on the table of the scorer with auto, GetObject of the
// pipeline's retrained models, PutObject and GetObject of the kept copies
// an automatic promotion makes (models/promoted/), and (monitor.retrain)
// PutEvents on the default bus with source streamscore only.
func TestLoopWorkerGrants(t *testing.T) {
	s := loop(t)
	want := defaultWorkerStatements(t, s)
	bucket := s.idOf(t, "AWS::S3::Bucket", "Results")
	sensors := s.idOf(t, "AWS::Kinesis::Stream", "Streamfactorysensors")
	labels := s.idOf(t, "AWS::Kinesis::Stream", "Streamfactorymaintenance")
	events := s.idOf(t, "AWS::Kinesis::Stream", "Streamappevents")
	auto := s.idOf(t, "AWS::DynamoDB::Table", "Promotionsfactorypromotions")
	manual := s.idOf(t, "AWS::DynamoDB::Table", "Promotionsfactorymanual")
	consumer := func(stream string) string {
		return `{"Fn::Join":["",[` + getAtt(stream) + `,"/consumer/factory-reader:*"]]}`
	}
	w := want["ReadStreams"]
	w.resources = sortedCopy(getAtt(events), getAtt(labels), getAtt(sensors))
	want["ReadStreams"] = w
	want["RegisterFanOutConsumers"] = wantStatement{[]string{"kinesis:RegisterStreamConsumer"}, sortedCopy(getAtt(labels), getAtt(sensors)), ""}
	want["ReadFanOut"] = wantStatement{[]string{"kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"}, sortedCopy(consumer(labels), consumer(sensors)), ""}
	w = want["ReadModels"]
	w.resources = sortedCopy(append(w.resources, under(bucket, "/models/factory-failure-v2.json"))...)
	want["ReadModels"] = w
	want["WriteGroundTruth"] = wantStatement{[]string{"s3:PutObject"}, []string{under(bucket, "/groundtruth/factory/*")}, ""}
	want["ReadQualityInputs"] = wantStatement{[]string{"s3:GetObject"}, sortedCopy(under(bucket, "/groundtruth/factory/*"),
		under(bucket, "/results/factory/failure/*"), under(bucket, "/results/factory/failure_manual/*")), ""}
	want["WriteModelQuality"] = wantStatement{[]string{"s3:GetObject", "s3:PutObject"}, []string{under(bucket, "/monitoring/model-quality/factory/*")}, ""}
	want["ListQualityInputs"] = wantStatement{[]string{"s3:ListBucket"}, []string{getAtt(bucket)},
		`{"StringLike":{"s3:prefix":["groundtruth/factory/*","results/factory/failure/*","results/factory/failure_manual/*","monitoring/model-quality/factory/*"]}}`}
	want["ReadPromotions"] = wantStatement{[]string{"dynamodb:GetItem"}, sortedCopy(getAtt(auto), getAtt(manual)), ""}
	want["WritePromotions"] = wantStatement{[]string{"dynamodb:PutItem"}, []string{getAtt(auto)}, ""}
	want["ReadRetrainedModels"] = wantStatement{[]string{"s3:GetObject"}, []string{under(bucket, "/models/retrained/factory/*")}, ""}
	want["KeepPromotedModels"] = wantStatement{[]string{"s3:GetObject", "s3:PutObject"}, []string{under(bucket, "/models/promoted/*")}, ""}
	want["PublishEvents"] = wantStatement{[]string{"events:PutEvents"},
		[]string{`{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":events:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":event-bus/default"]]}`},
		`{"StringEquals":{"events:source":"streamscore"}}`}
	assertStatements(t, s, "WorkerTaskRole", want)
}

func sortedCopy(v ...string) []string {
	out := slices.Clone(v)
	slices.Sort(out)
	return out
}

// TestPromotionTables: one decision table per table name the scorers use
// (promotion.table, else <pipeline>-promotions), with the physical name
// `streamscore model promote` looks for, the key schema
// promotion/dynamo/item.go reads, on demand, point-in-time recovery,
// encryption, deletion protection and retained; the stack outputs their
// names.
func TestPromotionTables(t *testing.T) {
	s := loop(t)
	names := map[string]bool{}
	for id, r := range s.resources("AWS::DynamoDB::Table") {
		p := props(r)
		name, _ := p["TableName"].(string)
		if !strings.HasPrefix(id, "Promotions") {
			continue
		}
		names[name] = true
		for key, want := range map[string]string{
			"KeySchema":                        `[{"AttributeName":"pipeline","KeyType":"HASH"},{"AttributeName":"scorer","KeyType":"RANGE"}]`,
			"AttributeDefinitions":             `[{"AttributeName":"pipeline","AttributeType":"S"},{"AttributeName":"scorer","AttributeType":"S"}]`,
			"BillingMode":                      `"PAY_PER_REQUEST"`,
			"PointInTimeRecoverySpecification": `{"PointInTimeRecoveryEnabled":true}`,
			"SSESpecification":                 `{"SSEEnabled":true}`,
			"DeletionProtectionEnabled":        `true`,
		} {
			if got := compact(p[key]); got != want {
				t.Errorf("%s %s: %s, want %s", name, key, got, want)
			}
		}
		if r["DeletionPolicy"] != "Retain" {
			t.Errorf("%s: deletion policy %v", name, r["DeletionPolicy"])
		}
	}
	if len(names) != 2 || !names["factory-promotions"] || !names["factory-manual-decisions"] {
		t.Errorf("promotion tables %v, want factory-promotions (the default) and factory-manual-decisions (named)", names)
	}
	outputs := compact(s.json["Outputs"])
	for _, name := range []string{"factory-promotions", "factory-manual-decisions"} {
		if !strings.Contains(outputs, `"OutputPromotionTable`+exportName(name)) {
			t.Errorf("no output for table %s", name)
		}
	}
}

// TestLoopBucketLifecycle: the ground truth moves and expires with the
// results it judges, and the quality monitor's files (under monitoring/)
// expire as the drift monitor's do, though this pipeline monitors no
// drift.
func TestLoopBucketLifecycle(t *testing.T) {
	s := loop(t)
	rules := map[string]string{}
	for _, r := range asList(props(s.resources("AWS::S3::Bucket")[s.idOf(t, "AWS::S3::Bucket", "Results")])["LifecycleConfiguration"].(map[string]any)["Rules"]) {
		r := r.(map[string]any)
		rules[r["Id"].(string)] = compact(r)
	}
	for id, want := range map[string]string{
		"groundtruth": `{"ExpirationInDays":400,"Id":"groundtruth","Prefix":"groundtruth/","Status":"Enabled","Transitions":[{"StorageClass":"INTELLIGENT_TIERING","TransitionInDays":30}]}`,
		"monitoring":  `{"ExpirationInDays":400,"Id":"monitoring","Prefix":"monitoring/","Status":"Enabled"}`,
	} {
		if rules[id] != want {
			t.Errorf("rule %s: %s, want %s", id, rules[id], want)
		}
	}
	d := defaults(t)
	for _, r := range asList(props(d.resources("AWS::S3::Bucket")[d.idOf(t, "AWS::S3::Bucket", "Results")])["LifecycleConfiguration"].(map[string]any)["Rules"]) {
		if id := r.(map[string]any)["Id"]; id == "groundtruth" || id == "monitoring" {
			t.Errorf("default stack (no labels, no monitor) has lifecycle rule %v", id)
		}
	}
}

// TestRenderLabels: the worker writes its ground truth where the stack
// granted it, whatever labels.prefix said.
func TestRenderLabels(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", loopFixture))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "loop.yaml")
	if err := os.WriteFile(file, []byte(strings.Replace(string(src), "  label: failed\n", "  label: failed\n  prefix: elsewhere/\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPipeline(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Render(Deployment{Bucket: "b", LeaseTable: "l", FeatureTable: "f", DeadLetterURL: "https://q", TopicARN: "arn:aws:sns:r:1:t"})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Labels  map[string]any `yaml:"labels"`
		Monitor map[string]any `yaml:"monitor"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Labels["prefix"] != "groundtruth/factory/" || doc.Labels["stream"] != "factory-maintenance" || doc.Labels["label"] != "failed" {
		t.Errorf("rendered labels %v", doc.Labels)
	}
	if doc.Monitor["prefix"] != MonitoringPrefix {
		t.Errorf("monitor.prefix %v: the quality monitor writes under it", doc.Monitor["prefix"])
	}
	if p.Labels == nil || p.Labels.Stream != "factory-maintenance" || !slices.Equal(p.Quality, []string{"failure", "failure_manual"}) ||
		!slices.Equal(p.Promotions, []ScorerPromotion{{"failure", "factory-promotions", true}, {"failure_manual", "factory-manual-decisions", false}}) {
		t.Errorf("parsed labels %+v, quality %v, promotions %+v", p.Labels, p.Quality, p.Promotions)
	}
}

// TestDefaultsMatchRootModule: what this module restates (it does not
// import the root module) equals the root module's, read from its source:
// promotion.DefaultTable, sinks.GroundTruthPrefix, and the Retraining
// Requested event's source, detail type and schema version (retrain).
func TestDefaultsMatchRootModule(t *testing.T) {
	root := filepath.Join("..", "..")
	got := evalStringFunc(t, filepath.Join(root, "promotion", "decision.go"), "DefaultTable", map[string]string{"pipeline": "factory"})
	if want := defaultPromotionTable("factory"); got != want {
		t.Errorf("promotion.DefaultTable(factory) = %q, this module's %q", got, want)
	}
	got = evalStringFunc(t, filepath.Join(root, "sinks", "groundtruth.go"), "GroundTruthPrefix", map[string]string{"pipeline": "factory", "configured": ""})
	p := &Pipeline{Name: "factory"}
	if want := p.GroundTruthKeyPrefix(); got != want {
		t.Errorf("sinks.GroundTruthPrefix(factory, \"\") = %q, this module's %q", got, want)
	}
	event := filepath.Join(root, "retrain", "event.go")
	for name, want := range map[string]string{
		"Source":                        RetrainingEventSource,
		"DetailTypeRetrainingRequested": RetrainingDetailType,
		"SchemaVersion":                 strconv.Itoa(retrainingSchemaVersion),
	} {
		if got := constValue(t, event, name); got != want {
			t.Errorf("retrain.%s = %s, this module's %s", name, got, want)
		}
	}
}

// constValue is the literal value of the package-level constant name in
// file, unquoted if a string.
func constValue(t *testing.T, file, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name != name || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						return s
					}
					return lit.Value
				}
			}
		}
	}
	t.Fatalf("%s: no constant %s with a literal value", file, name)
	return ""
}

// evalStringFunc evaluates the first return statement of function fn in
// file, which must concatenate string literals and the parameters given
// in env.
func evalStringFunc(t *testing.T, file, fn string, env map[string]string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ret *ast.ReturnStmt
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == fn && fd.Recv == nil {
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if r, ok := n.(*ast.ReturnStmt); ok && ret == nil {
					ret = r
				}
				return ret == nil
			})
		}
	}
	if ret == nil || len(ret.Results) != 1 {
		t.Fatalf("%s: no func %s returning one value", file, fn)
	}
	var eval func(ast.Expr) string
	eval = func(e ast.Expr) string {
		switch e := e.(type) {
		case *ast.BasicLit:
			if s, err := strconv.Unquote(e.Value); err == nil && e.Kind == token.STRING {
				return s
			}
		case *ast.Ident:
			if v, ok := env[e.Name]; ok {
				return v
			}
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				return eval(e.X) + eval(e.Y)
			}
		case *ast.ParenExpr:
			return eval(e.X)
		}
		t.Fatalf("%s: %s returns an expression this test cannot evaluate (%T): restate its default here and update the test", file, fn, e)
		return ""
	}
	return eval(ret.Results[0])
}

// TestQualityConstraintsAreUploaded: a quality monitor's constraints
// directory becomes constraints/<pipeline>/<scorer>/ in the stack's bucket,
// where the user uploads constraints.json, and the rendered configuration
// points the worker there; an s3:// prefix in another bucket is refused
// naming the field, as a baseline's is.
func TestQualityConstraintsAreUploaded(t *testing.T) {
	p, err := LoadPipeline(filepath.Join("..", "..", "examples", "demo", "factory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	key, local, err := p.ConstraintsKey("failure", "stack-bucket")
	if err != nil || !local || key != "constraints/factory-demo/failure/" {
		t.Fatalf("ConstraintsKey: %q %v %v, want constraints/factory-demo/failure/ to upload", key, local, err)
	}
	out, err := p.Render(Deployment{Bucket: "stack-bucket", DeadLetterURL: "https://sqs/q", TopicARN: "arn:aws:sns:r:1:t"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `constraints: "s3://stack-bucket/constraints/factory-demo/failure/"`) {
		t.Errorf("rendered configuration does not point the constraints at the upload:\n%s", out)
	}
	p.QualityConstraints["failure"] = "s3://elsewhere/constraints/"
	if _, _, err := p.ConstraintsKey("failure", "stack-bucket"); err == nil || !strings.Contains(err.Error(), "monitor.quality[0].constraints") {
		t.Errorf("a constraints prefix in another bucket: %v, want an error naming monitor.quality[0].constraints", err)
	}
}
