package consumer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/shardpos"
)

// loadJavaFixture reads testdata/java-kcl-leases.json, replacing
// {{SEQ:shard}} placeholders through seq.
func loadJavaFixture(t testing.TB, seq func(shard string) string) []map[string]types.AttributeValue {
	t.Helper()
	raw, err := os.ReadFile("testdata/java-kcl-leases.json")
	if err != nil {
		t.Fatal(err)
	}
	text := fillSeq(string(raw), seq)
	var doc struct {
		Items []map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("testdata/java-kcl-leases.json: %v", err)
	}
	var items []map[string]types.AttributeValue
	for n, it := range doc.Items {
		item := map[string]types.AttributeValue{}
		for name, typed := range it {
			for typ, v := range typed {
				av, err := ddbJSON(typ, v)
				if err != nil {
					t.Fatalf("testdata/java-kcl-leases.json item %d attribute %s: %v", n, name, err)
				}
				item[name] = av
			}
		}
		items = append(items, item)
	}
	return items
}

// fillSeq replaces each {{SEQ:shardId}} of a fixture with seq(shardId).
func fillSeq(text string, seq func(shard string) string) string {
	for {
		i := strings.Index(text, "{{SEQ:")
		if i < 0 {
			return text
		}
		j := strings.Index(text[i:], "}}")
		text = text[:i] + seq(text[i+6:i+j]) + text[i+j+2:]
	}
}

func ddbJSON(typ string, v json.RawMessage) (types.AttributeValue, error) {
	switch typ {
	case "S":
		var s string
		err := json.Unmarshal(v, &s)
		return &types.AttributeValueMemberS{Value: s}, err
	case "N":
		var s string
		err := json.Unmarshal(v, &s)
		return &types.AttributeValueMemberN{Value: s}, err
	case "SS":
		var ss []string
		err := json.Unmarshal(v, &ss)
		return &types.AttributeValueMemberSS{Value: ss}, err
	case "B":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		return &types.AttributeValueMemberB{Value: b}, err
	case "M":
		var m map[string]map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return nil, err
		}
		out := &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
		for name, typed := range m {
			for t, raw := range typed {
				av, err := ddbJSON(t, raw)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				out.Value[name] = av
			}
		}
		return out, nil
	case "L":
		var l []map[string]json.RawMessage
		if err := json.Unmarshal(v, &l); err != nil {
			return nil, err
		}
		out := &types.AttributeValueMemberL{}
		for i, typed := range l {
			for t, raw := range typed {
				av, err := ddbJSON(t, raw)
				if err != nil {
					return nil, fmt.Errorf("[%d]: %w", i, err)
				}
				out.Value = append(out.Value, av)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported DynamoDB JSON type %q", typ)
}

func TestLeaseDecodesJavaKCLItems(t *testing.T) {
	items := loadJavaFixture(t, func(shard string) string { return "4959" + strings.TrimPrefix(shard, "shardId-") })
	var got []lease
	for _, it := range items {
		l, err := leaseFromItem(it)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	want := []lease{
		{key: "shardId-000000000000", owner: "java-worker-7f3c", counter: 1042, checkpoint: shardpos.Position{Sequence: "4959000000000000", SubSequence: 0}, ownerSwitches: 1,
			startHash: "0", endHash: "170141183460469231731687303715884105727"},
		{key: "shardId-000000000001", owner: "java-worker-1a2b", counter: 7, checkpoint: shardpos.Position{Sequence: "4959000000000001", SubSequence: 0},
			startHash: "170141183460469231731687303715884105728", endHash: "340282366920938463463374607431768211455"},
		{key: "shardId-000000000002", counter: 3, checkpoint: shardpos.Position{Sequence: TrimHorizon, SubSequence: 0}, parents: []string{"shardId-000000000000", "shardId-000000000001"},
			startHash: "0", endHash: "340282366920938463463374607431768211455"},
		{key: "shardId-000000000003", counter: 12, checkpoint: shardpos.Position{Sequence: ShardEnd, SubSequence: 0}, children: []string{"shardId-000000000004", "shardId-000000000005"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if !got[3].finished() || got[2].finished() {
		t.Error("finished() wrong")
	}
}

func TestLeaseItemRoundTrip(t *testing.T) {
	l := lease{key: "123456789012:sensors:1700000000:shardId-000000000004", owner: "w1", counter: 5,
		checkpoint: shardpos.Position{Sequence: "49590338271490256608559692538361571095921575989136588898", SubSequence: 3}, ownerSwitches: 2,
		parents: []string{"shardId-000000000001", "shardId-000000000002"}, startHash: "0", endHash: "99",
		streamID: "123456789012:sensors:1700000000", shardID: "shardId-000000000004"}
	item := l.item()
	// Java KCL attribute names and types.
	for name, typ := range map[string]string{
		"leaseKey": "S", "leaseOwner": "S", "leaseCounter": "N", "checkpoint": "S", "checkpointSubSequenceNumber": "N",
		"ownerSwitchesSinceCheckpoint": "N", "parentShardId": "SS", "startingHashKey": "S", "endingHashKey": "S",
		"streamName": "S", "shardId": "S",
	} {
		var ok bool
		switch typ {
		case "S":
			_, ok = item[name].(*types.AttributeValueMemberS)
		case "N":
			_, ok = item[name].(*types.AttributeValueMemberN)
		case "SS":
			_, ok = item[name].(*types.AttributeValueMemberSS)
		}
		if !ok {
			t.Errorf("attribute %s: %T, want %s", name, item[name], typ)
		}
	}
	back, err := leaseFromItem(item)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, l) {
		t.Fatalf("round trip\n%+v\nwant\n%+v", back, l)
	}
}

func TestLeaseDecodeErrorsNameLeaseAndAttribute(t *testing.T) {
	item := map[string]types.AttributeValue{
		"leaseKey":     &types.AttributeValueMemberS{Value: "shardId-1"},
		"leaseCounter": &types.AttributeValueMemberS{Value: "seven"},
	}
	_, err := leaseFromItem(item)
	if err == nil || !strings.Contains(err.Error(), "shardId-1") || !strings.Contains(err.Error(), "leaseCounter") {
		t.Fatalf("err = %v; want it to name the lease and the attribute", err)
	}
	_, err = leaseFromItem(map[string]types.AttributeValue{})
	if err == nil || !strings.Contains(err.Error(), "leaseKey") {
		t.Fatalf("err = %v; want missing leaseKey", err)
	}
}
