package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/retrain"
)

// promoteConfig is a valid pipeline whose scorer "failure" has a
// challenger and a promotion policy deciding into table; "plain" has
// neither. Model paths are relative to the repository root, where run
// starts the binary.
const promoteConfig = `pipeline: promo-cli
streams:
  - {name: sensors, schema: sensor}
  - {name: failures, schema: label}
schemas:
  sensor:
    entity: machine_id
    time: ts
    fields:
      - {name: vibration_rms, type: float64}
  label:
    entity: machine_id
    time: ts
    fields:
      - {name: failed, type: bool}
windows:
  - name: w
    stream: sensors
    kind: tumbling
    size: 1m
    features:
      - {name: vib_mean, agg: mean, field: vibration_rms}
models:
  failure_v1: {path: examples/models/factory-failure.json}
  failure_v2: {path: examples/models/factory-demo.json}
  other: {path: examples/models/churn.json}
  broken: {path: BROKEN}
scorers:
  - name: failure
    window: w
    model: failure_v1
    challenger: failure_v2
    promotion:
      metric: auc
      margin: 0.02
      table: TABLE
  - name: plain
    window: w
    model: other
sinks:
  s3: {bucket: b}
labels:
  stream: failures
  label: failed
monitor:
  quality:
    - {scorer: failure, horizon: 5m}
`

// TestModelPromoteRollbackStatus drives promote, rollback and status as a
// user does, against the local stack's DynamoDB: the missing table is
// named with what to do, a promotion of the challenger records its path,
// version and digest, a stale or pointless write is refused and changes
// nothing, a model that does not load is not promoted, and a rollback
// restores the configured champion.
func TestModelPromoteRollbackStatus(t *testing.T) {
	env := devstacktest.New(t)
	table := env.Name("promotions-cli")
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte(`{"learner": 42}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "promo.yaml")
	cfg := strings.NewReplacer("TABLE", table, "BROKEN", broken).Replace(promoteConfig)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, kv := range env.Endpoints.EnvVars() {
		vars = append(vars, kv[0]+"="+kv[1])
	}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, vars, args...)
		if err != nil {
			t.Fatalf("streamscore %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, errOut, err := run(t, vars, args...)
		if err == nil || !strings.Contains(errOut, want) {
			t.Fatalf("streamscore %s: %v, want it to fail with %q\n%s%s", strings.Join(args, " "), err, want, out, errOut)
		}
	}
	promote := []string{"model", "promote", "--config", cfgPath, "--scorer", "failure"}
	status := []string{"model", "status", "--config", cfgPath}

	fails("on the local stack, promote with --create-table", append(status, "--scorer", "failure")...)
	fails("on the local stack, promote with --create-table", append(promote, "--challenger", "--reason", "r")...)
	fails(`scorer "plain" has no promotion section`, "model", "promote", "--config", cfgPath, "--scorer", "plain", "--to", "other", "--reason", "r")
	fails("--to MODEL or --challenger, one of them", append(promote, "--to", "failure_v2", "--challenger", "--reason", "r")...)

	out := must(append(promote, "--challenger", "--create-table", "--by", "tester",
		"--reason", "challenger auc 0.91 beats champion 0.87 by 0.04")...)
	if !strings.Contains(out, "scorer failure: failure_v2 (sha256:") || !strings.Contains(out, "replacing failure_v1 (generation 1)") {
		t.Errorf("promote printed %q", out)
	}
	out = must(status...)
	for _, want := range []string{"champion:    failure_v2 (sha256:", "examples/models/factory-demo.json", "previous:    failure_v1",
		"generation:  1 (promote)", "reason:      challenger auc 0.91 beats champion 0.87 by 0.04", "by:          tester"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "plain") {
		t.Errorf("status shows a scorer without a promotion section:\n%s", out)
	}

	// The decision pins what was promoted: the file's digest.
	st, err := dynamo.NewStore(env.DynamoDB, dynamo.Config{Table: table, Pipeline: "promo-cli", Scorer: "failure"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Current(devstacktest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../../examples/models/factory-demo.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if d.Champion.SHA256 != hex.EncodeToString(sum[:]) || d.Champion.Version != "sha256:"+hex.EncodeToString(sum[:])[:16] {
		t.Errorf("champion %+v, want the digest %x", d.Champion, sum)
	}

	fails("already the champion", append(promote, "--challenger", "--reason", "again")...)
	fails("at generation 1, not the 0 expected", append(promote, "--to", "other", "--expect-generation", "0", "--reason", "stale")...)
	fails("model broken does not load, so it is not promoted", append(promote, "--to", "broken", "--reason", "r")...)
	fails(`no model "nope"`, append(promote, "--to", "nope", "--reason", "r")...)

	out = must("model", "rollback", "--config", cfgPath, "--scorer", "failure", "--reason", "false alarms doubled", "--by", "oncall")
	if !strings.Contains(out, "scorer failure: rolled back to failure_v1, replacing failure_v2 (sha256:") || !strings.Contains(out, "(generation 2)") {
		t.Errorf("rollback printed %q", out)
	}
	out = must(append(status, "--scorer", "failure", "--history")...)
	for _, want := range []string{"champion:    failure_v1", "previous:    failure_v2", "generation:  2 (rollback)", "reason:      false alarms doubled",
		"by:          oncall", "  2  ", "rollback  failure_v1", "  1  ", "promote   failure_v2"} {
		if !strings.Contains(out, want) {
			t.Errorf("status --history lacks %q:\n%s", want, out)
		}
	}
}

// TestModelPromoteAnnouncesTheDecision: a decision made by hand goes out
// as the pipeline's own do, a Model Promoted (then Model Rolled Back)
// event on the bus of monitor.retrain, so whatever follows the pipeline's
// decisions (a deployment record, a chat channel) sees these too.
func TestModelPromoteAnnouncesTheDecision(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bus := env.CreateEventBus(t)
	queue := env.CreateEventRule(t, bus, `{"source":["streamscore"],"detail-type":["Model Promoted","Model Rolled Back"]}`)
	table := env.Name("promotions-announce")
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "promo.yaml")
	cfg := strings.NewReplacer("TABLE", table, "BROKEN", "unused.json").Replace(promoteConfig) + "  retrain: {event_bus: " + bus + "}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, kv := range env.Endpoints.EnvVars() {
		vars = append(vars, kv[0]+"="+kv[1])
	}
	for _, args := range [][]string{
		{"model", "promote", "--config", cfgPath, "--scorer", "failure", "--challenger", "--create-table", "--by", "tester", "--reason", "auc 0.91 vs 0.87"},
		{"model", "rollback", "--config", cfgPath, "--scorer", "failure", "--by", "oncall", "--reason", "false alarms doubled"},
	} {
		out, errOut, err := run(t, vars, args...)
		if err != nil || !strings.Contains(out, "announced: ") || errOut != "" {
			t.Fatalf("streamscore %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
	}
	var got []retrain.ModelDecision
	var types []string
	deadline := time.Now().Add(time.Minute)
	for len(got) < 2 && time.Now().Before(deadline) {
		res, err := env.EventSQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			var ev struct {
				DetailType string                `json:"detail-type"`
				Detail     retrain.ModelDecision `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatalf("event %s: %v", aws.ToString(m.Body), err)
			}
			got, types = append(got, ev.Detail), append(types, ev.DetailType)
			// Deleted once read: an unread message would come back after
			// the queue's visibility timeout and count twice.
			if _, err := env.EventSQS().DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.SortFunc(got, func(a, b retrain.ModelDecision) int { return int(a.Generation - b.Generation) })
	if len(got) != 2 || got[0].Generation != 1 || got[0].Champion.Key != "failure_v2" || got[0].By != "tester" ||
		got[1].Generation != 2 || got[1].Action != "rollback" || got[1].Champion.Key != "failure_v1" || got[1].Reason != "false alarms doubled" {
		t.Fatalf("events %v %+v, want the promotion of failure_v2 (generation 1) and its rollback (generation 2)", types, got)
	}
}
