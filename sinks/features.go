package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	// Table is the table name. Its partition key is a string attribute
	// holding the entity, its sort key a string attribute holding
	// FeatureSet, named by Layout.
	Table string
	// Layout names the table's key and TTL attributes; the zero value is
	// the default layout (entity, feature_set, ttl). Readers of the table
	// (the login Lambda) read it through the same FeatureLayout.
	Layout FeatureLayout
	// FeatureSet is this sink's sort key value, FeatureSet(pipeline,
	// window), so windows and pipelines sharing entities keep separate
	// items. Default: the batch's stream name (set it: two windows of one
	// stream would otherwise share items). At most MaxSortKeyBytes.
	FeatureSet string
	// DeadLetters receives the rows DynamoDB refuses on their own (empty
	// or oversized entity, item over 400 KB, a value it rejects) with the
	// reason; the rest of the batch is written and acked nil. Without it
	// such a row fails the batch with a *PermanentError.
	DeadLetters DeadLetters
	// TTL is how long an item lives after its last write; default 7 days.
	// The table's TTL must be enabled on Layout.TTLAttribute for DynamoDB
	// to expire it.
	TTL time.Duration
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
	o.Layout = o.Layout.withDefaults()
	if len(o.FeatureSet) > MaxSortKeyBytes {
		return nil, fmt.Errorf("sinks: FeatureTableOptions.FeatureSet is %d bytes, over DynamoDB's %d-byte sort key limit", len(o.FeatureSet), MaxSortKeyBytes)
	}
	if o.TTL <= 0 {
		o.TTL = 7 * 24 * time.Hour
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
	h := &featureHandler{o: o, m: m, r: newRetrier("features", o.Backoff, m, o.Logger),
		ref: &refuser{sink: "features", dl: o.DeadLetters, m: m, log: o.Logger}}
	return &FeatureTable{runner: newRunner("features", h, m, h.r.h, o.Queue, 0)}, nil
}

type featureHandler struct {
	o   FeatureTableOptions
	m   *sinkMetrics
	r   *retrier
	ref *refuser
}

// flush has nothing to force out: handle acks every batch before it
// returns, so whatever shard is asked for is already acked.
func (h *featureHandler) flush(context.Context, *shardKey) <-chan struct{} { return closedChan() }
func (h *featureHandler) tick(context.Context, time.Time)                  {}

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
		if v.isPartial(i) {
			continue // part of a window: the online item keeps whole windows
		}
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
				err := h.put(ctx, b.Stream, v, i)
				if err != nil && IsPermanent(err) {
					// This row only: DynamoDB answered, and refused it.
					err = h.ref.refuse(ctx, &b, v, i, err)
				}
				if err != nil {
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

// put writes row i conditionally. A row DynamoDB cannot store is refused
// here, before the call, with the limit it breaks.
func (h *featureHandler) put(ctx context.Context, stream string, v *view, i int) error {
	entity := v.entity.Value(i)
	if err := checkEntity(entity); err != nil {
		return &PermanentError{Sink: "features", Err: err}
	}
	now := h.o.Now()
	set := h.o.FeatureSet
	if set == "" {
		set = stream
	}
	model := v.modelVersion(i)
	it := FeatureItem{
		Entity: entity, FeatureSet: set, Stream: stream,
		WindowStart: v.ws.time(i), WindowEnd: v.we.time(i),
		Features:     make(map[string]float64, len(v.features)),
		Scores:       make(map[string]float64, len(v.scores)),
		ModelVersion: model, Fallback: v.isFallback(i),
		ResultID:  ResultID(stream, entity, v.ws.time(i), v.we.time(i), model),
		UpdatedAt: now, Expires: now.Add(h.o.TTL),
	}
	for _, f := range v.features {
		if x, ok := f.value(i); ok {
			it.Features[f.name] = x
		}
	}
	for _, s := range v.scores {
		if x, ok := s.value(i); ok {
			it.Scores[s.name] = x
		}
	}
	item := h.o.Layout.Marshal(&it)
	if n := itemBytes(item); n > MaxItemBytes {
		return &PermanentError{Sink: "features", Err: fmt.Errorf("item is about %d bytes, over DynamoDB's %d-byte item limit", n, MaxItemBytes)}
	}
	in := h.o.Layout.conditionalPut(h.o.Table, item, v.ws.millis(i), v.we.millis(i), v.isUpdate(i))
	return h.r.do(ctx, "PutItem", func(ctx context.Context) error {
		_, err := h.o.Client.PutItem(ctx, in)
		var ccf *ddbtypes.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return nil // a newer window is already there: nothing to do
		}
		return err
	})
}
