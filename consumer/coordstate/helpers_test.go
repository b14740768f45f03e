package coordstate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// parseItem reads one item in DynamoDB JSON, the notation of the fixtures
// in the brief and of `aws dynamodb get-item`.
func parseItem(data []byte) (map[string]types.AttributeValue, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	return parseMap(raw)
}

func parseMap(raw map[string]json.RawMessage) (map[string]types.AttributeValue, error) {
	out := make(map[string]types.AttributeValue, len(raw))
	for k, v := range raw {
		av, err := parseAV(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = av
	}
	return out, nil
}

func parseAV(data json.RawMessage) (types.AttributeValue, error) {
	var one map[string]json.RawMessage
	if err := json.Unmarshal(data, &one); err != nil {
		return nil, err
	}
	if len(one) != 1 {
		return nil, fmt.Errorf("want one type tag, got %d", len(one))
	}
	for tag, v := range one {
		switch tag {
		case "S":
			var s string
			err := json.Unmarshal(v, &s)
			return &types.AttributeValueMemberS{Value: s}, err
		case "N":
			var s string
			err := json.Unmarshal(v, &s)
			return &types.AttributeValueMemberN{Value: s}, err
		case "B":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, err
			}
			b, err := base64.StdEncoding.DecodeString(s)
			return &types.AttributeValueMemberB{Value: b}, err
		case "SS":
			var ss []string
			err := json.Unmarshal(v, &ss)
			return &types.AttributeValueMemberSS{Value: ss}, err
		case "NS":
			var ss []string
			err := json.Unmarshal(v, &ss)
			return &types.AttributeValueMemberNS{Value: ss}, err
		case "BOOL":
			var b bool
			err := json.Unmarshal(v, &b)
			return &types.AttributeValueMemberBOOL{Value: b}, err
		case "NULL":
			return &types.AttributeValueMemberNULL{Value: true}, nil
		case "L":
			var raws []json.RawMessage
			if err := json.Unmarshal(v, &raws); err != nil {
				return nil, err
			}
			l := make([]types.AttributeValue, len(raws))
			for i, r := range raws {
				av, err := parseAV(r)
				if err != nil {
					return nil, fmt.Errorf("[%d]: %w", i, err)
				}
				l[i] = av
			}
			return &types.AttributeValueMemberL{Value: l}, nil
		case "M":
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(v, &raw); err != nil {
				return nil, err
			}
			m, err := parseMap(raw)
			return &types.AttributeValueMemberM{Value: m}, err
		}
		return nil, fmt.Errorf("unknown type tag %q", tag)
	}
	panic("unreachable")
}

func mustItem(t testing.TB, js string) map[string]types.AttributeValue {
	t.Helper()
	item, err := parseItem([]byte(js))
	if err != nil {
		t.Fatalf("fixture %s: %v", js, err)
	}
	return item
}

// createTable makes a PAY_PER_REQUEST table keyed by a string hash key,
// deleted when the test ends; withIndex also declares LeaseOwnerIndex, as
// the table looks after Java's UpdateTable on real DynamoDB.
func createTable(t testing.TB, env *devstacktest.Env, name, key string, withIndex bool) {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	in := &dynamodb.CreateTableInput{
		TableName:            &name,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(key), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(key), AttributeType: types.ScalarAttributeTypeS}},
		BillingMode:          types.BillingModePayPerRequest,
	}
	if withIndex {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(attrLeaseOwner), AttributeType: types.ScalarAttributeTypeS})
		in.GlobalSecondaryIndexes = []types.GlobalSecondaryIndex{{
			IndexName: aws.String(LeaseOwnerIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(attrLeaseOwner), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrLeaseKey), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}}
	}
	if _, err := env.DynamoDB.CreateTable(ctx, in); err != nil {
		t.Fatalf("create table %s: %v", name, err)
	}
	deleteTableAtEnd(t, env, name)
	if err := waitFor(ctx, "table "+name, func() (bool, error) {
		out, err := env.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name})
		return err == nil && out.Table.TableStatus == types.TableStatusActive, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func deleteTableAtEnd(t testing.TB, env *devstacktest.Env, name string) {
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name})
	})
}

func putRaw(t testing.TB, env *devstacktest.Env, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := env.DynamoDB.PutItem(devstacktest.Ctx(t), &dynamodb.PutItemInput{TableName: &table, Item: item}); err != nil {
		t.Fatalf("put into %s: %v", table, err)
	}
}

func getRaw(t testing.TB, env *devstacktest.Env, table, keyAttr, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := env.DynamoDB.GetItem(devstacktest.Ctx(t), &dynamodb.GetItemInput{
		TableName: &table, Key: keyItem(keyAttr, key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("get %s from %s: %v", key, table, err)
	}
	return out.Item
}

// layouts returns a fresh three-table layout (tables created) and a fresh
// single-table layout, each with its own lease table.
func layouts(t *testing.T, env *devstacktest.Env) map[string]Layout {
	t.Helper()
	app := env.Name("cs")
	three := ThreeTables(app, app)
	createTable(t, env, three.LeaseTable, attrLeaseKey, false)
	deleteTableAtEnd(t, env, three.CoordinatorTable)
	deleteTableAtEnd(t, env, three.MetricsTable)
	if err := three.Ensure(devstacktest.Ctx(t), env.DynamoDB); err != nil {
		t.Fatal(err)
	}
	single := SingleTable(env.Name("cs1"))
	createTable(t, env, single.LeaseTable, attrLeaseKey, false)
	return map[string]Layout{"three": three, "single": single}
}

// counting passes every call to the real client and counts them by
// operation, to tell which path a function took.
type counting struct {
	DynamoDBAPI
	mu    sync.Mutex
	calls map[string]int
}

func newCounting(db DynamoDBAPI) *counting {
	return &counting{DynamoDBAPI: db, calls: map[string]int{}}
}

func (c *counting) count(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

func (c *counting) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *counting) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query")
	return c.DynamoDBAPI.Query(ctx, in, o...)
}

func (c *counting) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.count("Scan")
	return c.DynamoDBAPI.Scan(ctx, in, o...)
}

func (c *counting) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem")
	return c.DynamoDBAPI.GetItem(ctx, in, o...)
}

func (c *counting) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count("UpdateItem")
	return c.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

func (c *counting) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem")
	return c.DynamoDBAPI.PutItem(ctx, in, o...)
}

// eventually polls cond every 50 ms until it holds or the generous
// deadline passes.
func eventually(t *testing.T, what string, deadline time.Duration, cond func() (bool, error)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, deadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
