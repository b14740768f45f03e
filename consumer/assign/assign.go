package assign

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Defaults, each mirroring a Java KCL 3.x setting of the same meaning.
const (
	// DefaultReBalanceThresholdPercent mirrors WorkerUtilizationAwareAssignmentConfig.reBalanceThresholdPercentage
	// (10): balancing starts when a worker's metric is more than this far above or below the fleet average.
	DefaultReBalanceThresholdPercent = 10.0
	// DefaultDampeningPercent mirrors WorkerUtilizationAwareAssignmentConfig.dampeningPercentage (60): a donor
	// gives away this share of the throughput that separates it from the fleet average.
	DefaultDampeningPercent = 60.0
	// DefaultVarianceBalancingFrequency mirrors WorkerUtilizationAwareAssignmentConfig.varianceBalancingFrequency
	// (3): the leader passes balance=true to Decide on every 3rd round (and on its first round as leader).
	DefaultVarianceBalancingFrequency = 3
	// ThroughputMetric is the name of Java's synthetic metric (WorkerMetricType.THROUGHPUT, "T") that a worker
	// without metrics is balanced on: its share of the target throughput per worker, in percent.
	ThroughputMetric = "T"
	// CPUMetric is the name Java gives the CPU metric (WorkerMetricType.CPU, "C").
	CPUMetric = "C"
)

// maxInputValue bounds every throughput and metric value Decide accepts, so that sums and ratios of them
// stay finite (1e12 KBps is an exabyte per second; no real value comes near it).
const maxInputValue = 1e12

// Strategy selects the decider, as Java's LeaseManagementConfig.leaseAssignmentStrategy does.
type Strategy int

const (
	// WorkerUtilizationAware is Java's VarianceBasedLeaseAssignmentDecider, the default (WORKER_UTILIZATION_AWARE).
	WorkerUtilizationAware Strategy = iota
	// LeaseCountBased is Java's LeaseCountBasedLeaseAssignmentDecider (LEASE_COUNT_BASED, Java 3.4.3+).
	LeaseCountBased
)

// String names the strategy as Java's enum does.
func (s Strategy) String() string {
	switch s {
	case WorkerUtilizationAware:
		return "WORKER_UTILIZATION_AWARE"
	case LeaseCountBased:
		return "LEASE_COUNT_BASED"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Config is the part of Java's LeaseManagementConfig and WorkerUtilizationAwareAssignmentConfig that the
// deciders read. Zero values mean the Java defaults.
type Config struct {
	Strategy Strategy
	// ReBalanceThresholdPercent: 0 means DefaultReBalanceThresholdPercent. At most 100.
	ReBalanceThresholdPercent float64
	// DampeningPercent: 0 means DefaultDampeningPercent. At most 100.
	DampeningPercent float64
	// DisallowThroughputOvershoot inverts Java's allowThroughputOvershoot (default true): when a donor has no
	// set of leases that sums to less than the throughput to take, Java still moves its smallest lease.
	DisallowThroughputOvershoot bool
	// MaxThroughputPerHostKBps mirrors maxThroughputPerHostKBps; 0 means unlimited (Java's Double.MAX_VALUE).
	// WorkerUtilizationAware only, as in Java.
	MaxThroughputPerHostKBps float64
	// MaxLeasesPerWorker mirrors maxLeasesForWorker; 0 means unlimited (Java's Integer.MAX_VALUE).
	MaxLeasesPerWorker int
}

// Lease is one lease as the leader sees it in a round.
type Lease struct {
	Key string
	// Owner is leaseOwner; "" when unassigned.
	Owner string
	// CheckpointOwner is set while a graceful hand-off is in flight; the lease then still belongs to
	// CheckpointOwner (Java's actualOwner()), for its load and for "is it moving to where it is".
	CheckpointOwner string
	// ThroughputKBps is the lease's throughputKBps; read only when HasThroughput.
	ThroughputKBps float64
	// HasThroughput is false when the item has no throughputKBps: the lease then weighs the mean of those
	// that have one, or 0 when none has (Java's cold start).
	HasThroughput bool
	// Expired is judged by the caller (the leader): its counter did not move for the failover time.
	// A lease with no actual owner counts as expired whatever this says.
	Expired bool
	// HandoffBlocked: a hand-off is in flight and has not timed out (Java's blockedOnPendingCheckpoint,
	// which is false for expired leases). Such a lease is never moved.
	HandoffBlocked bool
	// LastCounterIncrement is Java's lastCounterIncrementNanos as the leader tracks it (any monotonic unit):
	// expired leases are assigned in ascending order, so unassigned leases (0) and the longest expired go first.
	// Leases with equal values keep the order they were passed in.
	LastCounterIncrement int64
}

// actualOwner is Java's Lease.actualOwner(): the checkpoint owner while a hand-off is in flight.
func (l *Lease) actualOwner() string {
	if l.CheckpointOwner != "" {
		return l.CheckpointOwner
	}
	return l.Owner
}

// Metric is one worker metric as the leader computed it from the worker's report.
type Metric struct {
	// Value is the worker's smoothed value (Java: EMA over the reported list), e.g. CPU percent.
	Value float64
	// Max is the top of the operating range (Java's opr[0], 100 for CPU); above it the worker is hot.
	Max float64
}

// Worker is one active worker: its metrics entry is fresh and no metric is failing (the caller filters).
type Worker struct {
	ID string
	// Metrics by name (CPUMetric, ...). Empty, or holding ThroughputMetric, makes a "default metric" worker
	// (Java's isUsingDefaultWorkerMetric): it is balanced on its share of the throughput instead.
	Metrics map[string]Metric
}

// Move is one reassignment decided in a round.
type Move struct {
	Key string
	// From is the lease's actual owner before the round, "" if unassigned. From equals To only for an
	// expired lease whose hand-off never finished: the write must clear checkpointOwner (Java's
	// isPendingCheckpointExpired case).
	From string
	To   string
	// Expired: the lease was expired or unassigned, so it is written directly (no graceful hand-off).
	Expired bool
}

// Decide runs one leader round and returns the moves it decides, in the order decided, at most one per lease.
//
// Every expired or unassigned lease not HandoffBlocked is assigned first, in ascending LastCounterIncrement
// order, while some worker can take it; then, when balance is true, the strategy's balancing runs (the caller
// passes true on the first round as leader and then every DefaultVarianceBalancingFrequency-th round).
// The caller passes only leases that have not reached SHARD_END, and only active workers. rng orders a
// donor's leases of equal throughput and the count-based strategy's ties; it must not be nil.
//
// Decide reads nothing but its arguments and does not modify them. It returns an error, and no moves, when an
// input is invalid: an empty or repeated lease key or worker ID, a throughput or metric value that is negative,
// not finite or above 1e12, a metric Max that is not positive, or a Config field out of range.
func Decide(cfg Config, leases []Lease, workers []Worker, balance bool, rng *rand.Rand) ([]Move, error) {
	r, err := newRound(cfg, leases, workers, rng)
	if err != nil {
		return nil, err
	}
	r.run(balance)
	return r.moves, nil
}

// round is the working state of one Decide call (Java's InMemoryStorageView plus the decider's fields).
type round struct {
	cfg     Config
	rng     *rand.Rand
	leases  []Lease
	workers []Worker
	kbps    []float64 // per lease, the mean filled in for leases without throughput
	owner   []int32   // per lease: worker index of the current actual owner, -1 if none or not active
	moved   []bool    // per lease: already moved in this round
	expired []bool    // per lease: expired or unassigned
	group   []int32   // lease indices grouped by their initial owner: group[start[w]:start[w+1]]
	start   []int32
	ws      []worker
	byID    map[string]int32
	moves   []Move

	avgLeaseKBps  float64 // Java averageLeaseThroughput
	targetAvgKBps float64 // Java targetAverageThroughput: mean total throughput per worker
	variance      *varianceState
}

type worker struct {
	id    string
	kbps  float64 // Java workerToTotalAssignedThroughputMap
	count int     // leases whose actual owner this worker is
}

func newRound(cfg Config, leases []Lease, workers []Worker, rng *rand.Rand) (*round, error) {
	if rng == nil {
		return nil, errors.New("assign: nil rng")
	}
	cfg, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	r := &round{cfg: cfg, rng: rng, leases: leases, workers: workers}
	r.ws = make([]worker, len(workers))
	r.byID = make(map[string]int32, len(workers))
	for i := range workers {
		w := &workers[i]
		if w.ID == "" {
			return nil, fmt.Errorf("assign: workers[%d]: empty ID", i)
		}
		if _, dup := r.byID[w.ID]; dup {
			return nil, fmt.Errorf("assign: workers[%d]: ID %q repeated", i, w.ID)
		}
		for name, m := range w.Metrics {
			if !valid(m.Value) {
				return nil, fmt.Errorf("assign: worker %q: metric %q: value %v not in [0, 1e12]", w.ID, name, m.Value)
			}
			if !valid(m.Max) || m.Max == 0 {
				return nil, fmt.Errorf("assign: worker %q: metric %q: max %v not in (0, 1e12]", w.ID, name, m.Max)
			}
		}
		r.byID[w.ID] = int32(i)
		r.ws[i].id = w.ID
	}

	n := len(leases)
	keys := make(map[string]struct{}, n)
	var sum float64
	var with int
	for i := range leases {
		l := &leases[i]
		if l.Key == "" {
			return nil, fmt.Errorf("assign: leases[%d]: empty key", i)
		}
		if _, dup := keys[l.Key]; dup {
			return nil, fmt.Errorf("assign: leases[%d]: key %q repeated", i, l.Key)
		}
		keys[l.Key] = struct{}{}
		if l.HasThroughput {
			if !valid(l.ThroughputKBps) {
				return nil, fmt.Errorf("assign: lease %q: throughputKBps %v not in [0, 1e12]", l.Key, l.ThroughputKBps)
			}
			sum += l.ThroughputKBps
			with++
		}
	}
	if with > 0 {
		r.avgLeaseKBps = sum / float64(with)
	}
	r.targetAvgKBps = r.avgLeaseKBps * float64(n) / float64(max(1, len(workers)))

	r.kbps = make([]float64, n)
	r.owner = make([]int32, n)
	r.moved = make([]bool, n)
	r.expired = make([]bool, n)
	r.start = make([]int32, len(workers)+1)
	for i := range leases {
		l := &leases[i]
		r.kbps[i] = r.avgLeaseKBps
		if l.HasThroughput {
			r.kbps[i] = l.ThroughputKBps
		}
		ao := l.actualOwner()
		r.expired[i] = l.Expired || ao == ""
		w, ok := r.byID[ao]
		if !ok {
			w = -1
		}
		r.owner[i] = w
		if w >= 0 {
			r.ws[w].kbps += r.kbps[i]
			r.ws[w].count++
			r.start[w+1]++
		}
	}
	// Counting sort of the leases by initial owner, so that a donor's leases are found without a map.
	for w := range workers {
		r.start[w+1] += r.start[w]
	}
	r.group = make([]int32, r.start[len(workers)])
	fill := slices.Clone(r.start[:len(workers)])
	for i, w := range r.owner {
		if w >= 0 {
			r.group[fill[w]] = int32(i)
			fill[w]++
		}
	}
	r.moves = make([]Move, 0, 16)
	return r, nil
}

func valid(v float64) bool { return v >= 0 && v <= maxInputValue } // false for NaN

// resolve validates cfg and fills the defaults in.
func resolve(cfg Config) (Config, error) {
	switch cfg.Strategy {
	case WorkerUtilizationAware, LeaseCountBased:
	default:
		return cfg, fmt.Errorf("assign: Config.Strategy: unknown %v", cfg.Strategy)
	}
	if !(cfg.ReBalanceThresholdPercent >= 0 && cfg.ReBalanceThresholdPercent <= 100) {
		return cfg, fmt.Errorf("assign: Config.ReBalanceThresholdPercent %v not in [0, 100]", cfg.ReBalanceThresholdPercent)
	}
	if !(cfg.DampeningPercent >= 0 && cfg.DampeningPercent <= 100) {
		return cfg, fmt.Errorf("assign: Config.DampeningPercent %v not in [0, 100]", cfg.DampeningPercent)
	}
	if !(cfg.MaxThroughputPerHostKBps >= 0) || math.IsInf(cfg.MaxThroughputPerHostKBps, 0) {
		return cfg, fmt.Errorf("assign: Config.MaxThroughputPerHostKBps %v is negative or not finite", cfg.MaxThroughputPerHostKBps)
	}
	if cfg.MaxLeasesPerWorker < 0 {
		return cfg, fmt.Errorf("assign: Config.MaxLeasesPerWorker %d is negative", cfg.MaxLeasesPerWorker)
	}
	if cfg.ReBalanceThresholdPercent == 0 {
		cfg.ReBalanceThresholdPercent = DefaultReBalanceThresholdPercent
	}
	if cfg.DampeningPercent == 0 {
		cfg.DampeningPercent = DefaultDampeningPercent
	}
	if cfg.MaxThroughputPerHostKBps == 0 {
		cfg.MaxThroughputPerHostKBps = math.MaxFloat64
	}
	if cfg.MaxLeasesPerWorker == 0 {
		cfg.MaxLeasesPerWorker = math.MaxInt
	}
	return cfg, nil
}

func (r *round) run(balance bool) {
	expired := r.expiredInOrder()
	if r.cfg.Strategy == LeaseCountBased {
		r.countAssignExpired(expired)
		if balance {
			r.countBalance()
		}
		return
	}
	r.variance = newVarianceState(r)
	r.varianceAssignExpired(expired)
	if balance {
		r.balanceVariance()
	}
}

// expiredInOrder lists the leases to assign: expired or unassigned and not blocked on a hand-off, oldest
// first (Java sorts by lastCounterIncrementNanos; the sort here is stable, so ties keep the caller's order).
func (r *round) expiredInOrder() []int32 {
	var out []int32
	for i := range r.leases {
		if r.expired[i] && !r.leases[i].HandoffBlocked {
			out = append(out, int32(i))
		}
	}
	slices.SortStableFunc(out, func(a, b int32) int {
		return cmp.Compare(r.leases[a].LastCounterIncrement, r.leases[b].LastCounterIncrement)
	})
	return out
}

func (r *round) workerMetrics(w int) map[string]Metric { return r.workers[w].Metrics }

// movable reports whether lease l may still be moved in this round.
func (r *round) movable(l int32) bool { return !r.moved[l] && !r.leases[l].HandoffBlocked }

// transfer records the move of lease l to worker w and updates the loads (Java's performLeaseAssignment).
func (r *round) transfer(l, w int32) {
	if from := r.owner[l]; from >= 0 {
		f := &r.ws[from]
		f.kbps = max(0, f.kbps-r.kbps[l]) // max: float error must not make a load negative
		f.count--
	}
	r.ws[w].kbps += r.kbps[l]
	r.ws[w].count++
	r.owner[l] = w
	r.moved[l] = true
	r.moves = append(r.moves, Move{Key: r.leases[l].Key, From: r.leases[l].actualOwner(), To: r.ws[w].id, Expired: r.expired[l]})
}

// noop reports whether assigning lease l to w changes nothing (Java's assignLease early return): w already
// owns it, unless it is an expired lease whose hand-off never finished, which must be rewritten.
func (r *round) noop(l, w int32, expired bool) bool {
	return r.owner[l] == w && !(expired && r.leases[l].CheckpointOwner != "")
}
