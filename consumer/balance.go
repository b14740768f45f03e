package consumer

import (
	"math/rand/v2"
	"sort"
	"time"
)

// leaseView is what the taker knows about one lease after a scan.
type leaseView struct {
	key   string
	owner string
	// expired: the owner has not bumped the counter for the failover time on
	// this worker's clock, or nobody owns the lease.
	expired bool
}

// plan is the taker's decision for one round.
type plan struct {
	take  []string // unowned or expired leases
	steal []string // leases held by the most loaded worker
}

// planTakes decides which leases worker me should take, following Java
// KCL's DynamoDBLeaseTaker: a target of ceil(leases/workers) capped by
// maxLeases; expired and unowned leases are taken at once up to the target;
// only when none are left does the worker steal from the most loaded one,
// at most maxSteal per round. held is the set of leases me is processing;
// a lease the table lists under me that is not in held belongs to an
// earlier run of this worker and counts as expired. Finished (SHARD_END)
// leases must not be passed in.
func planTakes(me string, views []leaseView, held map[string]bool, maxLeases, maxSteal int, rng *rand.Rand) plan {
	counts := map[string]int{me: 0}
	var available []string
	for _, v := range views {
		switch {
		case held[v.key]:
			counts[me]++
		case v.owner == "" || v.expired || v.owner == me:
			available = append(available, v.key)
		default:
			counts[v.owner]++
		}
	}
	if len(views) == 0 {
		return plan{}
	}
	target := (len(views) + len(counts) - 1) / len(counts)
	if maxLeases > 0 && target > maxLeases {
		target = maxLeases
	}
	need := target - counts[me]
	if need <= 0 {
		return plan{}
	}
	if len(available) > 0 {
		rng.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
		return plan{take: available[:min(need, len(available))]}
	}
	// Steal from the most loaded worker (ties broken by name so that every
	// worker agrees on the victim).
	victim, most := "", 0
	for w, n := range counts {
		if w == me {
			continue
		}
		if n > most || (n == most && w < victim) {
			victim, most = w, n
		}
	}
	if victim == "" || most < target {
		return plan{}
	}
	n := min(need, most-target)
	if n == 0 && need > 1 {
		// Two or more short of the target while the most loaded worker sits
		// exactly at it: take one anyway, or a 3-worker split of 8 leases
		// would stop at 4/4/0.
		n = 1
	}
	n = min(n, max(maxSteal, 1))
	if n == 0 {
		return plan{}
	}
	var theirs []string
	for _, v := range views {
		if v.owner == victim && !v.expired && !held[v.key] {
			theirs = append(theirs, v.key)
		}
	}
	sort.Strings(theirs)
	rng.Shuffle(len(theirs), func(i, j int) { theirs[i], theirs[j] = theirs[j], theirs[i] })
	return plan{steal: theirs[:min(n, len(theirs))]}
}

// observed is the taker's memory of one lease's counter: when the counter
// was last seen to change, on the local monotonic clock.
type observed struct {
	owner   string
	counter int64
	since   time.Time
}

// expiryTracker judges expiry as Java KCL does: a lease is expired when its
// counter has been seen unchanged for the failover time on this worker's
// clock. Clocks of other hosts are never compared.
type expiryTracker struct {
	failover time.Duration
	seen     map[string]observed
}

func newExpiryTracker(failover time.Duration) *expiryTracker {
	return &expiryTracker{failover: failover, seen: make(map[string]observed)}
}

// since returns when key's counter was last seen to move (zero when the
// lease was never observed).
func (e *expiryTracker) since(key string) time.Time { return e.seen[key].since }

// observe records a scan taken at now and returns, per lease, whether it is
// expired, plus the earliest time at which a currently live lease could
// expire (zero when none can).
func (e *expiryTracker) observe(leases []lease, now time.Time) (expired map[string]bool, next time.Time) {
	expired = make(map[string]bool, len(leases))
	keep := make(map[string]bool, len(leases))
	for i := range leases {
		l := &leases[i]
		keep[l.key] = true
		o, ok := e.seen[l.key]
		if !ok || o.counter != l.counter || o.owner != l.owner {
			o = observed{owner: l.owner, counter: l.counter, since: now}
			e.seen[l.key] = o
		}
		if l.owner == "" {
			expired[l.key] = true
			continue
		}
		deadline := o.since.Add(e.failover)
		if !now.Before(deadline) {
			expired[l.key] = true
			continue
		}
		if next.IsZero() || deadline.Before(next) {
			next = deadline
		}
	}
	for k := range e.seen {
		if !keep[k] {
			delete(e.seen, k)
		}
	}
	return expired, next
}
