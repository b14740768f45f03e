// Package shardpos is the one notion of a place in a Kinesis shard that the
// consumer (checkpoints, records) and the sinks (result ranges, dead-letter
// positions) share, so neither has to mirror or convert the other's.
package shardpos

import "strconv"

// Position is a place in a shard: a Kinesis sequence number plus the index
// of a user record inside a KPL aggregate (0 for records that are not
// aggregated).
//
// A checkpoint at a Position means every user record up to and including
// it is done; a restarted reader resumes at the next user record, even in
// the middle of an aggregate.
type Position struct {
	// Sequence is a decimal sequence number or, in a checkpoint, one of the
	// consumer's sentinels (TRIM_HORIZON, LATEST, AT_TIMESTAMP, SHARD_END).
	Sequence string
	// SubSequence is the index of the user record inside its aggregate.
	SubSequence uint64
}

// IsZero reports whether p is the zero Position (nothing processed).
func (p Position) IsZero() bool { return p.Sequence == "" && p.SubSequence == 0 }

// Compare orders two positions that name real sequence numbers of one
// shard: -1 if p is before q, 0 if equal, +1 if after. An empty sequence
// sorts first.
func (p Position) Compare(q Position) int {
	if c := CompareSequence(p.Sequence, q.Sequence); c != 0 {
		return c
	}
	switch {
	case p.SubSequence < q.SubSequence:
		return -1
	case p.SubSequence > q.SubSequence:
		return 1
	}
	return 0
}

// String renders p as "sequence.subsequence", the form used in object keys
// and dead-letter attributes.
func (p Position) String() string {
	return p.Sequence + "." + strconv.FormatUint(p.SubSequence, 10)
}

// CompareSequence orders two sequence numbers: decimal integers of up to
// 128 bits without leading zeros, so a longer string is a larger number and
// equal lengths compare lexically.
func CompareSequence(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
