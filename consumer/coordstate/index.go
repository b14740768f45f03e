package coordstate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// LeaseOwnerIndex is the global secondary index on the lease table through
// which Java 3.x workers find their leases (leaseOwner HASH, leaseKey
// RANGE, KEYS_ONLY; DynamoDBLeaseRefresher.LEASE_OWNER_TO_LEASE_KEY_INDEX_NAME).
// Items without leaseOwner (unassigned leases, coordinator items) are not
// in it.
const LeaseOwnerIndex = "LeaseOwnerToLeaseKeyIndex"

const attrLeaseOwner = "leaseOwner"

// ErrIndexNotCreated reports a server that cannot create LeaseOwnerIndex as
// Java asks for it. Real DynamoDB always can; dynalite 4.0 (the local test
// server) refuses an index without ProvisionedThroughput, which DynamoDB
// forbids on a PAY_PER_REQUEST table, and given one accepts the UpdateTable
// but ignores GlobalSecondaryIndexUpdates.Create (real DynamoDB lists a new
// index as CREATING in its answer). LeaseKeysOwnedBy still works on such a
// table, by Scan.
var ErrIndexNotCreated = errors.New("the server accepted but did not create the index")

// EnsureLeaseOwnerIndex creates LeaseOwnerIndex on leaseTable when it is
// missing, as createLeaseOwnerToLeaseKeyIndexIfNotExists does: an
// UpdateTable with the index's key attributes, KEYS_ONLY, and the base
// table's provisioned throughput when the table is PROVISIONED (none when
// PAY_PER_REQUEST). With wait it then polls DescribeTable until the index
// is ACTIVE or ctx ends (Java 3X blocks up to an hour; creation on a big
// table takes minutes). Several workers may race: an UpdateTable refused
// because the index already exists or is being created is not an error.
func EnsureLeaseOwnerIndex(ctx context.Context, db DynamoDBAPI, leaseTable string, wait bool) error {
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &leaseTable})
	if err != nil {
		return fmt.Errorf("ensure %s: describe %s: %w", LeaseOwnerIndex, leaseTable, err)
	}
	if indexStatus(desc.Table) == "" {
		if err := createLeaseOwnerIndex(ctx, db, desc.Table); err != nil {
			return err
		}
	}
	if !wait {
		return nil
	}
	return waitFor(ctx, LeaseOwnerIndex+" on "+leaseTable+" ACTIVE", func() (bool, error) {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &leaseTable})
		if err != nil {
			return false, fmt.Errorf("ensure %s: describe %s: %w", LeaseOwnerIndex, leaseTable, err)
		}
		return indexStatus(out.Table) == types.IndexStatusActive, nil
	})
}

// LeaseOwnerIndexSchema is LeaseOwnerIndex as a lease table declares it:
// the attribute definitions it needs and the index. A KEYS_ONLY index on
// a PAY_PER_REQUEST table needs no throughput; a PROVISIONED table must
// add its own. Declaring it at CreateTable spares the backfill an
// UpdateTable starts, and works where UpdateTable cannot add one.
func LeaseOwnerIndexSchema() ([]types.AttributeDefinition, types.GlobalSecondaryIndex) {
	return []types.AttributeDefinition{
			{AttributeName: aws.String(attrLeaseOwner), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrLeaseKey), AttributeType: types.ScalarAttributeTypeS},
		}, types.GlobalSecondaryIndex{
			IndexName: aws.String(LeaseOwnerIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(attrLeaseOwner), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrLeaseKey), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}
}

func createLeaseOwnerIndex(ctx context.Context, db DynamoDBAPI, table *types.TableDescription) error {
	name := aws.ToString(table.TableName)
	attrs, gsi := LeaseOwnerIndexSchema()
	create := &types.CreateGlobalSecondaryIndexAction{IndexName: gsi.IndexName, KeySchema: gsi.KeySchema, Projection: gsi.Projection}
	payPerRequest := table.BillingModeSummary != nil && table.BillingModeSummary.BillingMode == types.BillingModePayPerRequest
	if !payPerRequest && table.ProvisionedThroughput != nil {
		create.ProvisionedThroughput = &types.ProvisionedThroughput{
			ReadCapacityUnits:  table.ProvisionedThroughput.ReadCapacityUnits,
			WriteCapacityUnits: table.ProvisionedThroughput.WriteCapacityUnits,
		}
	}
	out, err := db.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName:                   &name,
		AttributeDefinitions:        attrs,
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: create}},
	})
	if err != nil {
		// Lost a race: re-read, and accept an index that now exists.
		desc, derr := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name})
		if derr == nil && indexStatus(desc.Table) != "" {
			return nil
		}
		var ae smithy.APIError
		if payPerRequest && errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" && strings.Contains(ae.ErrorMessage(), "create.provisionedThroughput") {
			// dynalite 4.0 insists on a throughput that DynamoDB forbids
			// for a PAY_PER_REQUEST table (and would then ignore the index).
			return fmt.Errorf("ensure %s on %s: %w: %v", LeaseOwnerIndex, name, ErrIndexNotCreated, err)
		}
		return fmt.Errorf("ensure %s: create on %s: %w", LeaseOwnerIndex, name, err)
	}
	if indexStatus(out.TableDescription) == "" {
		return fmt.Errorf("ensure %s on %s: %w", LeaseOwnerIndex, name, ErrIndexNotCreated)
	}
	return nil
}

// LeaseOwnerIndexActive reports whether leaseTable has LeaseOwnerIndex
// ready to query: the first condition of Java's MigrationReadyMonitor.
func LeaseOwnerIndexActive(ctx context.Context, db DynamoDBAPI, leaseTable string) (bool, error) {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &leaseTable})
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", leaseTable, err)
	}
	return indexStatus(out.Table) == types.IndexStatusActive, nil
}

// indexStatus is LeaseOwnerIndex's status in t, or "" when t has no such
// index.
func indexStatus(t *types.TableDescription) types.IndexStatus {
	if t == nil {
		return ""
	}
	for _, gsi := range t.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == LeaseOwnerIndex {
			if gsi.IndexStatus == "" {
				return types.IndexStatusActive // servers that omit the status serve the index
			}
			return gsi.IndexStatus
		}
	}
	return ""
}

// LeaseKeysOwnedBy returns the keys of the leases whose leaseOwner is
// owner, by a paginated Query of LeaseOwnerIndex
// (DynamoDBLeaseRefresher.listLeaseKeysForWorker). The index is eventually
// consistent: a lease assigned a moment ago may be missing, and one taken
// away may linger, so callers confirm with a read of the lease itself, as
// Java's DynamoDBLeaseDiscoverer does.
//
// When the index cannot be queried (absent, or still backfilling after
// creation: DynamoDB answers ValidationException naming the index) it falls
// back to a Scan of the lease table filtered on leaseOwner, projecting
// leaseKey. That keeps a worker working on a table whose index is not ready
// (and on dynalite, which cannot create one), at the price of reading the
// whole table per call instead of only the owner's keys.
func LeaseKeysOwnedBy(ctx context.Context, db DynamoDBAPI, leaseTable, owner string) ([]string, error) {
	keys, err := queryOwnerIndex(ctx, db, leaseTable, owner)
	var ae smithy.APIError // an unusable index names itself in a ValidationException
	if err == nil || !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" || !strings.Contains(ae.ErrorMessage(), LeaseOwnerIndex) {
		return keys, err
	}
	return scanOwnerKeys(ctx, db, leaseTable, owner)
}

func queryOwnerIndex(ctx context.Context, db DynamoDBAPI, leaseTable, owner string) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &leaseTable,
		IndexName:                 aws.String(LeaseOwnerIndex),
		KeyConditionExpression:    aws.String("#o = :o"),
		ExpressionAttributeNames:  map[string]string{"#o": attrLeaseOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": sVal(owner)},
	}
	var keys []string
	for {
		page, err := db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query %s on %s for %s: %w", LeaseOwnerIndex, leaseTable, owner, err)
		}
		if keys, err = appendLeaseKeys(keys, leaseTable, page.Items); err != nil {
			return nil, err
		}
		if len(page.LastEvaluatedKey) == 0 {
			return keys, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

func scanOwnerKeys(ctx context.Context, db DynamoDBAPI, leaseTable, owner string) ([]string, error) {
	in := &dynamodb.ScanInput{
		TableName:                 &leaseTable,
		FilterExpression:          aws.String("#o = :o"),
		ProjectionExpression:      aws.String("#k"),
		ExpressionAttributeNames:  map[string]string{"#o": attrLeaseOwner, "#k": attrLeaseKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": sVal(owner)},
	}
	var keys []string
	for {
		page, err := db.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("scan %s for leases of %s (no usable %s): %w", leaseTable, owner, LeaseOwnerIndex, err)
		}
		if keys, err = appendLeaseKeys(keys, leaseTable, page.Items); err != nil {
			return nil, err
		}
		if len(page.LastEvaluatedKey) == 0 {
			return keys, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

func appendLeaseKeys(keys []string, table string, items []map[string]types.AttributeValue) ([]string, error) {
	for _, item := range items {
		k, err := str(item, attrLeaseKey)
		if err != nil {
			return nil, &DecodeError{Table: table, Key: "?", Attr: attrLeaseKey, Err: err}
		}
		keys = append(keys, k)
	}
	return keys, nil
}
