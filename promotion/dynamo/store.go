// Package dynamo keeps promotion decisions in DynamoDB: one item per
// pipeline and scorer, changed only by writes conditional on the
// generation the writer read, read strongly consistent. It is apart from
// package promotion so that the policy and its types (which the
// configuration validates with) carry no AWS dependency.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/promotion"
)

// API is the part of the DynamoDB client the store uses; a
// *dynamodb.Client satisfies it.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// HistoryLimit is how many decisions, newest first and the current one
// included, the item keeps. A decision with S3 paths, digests and a
// verdict's sentence as reason takes about 700 bytes: a full item's
// strongly consistent read costs 4 read units (measured on the local
// stack). With every field at its limit below, an item stays under
// DynamoDB's 400 KB.
const HistoryLimit = 20

// Limits on what one decision records, so that HistoryLimit decisions
// always fit one item.
const (
	MaxReasonBytes = 2048
	MaxByBytes     = 256
	// MaxModelFieldBytes bounds each of a Model's fields; an S3 URI is
	// at most about 1100 bytes.
	MaxModelFieldBytes = 2048
)

// Config names the decision a Store reads and writes.
type Config struct {
	// Table is the decision table (promotion.DefaultTable(pipeline)
	// unless the configuration names one).
	Table, Pipeline, Scorer string
	// Configured is the champion the configuration names: the champion
	// until a decision is written, and the previous one of the first.
	Configured promotion.Model
}

// Store reads and writes one scorer's decision. It is safe for concurrent
// use.
type Store struct {
	db  API
	cfg Config
	now func() time.Time
}

// NewStore returns the store of one scorer's decision.
func NewStore(db API, c Config) (*Store, error) {
	switch {
	case db == nil:
		return nil, errors.New("promotion: no DynamoDB client")
	case c.Table == "" || c.Pipeline == "" || c.Scorer == "":
		return nil, fmt.Errorf("promotion: table %q, pipeline %q and scorer %q must all be named", c.Table, c.Pipeline, c.Scorer)
	}
	return &Store{db: db, cfg: c, now: time.Now}, nil
}

// Config returns what the store was made with.
func (s *Store) Config() Config { return s.cfg }

// Current reads the decision with a strongly consistent read. With none
// written it returns generation 0 with the configured champion.
func (s *Store) Current(ctx context.Context) (promotion.Decision, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.cfg.Table),
		Key:            s.key(),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return promotion.Decision{}, fmt.Errorf("promotion: read the decision of scorer %s from table %s: %w", s.cfg.Scorer, s.cfg.Table, err)
	}
	if len(out.Item) == 0 {
		return promotion.Decision{Pipeline: s.cfg.Pipeline, Scorer: s.cfg.Scorer, Entry: promotion.Entry{Champion: s.cfg.Configured}}, nil
	}
	d, err := decodeDecision(out.Item)
	if err != nil {
		return promotion.Decision{}, fmt.Errorf("promotion: table %s, pipeline %s, scorer %s: %w", s.cfg.Table, s.cfg.Pipeline, s.cfg.Scorer, err)
	}
	return d, nil
}

// Promote makes to the champion, if the stored generation is still
// expected (what the caller's Current returned). The champion it replaces
// becomes the previous one. A lost race returns a
// *promotion.ConflictError and writes nothing; promoting the champion
// itself returns promotion.ErrAlreadyChampion.
func (s *Store) Promote(ctx context.Context, expected int64, to promotion.Model, reason, by string) (promotion.Decision, error) {
	return s.write(ctx, expected, promotion.ActionPromote, to, reason, by)
}

// Rollback restores the previous champion, if the stored generation is
// still expected; the champion it replaces becomes the previous one, so a
// second rollback undoes the first. A lost race returns a
// *promotion.ConflictError and writes nothing; with no previous champion
// it returns promotion.ErrNoPrevious.
func (s *Store) Rollback(ctx context.Context, expected int64, reason, by string) (promotion.Decision, error) {
	return s.write(ctx, expected, promotion.ActionRollback, promotion.Model{}, reason, by)
}

// write reads the decision, checks its generation, makes the next entry
// and writes the whole item on the condition that the generation is still
// the one read, so of two writers that read the same generation exactly
// one succeeds.
func (s *Store) write(ctx context.Context, expected int64, action string, to promotion.Model, reason, by string) (promotion.Decision, error) {
	if err := checkSizes(to, reason, by); err != nil {
		return promotion.Decision{}, err
	}
	cur, err := s.Current(ctx)
	if err != nil {
		return promotion.Decision{}, err
	}
	if cur.Generation != expected {
		return promotion.Decision{}, s.conflict(expected, cur.Generation)
	}
	e, err := promotion.Next(cur, action, to, reason, by)
	if err != nil {
		return promotion.Decision{}, err
	}
	e.At = s.now().UTC()
	d := promotion.Decision{Pipeline: s.cfg.Pipeline, Scorer: s.cfg.Scorer, Entry: e,
		History: append([]promotion.Entry{e}, cur.History[:min(len(cur.History), HistoryLimit-1)]...)}

	in := &dynamodb.PutItemInput{
		TableName:                aws.String(s.cfg.Table),
		Item:                     item(d),
		ExpressionAttributeNames: map[string]string{"#g": attrGeneration},
	}
	if expected == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#g)")
	} else {
		in.ConditionExpression = aws.String("#g = :g")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":g": number(expected)}
	}
	if _, err := s.db.PutItem(ctx, in); err != nil {
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return promotion.Decision{}, fmt.Errorf("promotion: write generation %d of scorer %s to table %s: %w", e.Generation, s.cfg.Scorer, s.cfg.Table, err)
		}
		// Another writer got there between the read and the write; say
		// which generation it left, if it can be read.
		now := expected + 1
		if again, rerr := s.Current(ctx); rerr == nil {
			now = again.Generation
		}
		return promotion.Decision{}, s.conflict(expected, now)
	}
	return d, nil
}

func (s *Store) conflict(expected, current int64) error {
	return &promotion.ConflictError{Pipeline: s.cfg.Pipeline, Scorer: s.cfg.Scorer, Expected: expected, Current: current}
}

func checkSizes(m promotion.Model, reason, by string) error {
	if len(reason) > MaxReasonBytes || len(by) > MaxByBytes {
		return fmt.Errorf("promotion: reason (%d bytes) or by (%d bytes) too long: at most %d and %d", len(reason), len(by), MaxReasonBytes, MaxByBytes)
	}
	for _, f := range []string{m.Key, m.Path, m.Version, m.SHA256} {
		if len(f) > MaxModelFieldBytes {
			return fmt.Errorf("promotion: model %s: a field of %d bytes, at most %d", m.Key, len(f), MaxModelFieldBytes)
		}
	}
	return nil
}
