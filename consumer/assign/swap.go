package assign

import "math"

// trySwap is the last resort of a donor d none of whose leases can move (Java has no such step): it swaps
// one of d's leases for a smaller one of the worker with the most room, r, when that evens the two out on
// the balanced metric m without taking r to the upper limit. With 16 leases from 1 to 20 KBps on 4 workers,
// a worker holding three of the hottest leases is otherwise stuck far above the threshold (the smallest is
// larger than the room of the least loaded worker), while a swap for one of that worker's small leases puts
// both within it. Of the pairs whose net load x − y is above 0 and below the gap, it takes the one that
// leaves the two closest. Only when the donor or r is outside the band (see outOfBand). The gap strictly shrinks and r ends below the upper limit, so, as for the
// granularity rule, the sum of squared loads falls and balancing still comes to rest.
//
// Both leases count as moved in the round; r's and d's lease counts do not change, r must stay within
// MaxThroughputPerHostKBps, and r's other metrics at or below their average.
func (v *varianceState) trySwap(d int32, m int, donor float64) {
	r := v.r
	if len(v.heap) == 0 || r.targetAvgKBps <= 0 {
		return // with no throughput known every lease weighs the same: a swap changes nothing
	}
	w := v.heap[0]
	if w == d || !v.has[int(w)*v.nm+m] || !v.outOfBand(w, m, donor) {
		return
	}
	upper := v.fleetAvg[m] * (1 + r.cfg.ReBalanceThresholdPercent/100)
	rv := v.val[int(w)*v.nm+m]
	gap := donor - rv
	bestX, bestY, bestScore := int32(-1), int32(-1), math.Inf(1)
	for _, y := range r.group[r.start[w]:r.start[w+1]] {
		if r.owner[y] != w || !r.movable(y) {
			continue
		}
		for _, x := range v.cands { // d's movable leases
			net := r.kbps[x] - r.kbps[y]
			dm := v.delta(m, r.kbps[x]) - v.delta(m, r.kbps[y])
			if net <= 0 || dm <= 0 || dm >= gap || rv+dm >= upper || r.ws[w].kbps+net > r.cfg.MaxThroughputPerHostKBps {
				continue
			}
			if score := math.Abs(gap - 2*dm); score < bestScore && v.swapKeepsOthers(w, net, m) {
				bestX, bestY, bestScore = x, y, score
			}
		}
	}
	if bestX < 0 {
		return
	}
	for mm := range v.nm {
		if i := int(w)*v.nm + mm; v.has[i] {
			v.val[i] += v.delta(mm, r.kbps[bestX]) - v.delta(mm, r.kbps[bestY])
		}
	}
	v.key[w] = v.computeKey(w)
	r.transfer(bestX, w)
	r.transfer(bestY, d)
	v.fix(w)
	if v.pos[d] >= 0 {
		v.fix(d)
	}
}

// swapKeepsOthers reports whether w's metrics other than m stay at or below their average and operating
// range when it gains net KBps.
func (v *varianceState) swapKeepsOthers(w int32, net float64, m int) bool {
	for mm := range v.nm {
		i := int(w)*v.nm + mm
		if mm == m || !v.has[i] {
			continue
		}
		if x := v.val[i] + v.delta(mm, net); x > v.fleetAvg[mm] || x > v.opr[i] {
			return false
		}
	}
	return true
}
