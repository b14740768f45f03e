package consumer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// throttlePolicy refuses some DynamoDB data-plane calls with the answer
// DynamoDB gives when a table is throttled (HTTP 400,
// ProvisionedThroughputExceededException), before they reach the server:
// toxiproxy works on bytes and cannot answer an HTTP call. While on, one in
// every `every` first attempts is refused; the SDK's own retry (after its
// throttling backoff) goes through. Throttling that outlasts the renewal
// deadline is a DynamoDB outage, which the failover tests cover; this is
// the steady drizzle of throttles a busy table sees.
type throttlePolicy struct {
	every   int64
	on      atomic.Bool
	first   atomic.Int64 // first attempts seen while on
	refused atomic.Int64
}

// throttledOps are the calls a table's capacity limits; control-plane
// calls (CreateTable, DescribeTable, UpdateTable) are limited otherwise.
var throttledOps = map[string]bool{"GetItem": true, "PutItem": true, "UpdateItem": true, "DeleteItem": true, "Query": true, "Scan": true}

const throttledBody = `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}`

type throttleTransport struct {
	p    *throttlePolicy
	next http.RoundTripper
}

func (tt throttleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	if tt.p.on.Load() && throttledOps[op] && strings.HasPrefix(req.Header.Get("Amz-Sdk-Request"), "attempt=1;") {
		if tt.p.first.Add(1)%tt.p.every == 0 {
			tt.p.refused.Add(1)
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return &http.Response{
				Status: "400 Bad Request", StatusCode: http.StatusBadRequest,
				Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{
					"Content-Type":     {"application/x-amz-json-1.0"},
					"X-Amzn-Requestid": {fmt.Sprintf("THROTTLED%d", tt.p.refused.Load())},
				},
				Body:          io.NopCloser(strings.NewReader(throttledBody)),
				ContentLength: int64(len(throttledBody)),
				Request:       req,
			}, nil
		}
	}
	return tt.next.RoundTrip(req)
}

// toxicDynamo is a DynamoDB client of its own (own connections, own retry
// budget, as a separate process has) that goes through the proxy and the
// throttle policy.
func toxicDynamo(proxy *devstack.Proxy, p *throttlePolicy) *dynamodb.Client {
	cl := devstack.Endpoints{DynamoDB: proxy.URL()}.Clients()
	hc := cl.AWS.HTTPClient.(*http.Client)
	return dynamodb.NewFromConfig(cl.AWS, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(proxy.URL())
		o.HTTPClient = &http.Client{Timeout: hc.Timeout, Transport: throttleTransport{p: p, next: hc.Transport}}
	})
}

// leaderWatch samples the workers' leader gauges and counts every time a
// worker stopped leading, and every change of leader.
type leaderWatch struct {
	mu      sync.Mutex
	drops   map[string]int
	leaders []string // in order, each different from the one before
	stop    chan struct{}
	done    chan struct{}
}

func watchLeader(t *testing.T, ws map[string]*Consumer) *leaderWatch {
	w := &leaderWatch{drops: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	was := map[string]bool{}
	go func() {
		defer close(w.done)
		for {
			w.mu.Lock()
			for id, c := range ws {
				now := testutil.ToFloat64(c.m.leader) == 1
				if was[id] && !now {
					w.drops[id]++
				}
				if now && !was[id] && (len(w.leaders) == 0 || w.leaders[len(w.leaders)-1] != id) {
					w.leaders = append(w.leaders, id)
				}
				was[id] = now
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *leaderWatch) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *leaderWatch) result() (drops map[string]int, leaders []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drops, slices.Clone(w.leaders)
}

// lockVersion reads the leader lock's owner and recordVersionNumber, which
// the leader rewrites with each heartbeat, once per assignment round.
func lockVersion(t *testing.T, db *dynamodb.Client, app, table string) (owner, rvn string) {
	t.Helper()
	ctx := context.Background()
	layout, err := coordstate.DetectLayout(ctx, db, app, table)
	if err != nil {
		t.Fatal(err)
	}
	name, keyAttr := layout.LeaseTable, attrLeaseKey
	if !layout.Single {
		name, keyAttr = layout.CoordinatorTable, "key"
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &name,
		Key:            map[string]types.AttributeValue{keyAttr: &types.AttributeValueMemberS{Value: coordstate.LeaderKey}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := func(a string) string {
		if v, ok := out.Item[a].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	return s("ownerName"), s("recordVersionNumber")
}

// leasesSpread reports whether the table has shards unfinished leases, none
// in a hand-off, held as want says (worker: leases), by workers that
// process exactly the leases the table gives them.
func leasesSpread(t *testing.T, db *dynamodb.Client, table string, shards int, ws map[string]*Consumer, want map[string]int) bool {
	ls := leaseStates(t, db, table)
	if len(ls) != shards {
		return false
	}
	byOwner := map[string][]string{}
	for k, l := range ls {
		if l.checkpointOwner != "" {
			return false
		}
		byOwner[l.owner] = append(byOwner[l.owner], k)
	}
	for owner, keys := range byOwner {
		slices.Sort(keys)
		if len(keys) != want[owner] || !slices.Equal(ws[owner].HeldLeases(), keys) {
			return false
		}
	}
	return true
}

// leaders lists the workers whose leader gauge is 1.
func leaders(ws map[string]*Consumer) []string {
	var out []string
	for id, c := range ws {
		if testutil.ToFloat64(c.m.leader) == 1 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// toxicFleet starts ClientVersion3X workers on stream, each with its own
// DynamoDB client through proxies[id] and the throttle policy, with Java's
// default failover time and renewals every second (so a renewal may take
// up to 9 s, FailoverTime - RenewInterval).
func toxicFleet(t *testing.T, env *devstacktest.Env, table, stream string, proxies map[string]*devstack.Proxy, throttle *throttlePolicy, col *collector) (map[string]*Consumer, map[string]func() error) {
	ws, stops := map[string]*Consumer{}, map[string]func() error{}
	for id, proxy := range proxies {
		cfg := kcl3Config(table, id, stream)
		cfg.FailoverTime, cfg.RenewInterval = 10*time.Second, time.Second
		// Throughput measured over one-second renewals wanders by about a
		// tenth on a loaded machine (see TestKCL3BalancesHotShardsByThroughput).
		cfg.KCL3.Assign.ReBalanceThresholdPercent = 20
		c := newConsumer(t, cfg, env.Kinesis, toxicDynamo(proxy, throttle))
		stops[id] = run(t, c, col.handler(id, nil))
		ws[id] = c
	}
	return ws, stops
}

// equalWeights writes one record per shard per tick to each of shards
// shards: steady, equal rates, so that an even spread is balanced on
// throughput and the leader has no reason to move a lease.
func equalWeights(shards int) map[string]int {
	weights := map[string]int{}
	for i := range shards {
		weights[fmt.Sprintf("shardId-%012d", i)] = 1
	}
	return weights
}

// TestKCL3ToxicLeaseTableLosesNoLease: three ClientVersion3X workers on a
// six-shard stream written to all along, every DynamoDB call of theirs
// through toxiproxy. Once the leader has spread the leases 2/2/2, every
// answer is delayed 300-800 ms and one in five data-plane calls is
// throttled once, for at least ten renewals of every lease (more than the
// failover time) and three leader rounds. The property: no live worker
// loses a lease. Precisely: no worker counts a lost lease, the leader
// assigns no lease as expired, no worker stops leading, no hand-off
// outlasts its timeout, every record written is delivered exactly once;
// and once the faults end the leases are still (or again) spread 2/2/2.
//
// Timings: Java's default failover time (10 s) with renewals every second,
// so a renewal may take up to 9 s (FailoverTime - RenewInterval): a slow
// write, a throttle and its SDK backoff (under 2 s), and a re-read after an
// ambiguous answer fit with room for a loaded machine.
func TestKCL3ToxicLeaseTableLosesNoLease(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	const shards = 6
	stream := env.CreateStream(t, shards)
	table := env.Name("kcl3toxic")
	proxy := env.Proxy(t, env.Endpoints.DynamoDB)
	throttle := &throttlePolicy{every: 5}

	prod := startProducer(t, env.Kinesis, stream, 100*time.Millisecond, 100, 0, equalWeights(shards))
	col := newCollector()
	ws, _ := toxicFleet(t, env, table, stream, map[string]*devstack.Proxy{"w1": proxy, "w2": proxy, "w3": proxy}, throttle, col)
	even := map[string]int{"w1": 2, "w2": 2, "w3": 2}
	balanced := func() bool {
		return leasesSpread(t, env.DynamoDB, table, shards, ws, even) && len(leaders(ws)) == 1
	}
	d := waitFor(t, 2*time.Minute, "a 2/2/2 spread with one leader", balanced)
	t.Logf("balanced 2/2/2 after %v", d)

	lost, expiredAssigns, handoffs := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for id, c := range ws {
		lost[id] = testutil.ToFloat64(c.m.leasesLost)
		expiredAssigns[id] = testutil.ToFloat64(c.m.assignments.WithLabelValues("assign"))
		handoffs[id] = testutil.ToFloat64(c.m.handoffs)
	}
	counters := map[string]int64{}
	for k, l := range checkpoints(t, env.DynamoDB, table) {
		counters[k] = l.counter
	}
	leader := watchLeader(t, ws)
	hw := watchHandoffs(t, env.DynamoDB, table)

	ctx := context.Background()
	if err := proxy.AddToxic(ctx, "latency", "latency", map[string]any{"latency": 550, "jitter": 250}); err != nil {
		t.Fatal(err)
	}
	throttle.on.Store(true)
	// The latency is there: a call through the proxy (not throttled) takes
	// at least its 300 ms floor.
	probe := toxicDynamo(proxy, &throttlePolicy{every: 1})
	start := time.Now()
	if _, err := probe.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table}); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 300*time.Millisecond {
		t.Fatalf("a call through the proxy took %v: the latency toxic is not in place", rtt)
	} else {
		t.Logf("a call through the proxy took %v", rtt)
	}
	// The faults last until every lease was renewed ten times under them
	// (over the failover time: an expiry would have been judged) and the
	// leader heartbeat its lock, once per round, three times.
	const renewals, rounds = 10, 3
	versions := map[string]bool{}
	_, rvn0 := lockVersion(t, env.DynamoDB, table, table)
	d = waitFor(t, 2*time.Minute, fmt.Sprintf("%d renewals of every lease and %d leader rounds under the faults", renewals, rounds), func() bool {
		if _, rvn := lockVersion(t, env.DynamoDB, table, table); rvn != rvn0 {
			versions[rvn] = true
		}
		for k, l := range checkpoints(t, env.DynamoDB, table) {
			if c, ok := counters[k]; ok && l.counter < c+renewals {
				return false
			}
		}
		return len(versions) >= rounds
	})
	throttle.on.Store(false)
	if err := proxy.RemoveToxic(ctx, "latency"); err != nil {
		t.Fatal(err)
	}
	leader.halt()
	drops, turns := leader.result()
	t.Logf("faults for %v: %d lock heartbeats, %d of %d first attempts throttled", d, len(versions), throttle.refused.Load(), throttle.first.Load())

	for id, c := range ws {
		if n := testutil.ToFloat64(c.m.leasesLost) - lost[id]; n != 0 {
			t.Errorf("worker %s lost %v leases under latency and throttling", id, n)
		}
		if n := testutil.ToFloat64(c.m.assignments.WithLabelValues("assign")) - expiredAssigns[id]; n != 0 {
			t.Errorf("worker %s, leading, assigned %v live leases as expired or after a timed-out hand-off", id, n)
		}
		if n := testutil.ToFloat64(c.m.handoffs) - handoffs[id]; n != 0 {
			t.Logf("worker %s handed off %v leases gracefully under the faults", id, n)
		}
	}
	if len(turns) != 1 || len(drops) != 0 {
		t.Errorf("leadership changed under latency and throttling: leaders in turn %v, stopped leading %v", turns, drops)
	}
	if throttle.refused.Load() == 0 {
		t.Error("no call was throttled: the throttling path was not exercised")
	}
	hw.halt()
	for _, dur := range hw.results() {
		if dur >= 10*time.Second {
			t.Errorf("a hand-off took %v, past its 10 s timeout", dur)
		}
	}
	for k, since := range hw.since {
		if d := time.Since(since); d >= 10*time.Second {
			t.Errorf("hand-off of %s in flight for %v when the faults ended, past its 10 s timeout", k, d)
		}
	}

	d = waitFor(t, 2*time.Minute, "a 2/2/2 spread with one leader after the faults", balanced)
	t.Logf("balanced %v after the faults ended; hand-offs during them: %v", d, hw.results())

	prod.halt()
	want := prod.produced()
	if len(want) == 0 || prod.errs > len(want)/10 {
		t.Fatalf("producer wrote %d records with %d failed calls", len(want), prod.errs)
	}
	waitFor(t, time.Minute, "every produced record delivered", func() bool { return col.has(want) == 0 })
	dups := 0
	for k, n := range countDeliveries(col) {
		if n > 1 {
			dups++
			if dups <= 5 {
				t.Errorf("record %v delivered %d times", k, n)
			}
		}
	}
	if dups > 0 {
		t.Errorf("%d records delivered more than once though no lease was lost", dups)
	}
	t.Logf("%d records, all delivered, %d twice", len(want), dups)
}

// TestKCL3ToxicSlowLeaderLosesTheLock: the leader's DynamoDB answers only
// after 5 s, past the 4 s lease of the leader lock, while the other two
// workers' DynamoDB is healthy. The slow leader cannot heartbeat the lock
// in time: another worker takes the lock and the slow one stops counting
// itself leader. Assignments go on under the new leader: when the third
// worker shuts down while the old leader is still slow, the new leader
// assigns the leases it released; once the slow worker recovers the lock
// stays where it is and the new leader spreads the leases 3/3. Every
// record is delivered.
//
// The slow worker is not asked to keep its leases: a hand-off to or from
// it takes a write and a re-read, 10 s at this latency, past its 9 s
// renewal deadline, and its metrics reports land every 7 s, so the leader
// sees it alive only part of the time.
func TestKCL3ToxicSlowLeaderLosesTheLock(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	const shards = 6
	stream := env.CreateStream(t, shards)
	table := env.Name("kcl3slowleader")
	proxies := map[string]*devstack.Proxy{}
	for _, id := range []string{"w1", "w2", "w3"} {
		proxies[id] = env.Proxy(t, env.Endpoints.DynamoDB)
	}
	prod := startProducer(t, env.Kinesis, stream, 100*time.Millisecond, 100, 0, equalWeights(shards))
	col := newCollector()
	ws, stops := toxicFleet(t, env, table, stream, proxies, &throttlePolicy{every: 1}, col)
	waitFor(t, 2*time.Minute, "a 2/2/2 spread with one leader", func() bool {
		return leasesSpread(t, env.DynamoDB, table, shards, ws, map[string]int{"w1": 2, "w2": 2, "w3": 2}) && len(leaders(ws)) == 1
	})
	slow := leaders(ws)[0]

	if err := proxies[slow].AddToxic(context.Background(), "slow", "latency", map[string]any{"latency": 5000}); err != nil {
		t.Fatal(err)
	}
	slowed := time.Now()
	var next string
	d := waitFor(t, 2*time.Minute, "another worker holding the leader lock and leading", func() bool {
		owner, _ := lockVersion(t, env.DynamoDB, table, table)
		if owner == "" || owner == slow || testutil.ToFloat64(ws[owner].m.leader) != 1 {
			return false
		}
		next = owner
		return true
	})
	t.Logf("%s leads %v after %s's DynamoDB slowed to 5 s (lock lease 4 s, heartbeat 1 s)", next, d, slow)

	var third string
	for id := range ws {
		if id != slow && id != next {
			third = id
		}
	}
	assigned := testutil.ToFloat64(ws[next].m.assignments.WithLabelValues("assign"))
	if err := stops[third](); err != nil {
		t.Fatal(err)
	}
	delete(ws, third)
	d = waitFor(t, 2*time.Minute, fmt.Sprintf("%s assigning the two leases %s released", next, third), func() bool {
		return testutil.ToFloat64(ws[next].m.assignments.WithLabelValues("assign")) >= assigned+2
	})
	t.Logf("%s assigned %s's released leases %v after it stopped", next, third, d)
	waitFor(t, 2*time.Minute, "the slow worker no longer counting itself leader", func() bool {
		return testutil.ToFloat64(ws[slow].m.leader) == 0
	})
	t.Logf("%s stopped counting itself leader %v after %s led", slow, time.Since(slowed), next)

	if err := proxies[slow].RemoveToxic(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	d = waitFor(t, 2*time.Minute, fmt.Sprintf("a 3/3 spread over %s and %s, %s leading", next, slow, next), func() bool {
		return leasesSpread(t, env.DynamoDB, table, shards, ws, map[string]int{next: 3, slow: 3}) && slices.Equal(leaders(ws), []string{next})
	})
	t.Logf("3/3 %v after the slow worker recovered; it lost %v leases while slow", d, testutil.ToFloat64(ws[slow].m.leasesLost))
	prod.halt()
	want := prod.produced()
	waitFor(t, time.Minute, "every produced record delivered", func() bool { return col.has(want) == 0 })
	t.Logf("%d records, all delivered; %v from slowing the leader to the end", len(want), time.Since(slowed))
}
