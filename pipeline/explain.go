package pipeline

import (
	"errors"
	"log/slog"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// explainer answers the alert sink's "which inputs drove this score?" for
// one scorer: the feature contributions of whichever of its embedded models
// (primary, fallback, challenger) scored the row, found by the row's model
// version. Rows scored by a SageMaker endpoint, or by a version a hot reload
// has since replaced, get none: contributions from another model would
// explain a score it did not give.
type explainer struct {
	sources []scorer.ModelSource
	log     *slog.Logger
}

// explain implements sinks.AlertOptions.Explain. rec is the result batch:
// its feature columns are the window's, under the same names, so the model
// reads them exactly as it did when scoring (scorer.Model.Explain).
func (e *explainer) explain(rec arrow.RecordBatch, i int, version, score string) []sinks.FeatureContribution {
	for _, src := range e.sources {
		m := src.Current()
		if m.Version() != version {
			continue
		}
		// The score column names are the result batch's own (scoreNames).
		k := slices.Index(scoreNames(sinks.ColScore, m.Outputs()), score)
		if k < 0 {
			return nil
		}
		ex, err := m.Explain(rec, i, k)
		if errors.Is(err, scorer.ErrNoContributions) {
			// A property of the model, not a fault.
			e.log.Debug("alert without top_features", "model", version, "err", err)
			return nil
		}
		if err != nil {
			e.log.Warn("alert without top_features", "model", version, "err", err)
			return nil
		}
		out := make([]sinks.FeatureContribution, len(ex.Features))
		for j, c := range ex.Features {
			out[j] = sinks.FeatureContribution{Feature: c.Feature, Value: c.Value, Contribution: c.Contribution}
		}
		return out
	}
	return nil
}
