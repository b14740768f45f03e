package consumer

import (
	"context"
	"fmt"
	"sync"

	"github.com/streamscore/streamscore/shardpos"
)

// Checkpointer records how far a shard's records are durable. The pipeline
// marks a position durable only once every record up to it has been fully
// handled (its results are in every sink, and no open window still needs
// it); the consumer then writes it to the lease table with the next lease
// renewal, on graceful shutdown, and before SHARD_END. It is safe for
// concurrent use.
type Checkpointer struct {
	r       *shardRun
	mu      sync.Mutex
	durable shardpos.Position
	written shardpos.Position
	changed chan struct{} // closed and replaced when durable moves
}

// Stream returns the stream name.
func (cp *Checkpointer) Stream() string { return cp.r.s.cfg.Name }

// ShardID returns the shard id.
func (cp *Checkpointer) ShardID() string { return cp.r.shardID }

// MarkDurable records that every record up to and including pos is
// durable. It is cheap (no I/O); the consumer writes the position with the
// next lease renewal. Positions never move backwards: an older pos is
// ignored. It fails with ErrLeaseLost once the lease is gone, and for a pos
// that is not a record's position.
func (cp *Checkpointer) MarkDurable(pos shardpos.Position) error {
	if !isSequenceNumber(pos.Sequence) {
		return fmt.Errorf("consumer: checkpoint %s/%s: %q is not a sequence number", cp.Stream(), cp.ShardID(), pos.Sequence)
	}
	if cp.r.lostFlag.Load() {
		return fmt.Errorf("checkpoint %s: %w", cp.r.lease.key, ErrLeaseLost)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !isSequenceNumber(cp.durable.Sequence) || cp.durable.Compare(pos) < 0 {
		cp.durable = pos
		close(cp.changed)
		cp.changed = make(chan struct{})
	}
	return nil
}

// Checkpoint marks pos durable and writes it to the lease table now. A
// worker that lost the lease gets an error matching ErrLeaseLost, and the
// shard stops on this worker.
func (cp *Checkpointer) Checkpoint(ctx context.Context, pos shardpos.Position) error {
	if err := cp.MarkDurable(pos); err != nil {
		return err
	}
	return cp.r.flush(ctx)
}

// Durable returns the latest position marked durable (zero if none).
func (cp *Checkpointer) Durable() shardpos.Position {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.durable
}

// pending returns the durable position when it has not been written yet.
func (cp *Checkpointer) pending() (shardpos.Position, bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.durable, isSequenceNumber(cp.durable.Sequence) && cp.durable != cp.written
}

func (cp *Checkpointer) setWritten(p shardpos.Position) {
	cp.mu.Lock()
	cp.written = p
	cp.mu.Unlock()
}

// waitDurable blocks until pos is durable or ctx ends.
func (cp *Checkpointer) waitDurable(ctx context.Context, pos shardpos.Position) error {
	for {
		cp.mu.Lock()
		ok := isSequenceNumber(cp.durable.Sequence) && cp.durable.Compare(pos) >= 0
		ch := cp.changed
		cp.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func isSequenceNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
