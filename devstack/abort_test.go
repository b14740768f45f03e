package devstack_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// A client that drops its connection in the middle of a request body (a
// cancelled call, toxiproxy's reset_peer) must not take the local DynamoDB
// down for every other test: dynalite rethrows such a request's error and
// died of it before the client-abort.js preload.
func TestDynamoDBSurvivesAbortedRequests(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	abortRequests(t, env.Endpoints.DynamoDB, "DynamoDB_20120810.ListTables", "application/x-amz-json-1.0")
	if _, err := env.DynamoDB.ListTables(devstacktest.Ctx(t), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("DynamoDB after three aborted requests: %v", err)
	}
}

func deadlineSoon() time.Time { return time.Now().Add(300 * time.Millisecond) }
