package main

import (
	"math"
	"time"
)

// retentionMargin is added to the longest time a stream's windows hold a
// record when deriving its retention: time to notice a stopped worker and
// bring one back before the oldest record an open window still needs
// expires, and room for the worker's own start-up check (window + allowed
// lateness + its margin must fit the retention, or it refuses to start).
const retentionMargin = 6 * time.Hour

// Kinesis's retention bounds, in hours.
const (
	minRetentionHours = 24
	maxRetentionHours = 8760
)

// streamRetentionHours is the retention a stream gets: the longest hold of
// its windows plus retentionMargin, rounded up to whole hours, at least
// floor (the streamRetentionHours setting: the outage budget the operator
// asked for) and within Kinesis's 24 to 8,760 hours. A window needing more
// than 8,760 hours is capped; the worker's start-up check then refuses it
// with the numbers.
func streamRetentionHours(floor int, hold time.Duration) int {
	need := int(math.Ceil((hold + retentionMargin).Hours()))
	return min(max(need, floor, minRetentionHours), maxRetentionHours)
}

// streamHolds maps each stream of the pipelines to the longest hold of the
// windows over it.
func streamHolds(ps []*Pipeline) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range ps {
		for _, w := range p.Windows {
			out[w.Stream] = max(out[w.Stream], w.Hold)
		}
	}
	return out
}
