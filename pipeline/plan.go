package pipeline

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// plan is what a configuration asks of the chain, judged without any I/O:
// each stream's schema and event-time bounds, each window's spec and the
// schema of its feature batches. Building (New) then loads the models,
// starts the sinks and hangs the scorers on the windows.
type plan struct {
	cfg     *config.Config
	streams map[string]*streamPlan
	windows map[string]*windowPlan // by window name
}

// streamPlan is what happens to one stream's records.
type streamPlan struct {
	name    string
	schema  windowing.Schema
	windows []*windowPlan
	// bounds and checkEntity refuse, at decode time, records that would
	// stall a watermark or that no sink could store.
	bounds      windowing.TimeBounds
	checkEntity func([]byte) error
	// sinks are the distinct sinks the stream's scorers write to: what a
	// shard flushes before it hands its lease over or checkpoints
	// SHARD_END.
	sinks []shardFlusher
	// monitors are the drift monitors of the stream's windows.
	monitors []*monitorSink
	// reducers are the stream's drift and quality monitors: a shard
	// starting at hash key 0 makes its worker their reducer.
	reducers []reducerLead
	// labels is set on the labels stream, whose shards write ground truth.
	labels *labelsPlan
}

type windowPlan struct {
	cfg     config.Window
	stream  string
	spec    windowing.WindowSpec
	schema  *arrow.Schema // feature batch schema
	scorers []*scorerPlan
}

type scorerPlan struct {
	name    string
	sc      scorer.Scorer
	outputs int
	shadow  int
	sink    sinks.Sink
}

// shardFlusher is the part of a sink a shard flushes.
type shardFlusher interface {
	FlushShard(ctx context.Context, stream, shard string) error
}

var _ shardFlusher = sinks.Sink(nil)

// newPlan validates the configuration's streams and windows the way the
// windowing package judges them, and lays out the chain.
func newPlan(cfg *config.Config) (*plan, error) {
	pl := &plan{cfg: cfg, streams: map[string]*streamPlan{}, windows: map[string]*windowPlan{}}
	for _, s := range cfg.Streams {
		schema, err := SchemaFor(cfg, s.Schema)
		if err != nil {
			return nil, err
		}
		pl.streams[s.Name] = &streamPlan{name: s.Name, schema: schema, bounds: StreamBounds(s), checkEntity: sinks.CheckEntity}
	}
	for _, w := range cfg.Windows {
		sp, ok := pl.streams[w.Stream]
		if !ok {
			return nil, fmt.Errorf("pipeline: %s: window %s reads undefined stream %q", cfg.File, w.Name, w.Stream)
		}
		spec := WindowSpecFor(w)
		// Rows of evicted keys are flagged so that the sinks and the
		// readers' rule (docs/sinks.md) never take a part for the window.
		spec.PartialColumn = true
		if err := spec.Validate(&sp.schema); err != nil {
			return nil, fmt.Errorf("pipeline: %s: window %s: %w", cfg.File, w.Name, err)
		}
		wp := &windowPlan{cfg: w, stream: w.Stream, spec: spec, schema: spec.OutputSchema(&sp.schema)}
		sp.windows = append(sp.windows, wp)
		pl.windows[w.Name] = wp
	}
	if err := pl.planLabels(cfg); err != nil {
		return nil, err
	}
	return pl, nil
}

// addScorer hangs a built scorer on its window, and its sink on the
// window's stream. Each scorer has a sink of its own (a tee holds the
// shared CloudWatch sink, which a flush then reaches once per scorer:
// harmless). Sinks are not compared: a tee is a slice, and comparing two
// in interfaces panics.
func (pl *plan) addScorer(wp *windowPlan, sp *scorerPlan) {
	wp.scorers = append(wp.scorers, sp)
	st := pl.streams[wp.stream]
	st.sinks = append(st.sinks, sp.sink)
}

// reducerLead is what a monitor that judges the fleet's periods is told:
// this worker started (+1) or stopped (-1) running the stream's shard at
// hash key 0.
type reducerLead interface{ lead(delta int32) }

var (
	_ reducerLead = (*monitorSink)(nil)
	_ reducerLead = (*qualityMonitor)(nil)
)
