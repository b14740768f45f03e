package coordstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDBAPI is the part of the DynamoDB client this package uses; a
// *dynamodb.Client satisfies it.
type DynamoDBAPI interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTable(context.Context, *dynamodb.UpdateTableInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Entity types: the values of the entityType attribute with which Java KCL
// 3.5 tells apart the items sharing the lease table (EntityType.java).
const (
	EntityLease          = "LEASE"
	EntityWorkerMetrics  = "WORKER_METRIC_STATS"
	EntityLeader         = "LEADER"
	EntityMigration      = "CLIENT_VERSION_MIGRATION"
	EntityTableMigration = "TABLE_MIGRATION"
	EntityStream         = "STREAM"

	// AttrEntityType is the discriminating attribute (3.5 only).
	AttrEntityType = "entityType"
)

// Key attribute names: the lease table's hash key, which 3.5 also uses for
// every coordinator item it keeps there, and the hash keys of the two
// tables of Java 3.0–3.4.
const (
	attrLeaseKey  = "leaseKey" // DynamoDBLeaseSerializer.LEASE_KEY_KEY
	attrStateKey  = "key"      // CoordinatorState table
	attrWorkerKey = "wid"      // WorkerMetricStats.KEY_WORKER_ID
)

// Table name suffixes Java appends to the application name for the tables
// of 3.0–3.4 (CoordinatorConfig.CoordinatorStateTableConfig,
// LeaseManagementConfig.WorkerMetricsTableConfig).
const (
	CoordinatorTableSuffix = "-CoordinatorState"
	MetricsTableSuffix     = "-WorkerMetricStats"
)

// Item keys of the coordinator items (LeaderLock.LEADER_HASH_KEY,
// MigrationState.MIGRATION_HASH_KEY, TableMigrationState.TABLE_MIGRATION_HASH_KEY).
const (
	LeaderKey         = "Leader"
	MigrationKey      = "Migration3.0"
	TableMigrationKey = "TableMigration3.5"
)

// tableMigrationComplete is the table-migration status after which Java 3.5
// keeps everything in the lease table (TableMigrationStatus).
const tableMigrationComplete = "TABLE_MIGRATION_STATUS_COMPLETE"

// tablePollInterval is how often, at most, Ensure and EnsureLeaseOwnerIndex
// poll DescribeTable while waiting for ACTIVE; they start at a tenth of it
// and double. DescribeTable is a control-plane call that costs nothing;
// Java polls every 10 s, which only makes startup slower.
const tablePollInterval = time.Second

// Layout says where the coordinator items live: Java 3.0–3.4's three tables
// (lease table, <app>-CoordinatorState keyed by "key", <app>-WorkerMetricStats
// keyed by "wid"), or 3.5's single table, where every item sits in the lease
// table keyed by "leaseKey" and carries entityType.
type Layout struct {
	LeaseTable       string
	CoordinatorTable string // three-table layout only
	MetricsTable     string // three-table layout only
	Single           bool
}

// SingleTable is the 3.5 layout on the given lease table.
func SingleTable(leaseTable string) Layout {
	return Layout{LeaseTable: leaseTable, Single: true}
}

// ThreeTables is the 3.0–3.4 layout with Java's default table names.
func ThreeTables(app, leaseTable string) Layout {
	return Layout{LeaseTable: leaseTable, CoordinatorTable: app + CoordinatorTableSuffix, MetricsTable: app + MetricsTableSuffix}
}

// stateTable and stateKey name the table and key attribute of the
// coordinator items (Leader, Migration3.0).
func (l Layout) stateTable() (table, keyAttr string) {
	if l.Single {
		return l.LeaseTable, attrLeaseKey
	}
	return l.CoordinatorTable, attrStateKey
}

// metricsTable names the table and key attribute of WorkerMetricStats.
func (l Layout) metricsTable() (table, keyAttr string) {
	if l.Single {
		return l.LeaseTable, attrLeaseKey
	}
	return l.MetricsTable, attrWorkerKey
}

func (l Layout) check() error {
	if l.LeaseTable == "" {
		return errors.New("coordstate: layout has no lease table")
	}
	if !l.Single && (l.CoordinatorTable == "" || l.MetricsTable == "") {
		return fmt.Errorf("coordstate: three-table layout for lease table %s lacks the coordinator or metrics table name", l.LeaseTable)
	}
	return nil
}

// DetectLayout applies Java 3.5's rule for a starting worker
// (TableMigrationStateMachineImpl.determineStatusForInitialization): if
// <app>-CoordinatorState exists and holds no TableMigration3.5 item with
// status COMPLETE, the application runs the three tables of 3.0–3.4 (or a
// 3.5 fleet that has not finished moving off them); otherwise everything
// lives in the lease table. A brand-new application therefore gets the
// single table; a fleet that must share tables with Java 3.0–3.4 workers
// has to have let them create their tables first, or build its Layout with
// ThreeTables. Costs one DescribeTable and at most one GetItem.
func DetectLayout(ctx context.Context, db DynamoDBAPI, app, leaseTable string) (Layout, error) {
	three := ThreeTables(app, leaseTable)
	_, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &three.CoordinatorTable})
	if isNotFound(err) {
		return SingleTable(leaseTable), nil
	}
	if err != nil {
		return Layout{}, fmt.Errorf("detect layout: describe %s: %w", three.CoordinatorTable, err)
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &three.CoordinatorTable,
		Key:            keyItem(attrStateKey, TableMigrationKey),
		ConsistentRead: aws.Bool(true),
	})
	if isNotFound(err) { // deleted between the two calls: only done after COMPLETE
		return SingleTable(leaseTable), nil
	}
	if err != nil {
		return Layout{}, fmt.Errorf("detect layout: get %s from %s: %w", TableMigrationKey, three.CoordinatorTable, err)
	}
	if len(out.Item) == 0 {
		return three, nil
	}
	tm, err := str(out.Item, "tm")
	if err != nil {
		return Layout{}, &DecodeError{Table: three.CoordinatorTable, Key: TableMigrationKey, Attr: "tm", Err: err}
	}
	if tm == tableMigrationComplete {
		return SingleTable(leaseTable), nil
	}
	return three, nil
}

// Ensure creates the coordinator and metrics tables of the three-table
// layout when they are missing, as Java 3.0–3.4 does (key S HASH only,
// PAY_PER_REQUEST, DdbTableConfig defaults), and waits until both are
// ACTIVE. Several workers may race: a ResourceInUseException means another
// one created the table. The single-table layout needs nothing beyond the
// lease table, which the consumer owns.
func (l Layout) Ensure(ctx context.Context, db DynamoDBAPI) error {
	if err := l.check(); err != nil {
		return err
	}
	if l.Single {
		return nil
	}
	if err := ensureTable(ctx, db, l.CoordinatorTable, attrStateKey); err != nil {
		return err
	}
	return ensureTable(ctx, db, l.MetricsTable, attrWorkerKey)
}

func ensureTable(ctx context.Context, db DynamoDBAPI, name, key string) error {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name})
	if err == nil && out.Table.TableStatus == types.TableStatusActive {
		return nil
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("describe table %s: %w", name, err)
	}
	if err != nil {
		_, err = db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            &name,
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(key), KeyType: types.KeyTypeHash}},
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(key), AttributeType: types.ScalarAttributeTypeS}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("create table %s: %w", name, err)
		}
	}
	return waitFor(ctx, "table "+name+" ACTIVE", func() (bool, error) {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name})
		switch {
		case isNotFound(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("describe table %s: %w", name, err)
		}
		return out.Table.TableStatus == types.TableStatusActive, nil
	})
}

// waitFor polls done, at growing intervals up to tablePollInterval, until
// it reports true, fails, or ctx ends.
func waitFor(ctx context.Context, what string, done func() (bool, error)) error {
	delay := tablePollInterval / 10
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, tablePollInterval)
	}
}

// IsLease reports whether a lease-table item is a lease: Java 3.5 treats an
// item as a lease when entityType is absent, not a string, or "LEASE"
// (DynamoDBLeaseSerializer.fromDynamoRecord reads it with safeGetString),
// and every list of leases skips the rest.
func IsLease(item map[string]types.AttributeValue) bool {
	v, ok := item[AttrEntityType].(*types.AttributeValueMemberS)
	return !ok || v.Value == EntityLease
}

func keyItem(attr, value string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attr: &types.AttributeValueMemberS{Value: value}}
}

func isNotFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return err != nil && errors.As(err, &nf)
}

func isConditionFailed(err error) bool {
	var cf *types.ConditionalCheckFailedException
	return err != nil && errors.As(err, &cf)
}
