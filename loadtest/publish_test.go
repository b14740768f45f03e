package loadtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// readAll reads every record of every shard from TRIM_HORIZON.
func readAll(t *testing.T, env *devstacktest.Env, stream string, want int) []types.Record {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	shards, err := env.Kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var out []types.Record
	for _, sh := range shards.Shards {
		it, err := env.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for empty := 0; iter != nil && empty < 3; {
			r, err := env.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Records) == 0 {
				empty++
			}
			out = append(out, r.Records...)
			iter = r.NextShardIterator
		}
	}
	if len(out) < want {
		t.Fatalf("read %d Kinesis records, want at least %d", len(out), want)
	}
	return out
}

func TestPublishDeliversEveryEvent(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	f := NewFleet(FleetConfig{Machines: 30, Start: t0, Seed: 11, DuplicateRate: 0})
	var events []Event
	f.Until(t0.Add(40*time.Second), func(e Event) { events = append(events, e) })
	if len(events) < 1000 {
		t.Fatalf("generated %d events, want over 1000 (more than two PutRecords calls)", len(events))
	}
	p := NewPublisher(env.Kinesis, PublisherConfig{Stream: stream})
	if err := p.Publish(devstacktest.Ctx(t), events); err != nil {
		t.Fatal(err)
	}
	if got := p.Records.Load(); got != int64(len(events)) {
		t.Errorf("publisher counted %d records, published %d", got, len(events))
	}
	if p.Calls.Load() < 3 {
		t.Errorf("%d events went out in %d PutRecords calls; the limit is 500 a call", len(events), p.Calls.Load())
	}
	recs := readAll(t, env, stream, len(events))
	want := map[string]int{}
	for _, e := range events {
		want[e.Key+"|"+string(e.Data)]++
	}
	for _, r := range recs {
		want[aws.ToString(r.PartitionKey)+"|"+string(r.Data)]--
	}
	for k, n := range want {
		if n != 0 {
			t.Fatalf("record %s: %d more published than read back", k, n)
		}
	}
}

func TestAggregatedRecordsReadByTheKPLLibrary(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	f := NewFleet(FleetConfig{Machines: 5, Start: t0, Seed: 5})
	var events []Event
	f.Until(t0.Add(60*time.Second), func(e Event) { events = append(events, e) })
	p := NewPublisher(env.Kinesis, PublisherConfig{Stream: stream, Aggregate: true})
	if err := p.Publish(devstacktest.Ctx(t), events); err != nil {
		t.Fatal(err)
	}
	if p.Records.Load() >= int64(len(events)) {
		t.Fatalf("%d events became %d Kinesis records: nothing was aggregated", len(events), p.Records.Load())
	}
	recs := readAll(t, env, stream, int(p.Records.Load()))
	type wire struct {
		PartitionKey string `json:"partitionKey"`
		Data         string `json:"data"`
	}
	in := make([]wire, len(recs))
	for i, r := range recs {
		in[i] = wire{aws.ToString(r.PartitionKey), base64.StdEncoding.EncodeToString(r.Data)}
	}
	users := deaggregateWithKPLLibrary(t, in)
	var got, want []string
	for _, u := range users {
		d, err := base64.StdEncoding.DecodeString(u.Data)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, u.PartitionKey+"|"+string(d))
	}
	for _, e := range events {
		want = append(want, e.Key+"|"+string(e.Data))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the KPL library read %d user records back, %d were published, or they differ", len(got), len(want))
	}
}

func deaggregateWithKPLLibrary(t *testing.T, in any) []struct {
	PartitionKey string `json:"partitionKey"`
	Data         string `json:"data"`
} {
	t.Helper()
	root, err := devstack.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(in)
	cmd := exec.Command("node", "testdata/kpl-deaggregate.js")
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(devstack.NodeDir(root), "node_modules"))
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node kpl-deaggregate.js: %v\n%s", err, stderr.String())
	}
	var users []struct {
		PartitionKey string `json:"partitionKey"`
		Data         string `json:"data"`
	}
	if err := json.Unmarshal(out, &users); err != nil {
		t.Fatal(fmt.Errorf("kpl-deaggregate.js output: %w", err))
	}
	return users
}

func TestAggregateRespectsTheRecordLimit(t *testing.T) {
	recs := make([][]byte, 200)
	for i := range recs {
		recs[i] = bytes.Repeat([]byte{'x'}, 100)
	}
	aggs := Aggregate("k", recs, 4096)
	if len(aggs) < 5 {
		t.Fatalf("200 records of 100 bytes in %d aggregates under a 4 KiB limit", len(aggs))
	}
	for i, a := range aggs {
		if len(a) > 4096 {
			t.Errorf("aggregate %d is %d bytes, over the 4096 limit", i, len(a))
		}
		if !bytes.HasPrefix(a, KPLMagic) {
			t.Errorf("aggregate %d lacks the KPL magic", i)
		}
	}
}

// TestSenderKeepsEachShardsOrder: events handed to a Sender in many small
// batches (as the run's 100 ms ticks do) all arrive, each machine's in the
// order given, and the done callbacks report every event once.
func TestSenderKeepsEachShardsOrder(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 4)
	f := NewFleet(FleetConfig{Machines: 40, Start: t0, Seed: 5})
	p := NewPublisher(env.Kinesis, PublisherConfig{Stream: stream, Aggregate: true})
	var mu sync.Mutex
	reported := 0
	s, err := p.Start(devstacktest.Ctx(t), func(evs []Event, _ time.Time) {
		mu.Lock()
		reported += len(evs)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	var sent []Event
	for tick := 1; tick <= 100; tick++ {
		var batch []Event
		f.Until(t0.Add(time.Duration(tick)*100*time.Millisecond), func(e Event) { batch = append(batch, e) })
		sent = append(sent, batch...)
		s.Send(batch)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if reported != len(sent) {
		t.Errorf("done reported %d events, %d were sent", reported, len(sent))
	}
	recs := readAll(t, env, stream, 1)
	d := consumer.NewDeaggregator()
	var got []consumer.Record
	for _, r := range recs {
		got = d.Deaggregate(got, r.Data, consumer.Record{PartitionKey: aws.ToString(r.PartitionKey)})
	}
	if len(got) != len(sent) {
		t.Fatalf("read back %d user records, sent %d", len(got), len(sent))
	}
	// readAll reads shard by shard in sequence order, so per key the
	// records must come back in the order they were handed over.
	order := map[string][]string{}
	for _, e := range sent {
		order[e.Key] = append(order[e.Key], string(e.Data))
	}
	for _, r := range got {
		want := order[r.PartitionKey]
		if len(want) == 0 || want[0] != string(r.Data) {
			t.Fatalf("machine %s: record out of order or unknown: %s", r.PartitionKey, r.Data)
		}
		order[r.PartitionKey] = want[1:]
	}
}
