package promotion

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDBAPI is the part of the DynamoDB client the decision store uses;
// a *dynamodb.Client satisfies it.
type DynamoDBAPI interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// HistoryLimit is how many decisions, newest first and the current one
// included, the item keeps. With reasons and model fields at their
// limits an item stays far below DynamoDB's 400 KB; a typical one (about
// 500 bytes per decision) is 10 KB, so a follower's strongly consistent
// read costs 3 read units.
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

// The actions a decision records.
const (
	ActionPromote  = "promote"
	ActionRollback = "rollback"
)

// DefaultTable names the decision table of a pipeline whose configuration
// names none.
func DefaultTable(pipeline string) string { return pipeline + "-promotions" }

// Model is a model a decision names as champion or previous champion.
type Model struct {
	// Key is its name under models in the configuration.
	Key string
	// Path is its file or s3:// URI as the configuration gave it when the
	// decision was made, so a worker whose configuration has since
	// dropped the key can still load it.
	Path string
	// Version is its version as scored rows carry it (an S3 ETag or
	// "sha256:" and 16 hex digits); empty when not known.
	Version string
	// SHA256 is the hex digest of its file as promoted: a worker that
	// loads the champion can pin it, so a file rewritten after the
	// decision is refused instead of silently promoted.
	SHA256 string
}

// IsZero reports whether m names no model.
func (m Model) IsZero() bool { return m == Model{} }

// String names the model for people: its key, and its version when known.
func (m Model) String() string {
	switch {
	case m.IsZero():
		return "(none)"
	case m.Version == "":
		return m.Key
	}
	return m.Key + " (" + m.Version + ")"
}

// Entry is one decision: what became champion, what it replaced, why, by
// whom and when.
type Entry struct {
	// Generation counts the decisions of this scorer, from 1; 0 is the
	// configuration's champion before any decision.
	Generation int64
	// Action is ActionPromote or ActionRollback; empty at generation 0.
	Action   string
	Champion Model
	// Previous is the champion Champion replaced: what a rollback
	// restores.
	Previous Model
	Reason   string
	By       string
	At       time.Time
}

// Decision is the current state of a scorer's champion: the latest entry
// and the history of entries, newest first, at most HistoryLimit, the
// latest included.
type Decision struct {
	Pipeline, Scorer string
	Entry
	History []Entry
}

// ErrConflict is what a lost race is: errors.Is(err, ErrConflict) holds
// for every *ConflictError.
var ErrConflict = errors.New("promotion: the decision changed since it was read")

// ConflictError reports a Promote or Rollback whose expected generation
// was not the stored one: another decision was written since the caller
// read it. Nothing was written; read Current and decide again.
type ConflictError struct {
	Pipeline, Scorer  string
	Expected, Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("promotion: scorer %s of pipeline %s is at generation %d, not the %d expected: another decision was written since (nothing written; read it and decide again)",
		e.Scorer, e.Pipeline, e.Current, e.Expected)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrNoPrevious is returned by Rollback when there is no previous champion
// to restore (no decision has been written).
var ErrNoPrevious = errors.New("promotion: no previous champion to roll back to")

// ErrAlreadyChampion is returned by Promote when the model is already the
// champion: a decision that changes nothing is not written.
var ErrAlreadyChampion = errors.New("promotion: the model is already the champion")

// StoreConfig names the decision a Store reads and writes.
type StoreConfig struct {
	// Table is the decision table (DefaultTable(pipeline) unless the
	// configuration names one).
	Table, Pipeline, Scorer string
	// Configured is the champion the configuration names: the champion
	// until a decision is written, and the previous one of the first.
	Configured Model
}

// Store reads and writes one scorer's decision: one item, keyed by
// pipeline and scorer, changed only by conditional writes on its
// generation. It is safe for concurrent use.
type Store struct {
	db  DynamoDBAPI
	cfg StoreConfig
	now func() time.Time
}

// NewStore returns the store of one scorer's decision.
func NewStore(db DynamoDBAPI, c StoreConfig) (*Store, error) {
	switch {
	case db == nil:
		return nil, errors.New("promotion: no DynamoDB client")
	case c.Table == "" || c.Pipeline == "" || c.Scorer == "":
		return nil, fmt.Errorf("promotion: table %q, pipeline %q and scorer %q must all be named", c.Table, c.Pipeline, c.Scorer)
	}
	return &Store{db: db, cfg: c, now: time.Now}, nil
}

// Config returns what the store was made with.
func (s *Store) Config() StoreConfig { return s.cfg }

// Current reads the decision with a strongly consistent read. With none
// written it returns generation 0 with the configured champion.
func (s *Store) Current(ctx context.Context) (Decision, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.cfg.Table),
		Key:            s.key(),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Decision{}, fmt.Errorf("promotion: read the decision of scorer %s from table %s: %w", s.cfg.Scorer, s.cfg.Table, err)
	}
	if len(out.Item) == 0 {
		return Decision{Pipeline: s.cfg.Pipeline, Scorer: s.cfg.Scorer, Entry: Entry{Champion: s.cfg.Configured}}, nil
	}
	d, err := decodeDecision(out.Item)
	if err != nil {
		return Decision{}, fmt.Errorf("promotion: table %s, pipeline %s, scorer %s: %w", s.cfg.Table, s.cfg.Pipeline, s.cfg.Scorer, err)
	}
	return d, nil
}

// Promote makes to the champion, if the stored generation is still
// expected (what the caller's Current returned). The champion it replaces
// becomes the previous one. A lost race returns a *ConflictError and
// writes nothing.
func (s *Store) Promote(ctx context.Context, expected int64, to Model, reason, by string) (Decision, error) {
	if err := checkModel(to); err != nil {
		return Decision{}, err
	}
	return s.write(ctx, expected, func(cur Decision) (Entry, error) {
		if cur.Champion.Key == to.Key && cur.Champion.Path == to.Path && cur.Champion.SHA256 == to.SHA256 {
			return Entry{}, fmt.Errorf("%w: %s of scorer %s at generation %d", ErrAlreadyChampion, to, s.cfg.Scorer, cur.Generation)
		}
		return Entry{Action: ActionPromote, Champion: to, Previous: cur.Champion, Reason: reason, By: by}, nil
	})
}

// Rollback restores the previous champion, if the stored generation is
// still expected. The champion it replaces becomes the previous one, so a
// second rollback undoes the first. A lost race returns a *ConflictError
// and writes nothing; with no previous champion it returns ErrNoPrevious.
func (s *Store) Rollback(ctx context.Context, expected int64, reason, by string) (Decision, error) {
	return s.write(ctx, expected, func(cur Decision) (Entry, error) {
		if cur.Previous.IsZero() {
			return Entry{}, fmt.Errorf("%w: scorer %s of pipeline %s (generation %d)", ErrNoPrevious, s.cfg.Scorer, s.cfg.Pipeline, cur.Generation)
		}
		return Entry{Action: ActionRollback, Champion: cur.Previous, Previous: cur.Champion, Reason: reason, By: by}, nil
	})
}

// write reads the decision, checks its generation, makes the next entry
// and writes the whole item on the condition that the generation is still
// the one read, so of two writers that read the same generation exactly
// one succeeds.
func (s *Store) write(ctx context.Context, expected int64, next func(Decision) (Entry, error)) (Decision, error) {
	cur, err := s.Current(ctx)
	if err != nil {
		return Decision{}, err
	}
	if cur.Generation != expected {
		return Decision{}, s.conflict(expected, cur.Generation)
	}
	e, err := next(cur)
	if err != nil {
		return Decision{}, err
	}
	if len(e.Reason) > MaxReasonBytes || len(e.By) > MaxByBytes {
		return Decision{}, fmt.Errorf("promotion: reason (%d bytes) or by (%d bytes) too long: at most %d and %d",
			len(e.Reason), len(e.By), MaxReasonBytes, MaxByBytes)
	}
	e.Generation = cur.Generation + 1
	e.At = s.now().UTC()
	d := Decision{Pipeline: s.cfg.Pipeline, Scorer: s.cfg.Scorer, Entry: e,
		History: append([]Entry{e}, cur.History[:min(len(cur.History), HistoryLimit-1)]...)}

	in := &dynamodb.PutItemInput{TableName: aws.String(s.cfg.Table), Item: d.item()}
	if expected == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#g)")
		in.ExpressionAttributeNames = map[string]string{"#g": attrGeneration}
	} else {
		in.ConditionExpression = aws.String("#g = :g")
		in.ExpressionAttributeNames = map[string]string{"#g": attrGeneration}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":g": number(expected)}
	}
	if _, err := s.db.PutItem(ctx, in); err != nil {
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return Decision{}, fmt.Errorf("promotion: write generation %d of scorer %s to table %s: %w", e.Generation, s.cfg.Scorer, s.cfg.Table, err)
		}
		// Another writer got there between the read and the write; say
		// which generation it left, if it can be read.
		now := expected + 1
		if again, rerr := s.Current(ctx); rerr == nil {
			now = again.Generation
		}
		return Decision{}, s.conflict(expected, now)
	}
	return d, nil
}

func (s *Store) conflict(expected, current int64) error {
	return &ConflictError{Pipeline: s.cfg.Pipeline, Scorer: s.cfg.Scorer, Expected: expected, Current: current}
}

func checkModel(m Model) error {
	if m.Key == "" || m.Path == "" {
		return fmt.Errorf("promotion: a champion needs its model key and path, got key %q, path %q", m.Key, m.Path)
	}
	for _, f := range []string{m.Key, m.Path, m.Version, m.SHA256} {
		if len(f) > MaxModelFieldBytes {
			return fmt.Errorf("promotion: model %s: a field of %d bytes, at most %d", m.Key, len(f), MaxModelFieldBytes)
		}
	}
	return nil
}
