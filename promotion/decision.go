package promotion

import (
	"errors"
	"fmt"
	"time"
)

// DefaultTable names the decision table of a pipeline whose configuration
// names none.
func DefaultTable(pipeline string) string { return pipeline + "-promotions" }

// The actions a decision records.
const (
	ActionPromote  = "promote"
	ActionRollback = "rollback"
)

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
	// loads the champion pins it, so a file rewritten after the decision
	// is refused instead of silently promoted. Empty when not known (the
	// configured champion without a sha256 pin).
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
// and the decisions kept, newest first, the latest included.
type Decision struct {
	Pipeline, Scorer string
	Entry
	History []Entry
}

// ErrConflict is what a lost race is: errors.Is(err, ErrConflict) holds
// for every *ConflictError.
var ErrConflict = errors.New("promotion: the decision changed since it was read")

// ConflictError reports a promotion or rollback whose expected generation
// was not the stored one: another decision was written since the caller
// read it. Nothing was written; read the decision and decide again.
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

// ErrNoPrevious is returned by a rollback when there is no previous
// champion to restore (no decision has been written).
var ErrNoPrevious = errors.New("promotion: no previous champion to roll back to")

// ErrAlreadyChampion is returned by a promotion of the champion itself:
// a decision that changes nothing is not written.
var ErrAlreadyChampion = errors.New("promotion: the model is already the champion")

// Next returns the entry that follows cur when action is taken: a
// promotion of to, or a rollback to cur's previous champion, whose
// replaced champion becomes the previous one (so a second rollback undoes
// the first). It refuses a promotion of the champion itself and a
// rollback with nothing to restore. The caller stamps At.
func Next(cur Decision, action string, to Model, reason, by string) (Entry, error) {
	e := Entry{Generation: cur.Generation + 1, Action: action, Previous: cur.Champion, Reason: reason, By: by}
	switch action {
	case ActionPromote:
		if to.Key == "" || to.Path == "" {
			return Entry{}, fmt.Errorf("promotion: a champion needs its model key and path, got key %q, path %q", to.Key, to.Path)
		}
		if cur.Champion.Key == to.Key && cur.Champion.Path == to.Path && cur.Champion.SHA256 == to.SHA256 {
			return Entry{}, fmt.Errorf("%w: %s of scorer %s at generation %d", ErrAlreadyChampion, to, cur.Scorer, cur.Generation)
		}
		e.Champion = to
	case ActionRollback:
		if cur.Previous.IsZero() {
			return Entry{}, fmt.Errorf("%w: scorer %s of pipeline %s (generation %d)", ErrNoPrevious, cur.Scorer, cur.Pipeline, cur.Generation)
		}
		e.Champion = cur.Previous
	default:
		return Entry{}, fmt.Errorf("promotion: unknown action %q", action)
	}
	return e, nil
}
