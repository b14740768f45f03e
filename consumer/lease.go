package consumer

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/shardpos"
)

// Attribute names of the Java KCL 2.x lease item (DynamoDBLeaseSerializer
// and, for multi-stream tables, DynamoDBMultiStreamLeaseSerializer). Keeping
// them identical is what lets a team move a Java KCL application's table to
// streamscore and resume at its checkpoints.
const (
	attrLeaseKey          = "leaseKey"
	attrLeaseOwner        = "leaseOwner"
	attrLeaseCounter      = "leaseCounter"
	attrCheckpoint        = "checkpoint"
	attrCheckpointSub     = "checkpointSubSequenceNumber"
	attrOwnerSwitches     = "ownerSwitchesSinceCheckpoint"
	attrPendingCheckpoint = "pendingCheckpoint"
	attrPendingSub        = "pendingCheckpointSubSequenceNumber"
	attrParentShardID     = "parentShardId"
	attrChildShardIDs     = "childShardIds"
	attrStartingHashKey   = "startingHashKey"
	attrEndingHashKey     = "endingHashKey"
	attrCheckpointOwner   = "checkpointOwner"
	// attrThroughput is Java KCL 3.x's smoothed KB/s of the lease, written
	// with each renewal; its leader balances on it.
	attrThroughput = "throughputKBps"
	// Multi-stream mode: Java KCL keeps the serialized stream identifier
	// under "streamName" for legacy reasons.
	attrStreamName = "streamName"
	attrShardID    = "shardId"
)

// maxThroughputKBps bounds a believable throughputKBps (an exabyte per
// second); a larger one is read as unmeasured.
const maxThroughputKBps = 1e12

// lease is one item of the lease table.
type lease struct {
	key           string
	owner         string // "" when nobody holds the lease
	counter       int64
	checkpoint    shardpos.Position
	ownerSwitches int64
	parents       []string // shard ids
	children      []string // shard ids
	startHash     string
	endHash       string
	// streamID and shardID are set in multi-stream tables only.
	streamID string
	shardID  string
	// checkpointOwner is set during a graceful hand-off (KCL 3.x): the
	// worker still processing the lease until it checkpoints and lets go,
	// while owner already names the worker it goes to.
	checkpointOwner string
	// throughput is the lease's last written throughputKBps (KCL 3.x);
	// hasThroughput is false while none was written.
	throughput    float64
	hasThroughput bool
	// tail is where the records a finished shard's processor still needed
	// begin (Checkpointer.SetTail); written with SHARD_END.
	tail shardpos.Position
}

// finished reports whether the lease's shard has been read to its end.
func (l *lease) finished() bool { return l.checkpoint.Sequence == ShardEnd }

// leaseFromItem decodes a lease table item. Errors name the lease key and
// the attribute.
func leaseFromItem(item map[string]types.AttributeValue) (lease, error) {
	var l lease
	var err error
	if l.key, err = getS(item, attrLeaseKey, true); err != nil {
		return l, err
	}
	wrap := func(err error) error { return fmt.Errorf("lease %q: %w", l.key, err) }
	if l.owner, err = getS(item, attrLeaseOwner, false); err != nil {
		return l, wrap(err)
	}
	if l.counter, err = getN(item, attrLeaseCounter); err != nil {
		return l, wrap(err)
	}
	if l.checkpoint.Sequence, err = getS(item, attrCheckpoint, false); err != nil {
		return l, wrap(err)
	}
	sub, err := getN(item, attrCheckpointSub)
	if err != nil {
		return l, wrap(err)
	}
	if sub < 0 {
		return l, wrap(fmt.Errorf("attribute %s: negative value %d", attrCheckpointSub, sub))
	}
	l.checkpoint.SubSequence = uint64(sub)
	if l.ownerSwitches, err = getN(item, attrOwnerSwitches); err != nil {
		return l, wrap(err)
	}
	if l.parents, err = getSS(item, attrParentShardID); err != nil {
		return l, wrap(err)
	}
	if l.children, err = getSS(item, attrChildShardIDs); err != nil {
		return l, wrap(err)
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{
		{attrStartingHashKey, &l.startHash},
		{attrEndingHashKey, &l.endHash},
		{attrStreamName, &l.streamID},
		{attrShardID, &l.shardID},
		{attrCheckpointOwner, &l.checkpointOwner},
	} {
		if *p.dst, err = getS(item, p.name, false); err != nil {
			return l, wrap(err)
		}
	}
	if l.throughput, l.hasThroughput, err = getF(item, attrThroughput); err != nil || l.throughput > maxThroughputKBps {
		// A measurement, not state: one that cannot be read weighs as
		// unmeasured rather than making the whole table unreadable.
		l.throughput, l.hasThroughput = 0, false
	}
	if err := l.readTail(item); err != nil {
		return l, wrap(err)
	}
	return l, nil
}

// actualOwner is the worker processing the lease: the checkpoint owner
// while a hand-off is in flight, else the owner.
func (l *lease) actualOwner() string {
	if l.checkpointOwner != "" {
		return l.checkpointOwner
	}
	return l.owner
}

// item encodes a new lease as Java KCL's toDynamoRecord does.
func (l *lease) item() map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		attrLeaseKey:      &types.AttributeValueMemberS{Value: l.key},
		attrLeaseCounter:  numAttr(l.counter),
		attrCheckpoint:    &types.AttributeValueMemberS{Value: l.checkpoint.Sequence},
		attrCheckpointSub: numAttr(int64(l.checkpoint.SubSequence)),
		attrOwnerSwitches: numAttr(l.ownerSwitches),
	}
	if l.owner != "" {
		m[attrLeaseOwner] = &types.AttributeValueMemberS{Value: l.owner}
	}
	if len(l.parents) > 0 {
		m[attrParentShardID] = &types.AttributeValueMemberSS{Value: slices.Clone(l.parents)}
	}
	if len(l.children) > 0 {
		m[attrChildShardIDs] = &types.AttributeValueMemberSS{Value: slices.Clone(l.children)}
	}
	if l.startHash != "" && l.endHash != "" {
		m[attrStartingHashKey] = &types.AttributeValueMemberS{Value: l.startHash}
		m[attrEndingHashKey] = &types.AttributeValueMemberS{Value: l.endHash}
	}
	if l.streamID != "" {
		m[attrStreamName] = &types.AttributeValueMemberS{Value: l.streamID}
		m[attrShardID] = &types.AttributeValueMemberS{Value: l.shardID}
	}
	return m
}

func numAttr(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// floatAttr writes a number the way Java's Double.toString would read
// back: the shortest decimal form.
func floatAttr(f float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'f', -1, 64)}
}

func getS(item map[string]types.AttributeValue, name string, required bool) (string, error) {
	v, ok := item[name]
	if !ok {
		if required {
			return "", fmt.Errorf("attribute %s: missing", name)
		}
		return "", nil
	}
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return v.Value, nil
	case *types.AttributeValueMemberNULL:
		if !required {
			return "", nil
		}
	}
	return "", fmt.Errorf("attribute %s: want a string, have %T", name, v)
}

func getN(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name]
	if !ok {
		return 0, nil
	}
	switch v := v.(type) {
	case *types.AttributeValueMemberN:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("attribute %s: %w", name, err)
		}
		return n, nil
	case *types.AttributeValueMemberNULL:
		return 0, nil
	}
	return 0, fmt.Errorf("attribute %s: want a number, have %T", name, v)
}

func getF(item map[string]types.AttributeValue, name string) (float64, bool, error) {
	v, ok := item[name]
	if !ok {
		return 0, false, nil
	}
	switch v := v.(type) {
	case *types.AttributeValueMemberN:
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, false, fmt.Errorf("attribute %s: %q is not a non-negative number", name, v.Value)
		}
		return f, true, nil
	case *types.AttributeValueMemberNULL:
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("attribute %s: want a number, have %T", name, v)
}

func getSS(item map[string]types.AttributeValue, name string) ([]string, error) {
	v, ok := item[name]
	if !ok {
		return nil, nil
	}
	switch v := v.(type) {
	case *types.AttributeValueMemberSS:
		return v.Value, nil
	case *types.AttributeValueMemberNULL:
		return nil, nil
	}
	return nil, fmt.Errorf("attribute %s: want a string set, have %T", name, v)
}
