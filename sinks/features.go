package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// FeatureTableAPI is the part of the DynamoDB client the feature table uses.
type FeatureTableAPI interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// FeatureTableOptions configure the online feature table sink.
type FeatureTableOptions struct {
	// Client talks to DynamoDB.
	Client FeatureTableAPI
	// Table is the table name. Its hash key is a string attribute named
	// KeyAttribute holding the entity.
	Table string
	// KeyAttribute names the hash key; default "entity".
	KeyAttribute string
	// TTL is how long an item lives after its last write; default 7 days.
	// The table's TTL must be enabled on TTLAttribute for DynamoDB to expire it.
	TTL time.Duration
	// TTLAttribute holds the expiry in Unix seconds; default "ttl".
	TTLAttribute string
	// Concurrency is how many conditional writes run at once; default 8.
	Concurrency int
	// Queue is how many batches Write buffers before it blocks; default 16.
	Queue int
	// Backoff is the retry schedule.
	Backoff Backoff
	// Metrics receives the sink's metrics (label sink="features").
	Metrics *Metrics
	// Logger receives retry warnings; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for updated_at and the TTL; default time.Now.
	Now func() time.Time
}

// FeatureTable keeps the latest feature vector and score per entity in
// DynamoDB, for online readers such as the login Lambda. Every write is a
// PutItem conditional on the stored window being no newer, so an older
// window (a replay, a late update arriving after a newer window) never
// overwrites a newer one. BatchWriteItem cannot carry conditions, which is
// why the sink issues concurrent single-item writes instead.
type FeatureTable struct {
	*runner
}

// NewFeatureTable starts a feature table sink.
func NewFeatureTable(o FeatureTableOptions) (*FeatureTable, error) {
	if o.Client == nil || o.Table == "" {
		return nil, errors.New("sinks: FeatureTableOptions.Client and Table are required")
	}
	if o.KeyAttribute == "" {
		o.KeyAttribute = "entity"
	}
	if o.TTL <= 0 {
		o.TTL = 7 * 24 * time.Hour
	}
	if o.TTLAttribute == "" {
		o.TTLAttribute = "ttl"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := o.Metrics.forSink("features")
	h := &featureHandler{o: o, m: m, r: &retrier{name: "features", backoff: o.Backoff.withDefaults(), m: m, log: o.Logger}}
	return &FeatureTable{runner: newRunner("features", h, m, o.Queue, 0)}, nil
}

type featureHandler struct {
	o FeatureTableOptions
	m *sinkMetrics
	r *retrier
}

func (h *featureHandler) flush(context.Context) <-chan struct{} { return closedChan() }
func (h *featureHandler) tick(context.Context, time.Time)       {}

func (h *featureHandler) handle(ctx context.Context, b Batch) {
	v, err := newView(b.Rec)
	if err != nil {
		b.Ack(&PermanentError{Sink: "features", Err: fmt.Errorf("batch %s/%s: %w", b.Stream, b.Shard, err)})
		return
	}
	start := time.Now()
	// Only the newest window per entity matters; later rows win ties, so
	// an update row replaces the row it revises.
	newest := map[string]int{}
	for i := range v.n {
		e := v.entity.Value(i)
		j, ok := newest[e]
		if !ok || v.ws.nanos(i) > v.ws.nanos(j) || (v.ws.nanos(i) == v.ws.nanos(j) && v.we.nanos(i) >= v.we.nanos(j)) {
			newest[e] = i
		}
	}
	rows := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(h.o.Concurrency, len(newest)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rows {
				if err := h.put(ctx, b.Stream, v, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, i := range newest {
		rows <- i
	}
	close(rows)
	wg.Wait()
	if firstErr == nil {
		h.m.rows.Add(float64(len(newest)))
		h.m.flushes.Inc()
		h.m.latency.Observe(time.Since(start).Seconds())
	}
	b.Ack(firstErr)
}

func (h *featureHandler) put(ctx context.Context, stream string, v *view, i int) error {
	n := func(x int64) ddbtypes.AttributeValue {
		return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(x, 10)}
	}
	now := h.o.Now()
	ws, we := v.ws.millis(i), v.we.millis(i)
	feats := make(map[string]ddbtypes.AttributeValue, len(v.features))
	for _, f := range v.features {
		if x, ok := f.value(i); ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
			feats[f.name] = &ddbtypes.AttributeValueMemberN{Value: strconv.FormatFloat(x, 'g', -1, 64)}
		}
	}
	model := v.modelVersion(i)
	item := map[string]ddbtypes.AttributeValue{
		h.o.KeyAttribute: &ddbtypes.AttributeValueMemberS{Value: v.entity.Value(i)},
		"stream":         &ddbtypes.AttributeValueMemberS{Value: stream},
		"window_start":   n(ws),
		"window_end":     n(we),
		"features":       &ddbtypes.AttributeValueMemberM{Value: feats},
		"fallback":       &ddbtypes.AttributeValueMemberBOOL{Value: v.isFallback(i)},
		"result_id":      &ddbtypes.AttributeValueMemberS{Value: ResultID(stream, v.entity.Value(i), v.ws.time(i), v.we.time(i), model)},
		"updated_at":     n(now.UnixMilli()),
		h.o.TTLAttribute: n(now.Add(h.o.TTL).Unix()),
		ColModelVersion:  &ddbtypes.AttributeValueMemberS{Value: model},
	}
	for _, s := range v.scores {
		if x, ok := s.value(i); ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
			item[s.name] = &ddbtypes.AttributeValueMemberN{Value: strconv.FormatFloat(x, 'g', -1, 64)}
		}
	}
	in := &dynamodb.PutItemInput{
		TableName: aws.String(h.o.Table),
		Item:      item,
		// A newer window overwrites, and so does a revision of the same
		// window (an update after late data). A replay of the same window
		// does not: after a failover it may be rebuilt from only the events
		// after the checkpoint, and the complete first version must stay.
		ConditionExpression:      aws.String(sameWindowCondition(v.isUpdate(i))),
		ExpressionAttributeNames: map[string]string{"#k": h.o.KeyAttribute, "#ws": "window_start", "#we": "window_end"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":ws": n(ws), ":we": n(we),
		},
	}
	return h.r.do(ctx, "PutItem", func(ctx context.Context) error {
		_, err := h.o.Client.PutItem(ctx, in)
		var ccf *ddbtypes.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return nil // a newer window is already there: nothing to do
		}
		return err
	})
}

func sameWindowCondition(update bool) string {
	if update {
		return "attribute_not_exists(#k) OR #ws < :ws OR (#ws = :ws AND #we <= :we)"
	}
	return "attribute_not_exists(#k) OR #ws < :ws OR (#ws = :ws AND #we < :we)"
}
