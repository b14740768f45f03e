package devstack_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/loadtest"
)

// The shape of the pipeline's traffic: the demo fleet's sensor readings on
// a 4-shard stream, published as the load generator does at 20,000 events/s
// (a 100 ms tick of 2,000 readings, one KPL aggregate per shard) or as plain
// records in PutRecords calls of 500.
const (
	benchShards   = 4
	benchMachines = 5000
	aggEvents     = 500 // user records per aggregate: 2,000 a tick over 4 shards
	plainPerCall  = 500 // the PutRecords maximum
	aggPerCall    = benchShards
	// inflight PutRecords calls at a time, as a producer with one sender
	// per shard keeps them.
	inflight = benchShards
)

// BenchmarkKinesisServers compares the local Kinesis servers on what the
// pipeline asks of Kinesis, side by side in one run. One op is one Kinesis
// record; records/s and user events/s (KPL user records) are reported.
//
//	go test -run '^$' -bench KinesisServers -count 5 ./devstack/
//
// Each server is started through devstack.Up (Kinesis only, on loopback)
// and stopped after its sub-benchmarks.
func BenchmarkKinesisServers(b *testing.B) {
	if testing.Short() {
		b.Skip("starts every local Kinesis server")
	}
	root, err := devstack.FindRoot(".")
	if err != nil {
		b.Fatal(err)
	}
	for _, server := range devstack.KinesisServers() {
		b.Run(string(server), func(b *testing.B) {
			k := startKinesis(b, root, server)
			for _, agg := range []bool{true, false} {
				kind := map[bool]string{true: "aggregated", false: "plain"}[agg]
				b.Run("put-"+kind, func(b *testing.B) { benchPut(b, k, agg) })
				b.Run("get-"+kind, func(b *testing.B) { benchGet(b, k, agg) })
			}
		})
	}
}

// startKinesis runs one Kinesis server in a stack of its own, stopped when
// b ends (or killed with the test binary).
func startKinesis(b *testing.B, root string, server devstack.KinesisServer) *kinesis.Client {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := devstack.Up(ctx, devstack.Config{Root: root, Dir: b.TempDir(), Services: []devstack.Service{devstack.Kinesis},
		KinesisServer: server, DieWithParent: true})
	if err != nil {
		b.Fatalf("starting %s: %v", server, err)
	}
	b.Cleanup(func() { _ = st.Down(context.Background()) })
	return st.Endpoints.Clients().Kinesis
}

// benchRecords renders n Kinesis records: plain readings, or KPL aggregates
// of aggEvents readings each (one shard's share of a tick); events is the
// user records they carry.
func benchRecords(n int, agg bool, seed uint64) (recs []kintypes.PutRecordsRequestEntry, events int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	at := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	reading := func(machine int) loadtest.Event {
		key := fmt.Sprintf("press-%04d", machine)
		var d []byte
		d = append(d, `{"machine_id":"`...)
		d = append(d, key...)
		d = append(d, `","ts":"`...)
		d = at.Add(time.Duration(rng.IntN(60_000))*time.Millisecond).AppendFormat(d, "2006-01-02T15:04:05.000Z")
		d = append(d, `","temperature_c":`...)
		d = strconv.AppendFloat(d, 60+rng.Float64()*20, 'f', 3, 64)
		d = append(d, `,"vibration_rms":`...)
		d = strconv.AppendFloat(d, 1+rng.Float64(), 'f', 3, 64)
		d = append(d, `,"pressure_bar":`...)
		d = strconv.AppendFloat(d, 5+rng.Float64(), 'f', 3, 64)
		d = append(d, `,"rpm":`...)
		d = strconv.AppendInt(d, 1400+rng.Int64N(200), 10)
		d = append(d, `,"current_a":`...)
		d = strconv.AppendFloat(d, 10+rng.Float64()*3, 'f', 3, 64)
		d = append(d, `,"line":"assembly-`...)
		d = strconv.AppendInt(d, int64(machine%12), 10)
		d = append(d, `","firmware":"4.2.17"}`...)
		return loadtest.Event{Key: key, Data: d}
	}
	if !agg {
		for range n {
			e := reading(rng.IntN(benchMachines))
			recs = append(recs, kintypes.PutRecordsRequestEntry{PartitionKey: aws.String(e.Key), Data: e.Data})
		}
		return recs, n
	}
	for i := range n {
		// Machines whose keys hash to shard i%4, as the publisher groups them.
		want := i % benchShards
		var evs []loadtest.Event
		for len(evs) < aggEvents {
			if m := rng.IntN(benchMachines); shardOf(fmt.Sprintf("press-%04d", m)) == want {
				evs = append(evs, reading(m))
			}
		}
		data, k := loadtest.AggregateKeys(evs, 1<<20)
		if k != len(evs) {
			panic(fmt.Sprintf("an aggregate took %d of %d readings", k, len(evs)))
		}
		recs = append(recs, kintypes.PutRecordsRequestEntry{PartitionKey: aws.String(evs[0].Key), Data: data})
		events += k
	}
	return recs, events
}

// shardOf is the shard of a key on a stream of benchShards even shards:
// the top two bits of the key's MD5.
func shardOf(key string) int {
	sum := md5.Sum([]byte(key))
	return int(sum[0] >> 6)
}

func newBenchStream(b *testing.B, k *kinesis.Client) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := fmt.Sprintf("bench-%d", rand.Int64())
	if _, err := devstack.EnsureStream(ctx, k, name, benchShards); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = k.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	return name
}

// putAll sends the records with inflight PutRecords calls at a time,
// retrying the records a call reports as failed. It returns how many
// records had to be retried and how many each shard took (as PutRecords
// reported: servers map keys to shards their own way).
func putAll(ctx context.Context, k *kinesis.Client, stream string, recs []kintypes.PutRecordsRequestEntry, perCall int) (int64, map[string]int, error) {
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		retried atomic.Int64
		errOnce sync.Once
		first   error
		mu      sync.Mutex
		shards  = map[string]int{}
	)
	for range inflight {
		wg.Go(func() {
			for {
				lo := int(next.Add(int64(perCall))) - perCall
				if lo >= len(recs) {
					return
				}
				batch := recs[lo:min(lo+perCall, len(recs))]
				for attempt := 0; len(batch) > 0; attempt++ {
					if attempt == 50 {
						errOnce.Do(func() { first = fmt.Errorf("%d records still failing after 50 attempts", len(batch)) })
						return
					}
					out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: batch})
					if err != nil {
						errOnce.Do(func() { first = err })
						return
					}
					var failed []kintypes.PutRecordsRequestEntry
					mu.Lock()
					for i, r := range out.Records {
						if r.ErrorCode != nil {
							failed = append(failed, batch[i])
						} else {
							shards[aws.ToString(r.ShardId)]++
						}
					}
					mu.Unlock()
					if len(failed) > 0 {
						retried.Add(int64(len(failed)))
						time.Sleep(time.Duration(10*(attempt+1)) * time.Millisecond)
					}
					batch = failed
				}
			}
		})
	}
	wg.Wait()
	return retried.Load(), shards, first
}

func benchPut(b *testing.B, k *kinesis.Client, agg bool) {
	stream := newBenchStream(b, k)
	recs, events := benchRecords(b.N, agg, uint64(b.N))
	perCall := plainPerCall
	if agg {
		perCall = aggPerCall
	}
	b.SetBytes(int64(len(recs[0].Data)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	retried, _, err := putAll(ctx, k, stream, recs, perCall)
	b.StopTimer()
	if err != nil {
		b.Fatalf("PutRecords: %v", err)
	}
	report(b, events, retried)
}

func benchGet(b *testing.B, k *kinesis.Client, agg bool) {
	stream := newBenchStream(b, k)
	recs, events := benchRecords(b.N, agg, uint64(b.N)+7)
	perCall := plainPerCall
	if agg {
		perCall = aggPerCall
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, want, err := putAll(ctx, k, stream, recs, perCall)
	if err != nil {
		b.Fatalf("filling the stream: %v", err)
	}
	shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		b.Fatal(err)
	}
	if len(shards.Shards) != benchShards {
		b.Fatalf("stream has %d shards, want %d", len(shards.Shards), benchShards)
	}
	b.SetBytes(int64(len(recs[0].Data)))
	b.ResetTimer()
	// One reader per shard, as the consumer runs them: TRIM_HORIZON, then
	// GetRecords (up to 10,000 records a call) until the shard is drained.
	var wg sync.WaitGroup
	errs := make([]error, benchShards)
	for i, sh := range shards.Shards {
		id := aws.ToString(sh.ShardId)
		wg.Go(func() { errs[i] = drain(ctx, k, stream, id, want[id]) })
	}
	wg.Wait()
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	report(b, events, 0)
}

func drain(ctx context.Context, k *kinesis.Client, stream, shardID string, want int) error {
	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(shardID), ShardIteratorType: kintypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		return err
	}
	iter, got, empty := it.ShardIterator, 0, 0
	for got < want {
		out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			return fmt.Errorf("GetRecords on %s: %w", shardID, err)
		}
		got += len(out.Records)
		if len(out.Records) == 0 {
			if empty++; empty > 100 {
				return fmt.Errorf("%s: read %d of %d records, then nothing in 100 calls", shardID, got, want)
			}
		}
		if iter = out.NextShardIterator; iter == nil {
			break
		}
	}
	if got != want {
		return fmt.Errorf("%s: read %d records, want %d", shardID, got, want)
	}
	return nil
}

func report(b *testing.B, events int, retried int64) {
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/s, "records/s")
	b.ReportMetric(float64(events)/s, "events/s")
	b.ReportMetric(float64(retried)/float64(b.N), "retries/op")
}
