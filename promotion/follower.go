package promotion

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DefaultFollowInterval is how often a Follower reads the decision: the
// longest a worker runs the old champion after a promotion or rollback.
// One strongly consistent read per scorer per worker every 10 s costs
// little (docs/flywheel.md) and is well under any monitoring period.
const DefaultFollowInterval = 10 * time.Second

// Source is where a Follower reads the decision: a *dynamo.Store in
// production.
type Source interface {
	Current(context.Context) (Decision, error)
}

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Interval between reads. Zero takes DefaultFollowInterval.
	Interval time.Duration
	// OnChange applies a decision: it is called with the first decision
	// read and then whenever the generation read differs from the one
	// last applied. An error leaves the decision unapplied, and the next
	// read calls OnChange again with what is current then. Calls are
	// sequential. Required.
	OnChange func(context.Context, Decision) error
	// Logger receives read and apply failures, and should name the
	// pipeline and scorer (slog.Logger.With); nil logs nowhere.
	Logger *slog.Logger
}

// Follower makes a worker converge on a scorer's decision: it polls the
// source and hands every new generation to OnChange. Every worker running
// one converges on the same champion within an interval of a decision
// being written, whichever worker (or person) wrote it.
type Follower struct {
	src Source
	cfg FollowerConfig

	mu      sync.Mutex
	applied Decision
	ok      bool
}

// NewFollower returns a follower of the source's decision.
func NewFollower(src Source, c FollowerConfig) (*Follower, error) {
	if src == nil || c.OnChange == nil {
		return nil, errors.New("promotion: a follower needs a source and an OnChange")
	}
	if c.Interval <= 0 {
		c.Interval = DefaultFollowInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Follower{src: src, cfg: c}, nil
}

// Run reads the decision at once and then every interval until ctx ends,
// when it returns nil. Read and apply failures are logged and retried at
// the next interval: a follower that cannot read keeps the champion it
// has, which is the safe side.
func (f *Follower) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		f.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll reads the decision once and applies it if its generation is new.
// It reports whether the applied decision is now the one read. Run calls
// it; a worker may call it too, e.g. right after writing a decision.
func (f *Follower) Poll(ctx context.Context) bool {
	d, err := f.src.Current(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.cfg.Logger.Warn("promotion: cannot read the decision; keeping the current champion", "err", err)
		}
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ok && f.applied.Generation == d.Generation {
		return true
	}
	if err := f.cfg.OnChange(ctx, d); err != nil {
		f.cfg.Logger.Error("promotion: cannot apply the decision; will retry", "scorer", d.Scorer,
			"generation", d.Generation, "champion", d.Champion.String(), "err", err)
		return false
	}
	f.applied, f.ok = d, true
	return true
}

// Applied returns the decision last applied; ok is false before the first.
func (f *Follower) Applied() (d Decision, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, f.ok
}
