package assign

import (
	"cmp"
	"slices"
)

// countTarget is Java's LeaseCountBasedLeaseAssignmentDecider.calculateTargetLeaseCount: ceil(leases/workers),
// 1 when there are at least as many workers as leases, capped by MaxLeasesPerWorker.
func (r *round) countTarget() int {
	n, nw := len(r.leases), len(r.ws)
	if nw >= n {
		return 1
	}
	return min((n+nw-1)/nw, r.cfg.MaxLeasesPerWorker)
}

// workersByCount lists the workers by ascending count, ties in random order (Java sorts a HashMap's entries).
func (r *round) workersByCount(counts []int) []int32 {
	order := make([]int32, len(counts))
	for i, p := range r.rng.Perm(len(counts)) {
		order[i] = int32(p)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(counts[a], counts[b]) })
	return order
}

// countAssignExpired is Java's LeaseCountBased assignExpiredOrUnassignedLeases: expired leases go to the
// least loaded workers, none above the target (which may be MaxLeasesPerWorker). Java fills the least loaded
// worker up to the target before the next, from counts it does not update when a lease leaves its old owner,
// and gives each worker already at the target one more lease, passing MaxLeasesPerWorker; here each lease
// goes to the worker with the fewest leases at that moment (its live owner counting without it) that is
// below the target, and a lease leaving a live owner frees its place. Without a cap there is always room
// for the leases of dead workers.
func (r *round) countAssignExpired(expired []int32) {
	if len(expired) == 0 || len(r.ws) == 0 {
		return
	}
	target := r.countTarget()
	rank := r.rng.Perm(len(r.ws))
	for _, l := range expired {
		// A live owner counts without this lease: keeping it costs it nothing.
		load := func(c int) int {
			if int32(c) == r.owner[l] {
				return r.ws[c].count - 1
			}
			return r.ws[c].count
		}
		w := int32(-1)
		for c := range r.ws {
			if load(c) >= target {
				continue
			}
			if w < 0 || load(c) < load(int(w)) || load(c) == load(int(w)) && rank[c] < rank[w] {
				w = int32(c)
			}
		}
		if w < 0 {
			return // Java's LeaseSpillover: every worker is at the target; the rest wait for room
		}
		if !r.noop(l, w, true) {
			r.transfer(l, w)
		}
	}
}

// countBalance is Java's LeaseCountBased balanceWorkerVariance: two pointers over the workers in ascending
// lease count move one lease at a time from the most loaded to the least loaded until each is at the
// target. Leases blocked on a hand-off, or moved earlier in the round, stay; which of a worker's leases
// moves is random.
func (r *round) countBalance() {
	nw := len(r.ws)
	if nw == 0 {
		return
	}
	target := r.countTarget()
	counts := make([]int, nw)
	for w := range r.ws {
		counts[w] = r.ws[w].count
	}
	order := r.workersByCount(counts)
	pool := slices.Clone(r.group) // each worker's segment is shuffled the first time it gives a lease
	shuffled := make([]bool, nw)
	cursor := slices.Clone(r.start[:nw])
	take := func(o int32) int32 {
		lo, hi := r.start[o], r.start[o+1]
		if !shuffled[o] {
			seg := pool[lo:hi]
			r.rng.Shuffle(len(seg), func(i, j int) { seg[i], seg[j] = seg[j], seg[i] })
			shuffled[o] = true
		}
		for ; cursor[o] < hi; cursor[o]++ {
			if l := pool[cursor[o]]; r.owner[l] == o && r.movable(l) {
				cursor[o]++
				return l
			}
		}
		return -1
	}
	left, right := 0, nw-1
	for left < right {
		u, o := order[left], order[right]
		if target-counts[u] <= 0 {
			left++
			continue
		}
		if counts[o]-target <= 0 {
			right--
			continue
		}
		l := take(o)
		if l < 0 {
			right--
			continue
		}
		r.transfer(l, u)
		counts[u]++
		counts[o]--
	}
}
