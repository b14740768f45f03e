package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// dockerMarker is written by the fake docker that TestMain puts first on
// PATH (and in CDK_DOCKER, which the CDK uses to find docker): if any
// synth in this test binary runs docker, the file exists.
var dockerMarker string

// testEnvDir marks the test binary re-executed with the test environment;
// its value is the directory holding the fake docker.
const testEnvDir = "STREAMSCORE_CDK_TEST_DIR"

// TestMain gives the jsii kernel (node, which runs the CDK) the test
// environment. The kernel's environment is fixed when the CDK packages
// register their types, in package initialization before TestMain runs,
// so setting variables here would not reach it: the binary re-executes
// itself with them instead.
func TestMain(m *testing.M) {
	dir := os.Getenv(testEnvDir)
	if dir == "" {
		if err := reexec(); err != nil {
			fmt.Fprintln(os.Stderr, "test setup:", err)
			os.Exit(1)
		}
		return // not reached: reexec replaced the process
	}
	dockerMarker = filepath.Join(dir, "docker-was-run")
	code := m.Run()
	jsii.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func reexec() error {
	dir, err := os.MkdirTemp("", "streamscore-cdk-test-")
	if err != nil {
		return err
	}
	fake := filepath.Join(dir, "bin", "docker")
	if err := os.MkdirAll(filepath.Dir(fake), 0o755); err != nil {
		return err
	}
	marker := filepath.Join(dir, "docker-was-run")
	script := "#!/bin/sh\necho \"$@\" >> '" + marker + "'\necho 'docker must not be needed to synthesize' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		return err
	}
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "PATH", "CDK_DOCKER",
			// Account and region of the developer's shell must not
			// change the templates the tests see.
			"CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION":
		default:
			env = append(env, kv)
		}
	}
	env = append(env,
		testEnvDir+"="+dir,
		"CDK_DOCKER="+fake,
		"PATH="+filepath.Dir(fake)+string(os.PathListSeparator)+os.Getenv("PATH"),
		// Node 20 works; jsii would print a banner saying 22+ is
		// recommended.
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20",
	)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, env)
}

// cdkContext is the context block of cdk.json: tests synthesize with the
// same defaults and feature flags as `cdk deploy`.
func cdkContext(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile("cdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("cdk.json: %v", err)
	}
	return doc.Context
}

// stubLambda is a directory with a placeholder bootstrap: the stack tests
// do not depend on lambda/ building (TestBuildLogin covers the build).
func stubLambda(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// synthesized is one synthesized stack: the construct tree, its template
// and the cloud assembly's directory (cdk-nag writes its report there).
type synthesized struct {
	ss       *Streamscore
	template assertions.Template
	json     map[string]any
	outdir   string
}

// synth builds the app with cdk.json's context overlaid with overrides
// and returns the stack's template.
func synth(t testing.TB, overrides map[string]any) *synthesized {
	t.Helper()
	return synthWith(t, overrides, false)
}

// synthWith is synth, with cdk-nag's AwsSolutions checks as an aspect when
// nag is set: an unsuppressed error fails the synth (the validation
// report is printed), and the JSON report lands in outdir (nagReport).
func synthWith(t testing.TB, overrides map[string]any, nag bool) *synthesized {
	t.Helper()
	ctx := cdkContext(t)
	ctx["loginLambdaCode"] = stubLambda(t)
	for k, v := range overrides {
		ctx[k] = v
	}
	// Not t.TempDir: the shared stacks outlive the test that made them,
	// and their nag report is read later. TestMain removes the directory.
	out, err := os.MkdirTemp(os.Getenv(testEnvDir), "synth-")
	if err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(out)})
	ss, err := Build(context.Background(), app, out)
	if err != nil {
		t.Fatal(err)
	}
	if nag {
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{
			Reports:       jsii.Bool(true),
			ReportFormats: &[]cdknag.NagReportFormat{cdknag.NagReportFormat_JSON},
		}), nil)
	}
	var tpl assertions.Template
	func() {
		defer func() {
			if r := recover(); r != nil {
				report, _ := os.ReadFile(filepath.Join(out, "validation-report.json"))
				t.Fatalf("synth: %v\n%s", r, report)
			}
		}()
		tpl = assertions.Template_FromStack(ss.Stack, nil)
	}()
	return &synthesized{ss: ss, template: tpl, json: *tpl.ToJSON(), outdir: out}
}

var (
	defaultOnce sync.Once
	defaultSyn  *synthesized
	loopOnce    sync.Once
	loopSyn     *synthesized
)

// defaults is the stack as cdk.json describes it, synthesized once per
// test binary (a synth costs seconds), with cdk-nag's checks.
func defaults(t testing.TB) *synthesized {
	t.Helper()
	defaultOnce.Do(func() { defaultSyn = synthWith(t, nil, true) })
	if defaultSyn == nil {
		t.Fatal("the default stack did not synthesize")
	}
	return defaultSyn
}

// loopFixture is a pipeline with the whole flywheel (labels, quality
// monitors, promotion with and without auto, fan-out), relative to the
// repository root as the pipelines setting is.
const loopFixture = "infra/cdk/testdata/factory-loop.yaml"

// loop is the stack of loopFixture and examples/churn.yaml, with Fargate
// Spot, synthesized once per test binary with cdk-nag's checks.
func loop(t testing.TB) *synthesized {
	t.Helper()
	loopOnce.Do(func() {
		loopSyn = synthWith(t, map[string]any{"pipelines": []any{loopFixture, "examples/churn.yaml"}, "workerFargateSpot": true}, true)
	})
	if loopSyn == nil {
		t.Fatal("the loop stack did not synthesize")
	}
	return loopSyn
}

// check runs an assertions call, turning its panic (how jsii reports a
// failed assertion) into a test error.
func check(t testing.TB, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

// resources returns the template's resources of a type, by logical id.
func (s *synthesized) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.json["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// props returns a resource's Properties.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// idOf returns the logical id of the only resource of typ whose logical
// id starts with prefix.
func (s *synthesized) idOf(t testing.TB, typ, prefix string) string {
	t.Helper()
	var ids []string
	for id := range s.resources(typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		sort.Strings(ids)
		t.Fatalf("%s with logical id %s*: %v, want exactly one", typ, prefix, ids)
	}
	return ids[0]
}

// asList returns v as a list (IAM allows a single string where a list is
// meant).
func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// compact renders a template fragment for error messages.
func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
