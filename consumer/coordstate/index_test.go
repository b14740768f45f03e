package coordstate

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// putLeases writes n leases owned round-robin by owners (an empty owner
// leaves the lease unassigned), plus the coordinator items of a 3.5 table.
func putLeases(t *testing.T, env *devstacktest.Env, table string, n int, owners ...string) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	for i := range n {
		key := fmt.Sprintf("shardId-%012d", i)
		item := map[string]types.AttributeValue{attrLeaseKey: sVal(key), "leaseCounter": nInt(1), "checkpoint": sVal("TRIM_HORIZON")}
		if o := owners[i%len(owners)]; o != "" {
			item[attrLeaseOwner] = sVal(o)
			want[o] = append(want[o], key)
		}
		putRaw(t, env, table, item)
	}
	for _, js := range []string{fxMetrics35Single, fxLeaderSingle, fxMigrationSingle} {
		putRaw(t, env, table, mustItem(t, js))
	}
	return want
}

// TestLeaseKeysOwnedByQueriesIndex: on a table with the index (declared at
// creation, as dynalite cannot add one later), the keys come from a Query
// of the KEYS_ONLY index, not a Scan, and are each owner's exactly.
func TestLeaseKeysOwnedByQueriesIndex(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := env.Name("gsi")
	createTable(t, env, table, attrLeaseKey, true)
	want := putLeases(t, env, table, 30, "w1", "w2", "", "w1")
	if err := EnsureLeaseOwnerIndex(ctx, env.DynamoDB, table, true); err != nil {
		t.Fatalf("EnsureLeaseOwnerIndex on a table that has it: %v", err)
	}
	db := newCounting(env.DynamoDB)
	for _, owner := range []string{"w1", "w2", "nobody"} {
		eventually(t, "keys of "+owner, 30*time.Second, func() (bool, error) {
			keys, err := LeaseKeysOwnedBy(ctx, db, table, owner)
			slices.Sort(keys)
			return slices.Equal(keys, want[owner]), err
		})
	}
	if q, s := db.get("Query"), db.get("Scan"); q == 0 || s != 0 {
		t.Errorf("%d queries, %d scans: want the index used", q, s)
	}
}

// TestEnsureLeaseOwnerIndexWithoutServerSupport: on a table without the
// index, EnsureLeaseOwnerIndex asks for it with Java's UpdateTable; real
// DynamoDB creates it (then waiting returns once ACTIVE), dynalite does
// not, which must be reported rather than waited on forever. Either way
// LeaseKeysOwnedBy returns the right keys.
func TestEnsureLeaseOwnerIndexWithoutServerSupport(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := env.Name("nogsi")
	createTable(t, env, table, attrLeaseKey, false)
	want := putLeases(t, env, table, 7, "w1", "w2")
	err := EnsureLeaseOwnerIndex(ctx, env.DynamoDB, table, true)
	switch {
	case errors.Is(err, ErrIndexNotCreated):
		t.Log("the server does not create indexes by UpdateTable (dynalite); LeaseKeysOwnedBy scans")
	case err != nil:
		t.Fatal(err)
	default:
		out, err := env.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil || indexStatus(out.Table) != types.IndexStatusActive {
			t.Fatalf("after a waiting EnsureLeaseOwnerIndex: %v, %v", indexStatus(out.Table), err)
		}
	}
	for _, owner := range []string{"w1", "w2"} {
		eventually(t, "keys of "+owner, 30*time.Second, func() (bool, error) {
			keys, err := LeaseKeysOwnedBy(ctx, env.DynamoDB, table, owner)
			slices.Sort(keys)
			return slices.Equal(keys, want[owner]), err
		})
	}
}

// TestEnsureLeaseOwnerIndexProvisioned: on a PROVISIONED table the index
// is requested with the table's throughput, as Java does; dynalite accepts
// that request and ignores it, which must be reported.
func TestEnsureLeaseOwnerIndexProvisioned(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := env.Name("prov")
	if _, err := env.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:             &table,
		KeySchema:             []types.KeySchemaElement{{AttributeName: aws.String(attrLeaseKey), KeyType: types.KeyTypeHash}},
		AttributeDefinitions:  []types.AttributeDefinition{{AttributeName: aws.String(attrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
		ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(10), WriteCapacityUnits: aws.Int64(10)},
	}); err != nil {
		t.Fatal(err)
	}
	deleteTableAtEnd(t, env, table)
	err := EnsureLeaseOwnerIndex(ctx, env.DynamoDB, table, true)
	if err != nil && !errors.Is(err, ErrIndexNotCreated) {
		t.Fatal(err)
	}
	t.Logf("EnsureLeaseOwnerIndex on a PROVISIONED table: %v", err)
}

// TestLeaseKeysOwnedByOtherErrors: a missing table is an error, not a
// silent fallback.
func TestLeaseKeysOwnedByOtherErrors(t *testing.T) {
	env := devstacktest.New(t)
	if _, err := LeaseKeysOwnedBy(devstacktest.Ctx(t), env.DynamoDB, env.Name("absent"), "w"); err == nil {
		t.Fatal("no error for a missing table")
	}
}
