package loadtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/training"
	"github.com/streamscore/streamscore/training/trainingtest"
)

// demoConfig loads a demo config with every resource renamed to a fresh one
// of this test, creates those resources, and writes the config where the
// worker processes can read it.
func demoConfig(t *testing.T, env *devstacktest.Env, path, dir string, edits ...[2]string) (*config.Config, string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(src, path)
	if err != nil {
		t.Fatal(err)
	}
	renames := map[string]string{}
	rename := func(old string) {
		if _, ok := renames[old]; !ok && old != "" {
			renames[old] = env.Name(strings.TrimPrefix(old, "streamscore-"))
		}
	}
	rename(cfg.Consumer.Application)
	for _, s := range cfg.Streams {
		rename(s.Name)
	}
	rename(cfg.Sinks.S3.Bucket)
	rename(cfg.Sinks.FeatureTable.Table)
	rename(cfg.Sinks.DeadLetter.Queue)
	rename(cfg.Alerts.Topic)
	for _, sc := range cfg.Scorers {
		if sc.Promotion != nil {
			rename(sc.Promotion.Table)
		}
	}
	text := string(src)
	for _, e := range edits {
		if !strings.Contains(text, e[0]) {
			t.Fatalf("%s has no %q", path, e[0])
		}
		text = strings.Replace(text, e[0], e[1], 1)
	}
	for old, repl := range renames {
		text = strings.ReplaceAll(text, old, repl)
	}
	out := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Parse([]byte(text), out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devstack.Provision(devstacktest.Ctx(t), env.Clients, devstack.PlanFor(pipeline.WindowRetention, cfg)); err != nil {
		t.Fatal(err)
	}
	return cfg, out
}

// TestDemoLosesNothingWhenAWorkerDies is a shorter `make demo`: two worker
// processes run the factory and churn pipelines while the generator
// publishes KPL aggregates in real time, one worker is killed with SIGKILL
// midway, and then every published event must be accounted for, the
// publisher must have kept its schedule, readings sent a minute late on
// purpose must be dead-lettered, and the alerts must have caught the
// failures before they happened. In a 100 s run the demo fleet's failures
// fall between 50 s and 100 s, so every failing machine is at least 17 %
// into its two-minute degradation when the run begins: the demo model
// (held-out entity recall 0.99, precision 0.99, trained on runs of this
// length among others) catches them in time, so the demo's targets
// (DetectionTarget) hold here too.
//
// And the demo's model loop, on a shorter clock (20 s periods, a 30 s
// label horizon, 10 s of allowed lateness): the failures become labels and every period is judged
// against them, the rpm shift from 5 s in asks for retraining, train.py's
// model becomes the challenger and is judged on labelled rows.
func TestDemoLosesNothingWhenAWorkerDies(t *testing.T) {
	env := devstacktest.New(t)
	// Kinesis is kinesalite, as in make demo: kinesis-local stalls the
	// publisher for seconds while a worker replays a dead one's shards.
	root, err := devstack.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	kin, err := devstack.Up(devstacktest.Ctx(t), devstack.Config{Root: root, Dir: t.TempDir(),
		Services: []devstack.Service{devstack.Kinesis}, KinesisServer: devstack.Kinesalite, DieWithParent: true})
	if err != nil {
		t.Fatalf("starting kinesalite: %v", err)
	}
	t.Cleanup(func() { _ = kin.Down(context.Background()) })
	eps := env.Endpoints
	eps.Kinesis = kin.Endpoints.Kinesis
	env = &devstacktest.Env{Clients: eps.Clients(), Endpoints: eps, Dir: env.Dir}
	dir := t.TempDir()
	bin := filepath.Join(dir, "streamscore")
	build := exec.Command("go", "build", "-o", bin, "../cmd/streamscore")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building streamscore: %v\n%s", err, out)
	}
	trainingtest.NeedXGBoost(t, training.DefaultPython)
	factory, factoryPath := demoConfig(t, env, "../examples/demo/factory.yaml", dir,
		[2]string{"  period: 30s\n", "  period: 20s\n"}, [2]string{"horizon: 90s", "horizon: 30s"},
		// The drift monitor judges a period once its lateness has passed:
		// 10 s leaves the retrained model time to score the live stream.
		[2]string{"allowed_lateness: 20s", "allowed_lateness: 10s"})
	churn, churnPath := demoConfig(t, env, "../examples/demo/churn.yaml", dir)
	// The model paths in the configs are relative to the repository root.
	workerEnv := os.Environ()
	for _, kv := range env.Endpoints.EnvVars() {
		workerEnv = append(workerEnv, kv[0]+"="+kv[1])
	}
	workerEnv = append(workerEnv, "AWS_CA_BUNDLE=", "AWS_PROFILE=", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_CONFIG_FILE=/dev/null")
	var logs []string
	rc := RunConfig{
		Factory: factory, Churn: churn,
		Clients: Clients{Kinesis: env.Kinesis, S3: env.S3, SNS: env.SNS, SQS: env.SQS,
			EventBridge: env.EventBridge(), EventQueues: env.EventSQS(), SFN: env.StepFunctions(), DynamoDB: env.DynamoDB},
		Duration: 100 * time.Second, Settle: 30 * time.Second,
		Shift:    &CalibrationShift{Field: "rpm", By: 60, Share: DefaultDriftShare, At: 5 * time.Second},
		Flywheel: &FlywheelConfig{ChallengerSeed: "../examples/models/factory-demo.json", Script: "../examples/models/train.py", WorkDir: t.TempDir()},
		Workers:  2, KillAt: 20 * time.Second, Seed: 7,
		Worker: func(i int, listen string) *exec.Cmd {
			cmd := WorkerCommand(bin, []string{factoryPath, churnPath}, dir, i, listen)
			cmd.Dir = root
			cmd.Env = workerEnv
			logs = append(logs, filepath.Join(dir, "worker-"+string(rune('0'+i))+".log"))
			return cmd
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := Run(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	var summary bytes.Buffer
	rep.WriteSummary(&summary)
	t.Log("\n" + summary.String())
	if err := rep.OK(); err != nil {
		for _, l := range logs {
			if b, rerr := os.ReadFile(l); rerr == nil {
				t.Logf("%s:\n%s", l, lastLines(string(b), 30))
			}
		}
		t.Fatal(err)
	}
	if rep.Killed.IsZero() {
		t.Fatal("no worker was killed")
	}
	for _, s := range rep.Scenarios {
		if s.Published == 0 || s.Scored == 0 {
			t.Errorf("%s: %d published, %d scored", s.Name, s.Published, s.Scored)
		}
		if s.Name == "factory" && s.LateSent == 0 {
			t.Errorf("factory: no reading was sent late on purpose; the run is too short to show the late path")
		}
		if s.Behind() {
			t.Errorf("%s: the publisher fell behind its schedule: %d of %d events sent within %s, worst lag %s",
				s.Name, s.OnSchedule, s.Published, OnSchedule, s.MaxLag)
		}
		if d := s.Detection; d != nil && (d.Failing == 0 || d.Recall < DetectionTarget || d.Precision < DetectionTarget) {
			t.Errorf("%s: %d of %d failing machines alerted before failing (recall %.2f), %d false alarms (precision %.2f); want both >= %.2f",
				s.Name, d.TruePositives, d.Failing, d.Recall, d.FalsePositives, d.Precision, DetectionTarget)
		}
	}
	// The demo's models are embedded, so every firing alert says which
	// inputs drove its score.
	for _, a := range rep.Alerts {
		if a.State == "firing" && !a.IsDrift() && len(a.TopFeatures) == 0 {
			t.Errorf("alert for %s/%s at %s carries no top_features", a.Stream, a.Entity, a.WindowEnd)
		}
	}
	var fw *FlywheelReport
	for _, s := range rep.Scenarios {
		if s.Name == "factory" {
			fw = s.Flywheel
		}
	}
	switch {
	case fw == nil:
		t.Fatal("the factory scenario has no model loop report")
	case fw.Labels == 0:
		t.Error("no failure was published as a label")
	case fw.Unjudged != "":
		t.Errorf("the loop did not close: %s", fw.Unjudged)
	}
	var trained bool
	for _, r := range fw.Requests {
		trained = trained || r.Status == "SUCCEEDED" && r.Version != ""
	}
	if !trained {
		t.Errorf("no retraining request was trained into a challenger: %+v (skipped: %q)", fw.Requests, fw.Skipped)
	}
	if len(fw.Problems) > 0 {
		t.Errorf("the loop's outcome could not be read back: %v", fw.Problems)
	}
	var html bytes.Buffer
	if err := rep.WriteHTML(&html, ""); err != nil || !strings.Contains(html.String(), "echarts") {
		t.Errorf("HTML report: %v", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
