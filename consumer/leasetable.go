package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/shardpos"
)

// DynamoDBAPI is the part of the DynamoDB client the consumer uses; a
// *dynamodb.Client satisfies it.
type DynamoDBAPI interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	// UpdateTable and Query serve ClientVersion3X: the lease-owner index
	// is created with the first and read with the second.
	UpdateTable(context.Context, *dynamodb.UpdateTableInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// The KCL 3.x coordinator tables are reached through the same client.
var _ coordstate.DynamoDBAPI = DynamoDBAPI(nil)

// errConflict reports that a conditional write found the lease changed
// since the writer last saw it: another worker took it, or it was deleted.
var errConflict = errors.New("lease changed since last seen")

// leaseTable performs the lease table's reads and writes. Every write that
// changes an existing lease is conditional on the owner and counter the
// writer last saw, and bumps the counter, as Java KCL does.
type leaseTable struct {
	db   DynamoDBAPI
	name string
	// ownerIndex declares the KCL 3.x lease-owner index when the table is
	// created (ClientVersion3X).
	ownerIndex bool
}

// ensure creates the table when it is missing and waits until it is
// ACTIVE. Several workers may race to create it: ResourceInUseException
// from CreateTable means another one won, and is not an error.
func (t *leaseTable) ensure(ctx context.Context) error {
	out, err := t.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
	if err == nil && out.Table.TableStatus == types.TableStatusActive {
		return nil
	}
	var nf *types.ResourceNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("describe lease table %s: %w", t.name, err)
	}
	if err != nil {
		in := &dynamodb.CreateTableInput{
			TableName:            &t.name,
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrLeaseKey), KeyType: types.KeyTypeHash}},
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
			BillingMode:          types.BillingModePayPerRequest,
		}
		if t.ownerIndex {
			attrs, gsi := coordstate.LeaseOwnerIndexSchema()
			in.AttributeDefinitions = attrs
			in.GlobalSecondaryIndexes = []types.GlobalSecondaryIndex{gsi}
		}
		_, err = t.db.CreateTable(ctx, in)
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("create lease table %s: %w", t.name, err)
		}
	}
	for {
		out, err := t.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
		switch {
		case err == nil && out.Table.TableStatus == types.TableStatusActive:
			return nil
		case err != nil && !errors.As(err, &nf):
			return fmt.Errorf("describe lease table %s: %w", t.name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for lease table %s: %w", t.name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// list reads every lease with a consistent scan.
func (t *leaseTable) list(ctx context.Context) ([]lease, error) {
	var out []lease
	var start map[string]types.AttributeValue
	for {
		page, err := t.db.Scan(ctx, &dynamodb.ScanInput{
			TableName:         &t.name,
			ConsistentRead:    aws.Bool(true),
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, fmt.Errorf("scan lease table %s: %w", t.name, err)
		}
		for _, item := range page.Items {
			if !coordstate.IsLease(item) {
				// KCL 3.5 keeps its leader lock, migration state and
				// worker metrics in the lease table too.
				continue
			}
			l, err := leaseFromItem(item)
			if err != nil {
				return nil, fmt.Errorf("lease table %s: %w", t.name, err)
			}
			out = append(out, l)
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

// get reads one lease; ok is false when it does not exist.
func (t *leaseTable) get(ctx context.Context, key string) (l lease, ok bool, err error) {
	out, err := t.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &t.name,
		Key:            keyOf(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return l, false, fmt.Errorf("get lease %q: %w", key, err)
	}
	if len(out.Item) == 0 || !coordstate.IsLease(out.Item) {
		return l, false, nil
	}
	l, err = leaseFromItem(out.Item)
	if err != nil {
		return l, false, fmt.Errorf("lease table %s: %w", t.name, err)
	}
	return l, true, nil
}

// create writes a new lease unless one with the same key exists; created is
// false when it did.
func (t *leaseTable) create(ctx context.Context, l lease) (created bool, err error) {
	_, err = t.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &t.name,
		Item:                l.item(),
		ConditionExpression: aws.String("attribute_not_exists(leaseKey)"),
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create lease %q: %w", l.key, err)
	}
	return true, nil
}

// deleteFinished deletes a lease read to its end; deleted is false when it
// was already gone or is not at SHARD_END (never delete live progress).
func (t *leaseTable) deleteFinished(ctx context.Context, key string) (deleted bool, err error) {
	_, err = t.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &t.name,
		Key:                       keyOf(key),
		ConditionExpression:       aws.String("checkpoint = :end"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":end": &types.AttributeValueMemberS{Value: ShardEnd}},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete lease %q: %w", key, err)
	}
	return true, nil
}

// update is one conditional write to an existing lease.
type update struct {
	set    map[string]types.AttributeValue
	remove []string
}

// apply writes u to the lease l, conditional on l's owner and counter, and
// bumps the counter. On success l reflects the new state; a lost race
// returns errConflict.
func (t *leaseTable) apply(ctx context.Context, l *lease, u update) error {
	names := map[string]string{"#c": attrLeaseCounter, "#o": attrLeaseOwner}
	values := map[string]types.AttributeValue{
		":c":    numAttr(l.counter),
		":next": numAttr(l.counter + 1),
	}
	cond := "#c = :c AND "
	if l.owner == "" {
		cond += "attribute_not_exists(#o)"
	} else {
		cond += "#o = :o"
		values[":o"] = &types.AttributeValueMemberS{Value: l.owner}
	}
	expr := "SET #c = :next"
	keys := make([]string, 0, len(u.set))
	for k := range u.set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		n, v := "#s"+strconv.Itoa(i), ":s"+strconv.Itoa(i)
		names[n] = k
		values[v] = u.set[k]
		expr += ", " + n + " = " + v
	}
	for i, k := range u.remove {
		n := "#r" + strconv.Itoa(i)
		names[n] = k
		if i == 0 {
			expr += " REMOVE " + n
		} else {
			expr += ", " + n
		}
	}
	if err := t.update(ctx, l.key, cond, expr, names, values); err != nil {
		return err
	}
	l.counter++
	return nil
}

// update is one conditional UpdateItem of a lease; a failed condition is
// errConflict.
func (t *leaseTable) update(ctx context.Context, key, cond, expr string, names map[string]string, values map[string]types.AttributeValue) error {
	_, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &t.name,
		Key:                       keyOf(key),
		ConditionExpression:       &cond,
		UpdateExpression:          &expr,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return fmt.Errorf("lease %q: %w", key, errConflict)
	}
	if err != nil {
		return fmt.Errorf("update lease %q: %w", key, err)
	}
	return nil
}

// renew bumps the counter: the heartbeat other workers watch. It also
// writes the lease's throughput when one is measured (see
// shardRun.throughputAttrs).
func (t *leaseTable) renew(ctx context.Context, l *lease, extra map[string]types.AttributeValue) error {
	return t.apply(ctx, l, update{set: maps.Clone(extra)})
}

// take makes owner the lease's owner.
func (t *leaseTable) take(ctx context.Context, l *lease, owner string) error {
	u := update{set: map[string]types.AttributeValue{attrLeaseOwner: &types.AttributeValueMemberS{Value: owner}}}
	u.remove = []string{attrCheckpointOwner}
	switched := l.owner != "" && l.owner != owner
	if switched {
		u.set[attrOwnerSwitches] = numAttr(l.ownerSwitches + 1)
	}
	if err := t.apply(ctx, l, u); err != nil {
		return err
	}
	if switched {
		l.ownerSwitches++
	}
	l.owner = owner
	l.checkpointOwner = ""
	return nil
}

// checkpoint records pos, with extra attributes written alongside (the
// throughput). With release, the owner is removed in the same
// write so that another worker can take the lease at once. children, when
// given, are recorded as the shard's childShardIds.
func (t *leaseTable) checkpoint(ctx context.Context, l *lease, pos shardpos.Position, children []string, release bool, extra map[string]types.AttributeValue) error {
	u := update{set: map[string]types.AttributeValue{
		attrCheckpoint:    &types.AttributeValueMemberS{Value: pos.Sequence},
		attrCheckpointSub: numAttr(int64(pos.SubSequence)),
		attrOwnerSwitches: numAttr(0),
	}}
	maps.Copy(u.set, extra)
	if len(children) > 0 {
		u.set[attrChildShardIDs] = &types.AttributeValueMemberSS{Value: slices.Clone(children)}
	}
	if pos.Sequence == ShardEnd {
		l.tailAttrs(u.set)
	}
	u.remove = []string{attrPendingCheckpoint, attrPendingSub}
	if release {
		// A lease released mid hand-off (its shard ended) is nobody's.
		u.remove = append(u.remove, attrLeaseOwner, attrCheckpointOwner)
	}
	if err := t.apply(ctx, l, u); err != nil {
		return err
	}
	l.checkpoint = pos
	l.ownerSwitches = 0
	if len(children) > 0 {
		l.children = slices.Clone(children)
	}
	if release {
		l.owner, l.checkpointOwner = "", ""
	}
	return nil
}

// release removes the owner so that any worker may take the lease at once,
// as Java KCL's evictLease does.
func (t *leaseTable) release(ctx context.Context, l *lease) error {
	if err := t.apply(ctx, l, update{remove: []string{attrLeaseOwner, attrCheckpointOwner}}); err != nil {
		return err
	}
	l.owner = ""
	return nil
}

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrLeaseKey: &types.AttributeValueMemberS{Value: key}}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return err != nil && errors.As(err, &ccf)
}
