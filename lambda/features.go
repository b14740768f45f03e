package lambda

import (
	"context"
	"fmt"
	"math"
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

// decodeItem maps an item written by sinks.FeatureTable (read through
// sinks.FeatureLayout, the layout the sink writes) onto the model's
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
	it, err := h.layout.Unmarshal(item)
	s.windowStart, s.windowEnd = it.WindowStart, it.WindowEnd
	if err != nil {
		return s, err
	}
	if now.Sub(it.WindowEnd) > h.cfg.MaxFeatureAge {
		return s, nil
	}
	if it.Features == nil {
		return s, fmt.Errorf("attribute %q is absent, want a map", sinks.FeatureAttrFeatures)
	}
	s.fresh = true
	for j, name := range h.features {
		if f, ok := it.Features[name]; ok {
			s.x[j] = f
		}
	}
	return s, nil
}

// getItem reads one entity's item (nil if there is none). Reads are
// eventually consistent: features change once a window closes, and a
// login scored against the previous window for a second is no worse than
// one scored a second earlier.
func (h *Handler) getItem(ctx context.Context, entity string) (map[string]ddbtypes.AttributeValue, error) {
	out, err := h.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(h.cfg.FeatureTable), Key: h.layout.Key(entity, h.cfg.FeatureSet)})
	if err != nil {
		// No entity in the error: it is logged at info and above.
		return nil, fmt.Errorf("feature table %s (%s): GetItem: %w", h.cfg.FeatureTable, h.cfg.FeatureSet, err)
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
