package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
)

// TestSynthNeedsNoDocker synthesizes the whole app into a cloud assembly,
// as `cdk synth` does, with a docker on PATH (and in CDK_DOCKER) that
// records any call and fails: the worker image is only staged for the
// deploy-time build, the Lambda is built with the Go toolchain (here: a
// prebuilt stub), and nothing runs docker.
func TestSynthNeedsNoDocker(t *testing.T) {
	out := t.TempDir()
	ctx := cdkContext(t)
	ctx["loginLambdaCode"] = stubLambda(t)
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(out)})
	if _, err := Build(context.Background(), app, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	asm := app.Synth(nil)
	if b, err := os.ReadFile(dockerMarker); err == nil {
		t.Fatalf("synth ran docker: %s", b)
	}
	if *asm.Directory() != out {
		t.Errorf("assembly in %s, want %s", *asm.Directory(), out)
	}
	if _, err := os.Stat(filepath.Join(out, "Streamscore.template.json")); err != nil {
		t.Fatal(err)
	}
	var assets struct {
		Files map[string]struct {
			Source struct{ Path, Packaging string }
		} `json:"files"`
		DockerImages map[string]struct {
			Source struct {
				Directory, DockerFile, Platform string
			}
		} `json:"dockerImages"`
	}
	b, err := os.ReadFile(filepath.Join(out, "Streamscore.assets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &assets); err != nil {
		t.Fatal(err)
	}
	if len(assets.DockerImages) != 1 {
		t.Fatalf("docker image assets: %d, want 1 (the worker)", len(assets.DockerImages))
	}
	for _, img := range assets.DockerImages {
		if img.Source.Platform != "linux/amd64" {
			t.Errorf("image platform %q", img.Source.Platform)
		}
		// The staged build context: the repository's sources and
		// Dockerfile, without this app or test binaries.
		dir := filepath.Join(out, img.Source.Directory)
		for _, f := range []string{"Dockerfile", "go.mod", "go.sum", "cmd/streamscore/main.go"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("build context lacks %s: %v", f, err)
			}
		}
		for _, f := range []string{"infra", ".git", ".devstack"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				t.Errorf("build context holds %s", f)
			}
		}
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".test") {
				t.Errorf("build context holds test binary %s", p)
			}
			return nil
		})
	}
	found := false
	for _, f := range assets.Files {
		if _, err := os.Stat(filepath.Join(out, f.Source.Path, "bootstrap")); err == nil {
			found = true
		}
	}
	if !found {
		t.Errorf("no file asset holds the Lambda's bootstrap: %s", b)
	}
}

// TestDockerDetectorSeesDocker is the control for TestSynthNeedsNoDocker:
// an asset that does need Docker (bundling in a container) reaches the
// fake docker, so the detector would see a stack that needed it.
func TestDockerDetectorSeesDocker(t *testing.T) {
	defer os.Remove(dockerMarker) // the other tests expect no marker
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := awscdk.NewStack(app, jsii.String("Control"), nil)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { _ = recover() }() // the bundling fails: our docker exits 1
		awss3assets.NewAsset(stack, jsii.String("NeedsDocker"), &awss3assets.AssetProps{
			Path: jsii.String(src),
			Bundling: &awscdk.BundlingOptions{
				Image:   awscdk.DockerImage_FromRegistry(jsii.String("public.ecr.aws/docker/library/busybox:1.37.0-musl")),
				Command: jsii.Strings("cp", "/asset-input/x", "/asset-output/"),
			},
		})
	}()
	if _, err := os.Stat(dockerMarker); err != nil {
		t.Fatalf("a Docker-bundled asset did not reach the fake docker (%v): TestSynthNeedsNoDocker would prove nothing", err)
	}
}

// TestCDKJSONMatchesDefaults: cdk.json shows every setting with the value
// the code uses when the key is absent, so reading cdk.json tells what is
// deployed.
func TestCDKJSONMatchesDefaults(t *testing.T) {
	ctx := cdkContext(t)
	b, _ := json.Marshal(Defaults())
	var def map[string]any
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	for k, v := range def {
		got, ok := ctx[k]
		if !ok {
			t.Errorf("cdk.json lacks %s (default %v)", k, v)
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("cdk.json %s = %v, code default %v", k, got, v)
		}
	}
	for k := range ctx {
		if _, ok := def[k]; !ok && !strings.HasPrefix(k, "@aws-cdk") {
			t.Errorf("cdk.json has %s, which no setting reads", k)
		}
	}
}

// TestSettingsFromContext: values from -c arrive as strings and are
// converted; a bad value is an error naming its key.
func TestSettingsFromContext(t *testing.T) {
	read := func(ctx map[string]any) (Settings, error) {
		app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(t.TempDir())})
		return SettingsFromContext(app)
	}
	s, err := read(map[string]any{"workerDesiredCount": "3", "loginFanOut": "false", "loginThreshold": "0.85",
		"pipelines": "examples/factory.yaml, other.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if s.WorkerDesiredCount != 3 || s.LoginFanOut || s.LoginThreshold != 0.85 || !reflect.DeepEqual(s.Pipelines, []string{"examples/factory.yaml", "other.yaml"}) {
		t.Errorf("parsed %+v", s)
	}
	if s.StreamMode != "provisioned" || s.WorkerCPU != 1024 {
		t.Errorf("defaults not kept: %+v", s)
	}
	for key, val := range map[string]any{
		"workerDesiredCount":          "two",
		"loginFanOut":                 "maybe",
		"streamMode":                  "serverless",
		"streamEncryption":            "none",
		"deadLetterExpirationDays":    7,
		"streamRetentionHours":        12,
		"workerArchitecture":          "mips",
		"loginBatchSize":              0,
		"natGateways":                 0,
		"workerMaxCount":              1,
		"workerCpuTarget":             95,
		"workerScaleOutLagMillis":     0,
		"retrainingInstanceType":      "m5.xlarge",
		"retrainingMaxRuntimeMinutes": 0,
		"retrainingSource":            "retraining/train.py",
		"retrainingEntryPoint":        "",
	} {
		if _, err := read(map[string]any{key: val}); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%v: error %v, want one naming %s", key, val, err, key)
		}
	}
}

// TestBuildRefusesWhatCannotDeploy: settings that name something the
// pipelines do not have fail the synth with the key named.
func TestBuildRefusesWhatCannotDeploy(t *testing.T) {
	for name, tc := range map[string]struct {
		ctx  map[string]any
		want string
	}{
		"login stream not consumed": {map[string]any{"pipelines": []any{"examples/factory.yaml"}}, `loginStream: "app-events" is not a stream`},
		"same pipeline twice":       {map[string]any{"pipelines": []any{"examples/churn.yaml", "examples/churn.yaml"}}, `both are pipeline "churn"`},
		"missing configuration":     {map[string]any{"pipelines": []any{"examples/nope.yaml"}}, "nope.yaml"},
		"no bootstrap in code dir":  {map[string]any{"loginLambdaCode": t.TempDir()}, "loginLambdaCode"},
	} {
		ctx := cdkContext(t)
		ctx["loginLambdaCode"] = stubLambda(t)
		for k, v := range tc.ctx {
			ctx[k] = v
		}
		app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(t.TempDir())})
		_, err := Build(context.Background(), app, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}
