package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// The test binary run again as a worker process to be killed
		// (TestKCL3LeaderSIGKILL): no test runs in it.
		os.Exit(runChildWorker())
	}
	os.Exit(devstacktest.Main(m))
}

// Test timings: short enough for a test, with Java KCL's ratios.
const (
	testFailover = 3 * time.Second
	testRenew    = time.Second
)

func testConfig(table, worker string, streams ...string) Config {
	cfg := Config{
		ApplicationName:    table,
		WorkerID:           worker,
		FailoverTime:       testFailover,
		RenewInterval:      testRenew,
		ShardSyncInterval:  2 * time.Second,
		ParentPollInterval: 200 * time.Millisecond,
		IdleInterval:       100 * time.Millisecond,
	}
	for _, s := range streams {
		cfg.Streams = append(cfg.Streams, StreamConfig{Name: s, InitialPosition: TrimHorizon})
	}
	return cfg
}

// key identifies one user record.
type key struct {
	shard, seq string
	sub        uint64
}

// delivery is one record as a handler saw it.
type delivery struct {
	key
	worker string
	order  int64 // global delivery order across workers
	pk     string
	data   string
	err    error
}

// collector records every delivery and marks each batch durable once it
// has been recorded, as a pipeline with an instant sink would.
type collector struct {
	mu    sync.Mutex
	order atomic.Int64
	all   []delivery
	count map[key]int
}

func newCollector() *collector { return &collector{count: map[key]int{}} }

func (c *collector) handler(worker string, alive func() bool) ProcessorFactory {
	return ProcessFunc(c.deliver(worker, alive))
}

// deliver is the collector's processing function, for tests that wrap it.
func (c *collector) deliver(worker string, alive func() bool) func(context.Context, *Batch) error {
	return func(ctx context.Context, b *Batch) error {
		if alive != nil && !alive() {
			return nil // a dead process delivers nothing and checkpoints nothing
		}
		c.mu.Lock()
		for _, r := range b.Records {
			k := key{r.ShardID, r.SequenceNumber, r.SubSequenceNumber}
			c.count[k]++
			c.all = append(c.all, delivery{key: k, worker: worker, order: c.order.Add(1), pk: r.PartitionKey, data: string(r.Data), err: r.Err})
		}
		c.mu.Unlock()
		if len(b.Records) > 0 {
			if err := b.Checkpointer.MarkDurable(b.Last()); err != nil && !errors.Is(err, ErrLeaseLost) {
				return err
			}
		}
		return nil
	}
}

func (c *collector) deliveries() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]delivery(nil), c.all...)
}

func (c *collector) has(ks []key) (missing int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range ks {
		if c.count[k] == 0 {
			missing++
		}
	}
	return missing
}

// produce writes n records with random partition keys and returns their
// keys in the order Kinesis acknowledged them.
func produce(t testing.TB, k *kinesis.Client, stream string, n int, tag string) []key {
	t.Helper()
	var out []key
	for sent := 0; sent < n; {
		batch := min(n-sent, 100)
		entries := make([]ktypes.PutRecordsRequestEntry, batch)
		for i := range entries {
			entries[i] = ktypes.PutRecordsRequestEntry{
				PartitionKey: aws.String(strconv.FormatUint(rand.Uint64(), 36)),
				Data:         []byte(fmt.Sprintf("%s-%d", tag, sent+i)),
			}
		}
		res, err := k.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: &stream, Records: entries})
		if err != nil {
			t.Fatalf("put records: %v", err)
		}
		var retry int
		for _, r := range res.Records {
			if r.ErrorCode != nil {
				retry++
				continue
			}
			out = append(out, key{shard: *r.ShardId, seq: *r.SequenceNumber})
		}
		sent += batch - retry
	}
	return out
}

// run starts a consumer in the background; stop cancels it and waits.
func run(t testing.TB, c *Consumer, h ProcessorFactory) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := c.Run(ctx, h)
		if err != nil && ctx.Err() == nil {
			t.Errorf("worker %s stopped: %v", c.WorkerID(), err)
		}
		done <- err
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// owners scans the lease table: unfinished leases per owner ("" = unowned).
func owners(t *testing.T, db *dynamodb.Client, table string) map[string]int {
	t.Helper()
	lt := &leaseTable{db: db, name: table}
	ls, err := lt.list(context.Background())
	var nf *dtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil // the workers have not created it yet
	}
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, l := range ls {
		if !l.finished() {
			m[l.owner]++
		}
	}
	return m
}

func newConsumer(t testing.TB, cfg Config, k KinesisAPI, db DynamoDBAPI, opts ...Option) *Consumer {
	t.Helper()
	c, err := New(cfg, k, db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBalanceTwoThenThreeWorkers(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 8)
	table := env.Name("leases")
	col := newCollector()
	for _, w := range []string{"w1", "w2"} {
		run(t, newConsumer(t, testConfig(table, w, stream), env.Kinesis, env.DynamoDB), col.handler(w, nil))
	}
	d := waitFor(t, 60*time.Second, "4/4 spread", func() bool {
		o := owners(t, env.DynamoDB, table)
		return o["w1"] == 4 && o["w2"] == 4
	})
	t.Logf("two workers settled at 4/4 after %v", d)
	run(t, newConsumer(t, testConfig(table, "w3", stream), env.Kinesis, env.DynamoDB), col.handler("w3", nil))
	d = waitFor(t, 60*time.Second, "3/3/2 spread", func() bool {
		o := owners(t, env.DynamoDB, table)
		counts := []int{o["w1"], o["w2"], o["w3"]}
		sort.Ints(counts)
		return counts[0] == 2 && counts[1] == 3 && counts[2] == 3
	})
	t.Logf("three workers settled at 3/3/2 after %v: %v", d, owners(t, env.DynamoDB, table))
}
