package lambda

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/sinks"
)

// FeatureReader is the part of the DynamoDB client the function reads the
// feature table with (*dynamodb.Client satisfies it): GetItem only, so the
// execution role needs dynamodb:GetItem on the table and nothing more.
type FeatureReader interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// attrFeatures is the map attribute in which sinks.FeatureTable stores a
// window's feature values by name; window bounds are in sinks.ColWindowStart
// and sinks.ColWindowEnd, Unix milliseconds.
const attrFeatures = "features"

// readConcurrency bounds the GetItem calls one batch runs at once: the
// SDK's HTTP client keeps 10 idle connections per host, so up to 10 are
// reused rather than opened anew.
const readConcurrency = 10

// stored is one entity's row of the feature table, as the model reads it.
type stored struct {
	// exists: the table has an item for the entity.
	exists bool
	// fresh: the item's window ended within MaxFeatureAge, so x holds its
	// values; otherwise x is all missing.
	fresh                  bool
	windowStart, windowEnd time.Time
	// x holds the features in model order, NaN where missing.
	x []float64
}

// decodeItem maps an item written by sinks.FeatureTable onto the model's
// inputs. The pipeline binds model inputs to window feature columns by
// name (scorer.CheckSchema), and the sink stores those columns under the
// same names, so the lookup is by name too. A value that is absent (null
// or non-finite in the window: the sink leaves it out) is missing, as
// XGBoost treats NaN.
func (h *Handler) decodeItem(item map[string]ddbtypes.AttributeValue, now time.Time) (stored, error) {
	s := stored{x: make([]float64, len(h.features))}
	for j := range s.x {
		s.x[j] = math.NaN()
	}
	if item == nil {
		return s, nil
	}
	s.exists = true
	we, err := millisAttr(item, sinks.ColWindowEnd)
	if err != nil {
		return s, err
	}
	s.windowEnd = we
	if ws, err := millisAttr(item, sinks.ColWindowStart); err == nil {
		s.windowStart = ws
	}
	if now.Sub(we) > h.cfg.MaxFeatureAge {
		return s, nil
	}
	m, ok := item[attrFeatures].(*ddbtypes.AttributeValueMemberM)
	if !ok {
		return s, fmt.Errorf("attribute %q is %s, want a map", attrFeatures, avKind(item[attrFeatures]))
	}
	s.fresh = true
	for j, name := range h.features {
		switch v := m.Value[name].(type) {
		case nil:
		case *ddbtypes.AttributeValueMemberN:
			f, err := strconv.ParseFloat(v.Value, 64)
			if err != nil {
				return s, fmt.Errorf("feature %q: %q is not a number", name, v.Value)
			}
			s.x[j] = f
		default:
			return s, fmt.Errorf("feature %q is %s, want a number", name, avKind(v))
		}
	}
	return s, nil
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
	case *ddbtypes.AttributeValueMemberNULL:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func (h *Handler) key(entity string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{h.cfg.KeyAttribute: &ddbtypes.AttributeValueMemberS{Value: entity}}
}

// getItem reads one entity's item (nil if there is none). Reads are
// eventually consistent: features change once a window closes, and a
// login scored against the previous window for a second is no worse than
// one scored a second earlier.
func (h *Handler) getItem(ctx context.Context, entity string) (map[string]ddbtypes.AttributeValue, error) {
	out, err := h.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(h.cfg.FeatureTable), Key: h.key(entity)})
	if err != nil {
		return nil, fmt.Errorf("feature table %s: GetItem %q: %w", h.cfg.FeatureTable, entity, err)
	}
	return out.Item, nil
}

// getItems reads the items of distinct entities with concurrent GetItems
// (at most readConcurrency at once, within the SDK client's pool of idle
// connections per host, so they are reused). The result maps every entity
// read to its item (nil: none); failed maps the others to their errors.
func (h *Handler) getItems(ctx context.Context, entities []string) (items map[string]map[string]ddbtypes.AttributeValue, failed map[string]error) {
	items = make(map[string]map[string]ddbtypes.AttributeValue, len(entities))
	failed = map[string]error{}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, readConcurrency)
	)
	for _, e := range entities {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			it, err := h.getItem(ctx, e)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[e] = err
				return
			}
			items[e] = it
		}()
	}
	wg.Wait()
	return items, failed
}
