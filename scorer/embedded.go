package scorer

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// ModelSource supplies the model to score with. A *Model is a fixed source;
// a *Watcher swaps in new versions as they appear.
type ModelSource interface {
	Current() *Model
}

// Current returns m itself, so a *Model is a ModelSource.
func (m *Model) Current() *Model { return m }

// Embedded scores batches in process with a model from its source. The
// model is read once per batch, so a hot reload takes effect between
// batches and every row of a batch is scored by one version.
type Embedded struct {
	src     ModelSource
	outputs int
	metrics *Metrics
}

// NewEmbedded returns an in-process scorer. schema is the feature batch
// schema the pipeline will pass; when non-nil, a feature the model needs
// but the schema lacks is an error here rather than at scoring time. m may
// be nil (no metrics).
func NewEmbedded(src ModelSource, schema *arrow.Schema, m *Metrics) (*Embedded, error) {
	model := src.Current()
	if model == nil {
		return nil, fmt.Errorf("embedded scorer: no model")
	}
	if schema != nil {
		if err := CheckSchema(schema, model.Features()); err != nil {
			return nil, fmt.Errorf("embedded scorer: model %s: %w", model.info.Source, err)
		}
	}
	return &Embedded{src: src, outputs: model.Outputs(), metrics: m}, nil
}

// Outputs is the number of scores per row.
func (e *Embedded) Outputs() int { return e.outputs }

// Score implements Scorer.
func (e *Embedded) Score(_ context.Context, rec arrow.RecordBatch, res *Result) error {
	m := e.src.Current()
	n := int(rec.NumRows())
	res.reset(n, m.Outputs())
	cols, err := res.bindColumns(rec, m.Features())
	if err != nil {
		return fmt.Errorf("embedded scorer: %w", err)
	}
	if err := m.Predict(cols, n, res.Scores, &res.scratch); err != nil {
		return fmt.Errorf("embedded scorer: %w", err)
	}
	res.fill(SourcePrimary)
	res.Version = m.Version()
	e.metrics.rows(SourcePrimary, n)
	return nil
}
