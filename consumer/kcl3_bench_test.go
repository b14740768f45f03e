package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// Benchmarks of ClientVersion3X against the real local servers (issue 16):
// what users pay in DynamoDB calls at Java's default timings, and how long
// balancing, hand-offs and leader failover take at the test timings
// (kcl3Config). Run with:
//
//	go test -run '^$' -bench 'KCL3' -benchtime 1x -count 3 ./consumer/
//
// The helpers here take testing.TB; kcl3_test.go's producer and lease
// readers take *testing.T and cannot serve a benchmark.

// callsWarmupLimit and callsWindow bound BenchmarkKCL3Calls: the fleets
// must hold every lease within the first, then calls are counted over the
// second (three of the leader lock's 40 s heartbeat periods at defaults).
const (
	callsWarmupLimit = 3 * time.Minute
	callsWindow      = 2 * time.Minute
)

// The DynamoDB operations the consumer makes, as counted: reads and
// writes are the data-plane operations DynamoDB bills per request; the
// table operations (DescribeTable, CreateTable, UpdateTable) are not
// billed.
func dynamoOps() (reads, writes, tables []string) {
	return []string{"GetItem", "Query", "Scan"}, []string{"PutItem", "UpdateItem", "DeleteItem"}, []string{"DescribeTable", "CreateTable", "UpdateTable"}
}

// callCount is one worker's DynamoDB calls per operation and the capacity
// units the server reported as consumed.
type callCount struct {
	calls    map[string]int
	rcu, wcu float64
}

func (c callCount) sum(ops []string) int {
	n := 0
	for _, op := range ops {
		n += c.calls[op]
	}
	return n
}

// minus is c less an earlier snapshot.
func (c callCount) minus(o callCount) callCount {
	d := callCount{calls: map[string]int{}, rcu: c.rcu - o.rcu, wcu: c.wcu - o.wcu}
	for op, n := range c.calls {
		d.calls[op] = n - o.calls[op]
	}
	return d
}

// countingDynamo decorates one worker's real DynamoDB client, counting
// every call the consumer makes (the SDK's own retries inside a call are
// not seen) and asking the server for the capacity each consumed. It is
// not a fake: every call goes to the real server.
type countingDynamo struct {
	d  DynamoDBAPI
	mu sync.Mutex
	c  callCount
}

func newCountingDynamo(d DynamoDBAPI) *countingDynamo {
	return &countingDynamo{d: d, c: callCount{calls: map[string]int{}}}
}

func (d *countingDynamo) add(op string, used ...types.ConsumedCapacity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.c.calls[op]++
	for _, u := range used {
		if u.ReadCapacityUnits != nil {
			d.c.rcu += *u.ReadCapacityUnits
		}
		if u.WriteCapacityUnits != nil {
			d.c.wcu += *u.WriteCapacityUnits
		}
		if u.ReadCapacityUnits == nil && u.WriteCapacityUnits == nil && u.CapacityUnits != nil {
			if reads, _, _ := dynamoOps(); slices.Contains(reads, op) {
				d.c.rcu += *u.CapacityUnits
			} else {
				d.c.wcu += *u.CapacityUnits
			}
		}
	}
}

func (d *countingDynamo) snapshot() callCount {
	d.mu.Lock()
	defer d.mu.Unlock()
	return callCount{calls: maps.Clone(d.c.calls), rcu: d.c.rcu, wcu: d.c.wcu}
}

func capOf(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}

func (d *countingDynamo) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	d.add("CreateTable")
	return d.d.CreateTable(ctx, in, o...)
}
func (d *countingDynamo) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	d.add("DescribeTable")
	return d.d.DescribeTable(ctx, in, o...)
}
func (d *countingDynamo) UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error) {
	d.add("UpdateTable")
	return d.d.UpdateTable(ctx, in, o...)
}
func (d *countingDynamo) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	cp := *in
	cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := d.d.Scan(ctx, &cp, o...)
	if err != nil {
		d.add("Scan")
		return out, err
	}
	d.add("Scan", capOf(out.ConsumedCapacity)...)
	return out, nil
}
func (d *countingDynamo) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	cp := *in
	cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := d.d.Query(ctx, &cp, o...)
	if err != nil {
		d.add("Query")
		return out, err
	}
	d.add("Query", capOf(out.ConsumedCapacity)...)
	return out, nil
}
func (d *countingDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	cp := *in
	cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := d.d.GetItem(ctx, &cp, o...)
	if err != nil {
		d.add("GetItem")
		return out, err
	}
	d.add("GetItem", capOf(out.ConsumedCapacity)...)
	return out, nil
}
func (d *countingDynamo) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	cp := *in
	cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := d.d.PutItem(ctx, &cp, o...)
	if err != nil {
		d.add("PutItem")
		return out, err
	}
	d.add("PutItem", capOf(out.ConsumedCapacity)...)
	return out, nil
}
func (d *countingDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	cp := *in
	cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := d.d.UpdateItem(ctx, &cp, o...)
	if err != nil {
		d.add("UpdateItem")
		return out, err
	}
	d.add("UpdateItem", capOf(out.ConsumedCapacity)...)
	return out, nil
}
func (d *countingDynamo) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	cp := *in
	cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := d.d.DeleteItem(ctx, &cp, o...)
	if err != nil {
		d.add("DeleteItem")
		return out, err
	}
	d.add("DeleteItem", capOf(out.ConsumedCapacity)...)
	return out, nil
}

// benchLogger keeps benchmark output readable: warnings only, or nothing
// for a worker about to be killed (its every call fails from then on).
func benchLogger(quiet bool) Option {
	if quiet {
		return WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	return WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// benchStart runs c until the benchmark ends, and fails it if Run returns
// an error before then.
func benchStart(tb testing.TB, c *Consumer) {
	tb.Helper()
	run(tb, c, ProcessFunc(func(context.Context, *Batch) error { return nil }))
}

// benchLeases reads the unfinished leases of table (nil before the
// workers created it).
func benchLeases(db DynamoDBAPI, table string) map[string]lease {
	ls, err := (&leaseTable{db: db, name: table}).list(context.Background())
	if err != nil {
		return nil
	}
	m := map[string]lease{}
	for _, l := range ls {
		if !l.finished() {
			m[l.key] = l
		}
	}
	return m
}

func heldTotal(ws []*Consumer) int {
	n := 0
	for _, w := range ws {
		n += len(w.HeldLeases())
	}
	return n
}

func isLeader(c *Consumer) bool { return testutil.ToFloat64(c.m.leader) == 1 }

func median(ds []float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkKCL3Calls counts the DynamoDB calls per worker per minute that
// users pay for, at Java KCL's default timings (nothing set: FailoverTime
// 10 s, renewal every 3.33 s, shard sync 60 s; in 3x the leader assigns
// every 20 s and balances every third round, workers look for their
// leases every 10 s, report metrics every 30 s and sample CPU every
// second, and the leader lock lasts 120 s with a 30 s heartbeat). Two
// fleets run side by side on the same servers: 4 workers in
// ClientVersion3X on one 8-shard stream, 4 in ClientVersion2X on another,
// each stream written to at 10 records/s. Once each fleet holds all 8
// leases, calls are counted over callsWindow. Reads are GetItem, Query and
// Scan; writes PutItem, UpdateItem and DeleteItem; table operations are
// not billed and reported apart. Capacity units are as the local server
// computes them (a Scan is billed by the size it reads, not per call).
// Takes about 3 minutes; skipped with -short.
func BenchmarkKCL3Calls(b *testing.B) {
	if testing.Short() {
		b.Skip("runs for minutes at production timings")
	}
	env := devstacktest.New(b)
	for i := 0; i < b.N; i++ {
		type fleet struct {
			version  ClientVersion
			workers  []*Consumer
			counters []*countingDynamo
		}
		var fleets []*fleet
		for _, v := range []ClientVersion{ClientVersion3X, ClientVersion2X} {
			stream := env.CreateStream(b, 8)
			startProducer(b, env.Kinesis, stream, 100*time.Millisecond, 100, 1, nil)
			table := env.Name("calls" + string(v))
			f := &fleet{version: v}
			for w := range 4 {
				cfg := Config{ApplicationName: table, WorkerID: fmt.Sprintf("w%d", w+1), ClientVersion: v,
					Streams: []StreamConfig{{Name: stream, InitialPosition: TrimHorizon}}}
				cd := newCountingDynamo(env.DynamoDB)
				c := newConsumer(b, cfg, env.Kinesis, cd, benchLogger(false))
				benchStart(b, c)
				f.workers = append(f.workers, c)
				f.counters = append(f.counters, cd)
			}
			fleets = append(fleets, f)
		}
		for _, f := range fleets {
			d := waitFor(b, callsWarmupLimit, string(f.version)+" fleet holding all 8 leases", func() bool { return heldTotal(f.workers) == 8 })
			b.Logf("%s fleet: all 8 leases held %v after the start", f.version, d)
		}
		type point struct {
			calls  callCount
			gained float64
		}
		before := map[*countingDynamo]point{}
		leadersBefore := map[*Consumer]bool{}
		for _, f := range fleets {
			for j, c := range f.workers {
				before[f.counters[j]] = point{f.counters[j].snapshot(), testutil.ToFloat64(c.m.leasesGained)}
				leadersBefore[c] = isLeader(c)
			}
		}
		start := time.Now()
		time.Sleep(callsWindow)
		minutes := time.Since(start).Minutes()
		reads, writes, tables := dynamoOps()
		for _, f := range fleets {
			var leaderR, leaderW, leaderRCU, leaderWCU float64
			var otherR, otherW, otherRCU, otherWCU float64
			others := 0
			for j, c := range f.workers {
				d := f.counters[j].snapshot().minus(before[f.counters[j]].calls)
				moves := testutil.ToFloat64(c.m.leasesGained) - before[f.counters[j]].gained
				lead := isLeader(c)
				if lead != leadersBefore[c] {
					b.Logf("%s %s: leadership changed during the window", f.version, c.WorkerID())
				}
				r, w := float64(d.sum(reads))/minutes, float64(d.sum(writes))/minutes
				var ops []string
				for _, op := range slices.Concat(reads, writes, tables) {
					if d.calls[op] > 0 {
						ops = append(ops, fmt.Sprintf("%s %.1f", op, float64(d.calls[op])/minutes))
					}
				}
				b.Logf("%s %s (leader %v, %d leases, %v gained in window): %.1f reads/min, %.1f writes/min, %.2f RCU/min, %.2f WCU/min; per op/min: %s",
					f.version, c.WorkerID(), lead, len(c.HeldLeases()), moves, r, w, d.rcu/minutes, d.wcu/minutes, strings.Join(ops, ", "))
				if f.version == ClientVersion3X && lead {
					leaderR, leaderW, leaderRCU, leaderWCU = r, w, d.rcu/minutes, d.wcu/minutes
					continue
				}
				otherR, otherW, otherRCU, otherWCU = otherR+r, otherW+w, otherRCU+d.rcu/minutes, otherWCU+d.wcu/minutes
				others++
			}
			n := float64(others)
			if f.version == ClientVersion3X {
				if others != 3 {
					b.Fatalf("3x fleet has %d leaders, want 1", 4-others)
				}
				b.ReportMetric(leaderR, "3x-leader-reads/min")
				b.ReportMetric(leaderW, "3x-leader-writes/min")
				b.ReportMetric(leaderRCU, "3x-leader-RCU/min")
				b.ReportMetric(leaderWCU, "3x-leader-WCU/min")
				b.ReportMetric(otherR/n, "3x-worker-reads/min")
				b.ReportMetric(otherW/n, "3x-worker-writes/min")
				b.ReportMetric(otherRCU/n, "3x-worker-RCU/min")
				b.ReportMetric(otherWCU/n, "3x-worker-WCU/min")
			} else {
				b.ReportMetric(otherR/n, "2x-worker-reads/min")
				b.ReportMetric(otherW/n, "2x-worker-writes/min")
				b.ReportMetric(otherRCU/n, "2x-worker-RCU/min")
				b.ReportMetric(otherWCU/n, "2x-worker-WCU/min")
			}
		}
	}
}

// hotWeights is TestKCL3BalancesHotShardsByThroughput's load: 16 shards
// written at 1 to 20 units each.
func hotWeights() (map[string]int, int) {
	weights := map[string]int{}
	total := 0
	for i := range 16 {
		w := 1 + 19*i/15
		weights[fmt.Sprintf("shardId-%012d", i)] = w
		total += w
	}
	return weights, total
}

// BenchmarkKCL3HotShardConvergence measures how long 4 workers starting
// together on 16 shards whose write rates differ 20x take to converge, as
// TestKCL3BalancesHotShardsByThroughput judges it (the written rate within
// 20% of the mean, or one unit, on every worker; every lease's throughput
// measured; no hand-off in flight), at the test timings of kcl3Config:
// failover 3 s, renewal 1 s, assignment every 2 s, balancing every third
// round (6 s). The time reported is from the workers' start to the last
// lease move before two quiet balancing rounds (12 s), which confirm it.
func BenchmarkKCL3HotShardConvergence(b *testing.B) {
	const threshold = 20
	env := devstacktest.New(b)
	weights, total := hotWeights()
	mean := float64(total) / 4
	for i := 0; i < b.N; i++ {
		stream := env.CreateStream(b, 16)
		table := env.Name("benchhot")
		startProducer(b, env.Kinesis, stream, 100*time.Millisecond, 100, 0, weights)
		start := time.Now()
		var ws []*Consumer
		for _, id := range []string{"w1", "w2", "w3", "w4"} {
			cfg := kcl3Config(table, id, stream)
			cfg.KCL3.Assign.ReBalanceThresholdPercent = threshold
			c := newConsumer(b, cfg, env.Kinesis, env.DynamoDB, benchLogger(false))
			benchStart(b, c)
			ws = append(ws, c)
		}
		var allHeld, firstBalanced time.Duration
		var quietSince time.Time
		var owned map[string]string
		moves := -16 // the first assignment of each lease is not a move
		var timeline []string
		var last string
		converge := func() bool {
			ls := benchLeases(env.DynamoDB, table)
			now := map[string]string{}
			per := map[string]int{}
			ok := len(ls) == 16
			for k, l := range ls {
				now[k] = l.owner
				if owned[k] != l.owner && l.owner != "" {
					moves++
					if owned[k] != "" {
						timeline = append(timeline, fmt.Sprintf("%.1fs %s(w%d, %.1f KBps) %s->%s", time.Since(start).Seconds(), k[len(k)-2:], weights[k], l.throughput, owned[k], l.owner))
					}
				}
				per[l.owner] += weights[k]
				ok = ok && l.owner != "" && l.checkpointOwner == "" && l.hasThroughput && l.throughput > 0
			}
			if allHeld == 0 && heldTotal(ws) == 16 {
				allHeld = time.Since(start)
			}
			kb := map[string]string{}
			sum := map[string]float64{}
			for k, l := range ls {
				kb[k[len(k)-2:]] = fmt.Sprintf("w%d:%.1f", weights[k], l.throughput)
				sum[l.owner] += l.throughput
			}
			last = fmt.Sprintf("leases %d, written units per worker %v (mean %.1f), measured KBps per worker %v, per lease (weight:KBps) %v", len(ls), per, mean, sum, kb)
			ok = ok && len(per) == 4
			for _, v := range per {
				ok = ok && float64(v) <= mean*(1+threshold/100.0)+1 && float64(v) >= mean*(1-threshold/100.0)-1
			}
			if ok && firstBalanced == 0 {
				firstBalanced = time.Since(start)
			}
			if !ok || !maps.Equal(now, owned) {
				owned, quietSince = now, time.Now()
				return false
			}
			return time.Since(quietSince) >= 2*3*2*time.Second
		}
		for deadline := time.Now().Add(4 * time.Minute); !converge(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("no balance held for two balancing rounds within 4 minutes; last %s; moves: %s", last, strings.Join(timeline, ", "))
			}
		}
		b.Logf("run %d moves: %s", i, strings.Join(timeline, ", "))
		converged := quietSince.Sub(start)
		var handoffs float64
		for _, w := range ws {
			handoffs += testutil.ToFloat64(w.m.handoffs)
		}
		b.Logf("run %d: all 16 leases held after %v, first balanced after %v, converged after %v with %d moves (%v graceful hand-offs)",
			i, allHeld.Round(time.Millisecond), firstBalanced.Round(time.Millisecond), converged.Round(time.Millisecond), moves, handoffs)
		b.ReportMetric(allHeld.Seconds(), "s-to-all-held")
		b.ReportMetric(firstBalanced.Seconds(), "s-to-first-balanced")
		b.ReportMetric(converged.Seconds(), "s-to-converge")
		b.ReportMetric(float64(moves), "moves")
		b.ReportMetric(converged.Seconds()/(3*2), "balancing-rounds")
	}
}

// handoffStamps records, from the workers' own calls, when each graceful
// hand-off began (the leader's write naming a checkpoint owner succeeded)
// and ended (a write removing it succeeded), per lease key.
type handoffStamps struct {
	mu    sync.Mutex
	start map[string]time.Time
	end   map[string]time.Time
}

// stampDynamo decorates a worker's real DynamoDB client to feed
// handoffStamps; every call goes to the real server.
type stampDynamo struct {
	DynamoDBAPI
	s *handoffStamps
}

func (d stampDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := d.DynamoDBAPI.UpdateItem(ctx, in, o...)
	if err != nil || in.UpdateExpression == nil {
		return out, err
	}
	key, _ := in.Key[attrLeaseKey].(*types.AttributeValueMemberS)
	if key == nil {
		return out, err
	}
	now := time.Now()
	expr := *in.UpdateExpression
	for alias, attr := range in.ExpressionAttributeNames {
		if attr != attrCheckpointOwner {
			continue
		}
		d.s.mu.Lock()
		_, began := d.s.start[key.Value]
		switch {
		case strings.Contains(expr, alias+" = "):
			d.s.start[key.Value] = now
			delete(d.s.end, key.Value)
		case began && strings.Contains(expr, "REMOVE") && strings.Contains(expr[strings.Index(expr, "REMOVE"):], alias):
			if _, done := d.s.end[key.Value]; !done {
				d.s.end[key.Value] = now
			}
		}
		d.s.mu.Unlock()
	}
	return out, err
}

// BenchmarkKCL3Handoff measures graceful hand-offs at the test timings of
// kcl3Config (renewal 1 s, assignment every 2 s, workers looking for
// their leases every second): one worker holds all 8 leases of a stream
// written to at 80 records/s, a second joins, and the leader hands 4 of
// them to it. For each hand-off: from the leader's write (checkpointOwner
// set) to the old owner's (checkpoint written, checkpointOwner cleared),
// both timed at the writer when DynamoDB acknowledged them, and to the
// new owner processing the lease (polled every 10 ms).
func BenchmarkKCL3Handoff(b *testing.B) {
	env := devstacktest.New(b)
	for i := 0; i < b.N; i++ {
		stream := env.CreateStream(b, 8)
		table := env.Name("benchhandoff")
		startProducer(b, env.Kinesis, stream, 100*time.Millisecond, 100, 8, nil)
		st := &handoffStamps{start: map[string]time.Time{}, end: map[string]time.Time{}}
		w1 := newConsumer(b, kcl3Config(table, "w1", stream), env.Kinesis, stampDynamo{env.DynamoDB, st}, benchLogger(false))
		benchStart(b, w1)
		waitFor(b, 2*time.Minute, "w1 holding all 8 leases", func() bool { return len(w1.HeldLeases()) == 8 })

		w2 := newConsumer(b, kcl3Config(table, "w2", stream), env.Kinesis, stampDynamo{env.DynamoDB, st}, benchLogger(false))
		benchStart(b, w2)
		resumedAt := map[string]time.Time{}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			held1, held2 := w1.HeldLeases(), w2.HeldLeases()
			now := time.Now()
			st.mu.Lock()
			pending := 0
			for k := range st.start {
				if _, ok := st.end[k]; !ok {
					pending++
				} else if _, ok := resumedAt[k]; !ok && slices.Contains(held2, k) {
					resumedAt[k] = now
				}
			}
			st.mu.Unlock()
			if len(held1) == 4 && len(held2) == 4 && pending == 0 && len(resumedAt) >= 4 {
				break
			}
			if now.After(deadline) {
				b.Fatalf("no 4/4 split with every hand-off done within 2 minutes: w1 %v, w2 %v, %d hand-offs in flight", held1, held2, pending)
			}
			time.Sleep(10 * time.Millisecond)
		}
		var cleared, resumed []float64
		st.mu.Lock()
		for k, t0 := range st.start {
			cleared = append(cleared, st.end[k].Sub(t0).Seconds())
			if r, ok := resumedAt[k]; ok {
				resumed = append(resumed, r.Sub(t0).Seconds())
			}
		}
		st.mu.Unlock()
		if n := testutil.ToFloat64(w1.m.handoffs); int(n) != len(cleared) {
			b.Logf("run %d: w1 started %v hand-offs, %d leader writes seen", i, n, len(cleared))
		}
		b.Logf("run %d: %d hand-offs; to checkpointOwner cleared %.2f s; to the new owner processing %.2f s", i, len(cleared), cleared, resumed)
		b.ReportMetric(median(cleared), "s-handoff-median")
		b.ReportMetric(slices.Max(cleared), "s-handoff-max")
		b.ReportMetric(median(resumed), "s-to-resume-median")
		b.ReportMetric(slices.Max(resumed), "s-to-resume-max")
	}
}

// BenchmarkKCL3LeaderFailover kills the leader of two workers on a 4-shard
// stream (every call it makes fails from then on, as after SIGKILL) and
// measures the time to a new leader and to every lease held again, at the
// test timings of kcl3Config: leader lock 4 s with a 1 s heartbeat,
// assignment every 2 s, failover 3 s.
func BenchmarkKCL3LeaderFailover(b *testing.B) {
	env := devstacktest.New(b)
	for i := 0; i < b.N; i++ {
		stream := env.CreateStream(b, 4)
		table := env.Name("benchleader")
		startProducer(b, env.Kinesis, stream, 100*time.Millisecond, 100, 4, nil)
		sw, k1, d1 := newKillSwitch(env.Kinesis, env.DynamoDB)
		w1 := newConsumer(b, kcl3Config(table, "w1", stream), k1, d1, benchLogger(true))
		benchStart(b, w1)
		waitFor(b, 2*time.Minute, "w1 leading and holding all 4 leases", func() bool { return isLeader(w1) && len(w1.HeldLeases()) == 4 })
		w2 := newConsumer(b, kcl3Config(table, "w2", stream), env.Kinesis, env.DynamoDB, benchLogger(false))
		benchStart(b, w2)
		waitFor(b, 2*time.Minute, "a 2/2 split", func() bool { return len(w1.HeldLeases()) == 2 && len(w2.HeldLeases()) == 2 })

		sw.kill()
		killed := time.Now()
		lead := waitFor(b, 2*time.Minute, "w2 leading", func() bool { return isLeader(w2) })
		waitFor(b, 2*time.Minute, "w2 holding all 4 leases", func() bool { return len(w2.HeldLeases()) == 4 })
		all := time.Since(killed)
		b.Logf("run %d: new leader %v after the kill, all 4 leases held %v after it", i, lead.Round(time.Millisecond), all.Round(time.Millisecond))
		b.ReportMetric(lead.Seconds(), "s-to-new-leader")
		b.ReportMetric(all.Seconds(), "s-to-all-held")
	}
}
