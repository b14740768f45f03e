package scorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Shadow runs a challenger model on the same rows as the champion. Both
// scores are returned (the challenger's in Result.Shadow); only the
// champion's drive alerts. A challenger failure never fails the batch: it is
// logged and recorded in Result.Shadow.Err.
type Shadow struct {
	Champion, Challenger Scorer
	Logger               *slog.Logger
}

// Outputs is the champion's number of scores per row.
func (s *Shadow) Outputs() int { return s.Champion.Outputs() }

// Score implements Scorer.
func (s *Shadow) Score(ctx context.Context, rec arrow.RecordBatch, res *Result) error {
	if err := s.Champion.Score(ctx, rec, res); err != nil {
		return err
	}
	if res.Shadow == nil {
		res.Shadow = &Result{}
	}
	if err := s.Challenger.Score(ctx, rec, res.Shadow); err != nil {
		n := int(rec.NumRows())
		res.Shadow.reset(n, s.Challenger.Outputs())
		res.Shadow.markUnscored(0, n)
		res.Shadow.Err = err
		lg := s.Logger
		if lg == nil {
			lg = slog.Default()
		}
		lg.Warn("challenger model failed; champion scores are unaffected", "err", err)
	}
	return nil
}

// Canary routes a fixed share of entities to the challenger: a row whose
// entity hashes into the first Percent of the hash space takes the
// challenger's score (SourceCanary); all others the champion's. The split is
// by entity, so an entity always sees the same model. Both models score the
// whole batch (simple, and cheap for embedded models); a challenger failure
// leaves its rows with the champion's scores.
type Canary struct {
	Champion, Challenger Scorer
	// EntityColumn names the string or integer column to hash.
	EntityColumn string
	// Percent of entities (0-100) sent to the challenger.
	Percent float64
}

// NewCanary checks the configuration.
func NewCanary(champion, challenger Scorer, entityColumn string, percent float64) (*Canary, error) {
	if percent < 0 || percent > 100 {
		return nil, fmt.Errorf("canary: percent %v outside [0,100]", percent)
	}
	if champion.Outputs() != challenger.Outputs() {
		return nil, fmt.Errorf("canary: champion has %d outputs, challenger %d", champion.Outputs(), challenger.Outputs())
	}
	if entityColumn == "" {
		return nil, errors.New("canary: entity column is required")
	}
	return &Canary{Champion: champion, Challenger: challenger, EntityColumn: entityColumn, Percent: percent}, nil
}

// Outputs is the number of scores per row.
func (c *Canary) Outputs() int { return c.Champion.Outputs() }

// InCanary reports whether an entity key falls in the canary share (FNV-1a
// hash of the key, in steps of 0.01%).
func InCanary[K string | []byte](entity K, percent float64) bool {
	h := uint64(14695981039346656037)
	for i := 0; i < len(entity); i++ {
		h ^= uint64(entity[i])
		h *= 1099511628211
	}
	return float64(h%10000) < percent*100
}

// Score implements Scorer.
func (c *Canary) Score(ctx context.Context, rec arrow.RecordBatch, res *Result) error {
	idx := rec.Schema().FieldIndices(c.EntityColumn)
	if len(idx) != 1 {
		return fmt.Errorf("canary: batch has no single %q column", c.EntityColumn)
	}
	if err := c.Champion.Score(ctx, rec, res); err != nil {
		return err
	}
	ch := res.auxResult()
	if err := c.Challenger.Score(ctx, rec, ch); err != nil {
		return nil
	}
	res.CanaryVersion = ch.Version
	col := rec.Column(idx[0])
	var buf [20]byte
	for i := range res.Len() {
		if col.IsNull(i) || ch.Source[i] == SourceNone {
			continue
		}
		var in bool
		switch a := col.(type) {
		case *array.String:
			in = InCanary(a.Value(i), c.Percent)
		case *array.Binary:
			in = InCanary(a.Value(i), c.Percent)
		case *array.Int64:
			in = InCanary(strconv.AppendInt(buf[:0], a.Value(i), 10), c.Percent)
		default:
			return fmt.Errorf("canary: entity column %q has type %s, want string, binary or int64", c.EntityColumn, col.DataType())
		}
		if in {
			res.Source[i] = SourceCanary
			for k := range res.Scores {
				res.Scores[k][i] = ch.Scores[k][i]
			}
		}
	}
	return nil
}
