package main

import (
	"context"
	"debug/elf"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestLoginEventSource: the Kinesis event source behaves as a consumer
// that must not lose or block on records: partial batch failures
// (ReportBatchItemFailures), bisect on error, bounded retries and record
// age, and an on-failure destination; it reads through its own enhanced
// fan-out consumer and has no event filter (a filter silently drops KPL
// aggregates and malformed records; the function must see them).
func TestLoginEventSource(t *testing.T) {
	s := defaults(t)
	esm := props(s.resources("AWS::Lambda::EventSourceMapping")[s.idOf(t, "AWS::Lambda::EventSourceMapping", "Login")])
	failures := s.idOf(t, "AWS::SQS::Queue", "LoginFailures")
	consumer := s.idOf(t, "AWS::Kinesis::StreamConsumer", "LoginConsumer")
	for k, want := range map[string]string{
		"FunctionResponseTypes":      `["ReportBatchItemFailures"]`,
		"BisectBatchOnFunctionError": `true`,
		"MaximumRetryAttempts":       `3`,
		"MaximumRecordAgeInSeconds":  `3600`,
		"StartingPosition":           `"LATEST"`,
		"BatchSize":                  `100`,
		"ParallelizationFactor":      `1`,
		"DestinationConfig":          `{"OnFailure":{"Destination":` + getAtt(failures) + `}}`,
		"EventSourceArn":             `{"Fn::GetAtt":["` + consumer + `","ConsumerARN"]}`,
	} {
		if got := compact(esm[k]); got != want {
			t.Errorf("%s: %s, want %s", k, got, want)
		}
	}
	if f, ok := esm["FilterCriteria"]; ok {
		t.Errorf("FilterCriteria %s: records matching no filter are dropped before the function sees them", compact(f))
	}
	sc := props(s.resources("AWS::Kinesis::StreamConsumer")[consumer])
	if got := compact(sc["StreamARN"]); got != getAtt(s.idOf(t, "AWS::Kinesis::Stream", "Streamappevents")) {
		t.Errorf("fan-out consumer on %s, want app-events", got)
	}

	// Polling instead (loginFanOut=false): straight on the stream.
	p := synth(t, map[string]any{"loginFanOut": "false", "loginRetryAttempts": "5"})
	esm = props(p.resources("AWS::Lambda::EventSourceMapping")[p.idOf(t, "AWS::Lambda::EventSourceMapping", "Login")])
	if got := compact(esm["EventSourceArn"]); got != getAtt(p.idOf(t, "AWS::Kinesis::Stream", "Streamappevents")) {
		t.Errorf("polling event source on %s", got)
	}
	if esm["MaximumRetryAttempts"] != 5.0 {
		t.Errorf("loginRetryAttempts=5: %v", esm["MaximumRetryAttempts"])
	}
	if n := len(p.resources("AWS::Kinesis::StreamConsumer")); n != 0 {
		t.Errorf("%d stream consumers while polling", n)
	}
}

// TestLoginFunction: runtime, architecture, handler and the environment
// the function reads; its role has no managed policies and only scoped
// statements of its own.
func TestLoginFunction(t *testing.T) {
	s := defaults(t)
	fn := props(s.resources("AWS::Lambda::Function")[s.idOf(t, "AWS::Lambda::Function", "Login")])
	if fn["Runtime"] != "provided.al2023" || fn["Handler"] != "bootstrap" || compact(fn["Architectures"]) != `["arm64"]` {
		t.Errorf("runtime %v handler %v arch %v", fn["Runtime"], fn["Handler"], fn["Architectures"])
	}
	bucket := s.idOf(t, "AWS::S3::Bucket", "Results")
	env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	for k, want := range map[string]string{
		EnvFeatureTable:     `{"Ref":"` + s.idOf(t, "AWS::DynamoDB::Table", "FeatureTable") + `"}`,
		EnvModel:            `{"Fn::Join":["",["s3://",{"Ref":"` + bucket + `"},"/models/churn.json"]]}`,
		EnvAlertTopic:       `{"Ref":"` + s.idOf(t, "AWS::SNS::Topic", "Alerts") + `"}`,
		EnvThreshold:        `"0.7"`,
		EnvDeadLetterQueue:  `{"Ref":"` + s.idOf(t, "AWS::SQS::Queue", "DeadLetters") + `"}`,
		EnvDeadLetterBucket: `{"Ref":"` + bucket + `"}`,
		EnvDeadLetterPrefix: `"dead-letter/login/"`,
		EnvLoginValue:       `"login"`,
		EnvFeatureSet:       `"churn#user_day"`, // the one window over app-events
	} {
		if got := compact(env[k]); got != want {
			t.Errorf("env %s = %s, want %s", k, got, want)
		}
	}
	role := s.resources("AWS::IAM::Role")[s.idOf(t, "AWS::IAM::Role", "LoginRole")]
	if mp := props(role)["ManagedPolicyArns"]; mp != nil {
		t.Errorf("login role has managed policies %s (their log permissions are on *)", compact(mp))
	}
	for sid, want := range map[string][]string{
		"ReadFeatures":          {"dynamodb:GetItem", getAtt(s.idOf(t, "AWS::DynamoDB::Table", "FeatureTable"))},
		"ReadModel":             {"s3:GetObject", under(bucket, "/models/churn.json")},
		"PublishAlerts":         {"sns:Publish", `{"Ref":"` + s.idOf(t, "AWS::SNS::Topic", "Alerts") + `"}`},
		"SendDeadLetters":       {"sqs:SendMessage", getAtt(s.idOf(t, "AWS::SQS::Queue", "DeadLetters"))},
		"WriteLargeDeadLetters": {"s3:PutObject", under(bucket, "/dead-letter/login/*")},
	} {
		st := statementBySid(t, s, "LoginRole", sid)
		if a, r := strs(st["Action"]), refs(st["Resource"]); !slices.Equal(a, want[:1]) || !slices.Equal(r, want[1:]) {
			t.Errorf("%s: %v on %v, want %v", sid, a, r, want)
		}
	}
	logs := statementBySid(t, s, "LoginRole", "WriteLogs")
	if got := compact(logs["Resource"]); !strings.Contains(got, s.idOf(t, "AWS::Logs::LogGroup", "LoginLogs")) {
		t.Errorf("logs on %s", got)
	}
}

// TestLoginEnvironmentMatchesLambdaPackage: every variable the stack sets
// is one lambda/config.go reads (a renamed variable would silently fall
// back to a default or fail at cold start). Skipped only while lambda/ is
// not in the tree.
func TestLoginEnvironmentMatchesLambdaPackage(t *testing.T) {
	file := filepath.Join("..", "..", "lambda", "config.go")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the login Lambda's configuration must be at %s: %v", file, err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if v, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(v, "STREAMSCORE_") {
				read[v] = true
			}
		}
		return true
	})
	s := defaults(t)
	fn := props(s.resources("AWS::Lambda::Function")[s.idOf(t, "AWS::Lambda::Function", "Login")])
	for k := range fn["Environment"].(map[string]any)["Variables"].(map[string]any) {
		if !read[k] {
			t.Errorf("the stack sets %s, which %s does not read (it reads %v)", k, file, sortedKeys(read))
		}
	}
	for _, required := range []string{EnvFeatureTable, EnvModel} {
		if !read[required] {
			t.Errorf("%s no longer reads %s", file, required)
		}
	}
}

// TestBuildLogin builds a Lambda main package the way the app does when
// no built code is given: a static Linux binary named bootstrap for the
// function's architecture, the same bytes on a rebuild (so an unchanged
// function keeps its asset hash). A missing package is an error that says
// how to proceed.
func TestBuildLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain")
	}
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":                   "module example.com/fn\n\ngo 1.22\n",
		"lambda/bootstrap/main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"ok\") }\n",
	}
	for name, body := range files {
		p := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for arch, machine := range map[string]elf.Machine{"arm64": elf.EM_AARCH64, "x86_64": elf.EM_X86_64} {
		dir, err := BuildLogin(ctx, mod, LoginPackage, arch, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "bootstrap")
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", arch, f.Machine, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked (CGO_ENABLED=0 expected)", arch)
			}
		}
		f.Close()
		again, err := BuildLogin(ctx, mod, LoginPackage, arch, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(bin)
		b, _ := os.ReadFile(filepath.Join(again, "bootstrap"))
		if string(a) != string(b) {
			t.Errorf("%s: a rebuild differs: the asset hash would change on every synth", arch)
		}
	}
	_, err := BuildLogin(ctx, mod, "./lambda/missing", "arm64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "loginLambdaCode") || !strings.Contains(err.Error(), "loginLambda=false") {
		t.Errorf("missing package: %v", err)
	}
	if _, err := BuildLogin(ctx, mod, LoginPackage, "mips", t.TempDir()); err == nil {
		t.Error("architecture mips accepted")
	}
}

// TestNoLoginLambda: loginLambda=false leaves the function, its queue,
// consumer and alarms out, and needs no code.
func TestNoLoginLambda(t *testing.T) {
	s := synth(t, map[string]any{"loginLambda": false, "loginLambdaCode": ""})
	for typ, n := range map[string]int{"AWS::Lambda::EventSourceMapping": 0, "AWS::Kinesis::StreamConsumer": 0, "AWS::SQS::Queue": 1, "AWS::CloudWatch::Alarm": 5} {
		if got := len(s.resources(typ)); got != n {
			t.Errorf("%s: %d, want %d", typ, got, n)
		}
	}
}
