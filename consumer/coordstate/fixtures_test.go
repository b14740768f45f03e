package coordstate

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// Items as Java KCL writes them (built from its serializers; see the
// package's notes on Java's tables).
const (
	fxLeaseHeld = `{"leaseKey":{"S":"shardId-000000000001"},"leaseOwner":{"S":"worker-a"},"leaseCounter":{"N":"1523"},
 "checkpoint":{"S":"49650000000000000000000000000000000000000000000000000018"},
 "checkpointSubSequenceNumber":{"N":"0"},"ownerSwitchesSinceCheckpoint":{"N":"0"},
 "parentShardId":{"SS":["shardId-000000000000"]},
 "startingHashKey":{"S":"170141183460469231731687303715884105728"},
 "endingHashKey":{"S":"340282366920938463463374607431768211455"},
 "throughputKBps":{"N":"12.345678"},"entityType":{"S":"LEASE"}}`
	fxLeaseHandoff = `{"leaseKey":{"S":"shardId-000000000002"},"leaseOwner":{"S":"worker-b"},"checkpointOwner":{"S":"worker-a"},
 "leaseCounter":{"N":"88"},"checkpoint":{"S":"49650000000000000000000000000000000000000000000000000042"},
 "checkpointSubSequenceNumber":{"N":"0"},"ownerSwitchesSinceCheckpoint":{"N":"1"},
 "pendingCheckpoint":{"S":"49650000000000000000000000000000000000000000000000000050"},
 "pendingCheckpointSubSequenceNumber":{"N":"0"},"pendingCheckpointState":{"B":"c3RhdGU="},
 "startingHashKey":{"S":"0"},"endingHashKey":{"S":"170141183460469231731687303715884105727"},
 "throughputKBps":{"N":"0.5"}}`
	fxLeaseNew = `{"leaseKey":{"S":"shardId-000000000003"},"leaseCounter":{"N":"0"},"checkpoint":{"S":"TRIM_HORIZON"},
 "checkpointSubSequenceNumber":{"N":"0"},"ownerSwitchesSinceCheckpoint":{"N":"0"},
 "parentShardId":{"SS":["shardId-000000000001","shardId-000000000002"]},
 "startingHashKey":{"S":"0"},"endingHashKey":{"S":"340282366920938463463374607431768211455"},"entityType":{"S":"LEASE"}}`
	fxLeaseClosed = `{"leaseKey":{"S":"shardId-000000000000"},"leaseOwner":{"S":"worker-a"},"leaseCounter":{"N":"9001"},
 "checkpoint":{"S":"SHARD_END"},"checkpointSubSequenceNumber":{"N":"0"},"ownerSwitchesSinceCheckpoint":{"N":"0"},
 "childShardIds":{"SS":["shardId-000000000001","shardId-000000000002"]},
 "startingHashKey":{"S":"0"},"endingHashKey":{"S":"340282366920938463463374607431768211455"},"entityType":{"S":"LEASE"}}`

	fxMetrics30 = `{"wid":{"S":"worker-a"},"lut":{"N":"1767225600"},
 "sts":{"M":{"C":{"L":[{"N":"12.5"},{"N":"13.0"},{"N":"-1.0"}]}}},"opr":{"M":{"C":{"L":[{"N":"100"}]}}}}`
	fxMetrics35Legacy = `{"wid":{"S":"worker-c"},"lut":{"N":"1767225630"},"sts":{"M":{"C":{"L":[{"N":"12.5"}]}}},
 "opr":{"M":{"C":{"L":[{"N":"100"}]}}},"sup":{"N":"1"},"slu":{"N":"1767225630"},"entityType":{"S":"WORKER_METRIC_STATS"}}`
	fxMetrics35Single = `{"leaseKey":{"S":"worker-b"},"lut":{"N":"1767225630"},"sts":{"M":{}},"opr":{"M":{}},
 "sup":{"N":"1"},"slu":{"N":"1767225630"},"entityType":{"S":"WORKER_METRIC_STATS"}}`

	fxLeaderLegacy = `{"key":{"S":"Leader"},"ownerName":{"S":"worker-a"},"leaseDuration":{"S":"120000"},
 "recordVersionNumber":{"S":"0b7c3f5e-8f7a-4d1e-9a55-2f3c1d9e6a10"}}`
	fxMigrationLegacy = `{"key":{"S":"Migration3.0"},"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"worker-a"},"mts":{"N":"1767225600123"},
 "h":{"L":[{"M":{"cv":{"S":"CLIENT_VERSION_INIT"},"mb":{"S":"worker-a"},"mts":{"N":"1767225600100"}}}]}}`
	fxLeaderSingle = `{"leaseKey":{"S":"Leader"},"ownerName":{"S":"worker-a"},"leaseDuration":{"S":"120000"},
 "recordVersionNumber":{"S":"6d2a0c44-1f3b-4c8e-b8a1-55e0b7f4c2d9"},"entityType":{"S":"LEADER"}}`
	fxMigrationSingle = `{"leaseKey":{"S":"Migration3.0"},"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"worker-a"},"mts":{"N":"1767225600123"},
 "h":{"L":[{"M":{"cv":{"S":"CLIENT_VERSION_INIT"},"mb":{"S":"worker-a"},"mts":{"N":"1767225600100"}}}]},
 "entityType":{"S":"CLIENT_VERSION_MIGRATION"}}`
	fxTableMigrationDeployed = `{"key":{"S":"TableMigration3.5"},"tm":{"S":"TABLE_MIGRATION_STATUS_DEPLOYED"},"mb":{"S":"worker-a"},
 "mts":{"N":"1767229200000"},"h":{"L":[{"M":{"tm":{"S":"TABLE_MIGRATION_STATUS_INIT"},"mb":{"S":"worker-a"},
 "mts":{"N":"1767225600000"}}}]},"entityType":{"S":"TABLE_MIGRATION"}}`
)

var fxLeases = []string{fxLeaseHeld, fxLeaseHandoff, fxLeaseNew, fxLeaseClosed}

// wantMigrationFixture is what both Migration3.0 fixtures hold.
var wantMigrationFixture = MigrationState{
	ClientVersion: ClientVersion3X, ModifiedBy: "worker-a", ModifiedAt: time.UnixMilli(1767225600123),
	History: []MigrationState{{ClientVersion: ClientVersionInit, ModifiedBy: "worker-a", ModifiedAt: time.UnixMilli(1767225600100)}},
}

func equalMigration(a, b MigrationState) bool {
	return a.ClientVersion == b.ClientVersion && a.ModifiedBy == b.ModifiedBy && a.ModifiedAt.Equal(b.ModifiedAt) &&
		slices.EqualFunc(a.History, b.History, equalMigration)
}

func byWorker(list []WorkerMetricStats) map[string]WorkerMetricStats {
	m := map[string]WorkerMetricStats{}
	for _, s := range list {
		m[s.WorkerID] = s
	}
	return m
}

// TestJavaItemsThreeTables puts Java 3.0–3.4 (and 3.5 Phase 1) items raw
// into the three tables and reads them back through the package: metrics
// of both Java shapes, the migration state, the leader lock (a live
// foreign lock: not ours), and the leases, which IsLease keeps.
func TestJavaItemsThreeTables(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["three"]
	for _, js := range fxLeases {
		putRaw(t, env, l.LeaseTable, mustItem(t, js))
	}
	putRaw(t, env, l.MetricsTable, mustItem(t, fxMetrics30))
	putRaw(t, env, l.MetricsTable, mustItem(t, fxMetrics35Legacy))
	putRaw(t, env, l.CoordinatorTable, mustItem(t, fxLeaderLegacy))
	putRaw(t, env, l.CoordinatorTable, mustItem(t, fxMigrationLegacy))

	list, err := NewMetrics(env.DynamoDB, l).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := byWorker(list)
	if len(got) != 2 {
		t.Fatalf("List = %+v, want worker-a and worker-c", list)
	}
	a := got["worker-a"]
	if !a.LastUpdate.Equal(time.Unix(1767225600, 0)) || !slices.Equal(a.Stats["C"], []float64{12.5, 13, -1}) ||
		!slices.Equal(a.OperatingRange["C"], []float64{100}) || a.SupportCode != 0 || !a.SupportUpdate.IsZero() {
		t.Errorf("3.0 item decoded as %+v", a)
	}
	if !a.Valid() || !a.Failing() || a.DefaultMetric() {
		t.Errorf("3.0 item: valid %v failing %v default %v, want true true false", a.Valid(), a.Failing(), a.DefaultMetric())
	}
	c := got["worker-c"]
	if c.SupportCode != 1 || !c.SupportUpdate.Equal(time.Unix(1767225630, 0)) || c.Failing() {
		t.Errorf("3.5 legacy item decoded as %+v", c)
	}

	m, ok, err := GetMigration(ctx, env.DynamoDB, l)
	if err != nil || !ok || !equalMigration(m, wantMigrationFixture) {
		t.Errorf("GetMigration = %+v, %v, %v; want %+v", m, ok, err, wantMigrationFixture)
	}

	leader := NewLeader(env.DynamoDB, l, LeaderConfig{Owner: "worker-go"})
	if is, err := leader.IsLeader(ctx); err != nil || is {
		t.Errorf("IsLeader with a fresh Java lock = %v, %v; want false", is, err)
	}
	if item := getRaw(t, env, l.CoordinatorTable, attrStateKey, LeaderKey); sAttr(item, attrOwnerName) != "worker-a" || sAttr(item, attrRVN) != "0b7c3f5e-8f7a-4d1e-9a55-2f3c1d9e6a10" {
		t.Errorf("the Java lock changed: %v", item)
	}

	keys, err := LeaseKeysOwnedBy(ctx, env.DynamoDB, l.LeaseTable, "worker-a")
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"shardId-000000000000", "shardId-000000000001"}) {
		t.Errorf("LeaseKeysOwnedBy(worker-a) = %v, %v", keys, err)
	}
	for _, js := range fxLeases {
		if !IsLease(mustItem(t, js)) {
			t.Errorf("IsLease(%s) = false", js)
		}
	}
}

// TestJavaItemsSingleTable does the same for Java 3.5's single table: the
// leases, worker-b's metrics (default metric), the lock and the migration
// state all in the lease table; List returns only the metrics item and
// IsLease only the leases.
func TestJavaItemsSingleTable(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["single"]
	items := append(append([]string{}, fxLeases...), fxMetrics35Single, fxLeaderSingle, fxMigrationSingle)
	for _, js := range items {
		putRaw(t, env, l.LeaseTable, mustItem(t, js))
	}

	list, err := NewMetrics(env.DynamoDB, l).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].WorkerID != "worker-b" {
		t.Fatalf("List = %+v, want only worker-b", list)
	}
	b := list[0]
	if !b.DefaultMetric() || !b.Valid() || b.Failing() || len(b.Stats) != 0 || b.Stats == nil || b.SupportCode != 1 {
		t.Errorf("worker-b = %+v: default %v valid %v failing %v", b, b.DefaultMetric(), b.Valid(), b.Failing())
	}

	m, ok, err := GetMigration(ctx, env.DynamoDB, l)
	if err != nil || !ok || !equalMigration(m, wantMigrationFixture) {
		t.Errorf("GetMigration = %+v, %v, %v; want %+v", m, ok, err, wantMigrationFixture)
	}
	leader := NewLeader(env.DynamoDB, l, LeaderConfig{Owner: "worker-go"})
	if is, err := leader.IsLeader(ctx); err != nil || is {
		t.Errorf("IsLeader with a fresh Java lock = %v, %v; want false", is, err)
	}

	var leases []string
	for _, js := range items {
		item := mustItem(t, js)
		if IsLease(item) {
			leases = append(leases, item[attrLeaseKey].(*types.AttributeValueMemberS).Value)
		}
	}
	slices.Sort(leases)
	if want := []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"}; !slices.Equal(leases, want) {
		t.Errorf("IsLease kept %v, want %v", leases, want)
	}
	keys, err := LeaseKeysOwnedBy(ctx, env.DynamoDB, l.LeaseTable, "worker-b")
	if err != nil || !slices.Equal(keys, []string{"shardId-000000000002"}) {
		t.Errorf("LeaseKeysOwnedBy(worker-b) = %v, %v; want the lease in hand-off only", keys, err)
	}
}

func TestIsLeaseFollowsJava(t *testing.T) {
	for js, want := range map[string]bool{
		fxLeaseHandoff:    true, // 3.0–3.4: no entityType
		fxLeaseHeld:       true,
		fxMetrics35Single: false,
		fxLeaderSingle:    false,
		fxMigrationSingle: false,
		`{"leaseKey":{"S":"s"},"entityType":{"N":"1"}}`:      true, // safeGetString: not a string = absent
		`{"leaseKey":{"S":"s"},"entityType":{"S":"STREAM"}}`: false,
	} {
		if got := IsLease(mustItem(t, js)); got != want {
			t.Errorf("IsLease(%s) = %v, want %v", js, got, want)
		}
	}
}

// TestDetectLayout walks Java 3.5's rule: no coordinator table means one
// table; a coordinator table means three, until it holds a COMPLETE
// table-migration item.
func TestDetectLayout(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	app := env.Name("detect")
	l, err := DetectLayout(ctx, env.DynamoDB, app, "leases-of-"+app)
	if err != nil || l != SingleTable("leases-of-"+app) {
		t.Fatalf("no tables: DetectLayout = %+v, %v; want single table", l, err)
	}
	three := ThreeTables(app, "leases-of-"+app)
	createTable(t, env, three.CoordinatorTable, attrStateKey, false)
	if l, err = DetectLayout(ctx, env.DynamoDB, app, "leases-of-"+app); err != nil || l != three {
		t.Fatalf("coordinator table: DetectLayout = %+v, %v; want %+v", l, err, three)
	}
	putRaw(t, env, three.CoordinatorTable, mustItem(t, fxTableMigrationDeployed))
	if l, err = DetectLayout(ctx, env.DynamoDB, app, "leases-of-"+app); err != nil || l != three {
		t.Fatalf("DEPLOYED: DetectLayout = %+v, %v; want three tables", l, err)
	}
	complete := mustItem(t, fxTableMigrationDeployed)
	complete["tm"] = sVal(tableMigrationComplete)
	putRaw(t, env, three.CoordinatorTable, complete)
	if l, err = DetectLayout(ctx, env.DynamoDB, app, "leases-of-"+app); err != nil || !l.Single {
		t.Fatalf("COMPLETE: DetectLayout = %+v, %v; want single table", l, err)
	}
	complete["tm"] = nInt(3)
	putRaw(t, env, three.CoordinatorTable, complete)
	var de *DecodeError
	if _, err = DetectLayout(ctx, env.DynamoDB, app, "leases-of-"+app); !errors.As(err, &de) || de.Attr != "tm" || de.Key != TableMigrationKey {
		t.Fatalf("tm as a number: err = %v, want a DecodeError naming tm", err)
	}
}
