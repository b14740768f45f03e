package sinks

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names of a feature table item, shared by the sink that writes
// it and the readers (the login Lambda) through FeatureLayout. The window
// bounds, model version and fallback flag use the result columns' names
// (ColWindowStart, ColWindowEnd, ColModelVersion, ColFallback).
const (
	// FeatureAttrEntity is the default partition key: the entity id.
	FeatureAttrEntity = "entity"
	// FeatureAttrSet is the default sort key: FeatureSet(pipeline, window).
	FeatureAttrSet = "feature_set"
	// FeatureAttrFeatures is the map of feature values by name.
	FeatureAttrFeatures = "features"
	// FeatureAttrTTL is the default expiry attribute, Unix seconds.
	FeatureAttrTTL = "ttl"

	featureAttrStream    = "stream"
	featureAttrUpdatedAt = "updated_at"
)

// DynamoDB's key and item limits, which the feature table checks before
// writing so that a row it cannot store is dead-lettered with the reason.
const (
	// MaxPartitionKeyBytes is DynamoDB's limit on a partition key value;
	// the entity is the partition key verbatim, so it is MaxEntityBytes.
	MaxPartitionKeyBytes = 2048
	// MaxSortKeyBytes is DynamoDB's limit on a sort key value (the
	// feature set name).
	MaxSortKeyBytes = 1024
	// MaxItemBytes is DynamoDB's item size limit (names and values).
	MaxItemBytes = 400 << 10
)

// FeatureSet is the sort key value of a window's items: the pipeline and
// window names joined by "#". Two pipelines, or two windows of one
// pipeline, with the same entity then keep separate items, and a reader
// asks for exactly the window it was built for with one GetItem.
func FeatureSet(pipeline, window string) string { return pipeline + "#" + window }

// FeatureItem is one item of the feature table: an entity's newest window
// of one feature set.
type FeatureItem struct {
	Entity     string
	FeatureSet string
	// Stream is the Kinesis stream the window was computed from.
	Stream string
	// WindowStart and WindowEnd are stored as Unix milliseconds.
	WindowStart, WindowEnd time.Time
	// Features are the window's numeric features by name; a null or
	// non-finite value is absent.
	Features map[string]float64
	// Scores are the model outputs by column name (score, score_0, ...).
	Scores       map[string]float64
	ModelVersion string
	Fallback     bool
	// ResultID is the row's ResultID.
	ResultID string
	// UpdatedAt is when the sink wrote the item (Unix milliseconds).
	UpdatedAt time.Time
	// Expires is the TTL (Unix seconds).
	Expires time.Time
}

// FeatureLayout names a feature table's key and TTL attributes. The zero
// value is the default layout: partition key "entity", sort key
// "feature_set", TTL "ttl".
type FeatureLayout struct {
	PartitionKey, SortKey, TTLAttribute string
}

func (l FeatureLayout) withDefaults() FeatureLayout {
	if l.PartitionKey == "" {
		l.PartitionKey = FeatureAttrEntity
	}
	if l.SortKey == "" {
		l.SortKey = FeatureAttrSet
	}
	if l.TTLAttribute == "" {
		l.TTLAttribute = FeatureAttrTTL
	}
	return l
}

// Key is the primary key of an entity's item of a feature set, for
// GetItem and BatchGetItem.
func (l FeatureLayout) Key(entity, featureSet string) map[string]ddbtypes.AttributeValue {
	l = l.withDefaults()
	return map[string]ddbtypes.AttributeValue{
		l.PartitionKey: &ddbtypes.AttributeValueMemberS{Value: entity},
		l.SortKey:      &ddbtypes.AttributeValueMemberS{Value: featureSet},
	}
}

// conditionalPut is the write of a marshalled item whose window spans
// [wsMillis, weMillis): the feature table's rule that an item only ever
// moves forward. A newer window overwrites, and so does a revision of the
// same window (update: a row revised by late data). A replay of the same
// window does not: after a failover it may be rebuilt from only the events
// after the checkpoint, and the complete first version must stay.
func (l FeatureLayout) conditionalPut(table string, item map[string]ddbtypes.AttributeValue, wsMillis, weMillis int64, update bool) *dynamodb.PutItemInput {
	l = l.withDefaults()
	cond := "attribute_not_exists(#k) OR #ws < :ws OR (#ws = :ws AND #we < :we)"
	if update {
		cond = "attribute_not_exists(#k) OR #ws < :ws OR (#ws = :ws AND #we <= :we)"
	}
	return &dynamodb.PutItemInput{
		TableName:                aws.String(table),
		Item:                     item,
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: map[string]string{"#k": l.PartitionKey, "#ws": ColWindowStart, "#we": ColWindowEnd},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":ws": avN(wsMillis), ":we": avN(weMillis),
		},
	}
}

func avN(x int64) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(x, 10)}
}

func avF(x float64) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatFloat(x, 'g', -1, 64)}
}

// Marshal renders it as a DynamoDB item. Non-finite features and scores
// are left out (DynamoDB numbers cannot hold them).
func (l FeatureLayout) Marshal(it *FeatureItem) map[string]ddbtypes.AttributeValue {
	l = l.withDefaults()
	feats := make(map[string]ddbtypes.AttributeValue, len(it.Features))
	for k, x := range it.Features {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			feats[k] = avF(x)
		}
	}
	item := map[string]ddbtypes.AttributeValue{
		l.PartitionKey:       &ddbtypes.AttributeValueMemberS{Value: it.Entity},
		l.SortKey:            &ddbtypes.AttributeValueMemberS{Value: it.FeatureSet},
		featureAttrStream:    &ddbtypes.AttributeValueMemberS{Value: it.Stream},
		ColWindowStart:       avN(it.WindowStart.UnixMilli()),
		ColWindowEnd:         avN(it.WindowEnd.UnixMilli()),
		FeatureAttrFeatures:  &ddbtypes.AttributeValueMemberM{Value: feats},
		ColFallback:          &ddbtypes.AttributeValueMemberBOOL{Value: it.Fallback},
		ColResultID:          &ddbtypes.AttributeValueMemberS{Value: it.ResultID},
		featureAttrUpdatedAt: avN(it.UpdatedAt.UnixMilli()),
		l.TTLAttribute:       avN(it.Expires.Unix()),
		ColModelVersion:      &ddbtypes.AttributeValueMemberS{Value: it.ModelVersion},
	}
	for k, x := range it.Scores {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			item[k] = avF(x)
		}
	}
	return item
}

// Unmarshal reads an item Marshal wrote. window_end is required; a
// features attribute, when present, must be a map of numbers. Other
// attributes are read when present and of the right kind, so an item
// written by an older sink (no sort key, no stream) still reads.
func (l FeatureLayout) Unmarshal(item map[string]ddbtypes.AttributeValue) (FeatureItem, error) {
	l = l.withDefaults()
	var it FeatureItem
	str := func(name string) string {
		if v, ok := item[name].(*ddbtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	it.Entity, it.FeatureSet, it.Stream = str(l.PartitionKey), str(l.SortKey), str(featureAttrStream)
	it.ModelVersion, it.ResultID = str(ColModelVersion), str(ColResultID)
	if b, ok := item[ColFallback].(*ddbtypes.AttributeValueMemberBOOL); ok {
		it.Fallback = b.Value
	}
	we, err := millisAttr(item, ColWindowEnd)
	if err != nil {
		return it, err
	}
	it.WindowEnd = we
	if ws, err := millisAttr(item, ColWindowStart); err == nil {
		it.WindowStart = ws
	}
	if u, err := millisAttr(item, featureAttrUpdatedAt); err == nil {
		it.UpdatedAt = u
	}
	if v, ok := item[l.TTLAttribute].(*ddbtypes.AttributeValueMemberN); ok {
		if s, err := strconv.ParseInt(v.Value, 10, 64); err == nil {
			it.Expires = time.Unix(s, 0).UTC()
		}
	}
	if fv, present := item[FeatureAttrFeatures]; present {
		m, ok := fv.(*ddbtypes.AttributeValueMemberM)
		if !ok {
			return it, fmt.Errorf("attribute %q is %s, want a map", FeatureAttrFeatures, avKind(fv))
		}
		it.Features = make(map[string]float64, len(m.Value))
		for name, v := range m.Value {
			n, ok := v.(*ddbtypes.AttributeValueMemberN)
			if !ok {
				return it, fmt.Errorf("feature %q is %s, want a number", name, avKind(v))
			}
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return it, fmt.Errorf("feature %q: %q is not a number", name, n.Value)
			}
			it.Features[name] = f
		}
	}
	for name, v := range item {
		if !isScore(name) {
			continue
		}
		if n, ok := v.(*ddbtypes.AttributeValueMemberN); ok {
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
				if it.Scores == nil {
					it.Scores = map[string]float64{}
				}
				it.Scores[name] = f
			}
		}
	}
	return it, nil
}

func millisAttr(item map[string]ddbtypes.AttributeValue, name string) (time.Time, error) {
	v, ok := item[name].(*ddbtypes.AttributeValueMemberN)
	if !ok {
		return time.Time{}, fmt.Errorf("attribute %q is %s, want Unix milliseconds", name, avKind(item[name]))
	}
	ms, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("attribute %q: %q is not Unix milliseconds", name, v.Value)
	}
	return time.UnixMilli(ms).UTC(), nil
}

func avKind(v ddbtypes.AttributeValue) string {
	switch v.(type) {
	case nil:
		return "absent"
	case *ddbtypes.AttributeValueMemberS:
		return "a string"
	case *ddbtypes.AttributeValueMemberN:
		return "a number"
	case *ddbtypes.AttributeValueMemberM:
		return "a map"
	case *ddbtypes.AttributeValueMemberBOOL:
		return "a boolean"
	case *ddbtypes.AttributeValueMemberNULL:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// itemBytes estimates an item's size as DynamoDB counts it (names plus
// values; numbers as their text, an upper bound of DynamoDB's encoding).
func itemBytes(item map[string]ddbtypes.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + avBytes(v)
	}
	return n
}

func avBytes(v ddbtypes.AttributeValue) int {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return len(v.Value)
	case *ddbtypes.AttributeValueMemberN:
		return len(v.Value)
	case *ddbtypes.AttributeValueMemberM:
		n := 3
		for k, x := range v.Value {
			n += len(k) + avBytes(x) + 1
		}
		return n
	}
	return 1
}
