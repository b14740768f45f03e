package assign

import (
	"cmp"
	"math"
	"slices"
)

// varianceState is the part of a round that Java's VarianceBasedLeaseAssignmentDecider keeps: the metric
// values (extrapolated as leases are assigned), the fleet averages and the queue of assignable workers.
type varianceState struct {
	r        *round
	names    []string  // metric names, sorted (Java iterates a HashMap; sorting makes rounds reproducible)
	fleetAvg []float64 // per metric: mean over the workers that have it, fixed for the round
	nm       int       // len(names)
	val      []float64 // worker w, metric m at [w*nm+m]: current value, raised as leases are assigned
	opr      []float64 // operating range maximum, same layout
	has      []bool    // same layout
	key      []float64 // per worker: Java's computePercentageToReachAverage, cached
	heap     []int32   // assignable workers, most room first (Java's PriorityQueue)
	pos      []int32   // per worker: index in heap, -1 when not in it

	// targetLeasePerWorker is Java's max(#leases / #workers, 1) in integer division: the extrapolation
	// step per lease when no lease has a throughput yet.
	targetLeasePerWorker float64

	aside  []int32 // scratch: workers popped and put back by pick
	cands  []int32 // scratch: a donor's movable leases
	donors []int32 // scratch
	takes  []float64
	best   []int32
	bestTk []float64
}

func newVarianceState(r *round) *varianceState {
	nw := len(r.ws)
	v := &varianceState{r: r}
	isDefault := make([]bool, nw)
	anyDefault := false
	for i := range r.ws {
		ms := v.r.workerMetrics(i)
		_, hasT := ms[ThroughputMetric]
		if len(ms) == 0 || hasT {
			isDefault[i], anyDefault = true, true
			continue
		}
		for name := range ms {
			v.names = append(v.names, name)
		}
	}
	if anyDefault && len(v.names) > 0 {
		// A mixed fleet. Java balances each metric only among the workers that report it, so the two
		// groups never trade leases and a default worker that joins late gets none while the others are
		// within the threshold of each other. Throughput share is the one measure every worker has: the
		// whole fleet is balanced on it.
		v.names = v.names[:0]
		for i := range isDefault {
			isDefault[i] = true
		}
	}
	if anyDefault {
		v.names = append(v.names, ThroughputMetric)
	}
	slices.Sort(v.names)
	v.names = slices.Compact(v.names)
	nm := len(v.names)
	v.nm = nm
	v.val = make([]float64, nw*nm)
	v.opr = make([]float64, nw*nm)
	v.has = make([]bool, nw*nm)
	v.fleetAvg = make([]float64, nm)
	holders := make([]int, nm)
	n := len(r.leases)
	for i := range r.ws {
		if isDefault[i] {
			// Java's setOperatingRangeAndWorkerMetricsDataForDefaultWorker: the worker's share of the target
			// throughput per worker, in percent, against an operating range of 100.
			m, _ := slices.BinarySearch(v.names, ThroughputMetric)
			var share float64
			switch {
			case r.targetAvgKBps > 0:
				share = r.ws[i].kbps / r.targetAvgKBps
			case n > 0:
				// No lease has a throughput yet: Java divides 0 by 0 here (NaN); the share of leases is
				// the same measure once every lease weighs the same.
				share = float64(r.ws[i].count) / (float64(n) / float64(nw))
			}
			v.set(i, m, share*100, 100)
			continue
		}
		for name, mt := range v.r.workerMetrics(i) {
			m, _ := slices.BinarySearch(v.names, name)
			v.set(i, m, mt.Value, mt.Max)
		}
	}
	for i := range r.ws {
		for m := range nm {
			if v.has[i*nm+m] {
				v.fleetAvg[m] += v.val[i*nm+m]
				holders[m]++
			}
		}
	}
	for m := range nm {
		if holders[m] > 0 {
			v.fleetAvg[m] /= float64(holders[m])
		}
	}
	v.targetLeasePerWorker = float64(max(n/max(nw, 1), 1))

	v.key = make([]float64, nw)
	v.pos = make([]int32, nw)
	v.heap = make([]int32, 0, nw)
	for i := range r.ws {
		v.pos[i] = -1
		v.key[i] = v.computeKey(int32(i))
		if v.canTakeMore(int32(i)) {
			v.push(int32(i))
		}
	}
	return v
}

func (v *varianceState) set(w, m int, val, opr float64) {
	v.val[w*v.nm+m] = val
	v.opr[w*v.nm+m] = opr
	v.has[w*v.nm+m] = true
}

// computeKey is Java's computePercentageToReachAverage: over the worker's metrics, the smallest relative
// distance to the fleet average, (avg - v) / v, with 1 for a worker at 0.
func (v *varianceState) computeKey(w int32) float64 {
	k := math.MaxFloat64
	for m := range v.nm {
		i := int(w)*v.nm + m
		if !v.has[i] {
			continue
		}
		d := 1.0
		if x := v.val[i]; x != 0 {
			d = (v.fleetAvg[m] - x) / x
		}
		k = min(k, d)
	}
	return k
}

// delta is Java's extrapolateMetricsValue step: the load a lease of kbps adds to metric m, assuming the
// metric grows with throughput as it does on average; by lease count when no lease has a throughput.
func (v *varianceState) delta(m int, kbps float64) float64 {
	if t := v.r.targetAvgKBps; t > 0 {
		return kbps * v.fleetAvg[m] / t
	}
	return v.fleetAvg[m] / v.targetLeasePerWorker
}

// extrapolate raises w's metrics for an added lease of kbps (Java's
// extrapolateMetricStatValuesForAddedThroughput). Only receivers are raised; Java does not lower donors
// within a round either, which keeps a donor from turning receiver on the same round's estimate.
func (v *varianceState) extrapolate(w int32, kbps float64) {
	for m := range v.nm {
		if i := int(w)*v.nm + m; v.has[i] {
			v.val[i] += v.delta(m, kbps)
		}
	}
	v.key[w] = v.computeKey(w)
}

// wouldGoAbove is Java's willAnyMetricStatsGoAboveAverageUtilizationOrOperatingRange.
func (v *varianceState) wouldGoAbove(w int32, kbps float64) bool {
	for m := range v.nm {
		i := int(w)*v.nm + m
		if !v.has[i] {
			continue
		}
		x := v.val[i] + v.delta(m, kbps)
		if x > v.fleetAvg[m] || x > v.opr[i] {
			return true
		}
	}
	return false
}

// canTakeMore is Java's isWorkerTotalThroughputLessThanMaxThroughput && isWorkerAssignedLeasesLessThanMaxLeases.
func (v *varianceState) canTakeMore(w int32) bool {
	ws := &v.r.ws[w]
	return ws.count < v.r.cfg.MaxLeasesPerWorker && ws.kbps <= v.r.cfg.MaxThroughputPerHostKBps
}

// fits reports whether w may take lease l without going above MaxThroughputPerHostKBps. Java only stops
// giving a worker leases once it is above the maximum, so the lease that crosses it is still given; here
// it is not, except to a worker that holds nothing, so that a lease larger than the maximum is not orphaned.
func (v *varianceState) fits(w, l int32) bool {
	ws := &v.r.ws[w]
	return v.r.owner[l] == w || ws.count == 0 || ws.kbps+v.r.kbps[l] <= v.r.cfg.MaxThroughputPerHostKBps
}

// pick takes the worker with the most room that fits lease l out of the queue, -1 if none does. Workers
// passed over stay in the queue.
func (v *varianceState) pick(l int32) int32 {
	v.aside = v.aside[:0]
	w := int32(-1)
	for len(v.heap) > 0 {
		c := v.pop()
		if v.fits(c, l) {
			w = c
			break
		}
		v.aside = append(v.aside, c)
	}
	for _, c := range v.aside {
		v.push(c)
	}
	return w
}

// assign is Java's VBD.assignLease for a worker w popped from the queue.
func (v *varianceState) assign(l, w int32, expired bool) {
	r := v.r
	if r.noop(l, w, expired) {
		v.push(w)
		return
	}
	from := r.owner[l]
	if from != w {
		// Java also raises an owner that gets its own expired hand-off back; its load is already counted.
		v.extrapolate(w, r.kbps[l])
	}
	r.transfer(l, w)
	if from >= 0 && from != w && v.pos[from] >= 0 {
		v.fix(from) // its lease count, a tie-break, went down
	}
	if v.canTakeMore(w) {
		v.push(w)
	}
}

// varianceAssignExpired is Java's VBD.assignExpiredOrUnassignedLeases: each lease goes to the worker with
// the most room. Java stops at the first lease no worker can take; here only an empty queue stops it, as a
// lease may be refused for its size while a smaller one after it still fits.
func (r *round) varianceAssignExpired(expired []int32) {
	v := r.variance
	for _, l := range expired {
		if len(v.heap) == 0 {
			return
		}
		if w := v.pick(l); w >= 0 {
			v.assign(l, w, true)
		}
	}
}

// balanceVariance is Java's VBD.balanceWorkerVariance. For each metric, when some worker is outside
// ±threshold of the fleet average (or above its operating range), the donors are the workers at or above
// the upper limit or the operating range (else the most loaded one), each giving
// kbps × (v − avg) / v × dampening; the metric with the most throughput to take wins. Each donor's leases
// then go one by one to the worker with the most room, and a donor stops at the first lease that would take
// that worker above the fleet average or its operating range.
func (r *round) balanceVariance() {
	v := r.variance
	thr := r.cfg.ReBalanceThresholdPercent / 100
	damp := r.cfg.DampeningPercent / 100
	bestTotal, bestMetric := -1.0, -1
	v.best, v.bestTk = v.best[:0], v.bestTk[:0]
	for m := range v.nm {
		avg := v.fleetAvg[m]
		upper, lower := avg*(1+thr), avg*(1-thr)
		trigger := false
		most := int32(-1)
		v.donors, v.takes = v.donors[:0], v.takes[:0]
		for w := range r.ws {
			i := w*v.nm + m
			if !v.has[i] {
				continue
			}
			x := v.val[i]
			hot := x > v.opr[i]
			if x > upper || x < lower || hot {
				trigger = true
			}
			if x >= upper || hot {
				v.donors = append(v.donors, int32(w))
			}
			if most < 0 || v.val[int(most)*v.nm+m] < x {
				most = int32(w)
			}
		}
		if !trigger {
			v.donors = v.donors[:0]
		} else if len(v.donors) == 0 {
			v.donors = append(v.donors, most)
		}
		total := 0.0
		for _, d := range v.donors {
			x := v.val[int(d)*v.nm+m]
			// x > 0 here: a donor is at or above an average of non-negative values that is above zero
			// (when the average is 0 every value is 0 and nothing triggers).
			t := r.ws[d].kbps * (x - avg) / x * damp
			v.takes = append(v.takes, t)
			total += t
		}
		if total > bestTotal {
			bestTotal, bestMetric = total, m
			v.best = append(v.best[:0], v.donors...)
			v.bestTk = append(v.bestTk[:0], v.takes...)
		}
	}
	order := make([]int, len(v.best))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(v.bestTk[b], v.bestTk[a]) })
	for _, i := range order {
		v.giveAway(v.best[i], v.bestTk[i], bestMetric)
	}
}

// giveAway moves leases of donor d worth less than take, Java's getLeasesToTake /
// getLeasesCombiningToThroughput followed by its assignment loop, over the donor's movable leases (not
// moved earlier in this round, not blocked on a hand-off). With no throughput to go by, one lease, as Java.
// Otherwise the leases are tried largest first (equal ones in random order), each one that keeps the total
// below take and that the receiver with the most room accepts (Java's rule: it stays at or below the fleet
// average and its operating range); if none moves, the smallest lease, unless overshoot is disallowed, which
// the receiver may also accept on the granularity rule (see accepts).
//
// Java shuffles the leases, picks its set before asking any receiver, and ends the donor's turn at the first
// lease the receiver refuses, dropping that receiver from the queue for the rest of the round. A round could
// thus decline a move that was possible and make it rounds later, so a quiet round was no sign of rest. Here
// a round moves nothing exactly when the receiver with the most room refuses every donor's smallest lease,
// and then no later round moves anything until the load changes.
func (v *varianceState) giveAway(d int32, take float64, m int) {
	r := v.r
	v.cands = v.cands[:0]
	for _, l := range r.group[r.start[d]:r.start[d+1]] {
		if r.owner[l] == d && r.movable(l) {
			v.cands = append(v.cands, l)
		}
	}
	if len(v.cands) == 0 {
		return
	}
	r.rng.Shuffle(len(v.cands), func(i, j int) { v.cands[i], v.cands[j] = v.cands[j], v.cands[i] })
	donor := v.val[int(d)*v.nm+m] // its value on the balanced metric, lowered here as it gives leases away
	if r.ws[d].kbps <= 0 {
		v.tryMove(v.cands[0], m, donor, false)
		return
	}
	slices.SortFunc(v.cands, func(a, b int32) int { return cmp.Compare(r.kbps[b], r.kbps[a]) }) // equal ones stay shuffled
	remaining := take
	moved := false
	for _, l := range v.cands {
		if remaining-r.kbps[l] <= 0 {
			continue
		}
		if v.tryMove(l, m, donor, false) {
			remaining -= r.kbps[l]
			donor -= v.delta(m, r.kbps[l])
			moved = true
		}
	}
	if !moved && !r.cfg.DisallowThroughputOvershoot {
		if !v.tryMove(v.cands[len(v.cands)-1], m, donor, true) {
			v.trySwap(d, m, donor)
		}
	}
}

// tryMove gives lease l to the worker with the most room that fits it, if that worker accepts it; it
// reports whether the lease moved.
func (v *varianceState) tryMove(l int32, m int, donor float64, granular bool) bool {
	w := v.pick(l)
	if w < 0 {
		return false
	}
	kbps := v.r.kbps[l]
	if v.wouldGoAbove(w, kbps) && !(granular && v.acceptsGranular(w, kbps, m, donor)) {
		v.push(w)
		return false
	}
	from := v.r.owner[l]
	v.assign(l, w, false)
	return v.r.owner[l] != from
}

// outOfBand reports whether the donor's value or receiver w's on metric m is outside the ±threshold band:
// the granularity rule and swaps only act then, so a fleet within the band is left alone even when Java's
// triggers fire (on the synthetic throughput metric any worker above its fair share counts as hot).
func (v *varianceState) outOfBand(w int32, m int, donor float64) bool {
	thr := v.r.cfg.ReBalanceThresholdPercent / 100
	return donor >= v.fleetAvg[m]*(1+thr) || v.val[int(w)*v.nm+m] < v.fleetAvg[m]*(1-thr)
}

// acceptsGranular is the granularity rule, which Java does not have. Java's receiver must stay at or below
// the fleet average, so a donor whose smallest lease is larger than the room below the average of every
// other worker keeps it for good: a worker can stay far above the threshold (in the 16 hot shards
// simulation, at 163% of the mean) while moving one lease would even things out. The donor's smallest lease
// is then still given if the receiver ends below the upper limit of the balanced metric and below the
// donor's current value there, and at or below the average and operating range on its other metrics, when
// either is outside the band. The
// receiver does not become a donor by it and the gap between the two strictly shrinks, so (with load
// proportional to throughput) the sum of squared loads falls with every move and balancing still comes to
// rest; it cannot oscillate.
func (v *varianceState) acceptsGranular(w int32, kbps float64, m int, donor float64) bool {
	if !v.has[int(w)*v.nm+m] || !v.outOfBand(w, m, donor) {
		return false
	}
	upper := v.fleetAvg[m] * (1 + v.r.cfg.ReBalanceThresholdPercent/100)
	for mm := range v.nm {
		i := int(w)*v.nm + mm
		if !v.has[i] {
			continue
		}
		x := v.val[i] + v.delta(mm, kbps)
		// The synthetic throughput metric's range of 100 is the fair share itself, not a capacity: the
		// upper limit bounds it instead.
		if x > v.opr[i] && v.names[mm] != ThroughputMetric {
			return false
		}
		if mm == m && (x >= upper || x >= donor) || mm != m && x > v.fleetAvg[mm] {
			return false
		}
	}
	return true
}

// less orders the queue: most room to the fleet average first (Java); ties, which Java leaves to insertion
// order, go to fewer leases, then less throughput, so a cold start spreads evenly, then the lower ID, so
// that the same state gets the same receiver in every round.
func (v *varianceState) less(a, b int32) bool {
	if v.key[a] != v.key[b] {
		return v.key[a] > v.key[b]
	}
	wa, wb := &v.r.ws[a], &v.r.ws[b]
	if wa.count != wb.count {
		return wa.count < wb.count
	}
	if wa.kbps != wb.kbps {
		return wa.kbps < wb.kbps
	}
	return wa.id < wb.id
}

func (v *varianceState) push(w int32) {
	v.pos[w] = int32(len(v.heap))
	v.heap = append(v.heap, w)
	v.up(len(v.heap) - 1)
}

func (v *varianceState) pop() int32 {
	top := v.heap[0]
	last := len(v.heap) - 1
	v.swap(0, last)
	v.heap = v.heap[:last]
	v.pos[top] = -1
	if last > 0 {
		v.down(0)
	}
	return top
}

func (v *varianceState) fix(w int32) {
	i := int(v.pos[w])
	if !v.down(i) {
		v.up(i)
	}
}

func (v *varianceState) swap(i, j int) {
	v.heap[i], v.heap[j] = v.heap[j], v.heap[i]
	v.pos[v.heap[i]] = int32(i)
	v.pos[v.heap[j]] = int32(j)
}

func (v *varianceState) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !v.less(v.heap[i], v.heap[p]) {
			return
		}
		v.swap(i, p)
		i = p
	}
}

// down sifts i down and reports whether it moved.
func (v *varianceState) down(i int) bool {
	start := i
	n := len(v.heap)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && v.less(v.heap[c+1], v.heap[c]) {
			c++
		}
		if !v.less(v.heap[c], v.heap[i]) {
			break
		}
		v.swap(i, c)
		i = c
	}
	return i > start
}
