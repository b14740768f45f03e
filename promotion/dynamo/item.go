package dynamo

// The decision item's layout in DynamoDB (docs/flywheel.md shows it):
//
//	pipeline   S  hash key
//	scorer     S  range key
//	schema     N  1: this layout
//	generation N  decisions written, from 1
//	action     S  promote | rollback
//	champion   M  {key, path, version, sha256}: empty fields left out
//	previous   M  the same
//	reason     S
//	by         S
//	at         S  RFC 3339, UTC, nanoseconds
//	history    L  of M {generation, action, champion, previous, reason,
//	              by, at}, newest first, the current decision included,
//	              at most HistoryLimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/promotion"
)

// The item's attribute names.
const (
	AttrPipeline   = "pipeline"
	AttrScorer     = "scorer"
	attrSchema     = "schema"
	attrGeneration = "generation"
	attrAction     = "action"
	attrChampion   = "champion"
	attrPrevious   = "previous"
	attrReason     = "reason"
	attrBy         = "by"
	attrAt         = "at"
	attrHistory    = "history"
)

// schemaVersion is the item layout written; a reader refuses another, so
// an older worker never misreads a newer layout.
const schemaVersion = 1

func (s *Store) key() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPipeline: str(s.cfg.Pipeline), AttrScorer: str(s.cfg.Scorer)}
}

func item(d promotion.Decision) map[string]types.AttributeValue {
	it := entryAttrs(d.Entry)
	it[AttrPipeline] = str(d.Pipeline)
	it[AttrScorer] = str(d.Scorer)
	it[attrSchema] = number(schemaVersion)
	hist := make([]types.AttributeValue, len(d.History))
	for i, e := range d.History {
		hist[i] = &types.AttributeValueMemberM{Value: entryAttrs(e)}
	}
	it[attrHistory] = &types.AttributeValueMemberL{Value: hist}
	return it
}

// entryAttrs writes an entry's attributes. Empty strings are left out:
// they are what a reader gets back for an absent attribute, and not
// every DynamoDB-compatible server stores them.
func entryAttrs(e promotion.Entry) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		attrGeneration: number(e.Generation),
		attrChampion:   modelAttr(e.Champion),
		attrPrevious:   modelAttr(e.Previous),
		attrAt:         str(e.At.UTC().Format(time.RFC3339Nano)),
	}
	for k, v := range map[string]string{attrAction: e.Action, attrReason: e.Reason, attrBy: e.By} {
		if v != "" {
			m[k] = str(v)
		}
	}
	return m
}

func modelAttr(m promotion.Model) types.AttributeValue {
	out := map[string]types.AttributeValue{}
	for k, v := range map[string]string{"key": m.Key, "path": m.Path, "version": m.Version, "sha256": m.SHA256} {
		if v != "" {
			out[k] = str(v)
		}
	}
	return &types.AttributeValueMemberM{Value: out}
}

func decodeDecision(it map[string]types.AttributeValue) (promotion.Decision, error) {
	var d promotion.Decision
	var err error
	if d.Pipeline, err = getStr(it, AttrPipeline, true); err != nil {
		return d, err
	}
	if d.Scorer, err = getStr(it, AttrScorer, true); err != nil {
		return d, err
	}
	v, err := getNum(it, attrSchema)
	if err != nil {
		return d, err
	}
	if v != schemaVersion {
		return d, fmt.Errorf("decision item: schema %d, this streamscore reads %d (upgrade it)", v, schemaVersion)
	}
	if d.Entry, err = decodeEntry(it); err != nil {
		return d, fmt.Errorf("decision item: %w", err)
	}
	h, ok := it[attrHistory].(*types.AttributeValueMemberL)
	if !ok {
		return d, fmt.Errorf("decision item: %s: not a list", attrHistory)
	}
	for i, av := range h.Value {
		m, ok := av.(*types.AttributeValueMemberM)
		if !ok {
			return d, fmt.Errorf("decision item: %s[%d]: not a map", attrHistory, i)
		}
		e, err := decodeEntry(m.Value)
		if err != nil {
			return d, fmt.Errorf("decision item: %s[%d]: %w", attrHistory, i, err)
		}
		d.History = append(d.History, e)
	}
	return d, nil
}

func decodeEntry(it map[string]types.AttributeValue) (promotion.Entry, error) {
	var e promotion.Entry
	var err error
	if e.Generation, err = getNum(it, attrGeneration); err != nil {
		return e, err
	}
	if e.Action, err = getStr(it, attrAction, false); err != nil {
		return e, err
	}
	if e.Reason, err = getStr(it, attrReason, false); err != nil {
		return e, err
	}
	if e.By, err = getStr(it, attrBy, false); err != nil {
		return e, err
	}
	at, err := getStr(it, attrAt, true)
	if err != nil {
		return e, err
	}
	if e.At, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return e, fmt.Errorf("%s: %w", attrAt, err)
	}
	if e.Champion, err = decodeModel(it, attrChampion); err != nil {
		return e, err
	}
	if e.Previous, err = decodeModel(it, attrPrevious); err != nil {
		return e, err
	}
	return e, nil
}

func decodeModel(it map[string]types.AttributeValue, name string) (promotion.Model, error) {
	av, ok := it[name]
	if !ok {
		return promotion.Model{}, nil
	}
	m, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return promotion.Model{}, fmt.Errorf("%s: not a map", name)
	}
	var out promotion.Model
	for _, f := range []struct {
		key string
		dst *string
	}{{"key", &out.Key}, {"path", &out.Path}, {"version", &out.Version}, {"sha256", &out.SHA256}} {
		v, err := getStr(m.Value, f.key, false)
		if err != nil {
			return promotion.Model{}, fmt.Errorf("%s.%w", name, err)
		}
		*f.dst = v
	}
	return out, nil
}

func getStr(it map[string]types.AttributeValue, name string, required bool) (string, error) {
	av, ok := it[name]
	if !ok {
		if required {
			return "", fmt.Errorf("%s: missing", name)
		}
		return "", nil
	}
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return "", fmt.Errorf("%s: not a string", name)
	}
	return s.Value, nil
}

func getNum(it map[string]types.AttributeValue, name string) (int64, error) {
	n, ok := it[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("%s: missing or not a number", name)
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a whole number", name, n.Value)
	}
	return v, nil
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func number(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// TableAPI is the part of the DynamoDB client EnsureTable uses.
type TableAPI interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// EnsureTable creates the decision table (pay per request, hash key
// pipeline, range key scorer, both strings) unless it exists, and waits
// until it is ACTIVE. It is for the local stack and tests: in production
// the CDK app creates the table, and workers are not granted CreateTable.
// A concurrent creator winning the race is not an error.
func EnsureTable(ctx context.Context, db TableAPI, table string) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPipeline), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrScorer), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPipeline), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrScorer), KeyType: types.KeyTypeRange},
		},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("promotion: create table %s: %w", table, err)
	}
	for {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var nf *types.ResourceNotFoundException
		switch {
		case err == nil && out.Table.TableStatus == types.TableStatusActive:
			return nil
		case err != nil && !errors.As(err, &nf):
			return fmt.Errorf("promotion: describe table %s: %w", table, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promotion: wait for table %s to be active: %w", table, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
