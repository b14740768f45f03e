package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A graceful hand-off, as Java KCL 3.x does it: the leader names the new
// owner in leaseOwner and leaves the old one in checkpointOwner, without
// moving the counter. The old owner's next renewal finds it (its
// condition on the owner fails, and the re-read shows this worker as
// checkpoint owner), adopts the new owner in its conditions, and stops the
// shard gracefully: the batch in hand finishes, the processor makes what
// it wrote durable (ShutdownRequested), and one conditional write records
// that checkpoint and removes checkpointOwner, which tells the new owner
// it may start from there. Nothing is read twice when the processor marks
// everything it delivered durable. If the processor takes longer than the
// hand-off timeout, the lease is passed on anyway from the last durable
// checkpoint, and the shard stops here as if lost.

// startHandoffLocked begins handing the lease to owner; r.mu is held.
func (r *shardRun) startHandoffLocked(owner string) {
	r.handoff.Store(true)
	r.handoffAt = time.Now()
	r.c.m.handoffs.Inc()
	r.c.log.Info("lease handed to another worker: finishing the batch in hand and checkpointing", "lease", r.lease.key, "to", owner)
	r.requestStop()
}

// handoffExpiredLocked passes the lease on when a hand-off has outlasted
// its timeout, and reports whether it did; r.mu is held.
func (r *shardRun) handoffExpiredLocked(ctx context.Context) bool {
	if !r.handoff.Load() || time.Since(r.handoffAt) < r.c.cfg.KCL3.HandoffTimeout {
		return false
	}
	err := r.writeLocked(ctx, func() error { return r.handOverLocked(ctx) })
	if err != nil && !errors.Is(err, errConflict) {
		r.c.log.Warn("hand-off after its timeout failed; retrying with the next renewal", "lease", r.lease.key, "err", err)
		return false
	}
	r.loseLocked(fmt.Sprintf("the processor did not stop within the hand-off timeout (%v)", r.c.cfg.KCL3.HandoffTimeout))
	return true
}

// handOver writes the durable checkpoint and lets the lease go to the
// owner the leader named, ending the hand-off.
func (r *shardRun) handOver(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost {
		return nil
	}
	err := r.writeLocked(ctx, func() error { return r.handOverLocked(ctx) })
	if errors.Is(err, errConflict) {
		// The leader reassigned it after the hand-off timed out, or our
		// write landed unacknowledged: either way it is not ours.
		err = nil
	}
	r.lost = true
	r.lostFlag.Store(true)
	if err == nil {
		r.c.log.Info("lease handed over", "lease", r.lease.key, "to", r.lease.owner, "checkpoint", r.lease.checkpoint.Sequence)
	}
	return err
}

// handOverLocked is handOver's one conditional write; r.mu is held.
func (r *shardRun) handOverLocked(ctx context.Context) error {
	extra := r.throughputAttrs()
	if pos, dirty := r.cp.pending(); dirty {
		extra[attrCheckpoint] = &types.AttributeValueMemberS{Value: pos.Sequence}
		extra[attrCheckpointSub] = numAttr(int64(pos.SubSequence))
		extra[attrOwnerSwitches] = numAttr(0)
		if err := r.c.table.apply(ctx, &r.lease, update{set: extra, remove: []string{attrCheckpointOwner, attrPendingCheckpoint, attrPendingSub}}); err != nil {
			return err
		}
		r.lease.checkpoint, r.lease.ownerSwitches = pos, 0
		r.cp.setWritten(pos)
	} else if err := r.c.table.apply(ctx, &r.lease, update{set: extra, remove: []string{attrCheckpointOwner}}); err != nil {
		return err
	}
	r.lease.checkpointOwner = ""
	return nil
}

// throughputAttrs measures the lease's throughput over the last renewal
// interval, to be written with the next lease write; none while nothing
// was measured or seeded, as Java KCL writes none.
func (r *shardRun) throughputAttrs() map[string]types.AttributeValue {
	attrs := map[string]types.AttributeValue{}
	if r.tput.Observed() {
		attrs[attrThroughput] = floatAttr(r.tput.KBps(r.c.cfg.RenewInterval))
	}
	return attrs
}

// leaderWrite is a lease write by the KCL 3.x leader. Unlike a worker's
// writes it is not conditional on the counter, which the owner moves with
// every renewal, but on the owner and checkpoint owner the leader saw.
type leaderWrite struct {
	key             string
	owner           string // "" when unassigned
	checkpointOwner string
}

func (w leaderWrite) condition(names map[string]string, values map[string]types.AttributeValue) string {
	names["#k"], names["#o"], names["#co"] = attrLeaseKey, attrLeaseOwner, attrCheckpointOwner
	cond := "attribute_exists(#k)"
	if w.owner == "" {
		cond += " AND attribute_not_exists(#o)"
	} else {
		cond += " AND #o = :old"
		values[":old"] = &types.AttributeValueMemberS{Value: w.owner}
	}
	if w.checkpointOwner == "" {
		cond += " AND attribute_not_exists(#co)"
	} else {
		cond += " AND #co = :cpo"
		values[":cpo"] = &types.AttributeValueMemberS{Value: w.checkpointOwner}
	}
	return cond
}

// assignTo makes to the lease's owner at once (Java's assignLease): for
// expired and unassigned leases, leases in a hand-off that timed out, and
// moves made without a hand-off. The counter moves, so a previous owner
// still holding it loses it at its next write.
func (t *leaseTable) assignTo(ctx context.Context, w leaderWrite, to string) error {
	names := map[string]string{"#c": attrLeaseCounter}
	values := map[string]types.AttributeValue{":new": &types.AttributeValueMemberS{Value: to}, ":one": numAttr(1)}
	cond := w.condition(names, values)
	expr := "SET #o = :new REMOVE #co ADD #c :one"
	if (w.owner != "" && w.owner != to) || w.checkpointOwner == to {
		names["#sw"] = attrOwnerSwitches
		expr += ", #sw :one"
	}
	return t.update(ctx, w.key, cond, expr, names, values)
}

// initiateHandoff names to as the owner and leaves the current owner as
// checkpoint owner, without moving the counter, so that the current owner
// can still checkpoint before it lets go (Java's
// initiateGracefulLeaseHandoff).
func (t *leaseTable) initiateHandoff(ctx context.Context, w leaderWrite, to string) error {
	names := map[string]string{}
	values := map[string]types.AttributeValue{
		":new": &types.AttributeValueMemberS{Value: to},
		":cur": &types.AttributeValueMemberS{Value: w.owner},
	}
	cond := w.condition(names, values)
	return t.update(ctx, w.key, cond, "SET #o = :new, #co = :cur", names, values)
}
