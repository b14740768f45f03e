package devstack_test

import (
	"net"
	"net/url"
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
	u, err := url.Parse(env.Endpoints.DynamoDB)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("POST / HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/x-amz-json-1.0\r\n" +
			"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 100\r\n\r\n{\"Limit\":"))
		// Wait until the server has read the partial body, then reset.
		_ = c.(*net.TCPConn).SetLinger(0)
		buf := make([]byte, 1)
		_ = c.SetReadDeadline(deadlineSoon())
		_, _ = c.Read(buf)
		_ = c.Close()
	}
	if _, err := env.DynamoDB.ListTables(devstacktest.Ctx(t), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("DynamoDB after three aborted requests: %v", err)
	}
}

func deadlineSoon() time.Time { return time.Now().Add(300 * time.Millisecond) }
