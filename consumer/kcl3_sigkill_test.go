package consumer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// childEnv names the environment a child worker process reads: set, the
// test binary runs runChildWorker (from TestMain) until it is killed.
const childEnv = "STREAMSCORE_KCL3_CHILD"

// runChildWorker is the worker process TestKCL3LeaderSIGKILL kills: a 3x
// consumer on the table and stream its environment names, bound to the
// local stack through the standard AWS_ENDPOINT_URL_* variables. It runs
// until killed; a setup failure exits non-zero, which the parent sees as
// the child never leading.
func runChildWorker() int {
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child worker:", err)
		return 2
	}
	c, err := New(kcl3Config(os.Getenv(childEnv+"_TABLE"), "child", os.Getenv(childEnv+"_STREAM")),
		kinesis.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg))
	if err == nil {
		err = c.Run(ctx, ProcessFunc(func(ctx context.Context, b *Batch) error {
			if len(b.Records) == 0 {
				return nil
			}
			return b.Checkpointer.MarkDurable(b.Last())
		}))
	}
	fmt.Fprintln(os.Stderr, "child worker stopped:", err)
	return 2
}

// TestKCL3LeaderSIGKILL: the leader is a worker process of its own, killed
// with SIGKILL while it leads and holds leases, so it releases nothing.
// The surviving worker takes the lock once the lock's lease has run out
// on its own clock, never before, and then takes the dead worker's leases
// once they expire; nothing written after the kill is lost.
func TestKCL3LeaderSIGKILL(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 4)
	table := env.Name("kcl3sigkill")

	child := exec.Command(os.Args[0], "-test.timeout=10m")
	child.Stderr = os.Stderr // a child that fails to start says why
	child.Env = append(os.Environ(), childEnv+"=1", childEnv+"_TABLE="+table, childEnv+"_STREAM="+stream)
	for _, kv := range env.Endpoints.EnvVars() {
		child.Env = append(child.Env, kv[0]+"="+kv[1])
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	leader := func() string {
		out, err := env.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{
			TableName: aws.String(table), Key: keyOf("Leader"), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return ""
		}
		if v, ok := out.Item["ownerName"].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	waitFor(t, 2*time.Minute, "the child process leading and holding all four leases", func() bool {
		return leader() == "child" && owners(t, env.DynamoDB, table)["child"] == 4
	})
	col := newCollector()
	w2 := newConsumer(t, kcl3Config(table, "w2", stream), env.Kinesis, env.DynamoDB)
	run(t, w2, col.handler("w2", nil))
	waitFor(t, 2*time.Minute, "w2 holding leases", func() bool { return len(w2.HeldLeases()) > 0 })

	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	killed := time.Now()
	want := produce(t, env.Kinesis, stream, 200, "after-kill")
	d := waitFor(t, 2*time.Minute, "w2 leading", func() bool { return testutil.ToFloat64(w2.m.leader) == 1 })
	lease := kcl3Config(table, "w2", stream).KCL3.Leader
	t.Logf("new leader %v after SIGKILL (lock lease %v, heartbeat %v)", d, lease.LeaseDuration, lease.Heartbeat)
	// The lock is taken only after its version stood still for the lease
	// on w2's clock; w2 may have first seen that version up to one
	// heartbeat before the kill.
	if d < lease.LeaseDuration-lease.Heartbeat {
		t.Errorf("w2 took the lock %v after the kill, before the lock's lease (%v) could have run out", d, lease.LeaseDuration)
	}
	waitFor(t, 2*time.Minute, "w2 holding all four leases", func() bool { return len(w2.HeldLeases()) == 4 })
	t.Logf("all leases on w2 %v after SIGKILL", time.Since(killed))
	waitFor(t, time.Minute, "every record written after the kill delivered", func() bool { return col.has(want) == 0 })
}
