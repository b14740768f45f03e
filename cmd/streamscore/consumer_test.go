package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// TestConsumerMigration drives `streamscore consumer migration` as an
// operator does during a move from KCL 2.x to 3.x lease sharing: status
// prints the recorded client version, rollback and rollforward move it
// (what every worker then follows), and a move from the wrong state is
// refused naming both.
func TestConsumerMigration(t *testing.T) {
	env := devstacktest.New(t)
	app := env.Name("migrate-cli")
	ctx := context.Background()
	if _, err := env.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(app),
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("leaseKey"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("leaseKey"), AttributeType: types.ScalarAttributeTypeS}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(app)})
	})
	for {
		out, err := env.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(app)})
		if err == nil && out.Table.TableStatus == types.TableStatusActive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfgPath := filepath.Join(t.TempDir(), "migrate.yaml")
	cfg := strings.Replace(reviewConfig, "pipeline: p\n", "pipeline: p\nconsumer:\n  application: "+app+"\n  client_version: 2x-compatible\n", 1)
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(cfg, "LABELS", "labels")), 0o644); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, kv := range env.Endpoints.EnvVars() {
		vars = append(vars, kv[0]+"="+kv[1])
	}
	cli := func(action string) (string, string, error) {
		return run(t, vars, "consumer", "migration", action, "--config", cfgPath, "--by", "oncall")
	}
	if _, errOut, err := cli("status"); err == nil || !strings.Contains(errOut, "no migration state") {
		t.Fatalf("status of an application without state: %v %q", err, errOut)
	}
	layout := coordstate.SingleTable(app)
	if _, err := coordstate.CreateMigration(ctx, env.DynamoDB, layout, coordstate.InitialMigration(coordstate.ClientVersionUpgradeFrom2X, "worker-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := cli("status")
	if err != nil || !strings.Contains(out, app+": CLIENT_VERSION_UPGRADE_FROM_2X (by worker-1") {
		t.Fatalf("status: %v %q %q", err, out, errOut)
	}
	out, errOut, err = cli("rollback")
	if err != nil || !strings.Contains(out, app+": CLIENT_VERSION_2X (by oncall") || !strings.Contains(out, "before: CLIENT_VERSION_UPGRADE_FROM_2X (by worker-1") {
		t.Fatalf("rollback: %v %q %q", err, out, errOut)
	}
	if _, errOut, err := cli("rollback"); err == nil || !strings.Contains(errOut, "has client version CLIENT_VERSION_2X; moving to CLIENT_VERSION_2X needs one of") {
		t.Fatalf("second rollback: %v %q", err, errOut)
	}
	if out, errOut, err := cli("rollforward"); err != nil || !strings.Contains(out, app+": CLIENT_VERSION_UPGRADE_FROM_2X (by oncall") {
		t.Fatalf("rollforward: %v %q %q", err, out, errOut)
	}
	m, _, err := coordstate.GetMigration(ctx, env.DynamoDB, layout)
	if err != nil || m.ClientVersion != coordstate.ClientVersionUpgradeFrom2X || len(m.History) != 3 {
		t.Fatalf("state after rollback and rollforward: %+v (%v), want UPGRADE_FROM_2X with three earlier states", m, err)
	}
}
